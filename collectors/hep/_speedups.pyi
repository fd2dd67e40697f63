from collections.abc import Callable, Mapping, Sequence
from typing import Any

from collectors.hep.packet import HepPacket

def configure_decode(hep_packet: type[HepPacket], decode_pure: Callable[..., HepPacket], /) -> None: ...
def configure_sip(
    parse_fields_pure: Callable[..., Any],
    name_addr: Callable[[str], tuple[str | None, str | None, str | None, str | None]],
    static_codecs: dict[str, str],
    parse_vq_report: Callable[[str], dict[str, Any]],
    compact: dict[str, str],
    kept: dict[str, str],
    multi: frozenset[str],
    /,
) -> None: ...
def decode(data: bytes | bytearray | memoryview, /) -> HepPacket: ...
def parse_fields(
    data: bytes, /, *, correlation_headers: Sequence[str] = ..., max_message_bytes: int = ...
) -> Mapping[str, Any]: ...
def configure_envelope(ts_text: Callable[[int], str], seconds_cache: dict[int, str], /) -> None: ...
def envelope_head(
    v: int, kind: str, event_id: str, node: str, role: str, ts_us: int, received_us: int, key: str, /
) -> bytes | None: ...
def sip_envelope(
    payload: bytes,
    correlation_headers: Sequence[str],
    max_message_bytes: int,
    v: int,
    event_id: str,
    node: str,
    role: str,
    ts_us: int,
    received_us: int,
    src_ip: str,
    src_port: int,
    dst_ip: str,
    dst_port: int,
    transport: str,
    capture_id: int | None,
    capture_name: str | None,
    correlation_id: str | None,
    /,
) -> tuple[str, bytes] | None: ...
