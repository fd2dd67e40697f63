"""Configuration of the HEP collector (``collectors.hep`` in the YAML file)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


def _check_listen(value: str) -> str:
    from callscope.settings import parse_listen

    parse_listen(value)
    return value


class HepConfig(BaseModel):
    """HEP (v1, v2, v3) over UDP and TCP from Kamailio, OpenSIPS, rtpengine, heplify, sngrep."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    listen: str = Field(default="127.0.0.1:9060", description="HOST:PORT for both UDP and TCP; port 0 asks the OS.")
    udp: bool = True
    tcp: bool = True
    auth_key: str | None = Field(
        default=None,
        description=(
            "When set, packets whose chunk 0x000e differs or is missing, and packets or TCP streams too malformed"
            " to carry one, are counted and dropped (never dead-lettered)."
        ),
    )
    correlation_headers: tuple[str, ...] = Field(
        default=("x-cid",), description="SIP headers that link legs of one call (lower-case names)."
    )
    capture_id_byteswap: tuple[int, ...] = Field(
        default=(), description="Capture ids that arrive byte-swapped (sngrep's quirk), as they arrive."
    )
    recv_buffer_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=65536,
        description="SO_RCVBUF asked for the UDP socket: room for the packets that arrive while the receive thread "
        "waits for the interpreter (about a second at 30k packets/s of 600 bytes); kernel memory, used only then.",
    )
    max_packet_bytes: int = Field(default=65535, ge=512, le=1048576)
    batch_max_messages: int = Field(default=2000, ge=1)
    batch_max_age_ms: int = Field(default=50, ge=1, le=10000)
    recv_batch_packets: int = Field(
        default=512,
        ge=1,
        le=4096,
        description="UDP datagrams taken per recvmmsg call (one GIL hand-off per batch); 1 reads one per call.",
    )
    queue_max_packets: int = Field(default=200_000, ge=1000, description="Packets held between receive thread and bus.")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _check_listen(value)

    @field_validator("correlation_headers")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().lower() for v in value if v.strip())
