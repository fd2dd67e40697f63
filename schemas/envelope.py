"""The envelope: one JSON object per event, the same shape for every kind.

Fields (DESIGN.md): ``v`` schema version, ``kind``, ``id`` (stable: same input,
same id), ``node`` and ``role`` of the observing cluster node, ``ts`` (when it
happened at the source, UTC, microseconds), ``received`` (when the collector got
it), ``key`` (the correlation key that picks the partition) and ``body`` (the
kind's own fields, see :mod:`schemas.bodies`).

Encoding is orjson. Decoding validates against the kind's body model; anything
that fails raises :class:`schemas.errors.EnvelopeError` and belongs on
``callscope.deadletter``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from schemas.bodies import (
    AmiBody,
    CdrBody,
    CelBody,
    LogBody,
    OptionsBody,
    QueueLogBody,
    RtcpBody,
    SipBody,
)
from schemas.errors import EnvelopeError

SCHEMA_VERSION = 1

Kind = Literal["sip", "rtcp", "ami", "cdr", "cel", "queue_log", "options", "log"]
KINDS: tuple[Kind, ...] = ("sip", "rtcp", "ami", "cdr", "cel", "queue_log", "options", "log")

Role = Literal["registrar", "sbc", "logic", "media", "probe", "collector"]
ROLES: tuple[Role, ...] = ("registrar", "sbc", "logic", "media", "probe", "collector")


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class _EnvelopeBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION, description="Envelope schema version.")
    id: str = Field(min_length=1, max_length=128, description="Stable event id: same input, same id.")
    node: str = Field(min_length=1, max_length=128, description="Cluster node that observed the event.")
    role: Role = Field(description="Role of that node in the topology.")
    ts: datetime = Field(description="When it happened at the source (UTC, microseconds).")
    received: datetime = Field(description="When the collector received it (UTC, microseconds).")
    key: str = Field(max_length=1024, description="Correlation key; picks the bus partition.")

    @field_validator("ts", "received")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return _utc(value)


class SipEnvelope(_EnvelopeBase):
    kind: Literal["sip"]
    body: SipBody


class RtcpEnvelope(_EnvelopeBase):
    kind: Literal["rtcp"]
    body: RtcpBody


class AmiEnvelope(_EnvelopeBase):
    kind: Literal["ami"]
    body: AmiBody


class CdrEnvelope(_EnvelopeBase):
    kind: Literal["cdr"]
    body: CdrBody


class CelEnvelope(_EnvelopeBase):
    kind: Literal["cel"]
    body: CelBody


class QueueLogEnvelope(_EnvelopeBase):
    kind: Literal["queue_log"]
    body: QueueLogBody


class OptionsEnvelope(_EnvelopeBase):
    kind: Literal["options"]
    body: OptionsBody


class LogEnvelope(_EnvelopeBase):
    kind: Literal["log"]
    body: LogBody


Envelope = Annotated[
    SipEnvelope
    | RtcpEnvelope
    | AmiEnvelope
    | CdrEnvelope
    | CelEnvelope
    | QueueLogEnvelope
    | OptionsEnvelope
    | LogEnvelope,
    Field(discriminator="kind"),
]

ENVELOPE_ADAPTER: TypeAdapter[Envelope] = TypeAdapter(Envelope)

ENVELOPE_MODELS: dict[str, type[_EnvelopeBase]] = {
    "sip": SipEnvelope,
    "rtcp": RtcpEnvelope,
    "ami": AmiEnvelope,
    "cdr": CdrEnvelope,
    "cel": CelEnvelope,
    "queue_log": QueueLogEnvelope,
    "options": OptionsEnvelope,
    "log": LogEnvelope,
}


def event_id(kind: str, node: str, *parts: bytes | str) -> str:
    """Return a stable 128-bit event id (hex) for the given source-unique parts.

    Collectors pass what makes the event unique at its source (the raw datagram
    and its capture time, the file's inode and byte offset, the AMI node and
    event fields). The same input always yields the same id, so a replayed or
    retried event deduplicates downstream.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(kind.encode())
    h.update(b"\x00")
    h.update(node.encode())
    for part in parts:
        h.update(b"\x00")
        h.update(part if isinstance(part, bytes) else part.encode())
    return h.hexdigest()


def _ts_text(value: datetime) -> str:
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def envelope_to_dict(env: _EnvelopeBase) -> dict[str, Any]:
    """JSON-ready dict of an envelope (timestamps as ISO-8601 UTC with microseconds)."""
    data = env.model_dump(mode="python", exclude_none=False)
    data["ts"] = _ts_text(env.ts)
    data["received"] = _ts_text(env.received)
    return data


def encode(env: _EnvelopeBase) -> bytes:
    """Serialise an envelope with orjson."""
    return orjson.dumps(envelope_to_dict(env))


def decode(raw: bytes | str) -> Envelope:
    """Parse and validate one envelope. Raises :class:`EnvelopeError` with the reason."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"not JSON: {exc}") from None
    return validate(data)


def validate(data: Any) -> Envelope:
    """Validate a decoded JSON object as an envelope. Raises :class:`EnvelopeError`."""
    if not isinstance(data, dict):
        raise EnvelopeError(f"envelope must be a JSON object, got {type(data).__name__}")
    try:
        return ENVELOPE_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise EnvelopeError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "<envelope>"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def now_utc() -> datetime:
    return datetime.now(UTC)
