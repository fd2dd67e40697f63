"""HEP decoding and encoding: round trips, chunk order, legacy versions, TCP framing, bad input."""

from __future__ import annotations

import itertools
import random
import struct
import zlib

import pytest

from collectors.hep.decode import HepError, HepPacket, decode, encode_hep3, frame_stream, resync
from schemas.errors import DecodeError
from tests.hep import INVITE, OPTIONS


def _packet(**overrides: object) -> HepPacket:
    values: dict[str, object] = {
        "version": 3,
        "family": 2,
        "protocol": 17,
        "src_ip": "10.0.0.1",
        "src_port": 5060,
        "dst_ip": "10.0.0.2",
        "dst_port": 5080,
        "ts_sec": 1_700_000_000,
        "ts_usec": 123_456,
        "payload_type": 1,
        "payload": INVITE,
        "capture_id": 2001,
        "auth_key": b"myHep",
        "correlation_id": "a84b4c76e66710@pc33.atlanta.example.com",
    }
    values.update(overrides)
    return HepPacket(**values)  # type: ignore[arg-type]


def _chunks(data: bytes) -> list[bytes]:
    out = []
    off = 6
    while off < len(data):
        length = struct.unpack_from("!H", data, off + 4)[0]
        out.append(data[off : off + length])
        off += length
    return out


def _hep3(chunks: list[bytes]) -> bytes:
    body = b"".join(chunks)
    return b"HEP3" + struct.pack("!H", len(body) + 6) + body


def _chunk(ctype: int, value: bytes, vendor: int = 0) -> bytes:
    return struct.pack("!HHH", vendor, ctype, len(value) + 6) + value


_FIELDS = (
    "version",
    "family",
    "protocol",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "ts_sec",
    "ts_usec",
    "payload_type",
    "payload",
    "capture_id",
    "capture_name",
    "auth_key",
    "correlation_id",
    "vlan",
    "keepalive",
    "extra",
)


def _same(a: HepPacket, b: HepPacket) -> None:
    for name in _FIELDS:
        assert getattr(a, name) == getattr(b, name), name


# --------------------------------------------------------------------------- HEP3


def test_round_trip_keeps_every_field() -> None:
    pkt = _packet(vlan=42, capture_name="sbc-1", extra=[(0, 0x20, b"\x01\x02"), (0x1234, 7, b"vendor")])
    got = decode(encode_hep3(pkt))
    _same(got, pkt)
    assert got.version == 3
    assert not got.compressed
    assert got.ts_us == 1_700_000_000_123_456


def test_round_trip_compressed_payload_is_inflated() -> None:
    pkt = _packet()
    data = encode_hep3(pkt, compress=True)
    assert len(data) < len(encode_hep3(pkt))
    got = decode(data)
    assert got.compressed
    assert got.payload == INVITE


def test_round_trip_ipv6_and_mapped_ipv4() -> None:
    pkt = _packet(family=10, src_ip="2001:db8::1", dst_ip="2001:db8::2")
    got = decode(encode_hep3(pkt))
    assert (got.family, got.src_ip, got.dst_ip) == (10, "2001:db8::1", "2001:db8::2")
    # One IPv4 and one IPv6 address: both travel in the IPv6 chunks; the IPv4 one comes back dotted.
    got = decode(encode_hep3(_packet(family=10, src_ip="10.0.0.1", dst_ip="2001:db8::2")))
    assert (got.src_ip, got.dst_ip) == ("10.0.0.1", "2001:db8::2")


def test_every_chunk_order_decodes_the_same() -> None:
    pkt = _packet(vlan=7, capture_name="kam-1")
    data = encode_hep3(pkt)
    chunks = _chunks(data)
    assert len(chunks) == 15
    rng = random.Random(1)
    orders = [list(reversed(chunks))] + [rng.sample(chunks, len(chunks)) for _ in range(200)]
    # all orders of the first six (address/port) chunks with the rest behind
    orders += [list(p) + chunks[6:] for p in itertools.permutations(chunks[:6])]
    for order in orders:
        _same(decode(_hep3(order)), pkt)


def test_unknown_vendor_and_extended_chunks_are_kept_verbatim() -> None:
    data = encode_hep3(_packet())
    extra = [_chunk(0x0014, b"\x00\x01"), _chunk(0x0029, b"xyz"), _chunk(0x0099, b""), _chunk(0x0001, b"v", 0x0FA0)]
    got = decode(_hep3(extra + _chunks(data)))
    assert got.extra == [(0, 0x14, b"\x00\x01"), (0, 0x29, b"xyz"), (0, 0x99, b""), (0x0FA0, 1, b"v")]
    assert got.family == 2  # the vendor chunk with type 1 did not overwrite the family


def test_keepalive_without_payload() -> None:
    got = decode(encode_hep3(_packet(payload=b"", keepalive=True)))
    assert got.keepalive
    assert got.payload == b""


def test_trailing_bytes_after_declared_length_are_ignored() -> None:
    data = encode_hep3(_packet())
    assert decode(data + b"\x00" * 10).payload == INVITE


def test_declared_length_longer_than_buffer() -> None:
    data = encode_hep3(_packet())
    # the chunks present are complete (payload included): decoded, flagged truncated (sip3 PACKET_2)
    lying = data[:4] + struct.pack("!H", len(data) + 400) + data[6:]
    got = decode(lying)
    assert got.truncated
    assert got.payload == INVITE
    # cut inside a chunk: error
    with pytest.raises(HepError) as info:
        decode(data[:-5])
    assert info.value.reason == "chunk"
    # complete chunks but no payload chunk: the packet is missing its point
    no_payload = _hep3(_chunks(data)[:-1])
    lying = no_payload[:4] + struct.pack("!H", len(no_payload) + 100) + no_payload[6:]
    with pytest.raises(HepError) as info:
        decode(lying)
    assert info.value.reason == "length"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "short"),
        (b"\x02\x10", "short"),
        (b"HEP3", "short"),
        (b"HEP3\x00\x03", "length"),
        (b"HEP3\x00\x0c\x00\x00\x00\x01\x00\x02", "chunk"),  # chunk length 2 < 6
        (b"HEP3\x00\x0c\x00\x00\x00\x01\x00\x09", "chunk"),  # chunk past the packet
        (b"HEP3\x00\x0a\x00\x00\x00\x01", "chunk"),  # half a chunk header
        (b"EEP1\x00\x06", "magic"),
        (b"GET / HTTP/1.1\r\n\r\n", "magic"),
        (_hep3([_chunk(0x03, b"\x01\x02\x03")]), "chunk"),  # 3-byte IPv4
        (_hep3([_chunk(0x05, b"\x01" * 4)]), "chunk"),  # 4-byte IPv6
        (_hep3([_chunk(0x07, b"\x01")]), "chunk"),  # 1-byte port
        (_hep3([_chunk(0x09, b"\x01\x02")]), "chunk"),  # 2-byte time
        (_hep3([_chunk(0x0C, b"\x01\x02\x03")]), "chunk"),  # 3-byte capture id
        (_hep3([_chunk(0x01, b"")]), "chunk"),  # empty family
        (_hep3([_chunk(0x10, b"not zlib")]), "zlib"),
        (_hep3([_chunk(0x10, zlib.compress(b"x" * 2_000_000))]), "zlib"),  # inflates past 1 MiB
        (b"\x01\x10\x02\x11" + b"\x00" * 3, "short"),
        (b"\x02\x10\x07\x11" + b"\x00" * 40, "family"),
        (b"\x02\x10\x02\x11" + b"\x00" * 12, "short"),  # HEPv2 without its time block
        (b"\x01\x63\x02\x11" + b"\x00" * 40, "length"),  # header length 99
    ],
)
def test_bad_packets_raise_hep_error_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(HepError) as info:
        decode(data)
    assert info.value.reason == reason
    assert isinstance(info.value, DecodeError)


def test_long_auth_key_and_correlation_id_are_fine() -> None:
    pkt = _packet(auth_key=b"k" * 5000, correlation_id="c" * 3000)
    got = decode(encode_hep3(pkt))
    assert got.auth_key == b"k" * 5000
    assert got.correlation_id == "c" * 3000


def test_non_utf8_correlation_id_falls_back_to_latin1() -> None:
    data = _hep3([_chunk(0x11, b"caf\xe9"), _chunk(0x0F, b"x")])
    assert decode(data).correlation_id == "café"


def test_input_types() -> None:
    data = encode_hep3(_packet())
    assert decode(memoryview(data)).payload == INVITE
    assert decode(bytearray(data)).payload == INVITE


def test_encode_refuses_oversized_packets() -> None:
    with pytest.raises(HepError) as info:
        encode_hep3(_packet(payload=b"x" * 70_000))
    assert info.value.reason == "length"


# --------------------------------------------------------------------------- HEPv1 / HEPv2


def _legacy(version: int, payload: bytes, *, v6: bool = False) -> bytes:
    if v6:
        addrs = bytes(15) + b"\x01" + bytes(15) + b"\x02"
        head = struct.pack("!BBBBHH", version, 40, 10, 17, 5060, 5062) + addrs
    else:
        head = struct.pack("!BBBBHH", version, 16, 2, 17, 5060, 5062) + bytes([10, 0, 0, 4, 10, 0, 0, 5])
    if version == 2:
        head += struct.pack("<IIHH", 1571254062, 44436, 1, 0)
    return head + payload


def test_hepv2_time_block_is_little_endian() -> None:
    got = decode(_legacy(2, OPTIONS))
    assert (got.version, got.src_ip, got.src_port, got.dst_ip, got.dst_port) == (2, "10.0.0.4", 5060, "10.0.0.5", 5062)
    assert (got.ts_sec, got.ts_usec, got.capture_id) == (1571254062, 44436, 1)
    assert got.payload == OPTIONS
    assert got.payload_type == 1


def test_hepv1_has_no_time() -> None:
    got = decode(_legacy(1, OPTIONS))
    assert (got.version, got.ts_sec, got.ts_usec, got.capture_id) == (1, 0, 0, None)
    assert got.payload == OPTIONS


def test_legacy_ipv6() -> None:
    got = decode(_legacy(2, OPTIONS, v6=True))
    assert (got.family, got.src_ip, got.dst_ip) == (10, "::1", "::2")
    assert got.payload == OPTIONS


def test_raw_is_the_packet() -> None:
    data = encode_hep3(_packet())
    assert decode(data).raw == data


# --------------------------------------------------------------------------- TCP framing


def test_frame_stream_several_packets_and_a_partial_one() -> None:
    packets = [encode_hep3(_packet(src_port=1000 + i)) for i in range(3)]
    buf = bytearray(b"".join(packets) + packets[0][:10])
    assert frame_stream(buf) == packets
    assert bytes(buf) == packets[0][:10]
    buf += packets[0][10:]
    assert frame_stream(buf) == [packets[0]]
    assert buf == bytearray()


def test_frame_stream_byte_by_byte() -> None:
    packets = [encode_hep3(_packet(src_port=1000 + i)) for i in range(3)]
    stream = b"".join(packets)
    buf = bytearray()
    got: list[bytes] = []
    for i in range(len(stream)):
        buf += stream[i : i + 1]
        got += frame_stream(buf)
    assert got == packets
    assert not buf


def test_frame_stream_garbage_at_the_front_raises_and_keeps_buffer() -> None:
    buf = bytearray(b"GARBAGE" + encode_hep3(_packet()))
    with pytest.raises(HepError) as info:
        frame_stream(buf)
    assert info.value.reason == "magic"
    assert buf.startswith(b"GARBAGE")
    assert resync(buf) == 7
    assert len(frame_stream(buf)) == 1


def test_frame_stream_returns_good_packets_before_garbage() -> None:
    good = encode_hep3(_packet())
    buf = bytearray(good + b"XXXXXXXX")
    assert frame_stream(buf) == [good]
    with pytest.raises(HepError):
        frame_stream(buf)


def test_frame_stream_bad_length_and_short_garbage() -> None:
    with pytest.raises(HepError) as info:
        frame_stream(bytearray(b"HEP3\x00\x02rest"))
    assert info.value.reason == "length"
    with pytest.raises(HepError):
        frame_stream(bytearray(b"XY"))
    buf = bytearray(b"HE")  # could be the start of a packet
    assert frame_stream(buf) == []
    assert buf == bytearray(b"HE")


def test_resync_without_magic_keeps_a_possible_prefix() -> None:
    buf = bytearray(b"abcdefgHEP")
    assert resync(buf) == 7
    assert buf == bytearray(b"HEP")
