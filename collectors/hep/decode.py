"""HEP (v1, v2, v3/EEP) decoding: bytes in, :class:`HepPacket` out. Pure, no I/O.

HEPv3 follows the HEP/EEP specification rev 37: ``"HEP3"``, a big-endian u16 total
length, then chunks ``{u16 vendor, u16 type, u16 length incl. the 6-byte header, value}``
in any order. Generic (vendor 0) chunks 0x0001-0x0013 have fields of their own; every other
chunk (extended 0x0014-0x0029, vendor chunks, unknown types) is kept verbatim in
:attr:`HepPacket.extra`.

HEPv1/v2 are the legacy fixed headers: u8 version, u8 header length, u8 family, u8 proto,
u16 sport, u16 dport (big-endian), the addresses, then for v2 only a LITTLE-endian time
block ``u32 tv_sec, u32 tv_usec, u16 capture_id, u16 pad``; the payload follows. v1 has no
time: ``ts_sec``/``ts_usec`` are 0 and the caller stamps the receive time.

Length policy (HEP3): a declared total length shorter than the buffer means trailing bytes
that are ignored (UDP padding; :func:`frame_stream` splits TCP streams). A declared length
LONGER than the buffer is an error with reason ``"length"`` -- except when the chunks that
are present parse completely up to the end of the buffer and include a payload chunk. That
is exactly the shape of sip3's ``PACKET_2`` vector (declared 544, 140 bytes present, whose
upstream test expects a decode): sip3 and heplify-server decode by walking the chunks that
are there. Such packets decode with ``truncated=True`` so the collector can count them. A
chunk that itself runs past the buffer is always an error (``"chunk"``).

Every malformed input raises :class:`HepError` and nothing else.
"""

from __future__ import annotations

import socket
import struct
import zlib
from collections.abc import Callable

# The packet model, the encoder and TCP framing live in their own modules; they are
# re-exported here, where the collector, replay, demo and tests have always found them.
from collectors.hep.encode import encode_hep3
from collectors.hep.framing import frame_stream, resync
from collectors.hep.packet import HEP3_MAGIC, REASONS, HepError, HepPacket
from collectors.hep.speedups import native

__all__ = [
    "HEP3_MAGIC",
    "REASONS",
    "HepError",
    "HepPacket",
    "decode",
    "decode_pure",
    "encode_hep3",
    "frame_stream",
    "resync",
]

_MAX_INFLATED = 1 << 20  # a zlib bomb guard: 1 MiB of decompressed payload is plenty for SIP

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_CHUNK = struct.Struct("!HHH")
_V12_HDR = struct.Struct("!BBBBHH")
_V2_TIME = struct.Struct("<IIHH")

_unpack_chunk = _CHUNK.unpack_from
_unpack_u16 = _U16.unpack_from
_unpack_u32 = _U32.unpack_from
_ntoa4 = socket.inet_ntoa
_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"

# The chunks Kamailio's siptrace (and encode_hep3) put first, in the spec's order: family,
# protocol, IPv4 (or IPv6) source and destination, ports, seconds, microseconds, payload type
# and a u32 capture id (other agents order their chunks otherwise, see FACTS.md). One struct
# reads their 10 chunk headers (values skipped) and compares them with the expected ones; a
# second reads the values. A packet that matches decodes exactly as the chunk walk would
# decode those chunks; the walk goes on after them. Any other layout is walked from the start.
_PREFIX_HEADERS = "!6x 3H x 3H x 3H {a}x 3H {a}x 3H 2x 3H 2x 3H 4x 3H 4x 3H x 3H 4x"
_PREFIX_VALUES = "!6x 6xB 6xB 6x{a}s 6x{a}s 6xH 6xH 6xI 6xI 6xB 6xI"


def _prefix_layout(alen: int, src_type: int) -> tuple[struct.Struct, tuple[int, ...], struct.Struct]:
    chunks = ((1, 1), (2, 1), (src_type, alen), (src_type + 1, alen), (7, 2), (8, 2), (9, 4), (10, 4), (11, 1), (12, 4))
    expected = tuple(v for ctype, vlen in chunks for v in (0, ctype, vlen + 6))
    return (
        struct.Struct(_PREFIX_HEADERS.format(a=alen)),
        expected,
        struct.Struct(_PREFIX_VALUES.format(a=alen)),
    )


_PREFIX4_HEADERS, _PREFIX4_EXPECTED, _PREFIX4_VALUES = _prefix_layout(4, 0x03)
_PREFIX6_HEADERS, _PREFIX6_EXPECTED, _PREFIX6_VALUES = _prefix_layout(16, 0x05)
_PREFIX4_SIZE = _PREFIX4_HEADERS.size
_PREFIX6_SIZE = _PREFIX6_HEADERS.size

# Address text by packed bytes: a collector hears a few hundred hosts, not millions.
_IP_TEXT: dict[bytes, str] = {}
_IP_TEXT_MAX = 4096


def _address(value: bytes) -> str:
    """Text of a 4- or 16-byte address (IPv4-mapped IPv6 as IPv4); cached by the packed bytes."""
    text = _IP_TEXT.get(value)
    if text is None:
        if len(value) == 4:
            text = _ntoa4(value)
        elif value[:12] == _MAPPED_PREFIX:
            text = _ntoa4(value[12:])
        else:
            text = socket.inet_ntop(socket.AF_INET6, value)
        if len(_IP_TEXT) >= _IP_TEXT_MAX:
            _IP_TEXT.clear()
        _IP_TEXT[value] = text
    return text


def _ip4(value: bytes) -> str:
    # sip3 PACKET_2: IPv4-mapped IPv6 values inside the IPv4 chunk types.
    if len(value) != 4 and len(value) != 16:
        raise HepError(f"IPv4 address chunk of {len(value)} bytes", reason="chunk")
    return _address(value)


def _ip6(value: bytes) -> str:
    if len(value) != 16:
        raise HepError(f"IPv6 address chunk of {len(value)} bytes", reason="chunk")
    return _address(value)


def _text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")


def decode_pure(data: bytes | bytearray | memoryview) -> HepPacket:
    """Decode one HEP packet (v1, v2 or v3). Raises :class:`HepError` for anything malformed.

    The pure-Python reference; :data:`decode` is the C accelerator's equivalent when it is
    built (see :mod:`collectors.hep.speedups`).
    """
    if isinstance(data, memoryview):
        data = data.tobytes()
    elif isinstance(data, bytearray):
        data = bytes(data)
    n = len(data)
    if n < 6:
        raise HepError(f"{n}-byte datagram", reason="short")
    if data[:4] == HEP3_MAGIC:
        return _decode_v3(data, n)
    version = data[0]
    if version in (1, 2):
        return _decode_v12(data, n, version)
    raise HepError("not a HEP packet", reason="magic")


def _decode_v3(data: bytes, n: int, prefix: bool = True) -> HepPacket:
    """Walk the chunks; ``prefix=False`` walks the common prefix too (tests compare the two)."""
    total = _unpack_u16(data, 4)[0]
    truncated = False
    if total < 6:
        raise HepError(f"declared length {total}", reason="length")
    if total > n:
        truncated = True  # decided after the walk (see module docstring)
        end = n
    else:
        end = total
    family = 0
    protocol = 0
    src_ip = dst_ip = ""
    src_port = dst_port = 0
    ts_sec = ts_usec = 0
    payload_type = 1
    payload: bytes | None = None
    compressed = False
    capture_id: int | None = None
    capture_name: str | None = None
    auth_key: bytes | None = None
    correlation_id: str | None = None
    vlan: int | None = None
    extra: list[tuple[int, int, bytes]] = []
    off = 6
    # The common layout's first ten chunks in one go (see _prefix_layout); the walk goes on after them.
    if prefix and end >= _PREFIX4_SIZE and _PREFIX4_HEADERS.unpack_from(data) == _PREFIX4_EXPECTED:
        family, protocol, src, dst, src_port, dst_port, ts_sec, ts_usec, payload_type, capture_id = (
            _PREFIX4_VALUES.unpack_from(data)
        )
        src_ip = _address(src)
        dst_ip = _address(dst)
        off = _PREFIX4_SIZE
    elif prefix and end >= _PREFIX6_SIZE and _PREFIX6_HEADERS.unpack_from(data) == _PREFIX6_EXPECTED:
        family, protocol, src, dst, src_port, dst_port, ts_sec, ts_usec, payload_type, capture_id = (
            _PREFIX6_VALUES.unpack_from(data)
        )
        src_ip = _address(src)
        dst_ip = _address(dst)
        off = _PREFIX6_SIZE
    try:
        while off < end:
            if off + 6 > end:
                raise HepError("chunk header past the end", reason="chunk")
            vendor, ctype, clen = _unpack_chunk(data, off)
            stop = off + clen
            if clen < 6 or stop > end:
                raise HepError(f"chunk 0x{ctype:04x} length {clen}", reason="chunk")
            vs = off + 6  # the value; clen counts the 6-byte chunk header too
            # The chunks that follow the common prefix come first: payload, auth key, correlation id.
            if vendor != 0 or ctype > 0x13:
                extra.append((vendor, ctype, data[vs:stop]))
            elif ctype == 0x0F:
                payload = data[vs:stop]
                compressed = False
            elif ctype == 0x0E:
                auth_key = data[vs:stop]
            elif ctype == 0x11:
                try:
                    correlation_id = data[vs:stop].decode()
                except UnicodeDecodeError:
                    correlation_id = data[vs:stop].decode("latin-1")
            elif ctype == 0x10:
                payload = data[vs:stop]
                compressed = True
            elif ctype == 0x01:
                if clen != 7:
                    raise HepError("family chunk", reason="chunk")
                family = data[vs]
            elif ctype == 0x02:
                if clen != 7:
                    raise HepError("protocol chunk", reason="chunk")
                protocol = data[vs]
            elif ctype == 0x03:
                src_ip = _ip4(data[vs:stop])
            elif ctype == 0x04:
                dst_ip = _ip4(data[vs:stop])
            elif ctype == 0x05:
                src_ip = _ip6(data[vs:stop])
            elif ctype == 0x06:
                dst_ip = _ip6(data[vs:stop])
            elif ctype == 0x07:
                if clen != 8:
                    raise HepError("port chunk", reason="chunk")
                src_port = _unpack_u16(data, vs)[0]
            elif ctype == 0x08:
                if clen != 8:
                    raise HepError("port chunk", reason="chunk")
                dst_port = _unpack_u16(data, vs)[0]
            elif ctype == 0x09:
                if clen != 10:
                    raise HepError("time chunk", reason="chunk")
                ts_sec = _unpack_u32(data, vs)[0]
            elif ctype == 0x0A:
                if clen != 10:
                    raise HepError("time chunk", reason="chunk")
                ts_usec = _unpack_u32(data, vs)[0]
            elif ctype == 0x0B:
                if clen != 7:
                    raise HepError("payload type chunk", reason="chunk")
                payload_type = data[vs]
            elif ctype == 0x0C:
                if clen == 10:
                    capture_id = _unpack_u32(data, vs)[0]
                elif clen == 8:  # some old agents send a u16
                    capture_id = _unpack_u16(data, vs)[0]
                else:
                    raise HepError("capture id chunk", reason="chunk")
            elif ctype == 0x12:
                if clen != 8:
                    raise HepError("vlan chunk", reason="chunk")
                vlan = _unpack_u16(data, vs)[0]
            elif ctype == 0x13:
                capture_name = _text(data[vs:stop])
            else:  # 0x00 and 0x0d (keep-alive timer): no field of their own
                extra.append((vendor, ctype, data[vs:stop]))
            off = stop
    except (struct.error, ValueError, IndexError) as exc:  # pragma: no cover - guarded above
        raise HepError(f"malformed chunk: {exc}", reason="chunk") from None
    if truncated and payload is None:
        raise HepError(f"declared length {total} > {n} bytes", reason="length")
    if compressed and payload is not None:
        payload = _inflate(payload)
    if family == 0:
        family = 10 if ":" in src_ip else 2
    return HepPacket(
        3,
        family,
        protocol,
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        ts_sec,
        ts_usec,
        payload_type,
        payload if payload is not None else b"",
        capture_id,
        capture_name,
        auth_key,
        compressed,
        correlation_id,
        vlan,
        payload is None,
        truncated,
        extra,
        data,
    )


def _inflate(value: bytes) -> bytes:
    try:
        d = zlib.decompressobj(wbits=47)  # zlib or gzip header, auto-detected
        out = d.decompress(value, _MAX_INFLATED)
    except zlib.error as exc:
        raise HepError(f"zlib: {exc}", reason="zlib") from None
    if d.unconsumed_tail:
        raise HepError("compressed payload inflates past 1 MiB", reason="zlib")
    return out


def _decode_v12(data: bytes, n: int, version: int) -> HepPacket:
    if n < 8:
        raise HepError(f"{n}-byte HEPv{version}", reason="short")
    _, hdr_len, family, protocol, sport, dport = _V12_HDR.unpack_from(data, 0)
    if family == 2:
        alen = 4
    elif family == 10:
        alen = 16
    else:
        raise HepError(f"HEPv{version} family {family}", reason="family")
    addr_end = 8 + 2 * alen
    need = addr_end + (12 if version == 2 else 0)
    if n < need:
        raise HepError(f"{n}-byte HEPv{version}", reason="short")
    if hdr_len not in (addr_end, need):
        # sip3/heplify write 16 (v1 IPv4) and also 16 for v2 IPv4 (time block not counted);
        # anything else means we'd mis-slice the addresses.
        raise HepError(f"HEPv{version} header length {hdr_len}", reason="length")
    if alen == 4:
        src_ip = _ntoa4(data[8:12])
        dst_ip = _ntoa4(data[12:16])
    else:
        src_ip = _ip6(data[8:24])
        dst_ip = _ip6(data[24:40])
    ts_sec = ts_usec = 0
    capture_id: int | None = None
    if version == 2:
        ts_sec, ts_usec, capture_id, _pad = _V2_TIME.unpack_from(data, addr_end)
    return HepPacket(
        version=version,
        family=family,
        protocol=protocol,
        src_ip=src_ip,
        src_port=sport,
        dst_ip=dst_ip,
        dst_port=dport,
        ts_sec=ts_sec,
        ts_usec=ts_usec,
        payload_type=1,
        payload=data[need:],
        capture_id=capture_id,
        raw=data,
    )


#: Decode one HEP packet: :func:`decode_pure`, or the C accelerator's equivalent when it is built.
decode: Callable[[bytes | bytearray | memoryview], HepPacket] = decode_pure
if native is not None:
    native.configure_decode(HepPacket, decode_pure)
    decode = native.decode
