"""Envelope -> raw table row: one raw table per kind, so every event is queryable before correlation.

The DDL is in ``schemas/migrations/``; this module is the matching column list
and the conversion, kept on the hot path (no pydantic dumps where avoidable).

Every raw table starts with the envelope's columns :data:`COMMON`: ``id``,
``node``, ``role``, ``ts``, ``received``, ``key`` and ``body`` (the body as
JSON, so nothing is lost), followed by typed columns for the main queries of
that kind. One exception to "body is the whole body": ``sip_messages.body``
leaves out ``raw``, which has its own compressed column, so the SIP text is not
stored twice.

Values are in :data:`COLUMNS` order, ready for a column-oriented or row insert:
timestamps are integer microseconds since the epoch (DateTime64(6) ticks),
absent strings are ``""`` and absent numbers ``0`` (``options_probes.rtt_ms``
is the one Nullable column: no answer is not a zero round trip).

Use :func:`row_from_dict` on the decoded JSON envelope from the bus (fastest),
or :func:`row_for` on a validated envelope model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson
from msgspec.structs import asdict
from pydantic import BaseModel

from collectors.hep.speedups import native
from schemas.bodies import SipBody
from schemas.wire import WireEndpoint, WireSipBody, WireSipEnvelope, WireStruct

TABLES: dict[str, str] = {
    "sip": "sip_messages",
    "rtcp": "rtcp",
    "ami": "ami_events",
    "cdr": "cdr",
    "cel": "cel",
    "queue_log": "queue_log",
    "options": "options_probes",
    "log": "logs",
}
DEADLETTERS = "deadletters"

COMMON: tuple[str, ...] = ("id", "node", "role", "ts", "received", "key", "body")

COLUMNS: dict[str, tuple[str, ...]] = {
    "sip_messages": (
        *COMMON,
        "call_id",
        "is_request",
        "method",
        "status",
        "reason",
        "cseq",
        "from_user",
        "to_user",
        "from_tag",
        "to_tag",
        "src_ip",
        "src_port",
        "dst_ip",
        "dst_port",
        "transport",
        "correlation_id",
        "capture_id",
        "user_agent",
        "raw",
    ),
    "rtcp": (*COMMON, "correlation_id", "src_ip", "src_port", "dst_ip", "dst_port"),
    "ami_events": (*COMMON, "event", "linkedid", "uniqueid", "channel"),
    "cdr": (*COMMON, "uniqueid", "linkedid", "src", "dst", "disposition", "duration", "billsec", "start"),
    "cel": (*COMMON, "eventtype", "uniqueid", "linkedid", "channame"),
    "queue_log": (*COMMON, "callid", "queue", "agent", "event", "data1", "data2", "data3", "data4", "data5"),
    "options_probes": (*COMMON, "target", "target_kind", "transport", "passive", "status", "rtt_ms", "error"),
    "logs": (*COMMON, "level", "message", "correlation_id", "call_id"),
    DEADLETTERS: ("id", "component", "reason", "detail", "node", "source_topic", "received", "raw"),
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

Row = tuple[Any, ...]


# Epoch seconds of "YYYY-MM-DDTHH:MM" prefixes seen recently: events arrive in time order, so
# a handful of minutes covers a batch. Bounded; cleared when full.
_MINUTES: dict[str, int] = {}
_MINUTES_MAX = 4096


def micros(value: Any) -> int:
    """Microseconds since the epoch of an ISO-8601 string, a datetime (naive = UTC) or an int.

    The envelope's own format (``2024-03-01T10:00:00.000001Z``) takes a fast path.
    """
    if isinstance(value, str):
        if len(value) == 27 and value[26] == "Z" and value[19] == "." and value[16] == ":":
            minute = _MINUTES.get(value[:16])
            if minute is None:
                minute = _minute_seconds(value[:16])
            sec, frac = value[17:19], value[20:26]
            if sec.isdigit() and frac.isdigit():
                return (minute + int(sec)) * 1_000_000 + int(frac)
        value = datetime.fromisoformat(value)
    elif isinstance(value, int):
        return value
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp, got {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    ticks: int = (value - _EPOCH) // _US
    return ticks


def from_micros(us: int) -> datetime:
    """The aware UTC datetime of ``us`` microseconds since the epoch (the inverse of :func:`micros`).

    Exact; positional ``timedelta`` arguments, as a keyword costs twice the time (rows carry several).
    """
    return _EPOCH + timedelta(0, 0, us)


def _minute_seconds(prefix: str) -> int:
    seconds = int((datetime.fromisoformat(prefix).replace(tzinfo=UTC) - _EPOCH).total_seconds())
    if len(_MINUTES) >= _MINUTES_MAX:
        _MINUTES.clear()
    _MINUTES[prefix] = seconds
    return seconds


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _field(fields: Mapping[str, Any], name: str) -> str:
    """An AMI-style field by name; exact spelling first, then case-insensitively (Asterisk versions differ)."""
    value = fields.get(name)
    if value is None:
        lower = name.lower()
        for key, candidate in fields.items():
            if key.lower() == lower:
                value = candidate
                break
    return _s(value)


# -- typed columns per kind, from the body as a dict ---------------------------------------------


def _sip(body: Mapping[str, Any]) -> Row:
    src = body.get("src") or {}
    dst = body.get("dst") or {}
    return (
        body.get("call_id") or "",
        bool(body.get("is_request")),
        body.get("method") or "",
        body.get("status") or 0,
        body.get("reason") or "",
        body.get("cseq") or 0,
        body.get("from_user") or "",
        body.get("to_user") or "",
        body.get("from_tag") or "",
        body.get("to_tag") or "",
        src.get("ip") or "",
        src.get("port") or 0,
        dst.get("ip") or "",
        dst.get("port") or 0,
        body.get("transport") or "udp",
        body.get("correlation_id") or "",
        body.get("capture_id") or 0,
        body.get("user_agent") or "",
        body.get("raw") or "",
    )


def _rtcp(body: Mapping[str, Any]) -> Row:
    src = body.get("src") or {}
    dst = body.get("dst") or {}
    return (
        body.get("correlation_id") or "",
        src.get("ip") or "",
        src.get("port") or 0,
        dst.get("ip") or "",
        dst.get("port") or 0,
    )


def _ami(body: Mapping[str, Any]) -> Row:
    fields = body.get("fields") or {}
    return (body.get("event") or "", _field(fields, "Linkedid"), _field(fields, "Uniqueid"), _field(fields, "Channel"))


def _cdr(body: Mapping[str, Any]) -> Row:
    return (
        body.get("uniqueid") or "",
        body.get("linkedid") or "",
        body.get("src") or "",
        body.get("dst") or "",
        body.get("disposition") or "",
        body.get("duration") or 0,
        body.get("billsec") or 0,
        body.get("start") or "",
    )


def _cel(body: Mapping[str, Any]) -> Row:
    return (
        body.get("eventtype") or "",
        body.get("uniqueid") or "",
        body.get("linkedid") or "",
        body.get("channame") or "",
    )


def _queue_log(body: Mapping[str, Any]) -> Row:
    data = [_s(d) for d in (body.get("data") or ())[:5]]
    data.extend([""] * (5 - len(data)))
    return (body.get("callid") or "", body.get("queue") or "", body.get("agent") or "", body.get("event") or "", *data)


def _options(body: Mapping[str, Any]) -> Row:
    rtt = body.get("rtt_ms")
    return (
        body.get("target") or "",
        body.get("target_kind") or "trunk",
        body.get("transport") or "udp",
        bool(body.get("passive")),
        body.get("status") or 0,
        None if rtt is None else float(rtt),
        body.get("error") or "",
    )


def _log(body: Mapping[str, Any]) -> Row:
    return (
        body.get("level") or "",
        body.get("message") or "",
        body.get("correlation_id") or "",
        body.get("call_id") or "",
    )


_TYPED: dict[str, Callable[[Mapping[str, Any]], Row]] = {
    "sip": _sip,
    "rtcp": _rtcp,
    "ami": _ami,
    "cdr": _cdr,
    "cel": _cel,
    "queue_log": _queue_log,
    "options": _options,
    "log": _log,
}


def _body_json(kind: str, body: Mapping[str, Any]) -> str:
    if kind == "sip" and "raw" in body:
        return _json({k: v for k, v in body.items() if k != "raw"})
    return _json(body)


def row_from_dict(kind: str, data: Mapping[str, Any]) -> tuple[str, Row]:
    """Table and row of a decoded JSON envelope (as :func:`schemas.envelope.encode` wrote it).

    Expects a validated envelope's fields; raises KeyError/TypeError/ValueError otherwise.
    """
    body = data["body"]
    return TABLES[kind], (
        data["id"],
        data["node"],
        data["role"],
        micros(data["ts"]),
        micros(data["received"]),
        data.get("key") or "",
        _body_json(kind, body),
        *_TYPED[kind](body),
    )


def _sip_model(b: Any) -> Row:
    """:func:`_sip` of a validated SIP body model, read from its fields (the busiest kind: no mapping view)."""
    f = b.__dict__  # a validated model's field values: a dict lookup each, not an attribute lookup
    return _sip_fields(f, f["src"].__dict__, f["dst"].__dict__)


def _sip_fields(f: dict[str, Any], src: dict[str, Any], dst: dict[str, Any]) -> Row:
    """The typed columns of ``sip_messages`` from a SIP body's field values and its endpoints'."""
    return (
        f["call_id"] or "",
        bool(f["is_request"]),
        f["method"] or "",
        f["status"] or 0,
        f["reason"] or "",
        f["cseq"] or 0,
        f["from_user"] or "",
        f["to_user"] or "",
        f["from_tag"] or "",
        f["to_tag"] or "",
        src["ip"] or "",
        src["port"] or 0,
        dst["ip"] or "",
        dst["port"] or 0,
        f["transport"] or "udp",
        f["correlation_id"] or "",
        f["capture_id"] or 0,
        f["user_agent"] or "",
        f["raw"] or "",
    )


def row_for(env: BaseModel | WireSipEnvelope) -> tuple[str, Row]:
    """Table and row of an envelope model (any of :mod:`schemas.envelope`'s), or of a SIP envelope read by msgspec."""
    if type(env) is WireSipEnvelope:
        return _wire_sip_row(env)
    e = env.__dict__
    kind: str = e["kind"]
    body: BaseModel = e["body"]
    # Other kinds: field values without a dump, nested models read through views.
    typed = _sip_model(body) if kind == "sip" else _TYPED[kind](_AttrView(body.__dict__))
    return TABLES[kind], (
        e["id"],
        e["node"],
        e["role"],
        _ticks(e["ts"]),
        _ticks(e["received"]),
        e["key"],
        body_json(kind, body),
        *typed,
    )


def _wire_sip_row(env: WireSipEnvelope) -> tuple[str, Row]:
    """:func:`row_for` of a :class:`schemas.wire.WireSipEnvelope`: the same row as its pydantic model's.

    The C accelerator builds the rows of the common envelopes (no VQ report, timestamps in the
    encoder's form); :func:`wire_sip_row_pure` builds every other, and is what it is tested against.
    """
    if _native_sip_row is not None:
        row = _native_sip_row(env)
        if row is not None:
            return "sip_messages", row
    return wire_sip_row_pure(env)


def wire_sip_row_pure(env: WireSipEnvelope) -> tuple[str, Row]:
    """:func:`_wire_sip_row` in Python (the reference of ``collectors/hep/_speedups.c``'s ``sip_row``)."""
    b = env.body
    fields = asdict(b)
    return "sip_messages", (
        env.id,
        env.node,
        env.role,
        micros(env.ts_text),
        micros(env.received_text),
        env.key,
        _wire_body_json(b, fields),
        *_sip_fields(fields, asdict(b.src), asdict(b.dst)),
    )


def _ticks(value: Any) -> int:
    """:func:`micros` of a validated envelope's timestamp (aware, so one subtraction), anything else through it."""
    try:
        ticks: int = (value - _EPOCH) // _US
    except TypeError:  # naive (a model built without validation), or not a datetime
        return micros(value)
    return ticks


# -- the body column of a model -------------------------------------------------------------------
#
# ``model_dump_json`` is the definition of the body column, but pydantic's serializer costs ~7 us for a
# SIP body, most of a row. For models that serialize as their plain field values (no aliases,
# serializers, computed or excluded fields) and values of JSON's own types, orjson writes the same
# text from the fields as they are, about five times faster: same key order (a validated model's
# ``__dict__`` is in field order, whatever the order of the input), same string escapes and float
# digits (tests/store/test_body_json.py pins all of it against pydantic). Whatever orjson would
# write differently (datetimes, str and int subclasses, dataclasses, ints past 64 bits, another
# model class) raises on the way, and that body takes pydantic's path: same text, at the old cost.

_BODY_JSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
)
# Core-schema config keys that do not change how a model's fields are written.
_PLAIN_CONFIG = frozenset({"title", "extra_fields_behavior"})
_SERIALIZATION_KEYS = ("serialization", "serialization_alias", "serialization_exclude", "serialization_exclude_if")


def plain_json_models(cls: type[BaseModel]) -> frozenset[type[BaseModel]] | None:
    """The model classes of ``cls``'s schema (itself included) if every one of them serializes to JSON as its
    field values in field order -- nothing renamed, added or left out, no custom serializer; else None."""
    models: set[type[BaseModel]] = set()

    def plain(node: Any) -> bool:
        if isinstance(node, list):
            return all(plain(item) for item in node)
        if not isinstance(node, dict):
            return True
        if any(key in node for key in _SERIALIZATION_KEYS) or node.get("computed_fields"):
            return False
        config = node.get("config")
        if isinstance(config, dict) and (
            config.get("extra_fields_behavior") != "forbid" or not config.keys() <= _PLAIN_CONFIG
        ):
            return False
        if node.get("type") == "model":
            if node.get("root_model") or not isinstance(node.get("cls"), type):
                return False
            models.add(node["cls"])
        return all(plain(value) for key, value in node.items() if key != "cls")

    return frozenset(models) if plain(cls.__pydantic_core_schema__) and cls in models else None


def _plain_bodies() -> tuple[dict[str, type[BaseModel]], frozenset[type[BaseModel]]]:
    from schemas.envelope import ENVELOPE_MODELS

    bodies: dict[str, type[BaseModel]] = {}
    nested: set[type[BaseModel]] = set()
    for kind, envelope in ENVELOPE_MODELS.items():
        body: Any = envelope.model_fields["body"].annotation
        models = plain_json_models(body) if isinstance(body, type) and issubclass(body, BaseModel) else None
        if models is not None:
            bodies[kind] = body
            nested.update(models)
    return bodies, frozenset(nested)


_PLAIN_BODIES, _PLAIN_MODELS = _plain_bodies()


def _fields_of(value: Any) -> dict[str, Any]:
    """orjson's ``default``: a nested plain model as its fields; anything else is not for this path."""
    if type(value) in _PLAIN_MODELS:
        fields: dict[str, Any] = value.__dict__
        return fields
    raise TypeError


def _wire_fields(value: Any) -> dict[str, Any]:
    """orjson's ``default`` for a msgspec-read body: a nested struct as its fields."""
    if isinstance(value, WireStruct):
        return asdict(value)
    raise TypeError


# ``raw`` is a SIP body's last field, and inside a JSON string every quote is escaped, so the last
# ``,"raw":`` of the encoded body is the field's own key.
_RAW_KEY = b',"raw":'
_encode_struct = msgspec.json.Encoder().encode

# The C accelerator of _wire_sip_row (None when the extension is not built or CALLSCOPE_HEP_PURE is set).
_native_sip_row: Callable[[WireSipEnvelope], Row | None] | None = None
if native is not None:
    native.configure_sip_row(WireSipEnvelope, WireSipBody, WireEndpoint, _encode_struct)
    _native_sip_row = native.sip_row


def _wire_body_json(body: WireSipBody, fields: dict[str, Any]) -> str:
    """:func:`body_json` of a msgspec-read SIP body (``fields``: its field values, not kept).

    Without a VQ report every value is a string, an int, a bool or null, nested in lists and
    objects, which msgspec writes as orjson and pydantic do (same escapes, non-ASCII as UTF-8):
    the encoded body with ``raw`` cut off. A VQ report may hold floats, which the libraries do not
    all write alike (``1e21``): those bodies go through orjson as the models' do.
    """
    if body.vq_report is None:
        text = _encode_struct(body)
        return text[: text.rfind(_RAW_KEY)].decode() + "}"
    fields = fields.copy()
    del fields["raw"]
    try:
        return orjson.dumps(fields, default=_wire_fields, option=_BODY_JSON_OPTIONS).decode()
    except TypeError:  # a value orjson does not write as pydantic does (an int past 64 bits): pydantic's text
        return SipBody.model_validate(msgspec.to_builtins(body)).model_dump_json(exclude={"raw"})


def body_json(kind: str, body: BaseModel) -> str:
    """The ``body`` column of an envelope of ``kind``: the body model as JSON, ``raw`` left out for SIP.

    The text of ``body.model_dump_json()`` (``exclude={"raw"}`` for SIP), written by orjson when it
    can be (see above).
    """
    if type(body) is _PLAIN_BODIES.get(kind):
        fields = body.__dict__
        if kind == "sip":
            fields = fields.copy()
            del fields["raw"]
        try:
            return orjson.dumps(fields, default=_fields_of, option=_BODY_JSON_OPTIONS).decode()
        except TypeError:  # orjson.JSONEncodeError: a value pydantic writes its own way
            pass
    return body.model_dump_json(exclude={"raw"}) if kind == "sip" else body.model_dump_json()


class _AttrView(Mapping[str, Any]):
    """A read-only mapping over a model's field values that turns nested models into views too."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        if isinstance(value, BaseModel):
            return _AttrView(value.__dict__)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def deadletter_row(
    *,
    component: str,
    reason: str,
    detail: str,
    node: str,
    raw: bytes,
    received: datetime | str | int,
    source_topic: str | None = None,
) -> tuple[str, Row]:
    """Table and row of a dead letter: why it failed and the original bytes.

    The id is a hash of the record (component, reason, node, received, raw), so
    a replayed dead letter collapses like any event.
    """
    ticks = micros(received)
    digest = hashlib.blake2b(digest_size=16)
    for part in (component, reason, node, str(ticks)):
        digest.update(part.encode())
        digest.update(b"\x00")
    digest.update(raw)
    return DEADLETTERS, (digest.hexdigest(), component, reason, detail, node, source_topic or "", ticks, raw)


# -- correlated tables (processors/call_legs, registrations, media_quality; DDL in 0003-0006) ----

COLUMNS["call_legs"] = (
    "id",
    "call_id",
    "leg_id",
    "from_tag",
    "to_tag",
    "caller",
    "callee",
    "caller_display",
    "pai",
    "request_uri",
    "started_at",
    "ringing_at",
    "answered_at",
    "ended_at",
    "pdd_ms",
    "setup_ms",
    "duration_secs",
    "status",
    "reason",
    "reason_header",
    "ended_by",
    "state",
    "nodes",
    "src_ip",
    "dst_ip",
    "user_agent",
    "codecs",
    "correlation_ids",
    "x_cid",
    "session_id",
    "message_count",
    "retransmissions",
    "reinvites",
    "version",
    "updated_at",
    "checkpoint",
)
COLUMNS["call_links"] = ("id", "call_id", "linked_call_id", "via", "value", "ts")
COLUMNS["registrations"] = (
    "id",
    "aor",
    "contact",
    "expires",
    "status",
    "reason",
    "node",
    "nodes",
    "user_agent",
    "src_ip",
    "call_id",
    "cseq",
    "requested_at",
    "answered_at",
    "challenge",
    "version",
)
COLUMNS["media_quality"] = (
    "id",
    "call_id",
    "correlation_id",
    "node",
    "ts",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "ssrc",
    "source_ssrc",
    "report_type",
    "packets_lost",
    "fraction_lost",
    "jitter_ms",
    "rtt_ms",
    "r_factor",
    "mos",
    "missing",
    "clock_rate",
    "codec",
)
# processors/health (DDL in 0007): one row per state or flapping change
COLUMNS["health_transitions"] = (
    "id",
    "scope",
    "node",
    "target",
    "target_kind",
    "from_state",
    "to_state",
    "at",
    "reason",
    "status",
    "rtt_ms",
    "error",
    "passive",
    "flapping",
)
# processors/queue_sessions (DDL in 0009): session versions, the SLA rollup its view fills, agent intervals
COLUMNS["queue_sessions"] = (
    "id",
    "session_id",
    "node",
    "queue",
    "callid",
    "linkedid",
    "caller",
    "entered_at",
    "answered_at",
    "ended_at",
    "wait_secs",
    "talk_secs",
    "ring_attempts",
    "ring_secs",
    "agent",
    "agent_uniqueid",
    "position",
    "original_position",
    "state",
    "outcome",
    "answered",
    "transfer_target",
    "exit_key",
    "sources",
    "gap",
    "final",
    "version",
    "updated_at",
    "checkpoint",
)
COLUMNS["queue_sla_15m"] = (
    "queue",
    "interval_start",
    "offered",
    "answered",
    "abandoned",
    "timed_out",
    "exit_empty",
    "exit_key",
    "other_unanswered",
    "rejected",
    "wait_answered_sum",
    "talk_sum",
    "talked",
    "wait_max",
    "answered_wait_hist",
    "abandoned_wait_hist",
)
COLUMNS["agent_states"] = (
    "id",
    "node",
    "agent",
    "queue",
    "state",
    "reason",
    "interface",
    "started_at",
    "ended_at",
    "duration_secs",
    "end_reason",
    "source",
    "version",
    "updated_at",
)
# processors/asterisk_calls (DDL in 0008): channels, calls and transfers from AMI/CEL/CDR
COLUMNS["asterisk_legs"] = (
    "id",
    "leg_id",
    "node",
    "uniqueid",
    "linkedid",
    "linkedids",
    "channel",
    "tech",
    "direction",
    "caller_num",
    "caller_name",
    "connected_num",
    "connected_name",
    "callee",
    "context",
    "exten",
    "dialed_by",
    "dial_string",
    "dial_status",
    "forwarded_to",
    "started_at",
    "ringing_at",
    "answered_at",
    "bridged_at",
    "ended_at",
    "duration_secs",
    "bridged_secs",
    "hangup_cause",
    "hangup_cause_text",
    "outcome",
    "state",
    "bridged_with",
    "connected_to",
    "sip_call_id",
    "incomplete",
    "sources",
    "created",
    "version",
    "updated_at",
)
COLUMNS["asterisk_calls"] = (
    "id",
    "node",
    "linkedid",
    "caller_channel",
    "caller_num",
    "caller_name",
    "callee",
    "started_at",
    "answered_at",
    "connected_at",
    "ended_at",
    "duration_secs",
    "wait_secs",
    "talk_secs",
    "state",
    "outcome",
    "hangup_cause",
    "hangup_cause_text",
    "channels",
    "uniqueids",
    "transfers",
    "sip_call_ids",
    "merged_into",
    "incomplete",
    "created",
    "version",
    "updated_at",
    "checkpoint",
)
COLUMNS["asterisk_transfers"] = (
    "id",
    "transfer_id",
    "node",
    "linkedid",
    "ts",
    "kind",
    "result",
    "transferer_channel",
    "transferer_uniqueid",
    "transferee_channel",
    "transferee_uniqueid",
    "target_channel",
    "target_uniqueid",
    "target_exten",
    "second_linkedid",
    "is_external",
    "source",
    "event_id",
    "version",
)
