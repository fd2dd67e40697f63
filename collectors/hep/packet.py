"""The decoded HEP packet and the HEP decode error, shared by the decoder, the encoder and TCP framing."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.errors import DecodeError

__all__ = ["HEP3_MAGIC", "REASONS", "HepError", "HepPacket"]

HEP3_MAGIC = b"HEP3"
#: EEP/HEP3 over "EEP1" magic is not seen in the wild; only HEP3 is accepted.

#: Bounded ``reason`` labels of :class:`HepError`.
REASONS = ("short", "magic", "length", "chunk", "zlib", "version", "payload", "family")


class HepError(DecodeError):
    """A HEP packet that cannot be decoded. ``reason`` is one of :data:`REASONS`."""

    reason = "hep"


@dataclass(slots=True)
class HepPacket:
    """One decoded HEP packet (any version)."""

    version: int  # 1, 2 or 3
    family: int  # 2 IPv4, 10 IPv6 (socket.AF_INET6 on Linux)
    protocol: int  # IP protocol: 17 UDP, 6 TCP, 132 SCTP ...
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    ts_sec: int
    ts_usec: int
    payload_type: int = 1  # chunk 0x000b; 1 SIP, 5 RTCP JSON, 100 log ...
    payload: bytes = b""  # decompressed when it came as chunk 0x0010
    capture_id: int | None = None  # chunk 0x000c (v2: the u16 in the time block)
    capture_name: str | None = None  # chunk 0x0013
    auth_key: bytes | None = None  # chunk 0x000e
    compressed: bool = False  # payload came in chunk 0x0010 (zlib)
    correlation_id: str | None = None  # chunk 0x0011
    vlan: int | None = None  # chunk 0x0012
    keepalive: bool = False  # HEP3 without any payload chunk
    truncated: bool = False  # declared HEP3 length > buffer, chunks complete (see the decode module)
    extra: list[tuple[int, int, bytes]] = field(default_factory=list)  # (vendor, type, value)
    raw: bytes = field(default=b"", repr=False, compare=False)  # the packet as received (for event ids)

    @property
    def ts_us(self) -> int:
        """Capture time in microseconds since the epoch (0 for HEPv1)."""
        return self.ts_sec * 1_000_000 + self.ts_usec
