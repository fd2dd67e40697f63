"""A small, independent pcap reader for the tests: Ethernet + IPv4/IPv6 + UDP/TCP, checksums verified."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass


@dataclass
class Packet:
    ts: float
    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    payload: bytes
    checksums_ok: bool
    seq: int = 0
    ack: int = 0


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def read_pcap(data: bytes) -> list[Packet]:
    magic, major, minor, _, _, snaplen, linktype = struct.unpack_from("<IHHiIII", data, 0)
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)
    assert snaplen >= 65535
    pos = 24
    packets: list[Packet] = []
    while pos < len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, pos)
        assert incl == orig
        frame = data[pos + 16 : pos + 16 + incl]
        assert len(frame) == incl
        pos += 16 + incl
        ethertype = struct.unpack_from("!H", frame, 12)[0]
        ip = frame[14:]
        if ethertype == 0x0800:
            ihl = (ip[0] & 0xF) * 4
            total = struct.unpack_from("!H", ip, 2)[0]
            assert total == len(ip)
            proto = ip[9]
            src_b, dst_b = ip[12:16], ip[16:20]
            ip_ok = _sum16(ip[:ihl]) == 0xFFFF
            segment = ip[ihl:]
            pseudo = src_b + dst_b + struct.pack("!BBH", 0, proto, len(segment))
        else:
            assert ethertype == 0x86DD
            plen = struct.unpack_from("!H", ip, 4)[0]
            assert plen == len(ip) - 40
            proto = ip[6]
            src_b, dst_b = ip[8:24], ip[24:40]
            ip_ok = True
            segment = ip[40:]
            pseudo = src_b + dst_b + struct.pack("!IxxxB", len(segment), proto)
        sport, dport = struct.unpack_from("!HH", segment, 0)
        seq = ack = 0
        if proto == 17:
            assert struct.unpack_from("!H", segment, 4)[0] == len(segment)
            payload = segment[8:]
        else:
            seq, ack = struct.unpack_from("!II", segment, 4)
            payload = segment[(segment[12] >> 4) * 4 :]
        l4_ok = _sum16(pseudo + segment) == 0xFFFF
        packets.append(
            Packet(
                ts=sec + usec / 1e6,
                src=str(ipaddress.ip_address(src_b)),
                dst=str(ipaddress.ip_address(dst_b)),
                sport=sport,
                dport=dport,
                proto=proto,
                payload=payload,
                checksums_ok=ip_ok and l4_ok,
                seq=seq,
                ack=ack,
            )
        )
    return packets
