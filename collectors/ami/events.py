"""AMI event -> envelope, and the collector's own markers. Pure: the caller passes every time.

An event becomes one ``ami`` envelope (validates as :class:`schemas.envelope.AmiEnvelope`):

- ``body.event`` the ``Event`` value; ``body.fields`` every key as received, original case
  (a key sent twice holds its values joined with ``\\n``); ``body.dialect`` from
  :mod:`.dialect`;
- ``key`` = :func:`.dialect.correlation_key` (Linkedid, else Uniqueid, else the node);
- ``node`` = the Asterisk node's name, ``role`` its topology role;
- ``ts`` = the event's ``Timestamp`` (``timestampevents=yes``) when it has a valid one, else
  ``received``;
- ``id`` = ``event_id("ami", node, *id_parts)``: the collector passes its session (the login
  time) and the event's sequence number in it; a replay passes the file's digest and the
  event's index, so replaying a file twice gives the same ids.

Markers (also ``ami`` bodies, ``dialect`` that of the connection):

- ``CallscopeGap`` (:func:`gap_envelopes`), published after every reconnect: fields
  ``Event``, ``reason`` (why the previous connection ended), ``since`` (last data received on
  it) and ``until`` (the new login), ISO-8601 UTC. One is keyed by the node's name; one more
  per live channel key that the resync found, carrying that channel's ``Linkedid`` (or
  ``Uniqueid`` on Asterisk 11), so every partition holding a live call learns of the gap.
- resync results carry ``CallscopeResync: "1"`` (:func:`mark_resync`).

Errors (:class:`~schemas.errors.DecodeError`, reason in brackets): a block without an
``Event`` value (``no_event``), an event name over 128 characters (``event_name``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from collectors.ami.dialect import Dialect, correlation_key, linkedid, uniqueid
from schemas.envelope import SCHEMA_VERSION, event_id
from schemas.errors import DecodeError

__all__ = [
    "GAP_EVENT",
    "RESYNC_FIELD",
    "checked_name",
    "envelope_from_fields",
    "event_name",
    "gap_envelopes",
    "iso_us",
    "mark_resync",
    "timestamp_us",
]

GAP_EVENT = "CallscopeGap"
RESYNC_FIELD = "CallscopeResync"
MAX_KEY = 1024
_MIN_TS = 946_684_800  # 2000-01-01: an AMI Timestamp before this is not a time
_MAX_TS = 4_102_444_800  # 2100-01-01

_dumps = orjson.dumps
_SECONDS: dict[int, str] = {}


def iso_us(ts_us: int) -> str:
    """``2024-01-02T03:04:05.123456Z`` for microseconds since the epoch."""
    sec, usec = divmod(ts_us, 1_000_000)
    text = _SECONDS.get(sec)
    if text is None:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        if len(_SECONDS) >= 256:
            _SECONDS.clear()
        _SECONDS[sec] = text
    return f"{text}.{usec:06d}Z"


def timestamp_us(fields: Mapping[str, str]) -> int | None:
    """The event's ``Timestamp: 1409169929.412068`` in microseconds, or None when absent or not a time."""
    value = fields.get("Timestamp")
    if value is None:
        value = fields.get("timestamp")
        if value is None:
            return None
    sec, _, frac = value.strip().partition(".")
    # isascii: str.isdigit() also accepts digits int() refuses (superscripts)
    if not (sec.isascii() and sec.isdigit()) or (frac and not (frac.isascii() and frac.isdigit())) or len(sec) > 10:
        return None
    seconds = int(sec)
    if not _MIN_TS <= seconds < _MAX_TS:
        return None
    return seconds * 1_000_000 + (int((frac + "000000")[:6]) if frac else 0)


def event_name(fields: Mapping[str, str]) -> str:
    """The ``Event`` value (key in any case). Raises :class:`DecodeError` when missing or too long."""
    name = fields.get("Event")
    if name is None:
        for key, value in fields.items():
            if key.lower() == "event":
                name = value
                break
    return checked_name(name or "")


def checked_name(name: str) -> str:
    """An event name as the envelope takes it (1-128 characters). Raises :class:`DecodeError`."""
    name = name.strip()
    if not name:
        raise DecodeError("AMI block without an Event name", reason="no_event")
    if len(name) > 128:
        raise DecodeError(f"AMI event name over 128 characters: {name[:40]}...", reason="event_name")
    return name


def envelope_from_fields(
    fields: dict[str, str],
    *,
    node: str,
    role: str,
    dialect: Dialect,
    received_us: int,
    id_parts: Iterable[str | bytes],
    event: str | None = None,
    key: str | None = None,
) -> tuple[str, bytes]:
    """``(key, envelope JSON)`` of one AMI event. Raises :class:`DecodeError`."""
    name = event_name(fields) if event is None else checked_name(event)
    ts_us = timestamp_us(fields) or received_us
    if key is None:
        key = correlation_key(fields, node)
    if len(key) > MAX_KEY:
        key = key[:MAX_KEY]
    received = iso_us(received_us)
    envelope: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "kind": "ami",
        "id": event_id("ami", node, *id_parts),
        "node": node,
        "role": role,
        "ts": received if ts_us == received_us else iso_us(ts_us),
        "received": received,
        "key": key,
        "body": {"event": name, "fields": fields, "dialect": dialect},
    }
    return key, _dumps(envelope)


def mark_resync(fields: Mapping[str, str]) -> dict[str, str]:
    """A copy of a resync result's fields with ``CallscopeResync: "1"``."""
    out = dict(fields)
    out[RESYNC_FIELD] = "1"
    return out


def gap_envelopes(
    *,
    node: str,
    role: str,
    dialect: Dialect,
    reason: str,
    since_us: int,
    until_us: int,
    session: str,
    channels: Iterable[Mapping[str, str]] = (),
) -> list[tuple[str, bytes]]:
    """The ``CallscopeGap`` markers of one reconnect: the node's, then one per live channel key.

    ``channels`` are the resync's ``CoreShowChannel`` fields; channels sharing a key (the
    legs of one call) give one marker.
    """
    base = {"Event": GAP_EVENT, "reason": reason, "since": iso_us(since_us), "until": iso_us(until_us)}
    out = [
        envelope_from_fields(
            base,
            node=node,
            role=role,
            dialect=dialect,
            received_us=until_us,
            id_parts=("gap", session, node),
            event=GAP_EVENT,
            key=node,
        )
    ]
    seen = {node}
    for chan in channels:
        key = correlation_key(chan, node)
        if key in seen:
            continue
        seen.add(key)
        marker = dict(base)
        ids = _channel_ids(chan)
        marker.update(ids)
        out.append(
            envelope_from_fields(
                marker,
                node=node,
                role=role,
                dialect=dialect,
                received_us=until_us,
                id_parts=("gap", session, key),
                event=GAP_EVENT,
                key=key,
            )
        )
    return out


def _channel_ids(chan: Mapping[str, str]) -> dict[str, str]:
    out = {}
    link = linkedid(chan)
    if link:
        out["Linkedid"] = link
    unique = uniqueid(chan)
    if unique and not link:
        out["Uniqueid"] = unique
    return out
