"""Stored SIP messages -> a classic pcap file that Wireshark and tshark decode as SIP.

Pure: messages in, bytes out. The file is libpcap format (magic ``a1b2c3d4``,
microsecond timestamps, version 2.4) with ``LINKTYPE_ETHERNET`` (1), the link
type every dissector chain handles; MAC addresses are made up, locally
administered (``02:..``) and derived from the IP so one host keeps one MAC.

Each message becomes one frame, timestamped with its capture time ``ts``:

- IPv4 (header checksum computed, DF set, TTL 64) or IPv6 (hop limit 64); a
  message between an IPv4 and an IPv6 address uses IPv4-mapped IPv6 for both;
- ``udp`` -> UDP with a computed checksum (mandatory for IPv6, computed for IPv4 too);
- ``tcp``, ``tls``, ``ws``, ``wss``, ``sctp`` -> TCP (PSH+ACK, the stored text is
  the decrypted message) with per-direction sequence numbers that start at a
  value derived from the 4-tuple and advance by the payload length, and ACK
  numbers that follow the other direction, so Wireshark reassembles the stream
  without "previous segment not captured" noise;
- the payload is the stored text encoded as UTF-8 (what the collector decoded it
  from for every UTF-8 message; a message that was not UTF-8 was stored as
  latin-1 text and may differ in its non-ASCII bytes). A payload that would not
  fit one IP packet (over 65,000 bytes) is cut there.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from api.ladder import Message

LINKTYPE_ETHERNET = 1
PCAP_MAGIC = 0xA1B2C3D4
SNAPLEN = 65535
MAX_PAYLOAD = 65_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_TCP_TRANSPORTS = frozenset({"tcp", "tls", "ws", "wss", "sctp"})

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _address(text: str) -> IpAddress:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return ipaddress.IPv4Address(0)


def _mac(ip: IpAddress) -> bytes:
    return b"\x02" + hashlib.blake2b(ip.packed, digest_size=5).digest()


def _pair(src: IpAddress, dst: IpAddress) -> tuple[IpAddress, IpAddress]:
    if src.version == dst.version:
        return src, dst
    return (
        ipaddress.IPv6Address(f"::ffff:{src}") if src.version == 4 else src,
        ipaddress.IPv6Address(f"::ffff:{dst}") if dst.version == 4 else dst,
    )


class _TcpFlows:
    """Next sequence number per direction of each TCP connection."""

    def __init__(self) -> None:
        self._next: dict[tuple[bytes, int, bytes, int], int] = {}

    def _get(self, key: tuple[bytes, int, bytes, int]) -> int:
        seq = self._next.get(key)
        if seq is None:
            digest = hashlib.blake2b(repr(key).encode(), digest_size=4).digest()
            seq = self._next[key] = int.from_bytes(digest, "big")
        return seq

    def advance(self, src: bytes, sport: int, dst: bytes, dport: int, length: int) -> tuple[int, int]:
        """(seq, ack) for a segment of ``length`` bytes from src to dst; moves this direction on."""
        seq = self._get((src, sport, dst, dport))
        ack = self._get((dst, dport, src, sport))
        self._next[(src, sport, dst, dport)] = (seq + length) & 0xFFFFFFFF
        return seq, ack


def _transport_segment(
    proto: int, ends: tuple[IpAddress, IpAddress], ports: tuple[int, int], payload: bytes, flows: _TcpFlows
) -> bytes:
    src, dst = ends
    sport, dport = ports
    if proto == 17:
        length = 8 + len(payload)
        header = struct.pack("!HHHH", sport, dport, length, 0)
    else:
        seq, ack = flows.advance(src.packed, sport, dst.packed, dport, len(payload))
        length = 20 + len(payload)
        header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, 0x18, 65535, 0, 0)
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, proto, length)
    else:
        pseudo = src.packed + dst.packed + struct.pack("!IxxxB", length, proto)
    checksum = _checksum(pseudo + header + payload)
    if proto == 17 and checksum == 0:
        checksum = 0xFFFF  # 0 means "no checksum" in UDP
    offset = 6 if proto == 17 else 16
    return header[:offset] + struct.pack("!H", checksum) + header[offset + 2 :] + payload


def frame(message: Message, ip_id: int, flows: _TcpFlows) -> bytes:
    """One Ethernet frame carrying ``message``."""
    src, dst = _pair(_address(message.src_ip), _address(message.dst_ip))
    proto = 6 if message.transport.lower() in _TCP_TRANSPORTS else 17
    payload = message.raw.encode("utf-8")[:MAX_PAYLOAD]
    segment = _transport_segment(proto, (src, dst), (message.src_port, message.dst_port), payload, flows)
    if src.version == 4:
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), ip_id & 0xFFFF, 0x4000, 64, proto, 0, src.packed, dst.packed
        )
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        ethertype = 0x0800
    else:
        header = struct.pack("!IHBB16s16s", 6 << 28, len(segment), proto, 64, src.packed, dst.packed)
        ethertype = 0x86DD
    return _mac(dst) + _mac(src) + struct.pack("!H", ethertype) + header + segment


def build_pcap(messages: Iterable[Message]) -> bytes:
    """A pcap file with one frame per message, in the order given (callers pass time order)."""
    out = [struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)]
    flows = _TcpFlows()
    for i, message in enumerate(messages):
        data = frame(message, i + 1, flows)
        ts = message.ts if message.ts.tzinfo else message.ts.replace(tzinfo=UTC)
        micros = (ts - _EPOCH) // _US
        out.append(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(data), len(data)))
        out.append(data)
    return b"".join(out)
