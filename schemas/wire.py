"""SIP envelopes read by msgspec: the processors' fast path for the busiest kind.

Every SIP message is read by five processors, and validating its envelope with pydantic
(:mod:`schemas.envelope`) was the largest single cost of the processor role: about 11 us per
record on one core, against under 4 us for msgspec into the structs below. The pydantic
models stay the contract (collectors build them, the JSON schemas come from them, every
other kind is read through them); these structs are a second reader of the same JSON for
``kind == "sip"``, with the same field names, defaults and limits, and the same attributes
for the processors to read (``env.body.src.ip``, ``env.ts`` as an aware UTC datetime).

What the fast path accepts is a subset of what pydantic accepts, with equal values:

- types are strict (an int is a JSON integer, a bool ``true``/``false``): pydantic's lax
  coercions (``"5060"`` for a port) are not taken here;
- ``ts`` and ``received`` must be what :func:`schemas.envelope.encode` writes, UTC with ``Z``
  and at most six fractional digits (msgspec rounds a seventh where pydantic truncates);
- anything it refuses (:func:`decode_sip` returns None) is validated by pydantic as before,
  which gives the envelope (as a pydantic model) or the error the dead letter carries.

So a reader of SIP envelopes gets a :class:`WireSipEnvelope` or a
:class:`schemas.envelope.SipEnvelope` (:data:`SipLike`); both read the same.
``tests/test_wire.py`` pins the mirror (fields, defaults, limits) to the pydantic models and
compares the two readers on generated, mutated and captured envelopes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import Meta, Struct, field

from schemas.envelope import SCHEMA_VERSION, Envelope, Role, SipEnvelope

#: What every SIP envelope of :func:`schemas.envelope.encode` starts with: the records the
#: fast path is tried on (anything else goes to pydantic directly).
SIP_PREFIX = b'{"v":1,"kind":"sip",'

# The timestamp form the encoder writes (``_ts_text``), with shorter fractions allowed.
_TS_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$"
_Timestamp = Annotated[str, Meta(pattern=_TS_PATTERN)]

_Port = Annotated[int, Meta(ge=0, le=65535)]


class WireStruct(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Frozen, unknown fields refused (pydantic's ``extra="forbid"``), not tracked by the GC (no cycles)."""


class WireEndpoint(WireStruct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    ip: Annotated[str, Meta(max_length=64)]
    port: _Port


class WireSdpMedia(WireStruct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    media: Annotated[str, Meta(max_length=32)]
    port: _Port
    proto: Annotated[str, Meta(max_length=64)] = ""
    formats: Annotated[list[str], Meta(max_length=64)] = []
    codecs: Annotated[list[str], Meta(max_length=64)] = []
    connection: Annotated[str, Meta(max_length=64)] | None = None
    direction: Annotated[str, Meta(max_length=16)] | None = None


class WireSdpSummary(WireStruct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    connection: Annotated[str, Meta(max_length=64)] | None = None
    origin: Annotated[str, Meta(max_length=256)] | None = None
    media: Annotated[list[WireSdpMedia], Meta(max_length=32)] = []


class WireSipBody(WireStruct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    src: WireEndpoint
    dst: WireEndpoint
    transport: Literal["udp", "tcp", "tls", "sctp", "ws", "wss", "other"] = "udp"
    capture_id: Annotated[int, Meta(ge=0)] | None = None
    capture_name: str | None = None
    correlation_id: Annotated[str, Meta(max_length=1024)] | None = None
    is_request: bool
    method: Annotated[str, Meta(max_length=32)] | None = None
    request_uri: Annotated[str, Meta(max_length=1024)] | None = None
    status: Annotated[int, Meta(ge=100, le=699)] | None = None
    reason: Annotated[str, Meta(max_length=256)] | None = None
    call_id: Annotated[str, Meta(max_length=1024)]
    cseq: Annotated[int, Meta(ge=0)] | None = None
    from_user: str | None = None
    from_display: str | None = None
    from_uri: str | None = None
    from_tag: str | None = None
    to_user: str | None = None
    to_display: str | None = None
    to_uri: str | None = None
    to_tag: str | None = None
    via_branch: str | None = None
    via_branches: Annotated[list[str], Meta(max_length=32)] = []
    contact: str | None = None
    user_agent: str | None = None
    server: str | None = None
    pai: str | None = None
    pai_user: str | None = None
    session_id: Annotated[str, Meta(max_length=256)] | None = None
    expires: Annotated[int, Meta(ge=0)] | None = None
    reason_header: Annotated[str, Meta(max_length=512)] | None = None
    content_type: str | None = None
    correlation: dict[str, str] = {}
    sdp: WireSdpSummary | None = None
    vq_report: dict[str, Any] | None = None
    headers: dict[str, str] = {}
    raw: str


class WireSipEnvelope(WireStruct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """A SIP envelope; ``ts`` and ``received`` read as aware UTC datetimes, as the pydantic model's do."""

    v: Annotated[int, Meta(ge=1, le=SCHEMA_VERSION)] = SCHEMA_VERSION
    id: Annotated[str, Meta(min_length=1, max_length=128)]
    node: Annotated[str, Meta(min_length=1, max_length=128)]
    role: Role
    ts_text: _Timestamp = field(name="ts")
    received_text: _Timestamp = field(name="received")
    key: Annotated[str, Meta(max_length=1024)]
    kind: Literal["sip"]
    body: WireSipBody

    @property
    def ts(self) -> datetime:
        return datetime.fromisoformat(self.ts_text)

    @property
    def received(self) -> datetime:
        return datetime.fromisoformat(self.received_text)


SipLike = SipEnvelope | WireSipEnvelope
#: What a processor reads from a record: any kind's pydantic envelope, or a SIP one read by msgspec.
Decoded = Union[Envelope, WireSipEnvelope]  # noqa: UP007 - Envelope is an Annotated union
#: For ``isinstance``: either reader's SIP envelope.
SIP_ENVELOPES: tuple[type[SipEnvelope], type[WireSipEnvelope]] = (SipEnvelope, WireSipEnvelope)

_DECODER = msgspec.json.Decoder(WireSipEnvelope)
_FAILED = (msgspec.ValidationError, msgspec.DecodeError)


def decode_sip(value: bytes) -> WireSipEnvelope | None:
    """The SIP envelope in ``value``, or None when the fast path cannot vouch for it (ask pydantic)."""
    try:
        env = _DECODER.decode(value)
        # Checks the dates the pattern lets through (month 13, 30 February); the value is the
        # one pydantic gives (UTC, microseconds as written).
        datetime.fromisoformat(env.ts_text)
        datetime.fromisoformat(env.received_text)
    except (*_FAILED, ValueError):
        return None
    return env


def to_model(env: WireSipEnvelope) -> SipEnvelope:
    """The pydantic model of a msgspec-read envelope (equal to what pydantic reads from the same JSON)."""
    return SipEnvelope.model_validate_json(msgspec.json.encode(env))


__all__ = [
    "SIP_ENVELOPES",
    "SIP_PREFIX",
    "Decoded",
    "SipLike",
    "WireEndpoint",
    "WireSdpMedia",
    "WireSdpSummary",
    "WireSipBody",
    "WireSipEnvelope",
    "WireStruct",
    "decode_sip",
    "to_model",
]
