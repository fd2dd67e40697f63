"""Pure core of the events processor: one bus record in, one table row (or a reason) out."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from callscope.bus.base import Record
from callscope.bus.envelopes import SHARED, EnvelopeCache
from schemas.envelope import KINDS
from schemas.errors import DecodeError
from schemas.tables import deadletter_row, row_for
from schemas.topics import DEADLETTER, topic_for

_TOPICS: dict[str, str] = {kind: topic_for(kind) for kind in KINDS}


class Row(NamedTuple):
    """A table row (immutable; a named tuple, as cheap to make as a tuple: one per record)."""

    table: str
    values: tuple[Any, ...]
    id: str
    node: str = ""  # the source node of an envelope ("" for dead letters)


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    detail: str


def route(topic: str, value: bytes, envelopes: EnvelopeCache = SHARED, record: Record | None = None) -> Row | Rejected:
    """Turn one record into the row of its raw table, or say why it cannot be stored.

    ``envelopes``: where the record's envelope is decoded (shared with the other processors);
    ``record``: the record of ``value`` when its envelope may ride on it (``Consumer.carries_envelopes``,
    :meth:`EnvelopeCache.decode`), else None.
    """
    if topic == DEADLETTER:
        return _deadletter(value)
    try:
        env = envelopes.decode(value, record)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        return Rejected("envelope", _short(exc))
    if _TOPICS[env.kind] != topic:
        return Rejected("wrong_topic", f"kind {env.kind!r} arrived on {topic}")
    try:
        table, values = row_for(env)
    except DecodeError as exc:
        return Rejected(exc.reason, str(exc))
    return Row(table, values, env.id, env.node)


def _deadletter(value: bytes) -> Row | Rejected:
    try:
        doc = orjson.loads(value)
        if not isinstance(doc, dict):
            raise TypeError("not an object")
        raw = base64.b64decode(doc.get("raw_b64") or "", validate=True)
        received = _parse_ts(doc.get("received"))
        table, values = deadletter_row(
            component=str(doc.get("component") or "unknown"),
            reason=str(doc.get("reason") or "unknown"),
            detail=str(doc.get("detail") or ""),
            node=str(doc.get("node") or ""),
            source_topic=str(doc.get("source_topic") or ""),
            received=received,
            raw=raw,
        )
    except (ValueError, TypeError) as exc:
        # A dead letter that is itself unreadable is still kept, whole.
        table, values = deadletter_row(
            component="events",
            reason="bad_deadletter",
            detail=_short(exc),
            node="",
            source_topic=DEADLETTER,
            received=datetime.now(UTC),
            raw=value,
        )
    return Row(table, values, "")


def _parse_ts(value: Any) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime.now(UTC)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 500 else text[:500] + "..."
