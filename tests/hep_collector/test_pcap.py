"""The pcap/pcapng reader on the corpus captures (read in place) and on crafted bytes."""

from __future__ import annotations

import contextlib
import io
import itertools
import re
import struct
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.hep.pcap import (
    PROTO_SCTP,
    PROTO_TCP,
    PROTO_UDP,
    Packet,
    PcapError,
    PcapReader,
    hep_version,
    looks_like_sip,
)
from tests.corpus import CORPUS, corpus_file, require
from tests.hep_collector.conftest import sip_message

CALL_ID = re.compile(rb"\r\n(?:call-id|i)\s*:\s*([^\r\n]+)", re.IGNORECASE)

ALL_CAPTURES = [
    "asterisk-testsuite/tests/rtp/ast-2017-012/sipp/crash-27382.pcap",
    "hep-wireshark/pcap/hep.pcap",
    "hep-wireshark/pcap/hep3_compressed.pcap.pcapng",
    "heplify/example/pcap/erspan_sip_ipv4_udp.pcapng",
    "heplify/example/pcap/rtp_rtcp_sip_ipv4_udp.pcap",
    "heplify/example/pcap/sip_ipv4_tcp.pcap",
    "heplify/example/pcap/sip_ipv4_tcp_fragmented.pcap",
    "heplify/example/pcap/sip_ipv4_tcp_retrans.pcap",
    "heplify/example/pcap/sip_ipv6_udp.pcap",
    "heplify/example/pcap/sip_sctp.pcap",
    "heplify/example/pcap/sip_tcp_websocket.pcap",
    "heplify/src/decoder/testdata/ipip0.pcap",
    "ndpi/tests/cfgs/default/pcap/FAX-Call-t38-CA-TDM-SIP-FB-1.pcap",
    "ndpi/tests/cfgs/default/pcap/http_on_sip_port.pcap",
    "ndpi/tests/cfgs/default/pcap/rtcp_multiple_pkts_in_the_same_datagram.pcap",
    "ndpi/tests/cfgs/default/pcap/rtp.pcapng",
    "ndpi/tests/cfgs/default/pcap/sip_hello.pcapng",
    "sngrep/tests/aaa.pcap",
    "sngrep/tests/ipip.pcap",
    "sngrep/tests/ipv6frag.pcap",
]

# file -> (SIP messages, distinct Call-IDs, {ip_proto: messages}, HEP packets), per MANIFEST.md
EXPECTED = {
    "sngrep/tests/aaa.pcap": (81, 6, {PROTO_UDP: 81}, 0),
    "sngrep/tests/ipip.pcap": (4, 1, {PROTO_TCP: 4}, 0),
    "sngrep/tests/ipv6frag.pcap": (32, 1, {PROTO_UDP: 32}, 0),
    "ndpi/tests/cfgs/default/pcap/sip_hello.pcapng": (8, 1, {PROTO_UDP: 8}, 0),
    "ndpi/tests/cfgs/default/pcap/http_on_sip_port.pcap": (0, 0, {}, 0),
    "ndpi/tests/cfgs/default/pcap/FAX-Call-t38-CA-TDM-SIP-FB-1.pcap": (92, 2, {PROTO_UDP: 92}, 0),
    "heplify/example/pcap/sip_ipv4_tcp.pcap": (7, 1, {PROTO_TCP: 7}, 0),
    "heplify/example/pcap/sip_ipv4_tcp_fragmented.pcap": (406, 70, {PROTO_TCP: 406}, 0),
    "heplify/example/pcap/sip_ipv4_tcp_retrans.pcap": (8, 1, {PROTO_TCP: 4, PROTO_UDP: 4}, 0),
    "heplify/example/pcap/sip_ipv6_udp.pcap": (6, 1, {PROTO_UDP: 6}, 0),
    "heplify/example/pcap/sip_sctp.pcap": (4, 1, {PROTO_SCTP: 4}, 0),
    "heplify/example/pcap/sip_tcp_websocket.pcap": (39, 3, {PROTO_UDP: 28, PROTO_TCP: 11}, 0),
    "heplify/example/pcap/erspan_sip_ipv4_udp.pcapng": (140, 7, {PROTO_UDP: 140}, 0),
    "heplify/example/pcap/rtp_rtcp_sip_ipv4_udp.pcap": (14, 4, {PROTO_UDP: 14}, 0),
    "heplify/src/decoder/testdata/ipip0.pcap": (8, 3, {PROTO_UDP: 8}, 0),
    "hep-wireshark/pcap/hep.pcap": (0, 0, {}, 8),
    "hep-wireshark/pcap/hep3_compressed.pcap.pcapng": (0, 0, {}, 21),
}


def _read(path: Path) -> tuple[list[Packet], PcapReader]:
    with path.open("rb") as fh:
        reader = PcapReader(fh)
        return list(reader), reader


def _summary(packets: list[Packet]) -> tuple[int, int, dict[int, int], int]:
    sip = [p for p in packets if looks_like_sip(p.payload)]
    hep = [p for p in packets if hep_version(p.payload) is not None]
    call_ids = set()
    for p in sip:
        match = CALL_ID.search(p.payload)
        assert match is not None, p.payload[:200]
        call_ids.add(match.group(1).strip())
    return len(sip), len(call_ids), dict(Counter(p.ip_proto for p in sip)), len(hep)


@pytest.mark.parametrize("relative", ALL_CAPTURES)
def test_every_corpus_capture_reads_without_exceptions(relative: str) -> None:
    packets, reader = _read(corpus_file(relative))
    assert reader.frames > 0
    for p in packets:
        assert 0 <= p.src_port <= 65535
        assert 0 <= p.dst_port <= 65535
        assert isinstance(p.payload, bytes)


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_sip_counts_and_call_ids_match_the_manifest(relative: str) -> None:
    packets, _ = _read(corpus_file(relative))
    assert _summary(packets) == EXPECTED[relative]


def test_corpus_list_is_complete() -> None:
    require(CORPUS)
    found = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.pcap*"))
    assert found == sorted(ALL_CAPTURES)


def test_tcp_retransmissions_are_dropped_once() -> None:
    packets, reader = _read(corpus_file("heplify/example/pcap/sip_ipv4_tcp_retrans.pcap"))
    tcp = [p.payload for p in packets if p.ip_proto == PROTO_TCP]
    assert [m.split(b"\r\n", 1)[0] for m in tcp] == [
        b"REGISTER sip:10.0.0.1 SIP/2.0",
        b"SIP/2.0 401 Unauthorized",
        b"REGISTER sip:10.0.0.1 SIP/2.0",
        b"SIP/2.0 200 OK",
    ] or len(set(tcp)) == len(tcp)
    assert reader.skipped["tcp_retransmission"] >= 1


def test_ipv6_fragments_are_reassembled_into_whole_messages() -> None:
    packets, _ = _read(corpus_file("sngrep/tests/ipv6frag.pcap"))
    for p in packets:
        assert ":" in p.src_ip
        head, body = re.split(rb"\r?\n\r?\n", p.payload, maxsplit=1)
        length = re.search(rb"\n(?:content-length|l)\s*:\s*(\d+)", head, re.IGNORECASE)
        if length is not None:  # UDP messages may leave it out
            assert len(body) == int(length.group(1))
    assert sum(len(p.payload) > 1400 for p in packets) == 2  # 34 frames, 32 messages: 2 came in 2 fragments


def test_http_on_sip_port_yields_no_sip_and_says_why() -> None:
    packets, reader = _read(corpus_file("ndpi/tests/cfgs/default/pcap/http_on_sip_port.pcap"))
    assert packets == []
    assert reader.skipped["tcp_not_sip"] >= 1


# ---------------------------------------------------------------- crafted captures


def _eth_ipv4_udp(payload: bytes, *, vlan: bool = False, ident: int = 1) -> bytes:
    udp = struct.pack("!HHHH", 5060, 5062, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident, 0, 64, 17, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    )
    tag = struct.pack("!HH", 0x8100, 42) if vlan else b""
    return b"\x00" * 12 + tag + b"\x08\x00" + ip + udp


def _pcap(frames: list[bytes], *, endian: str = "<", nano: bool = False, linktype: int = 1) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for i, frame in enumerate(frames):
        frac = 500_000_000 if nano else 500_000
        out += struct.pack(endian + "IIII", 1_700_000_000 + i, frac, len(frame), len(frame)) + frame
    return out


def _pcapng(frames: list[bytes], *, tsresol: int = 9) -> bytes:
    def block(btype: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = struct.pack("<HH", 9, 1) + bytes([tsresol]) + b"\x00" * 3 + struct.pack("<HH", 0, 0)
    idb = block(1, struct.pack("<HHI", 1, 0, 65535) + opts)
    out = shb + idb
    for i, frame in enumerate(frames):
        ts = (1_700_000_000 + i) * 10**tsresol + 5 * 10 ** (tsresol - 1)
        out += block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame)) + frame)
    return out


@pytest.mark.parametrize(("endian", "nano"), [("<", False), (">", False), ("<", True), (">", True)])
def test_classic_pcap_both_byte_orders_micro_and_nano(endian: str, nano: bool) -> None:
    msg = sip_message()
    packets = list(
        PcapReader(io.BytesIO(_pcap([_eth_ipv4_udp(msg), _eth_ipv4_udp(msg, vlan=True)], endian=endian, nano=nano)))
    )
    assert packets == [
        Packet(1_700_000_000_500_000, "10.0.0.1", 5060, "10.0.0.2", 5062, PROTO_UDP, msg),
        Packet(1_700_000_001_500_000, "10.0.0.1", 5060, "10.0.0.2", 5062, PROTO_UDP, msg),
    ]


def test_pcapng_with_nanosecond_resolution() -> None:
    msg = sip_message("OPTIONS")
    packets = list(PcapReader(io.BytesIO(_pcapng([_eth_ipv4_udp(msg)]))))
    assert packets == [Packet(1_700_000_000_500_000, "10.0.0.1", 5060, "10.0.0.2", 5062, PROTO_UDP, msg)]


def test_ipv4_fragments_out_of_order_are_reassembled() -> None:
    msg = sip_message(extra="X-Pad: " + "a" * 3000)
    udp = struct.pack("!HHHH", 5060, 5060, 8 + len(msg), 0) + msg
    frames = []
    pieces = [(0, udp[:1480], True), (1480, udp[1480:2960], True), (2960, udp[2960:], False)]
    for offset, piece, more in reversed(pieces):
        flags = (0x2000 if more else 0) | (offset // 8)
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(piece), 99, flags, 64, 17, 0, b"\x01\x02\x03\x04", b"\x05\x06\x07\x08"
        )
        frames.append(ip + piece)
    packets = list(PcapReader(io.BytesIO(_pcap(frames, linktype=228))))
    assert [p.payload for p in packets] == [msg]


def test_truncated_files_raise_pcap_error_only() -> None:
    data = _pcap([_eth_ipv4_udp(sip_message())])
    for cut in (3, 10, 30, len(data) - 5):
        with pytest.raises(PcapError) as info:
            list(PcapReader(io.BytesIO(data[:cut])))
        assert info.value.reason in ("truncated", "magic")


def test_not_a_capture() -> None:
    with pytest.raises(PcapError) as info:
        list(PcapReader(io.BytesIO(b"GET / HTTP/1.1\r\n\r\n")))
    assert info.value.reason == "magic"


def test_tcp_messages_split_across_and_packed_into_segments() -> None:
    msgs = [sip_message("INVITE", f"c{i}@x", extra="X-Pad: " + "b" * (i * 100)) for i in range(4)]
    stream = b"".join(msgs)
    cuts = [0, 50, 51, len(msgs[0]) + 3, len(stream) - 10, len(stream)]
    frames = []
    isn = 1000
    syn = struct.pack("!HHIIBBHHH", 40000, 5060, isn, 0, 5 << 4, 0x02, 65535, 0, 0)
    frames.append(_ip_tcp(syn))
    segments = [(stream[a:b], isn + 1 + a) for a, b in itertools.pairwise(cuts)]
    segments.insert(3, segments[1])  # a retransmission
    segments[4], segments[5] = segments[5], segments[4]  # out of order
    for payload, seq in segments:
        hdr = struct.pack("!HHIIBBHHH", 40000, 5060, seq & 0xFFFFFFFF, 0, 5 << 4, 0x18, 65535, 0, 0)
        frames.append(_ip_tcp(hdr + payload))
    packets = list(PcapReader(io.BytesIO(_pcap(frames, linktype=101))))
    assert [p.payload for p in packets] == msgs


def _ip_tcp(segment: bytes) -> bytes:
    return (
        struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 1, 0x4000, 64, 6, 0, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
        )
        + segment
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=300))
def test_only_pcap_error_escapes(noise: bytes, cut: int) -> None:
    """Fuzz: valid headers with garbage frames, truncated at random points."""
    data = _pcap([noise, _eth_ipv4_udp(noise), noise[:cut]], linktype=1)
    data = data[: len(data) - cut]
    with contextlib.suppress(PcapError):
        list(PcapReader(io.BytesIO(data)))
    for linktype in (0, 101, 113, 276):
        with contextlib.suppress(PcapError):
            list(PcapReader(io.BytesIO(_pcap([noise], linktype=linktype))))


def test_hep_sniffing() -> None:
    assert hep_version(b"HEP3\x00\x06") == 3
    assert hep_version(b"HEP3\x00\x07") is None  # longer than the datagram
    assert hep_version(bytes([2, 16, 2, 17]) + b"\x00" * 24) == 2
    assert hep_version(bytes([1, 16, 2, 17]) + b"\x00" * 12) == 1
    assert hep_version(b"\x80\x00" + b"\x00" * 30) is None  # RTP
    assert looks_like_sip(sip_message())
    assert looks_like_sip(b"SIP/2.0 200 OK\r\n")
    assert not looks_like_sip(b"HTTP/1.1 200 OK\r\n")
