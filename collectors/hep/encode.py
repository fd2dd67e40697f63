"""HEP3 encoding: :class:`HepPacket` in, bytes out (demo traffic, tests, ids of packets built in memory)."""

from __future__ import annotations

import ipaddress
import struct
import zlib

from collectors.hep.packet import HEP3_MAGIC, HepError, HepPacket

__all__ = ["encode_hep3"]

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_CHUNK = struct.Struct("!HHH")
_HEP3_HDR = struct.Struct("!4sH")


def _chunk(ctype: int, value: bytes, vendor: int = 0) -> bytes:
    if len(value) > 0xFFFF - 6:
        raise HepError(f"chunk 0x{ctype:04x} of {len(value)} bytes", reason="length")
    return _CHUNK.pack(vendor & 0xFFFF, ctype & 0xFFFF, len(value) + 6) + value


def _addr_chunks(pkt: HepPacket) -> list[bytes]:
    try:
        src = ipaddress.ip_address(pkt.src_ip or "0.0.0.0")
        dst = ipaddress.ip_address(pkt.dst_ip or "0.0.0.0")
    except ValueError as exc:
        raise HepError(f"address: {exc}", reason="payload") from None
    if src.version == 4 and dst.version == 4:
        return [_chunk(0x03, src.packed), _chunk(0x04, dst.packed)]
    if src.version == 4:
        src = ipaddress.IPv6Address(b"\x00" * 10 + b"\xff\xff" + src.packed)
    if dst.version == 4:
        dst = ipaddress.IPv6Address(b"\x00" * 10 + b"\xff\xff" + dst.packed)
    return [_chunk(0x05, src.packed), _chunk(0x06, dst.packed)]


def encode_hep3(pkt: HepPacket, *, compress: bool = False) -> bytes:
    """Encode ``pkt`` as HEP3 in the spec's chunk order (what Kamailio/heplify send).

    ``compress`` puts the payload in chunk 0x0010 (zlib) instead of 0x000f. A keep-alive
    packet (``pkt.keepalive``, empty payload) has no payload chunk. ``extra`` chunks are
    written verbatim after the generic ones. Raises :class:`HepError` (``"length"``) when
    the result would exceed 65535 bytes.
    """
    family = pkt.family or (10 if ":" in pkt.src_ip else 2)
    chunks = [
        _chunk(0x01, bytes((family & 0xFF,))),
        _chunk(0x02, bytes((pkt.protocol & 0xFF,))),
        *_addr_chunks(pkt),
        _chunk(0x07, _U16.pack(pkt.src_port & 0xFFFF)),
        _chunk(0x08, _U16.pack(pkt.dst_port & 0xFFFF)),
        _chunk(0x09, _U32.pack(pkt.ts_sec & 0xFFFFFFFF)),
        _chunk(0x0A, _U32.pack(pkt.ts_usec & 0xFFFFFFFF)),
        _chunk(0x0B, bytes((pkt.payload_type & 0xFF,))),
    ]
    if pkt.capture_id is not None:
        chunks.append(_chunk(0x0C, _U32.pack(pkt.capture_id & 0xFFFFFFFF)))
    if pkt.auth_key is not None:
        chunks.append(_chunk(0x0E, pkt.auth_key))
    if pkt.correlation_id is not None:
        chunks.append(_chunk(0x11, pkt.correlation_id.encode()))
    if pkt.vlan is not None:
        chunks.append(_chunk(0x12, _U16.pack(pkt.vlan & 0xFFFF)))
    if pkt.capture_name is not None:
        chunks.append(_chunk(0x13, pkt.capture_name.encode()))
    chunks.extend(_chunk(ctype, value, vendor) for vendor, ctype, value in pkt.extra)
    if not (pkt.keepalive and not pkt.payload):
        if compress:
            chunks.append(_chunk(0x10, zlib.compress(pkt.payload)))
        else:
            chunks.append(_chunk(0x0F, pkt.payload))
    body = b"".join(chunks)
    total = len(body) + 6
    if total > 0xFFFF:
        raise HepError(f"HEP3 packet of {total} bytes", reason="length")
    return _HEP3_HDR.pack(HEP3_MAGIC, total) + body
