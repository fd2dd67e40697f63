"""schemas.wire: msgspec reads SIP envelopes as pydantic would, or leaves them to pydantic.

The contract: whatever :func:`schemas.wire.decode_sip` accepts, pydantic accepts too, with equal
values (the envelope, and the ``sip_messages`` row written from it); what the encoder writes is
accepted (else the fast path would be dead weight). Checked on the mirror's definition, on the
corpus captures, on generated traffic and on hypothesis mutations of envelopes.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from callscope.bus.envelopes import read
from callscope.replay import resolve_formats
from schemas.bodies import Endpoint, SdpMedia, SdpSummary, SipBody
from schemas.envelope import ENVELOPE_ADAPTER, SipEnvelope
from schemas.tables import _native_sip_row, _wire_sip_row, micros, row_for, wire_sip_row_pure
from schemas.wire import (
    SIP_PREFIX,
    WireEndpoint,
    WireSdpMedia,
    WireSdpSummary,
    WireSipBody,
    WireSipEnvelope,
    WireStruct,
    decode_sip,
    to_model,
)
from tests.ci import unavailable
from tests.corpus import CORPUS, require
from tests.samples import sample_envelope

PAIRS: list[tuple[type[WireStruct], type[BaseModel]]] = [
    (WireEndpoint, Endpoint),
    (WireSdpMedia, SdpMedia),
    (WireSdpSummary, SdpSummary),
    (WireSipBody, SipBody),
    (WireSipEnvelope, SipEnvelope),
]
# The one deliberate difference: msgspec reads the timestamps as text of the encoder's form.
TIMESTAMPS = ("ts", "received")


def _normal(node: Any) -> Any:
    """A JSON schema without what differs only in how the two libraries write it."""
    if isinstance(node, list):
        return [_normal(v) for v in node]
    if not isinstance(node, dict):
        return node.replace("#/$defs/Wire", "#/$defs/") if isinstance(node, str) else node
    out = {k: _normal(v) for k, v in node.items() if k not in ("title", "description", "default", "required")}
    if "const" in out:  # pydantic: const; msgspec: a one-value enum
        out["enum"] = [out.pop("const")]
    if "enum" in out:
        out["enum"] = sorted(out["enum"])
        out.pop("type", None)
    if out.get("additionalProperties") is True:
        del out["additionalProperties"]
    return out


def _schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    _, wire = msgspec.json.schema_components([WireSipEnvelope], ref_template="#/$defs/{name}")
    model = SipEnvelope.model_json_schema(ref_template="#/$defs/{model}")
    defs = model.pop("$defs")
    defs["SipEnvelope"] = model
    return {name.removeprefix("Wire"): s for name, s in wire.items()}, defs


@pytest.mark.parametrize(("wire", "model"), PAIRS, ids=[m.__name__ for _, m in PAIRS])
def test_the_structs_mirror_the_models_field_by_field(wire: type[WireStruct], model: type[BaseModel]) -> None:
    fields = msgspec.structs.fields(wire)
    assert [f.encode_name for f in fields] == list(model.model_fields)  # same order: same body column
    wire_schemas, model_schemas = _schemas()
    wire_schema, model_schema = wire_schemas[model.__name__], model_schemas[model.__name__]
    for f in fields:
        name = f.encode_name
        info = model.model_fields[name]
        assert f.required == info.is_required(), name
        if not f.required:
            default = f.default_factory() if f.default is msgspec.NODEFAULT else f.default
            assert default == info.get_default(call_default_factory=True), name
        if name in TIMESTAMPS:
            continue
        assert _normal(wire_schema["properties"][name]) == _normal(model_schema["properties"][name]), name
    assert wire.__struct_config__.forbid_unknown_fields
    assert model.model_config.get("extra") == "forbid"
    assert wire.__struct_config__.frozen
    assert model.model_config.get("frozen")


def _pydantic(value: bytes) -> SipEnvelope | None:
    try:
        env = ENVELOPE_ADAPTER.validate_json(value)
    except ValidationError:
        return None
    return env if isinstance(env, SipEnvelope) else None


def _check(value: bytes) -> bool:
    """The contract for one record; True when the fast path took it."""
    fast, slow = decode_sip(value), _pydantic(value)
    if fast is None:
        return False
    assert slow is not None, value
    assert to_model(fast) == slow
    assert (fast.ts, fast.received) == (slow.ts, slow.received)
    assert row_for(fast) == row_for(slow)
    _same_row(fast)
    return True


def _same_row(env: WireSipEnvelope) -> None:
    """The C accelerator's sip_messages row (when it builds one) is the Python function's, value and type."""
    fast, slow = _wire_sip_row(env), wire_sip_row_pure(env)
    assert fast == slow
    assert [type(v) for v in fast[1]] == [type(v) for v in slow[1]]


def _corpus_sip() -> list[bytes]:
    require(CORPUS)
    captures = sorted(p for p in CORPUS.rglob("*") if p.suffix in (".pcap", ".pcapng") and p.is_file())
    out: list[bytes] = []
    for path, fmt in resolve_formats(captures, None):
        for item in fmt.read(path, node="corpus", role="sbc"):
            if item.kind == "sip" and item.envelope is not None:
                out.append(item.envelope)
    return out


def test_every_sip_envelope_of_the_corpus_captures_reads_the_same() -> None:
    values = _corpus_sip()
    assert len(values) > 100
    taken = sum(_check(v) for v in values)
    assert taken == len(values)  # what the encoder writes is the fast path's


def test_generated_traffic_reads_the_same_and_takes_the_fast_path() -> None:
    from bench.events_path import sip_records

    values = sip_records(2000, seed=int(os.environ.get("WIRE_SEED", "11")))
    assert all(v.startswith(SIP_PREFIX) for v in values)
    assert sum(_check(v) for v in values) == len(values)


def _doc(**body: Any) -> dict[str, Any]:
    doc = sample_envelope("sip")
    doc["body"].update(
        sdp={"connection": "10.0.0.1", "media": [{"media": "audio", "port": 4000, "codecs": ["PCMA/8000"]}]},
        vq_report={"CallID": "x", "QualityEst": {"MOSCQ": 4.1}},
        headers={"route": "<sip:p1>"},
        correlation={"x-cid": "c1"},
        via_branches=["z9hG4bK1"],
    )
    doc["body"].update(body)
    return doc


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["", "5060", "udp", "sip", "true", "2024-03-01T10:00:00Z", "x" * 1100, "\ud800", "é" * 64]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
_TIMES = st.sampled_from(
    [
        "2024-03-01T10:00:00.000001Z",
        "2024-03-01T10:00:00Z",
        "2024-03-01T10:00:00.1234567Z",
        "2024-03-01t10:00:00z",
        "2024-03-01 10:00:00Z",
        "2024-03-01T10:00:00+00:00",
        "2024-03-01T12:00:00+02:00",
        "2024-03-01T10:00:00",
        "2024-02-30T10:00:00Z",
        "2024-13-01T10:00:00Z",
        "2024-03-01T24:00:00Z",
        "2024-03-01T10:00:60Z",
        "0000-03-01T10:00:00Z",
        "1709287200",
    ]
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    doc = _doc()
    if draw(st.booleans()):
        doc["body"]["vq_report"] = None  # the body column's msgspec path (floats go through orjson)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add", "time"]))
        last = path[-1]
        if action == "delete":
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "kind", "v", "Raw", str(last)]))] = draw(_JSON_VALUES)
        elif action == "time":
            doc[draw(st.sampled_from(TIMESTAMPS))] = draw(_TIMES)
        else:
            parent[last] = draw(_JSON_VALUES)
    # The standard library writes what orjson refuses (ints past 64 bits, lone surrogates escaped).
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_envelopes_are_read_the_same_or_left_to_pydantic(value: bytes) -> None:
    _check(value)
    env = None
    try:
        env = read(value)
    except ValidationError:
        assert _pydantic(value) is None
        assert decode_sip(value) is None
    if env is not None:
        assert _pydantic(value) is not None
        if isinstance(env, WireSipEnvelope):
            assert to_model(env) == _pydantic(value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cseq", "5"),  # lax: pydantic coerces a numeric string
        ("is_request", 1),
        ("status", 200.0),
        ("src", {"ip": "10.0.0.1", "port": "5060"}),
    ],
)
def test_what_pydantic_coerces_is_left_to_pydantic(field: str, value: Any) -> None:
    raw = orjson.dumps(_doc(**{field: value}))
    assert decode_sip(raw) is None
    env = read(raw)
    assert isinstance(env, SipEnvelope)


@pytest.mark.parametrize(
    "ts",
    ["2024-03-01T10:00:00.1234567Z", "2024-03-01T12:00:00+02:00", "2024-03-01T10:00:00", "2024-02-30T10:00:00Z"],
)
def test_timestamps_not_in_the_encoders_form_are_left_to_pydantic(ts: str) -> None:
    doc = _doc()
    doc["ts"] = ts
    raw = orjson.dumps(doc)
    assert decode_sip(raw) is None
    assert (_pydantic(raw) is None) == (ts == "2024-02-30T10:00:00Z")


@pytest.mark.parametrize(
    "body",
    [
        {"call_id": "x" * 1025},
        {"status": 99},
        {"transport": "quic"},
        {"via_branches": ["b"] * 33},
        {"sdp": {"media": [{"media": "audio", "port": 70000}]}},
        {"unknown": 1},
        {"src": {"ip": "10.0.0.1", "port": 5060, "extra": 1}},
    ],
)
def test_limits_refuse_as_pydantic_does(body: dict[str, Any]) -> None:
    raw = orjson.dumps(_doc(**body))
    assert decode_sip(raw) is None
    assert _pydantic(raw) is None


def test_a_wire_envelope_reads_like_the_model() -> None:
    raw = orjson.dumps(_doc())
    fast = decode_sip(raw)
    assert isinstance(fast, WireSipEnvelope)
    slow = _pydantic(raw)
    assert slow is not None
    assert fast.ts == slow.ts
    assert fast.ts.tzinfo is not None
    assert fast.body.sdp is not None
    assert fast.body.sdp.media[0].codecs == ["PCMA/8000"]
    assert fast.body.src.ip == slow.body.src.ip
    with pytest.raises(AttributeError):
        fast.body.call_id = "other"  # type: ignore[misc]


def test_to_model_gives_the_pydantic_envelope() -> None:
    raw = orjson.dumps(_doc())
    fast = decode_sip(raw)
    assert fast is not None
    assert to_model(fast) == _pydantic(raw)


# -- the C accelerator of the sip_messages row (collectors/hep/_speedups.c, sip_row) -------------------


def _wire(**body: Any) -> WireSipEnvelope:
    """A decoded envelope whose body fields are then set to ``body``'s, as they are (no validation)."""
    doc = _doc()
    doc["body"]["vq_report"] = None
    env = decode_sip(orjson.dumps(doc))
    assert env is not None
    for side in ("src", "dst"):
        if side in body:
            body[side] = WireEndpoint(**body[side])
    return msgspec.structs.replace(env, body=msgspec.structs.replace(env.body, **body))


def _native(env: WireSipEnvelope) -> tuple[Any, ...] | None:
    if _native_sip_row is None:
        unavailable("the C accelerator is not built (or CALLSCOPE_HEP_PURE is set)")
    return _native_sip_row(env)


def test_the_c_row_is_built_for_the_common_envelope() -> None:
    env = _wire()
    row = _native(env)
    assert row is not None
    assert row == wire_sip_row_pure(env)[1]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"call_id": "", "method": None, "reason": "", "status": 0, "cseq": None, "from_tag": None, "to_tag": ""},
        {"transport": None, "capture_id": None, "correlation_id": None, "user_agent": None, "raw": ""},
        {"transport": "", "is_request": False, "status": 486, "reason": "Busy Here"},
        {"src": {"ip": "", "port": 0}, "dst": {"ip": "2001:db8::1", "port": 65535}},
        {"raw": 'INVITE sip:é@x SIP/2.0\r\nX: ,"raw":"y"\r\n\r\n', "user_agent": "Ünïcode/1 ☎"},
        {"from_display": 'a "quoted" \\ name', "raw": "\u0000\u001f\u2028"},
    ],
)
def test_the_c_row_is_the_python_row_value_and_type(body: dict[str, Any]) -> None:
    env = _wire(**body)
    assert _native(env) is not None
    _same_row(env)


def test_the_c_row_leaves_vq_reports_and_other_types_to_python() -> None:
    env = _wire(vq_report={"CallID": "x", "QualityEst": {"MOSCQ": 4.1}})
    assert _native(env) is None  # the body column's floats go through orjson
    _same_row(env)
    model = to_model(_wire())
    assert _native(model) is None  # type: ignore[arg-type]  # a pydantic envelope: not the struct
    assert _native(object()) is None  # type: ignore[arg-type]


_TS_TEXTS = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ").rjust(27, "0")
)


@settings(max_examples=500, deadline=None)
@given(_TS_TEXTS, _TS_TEXTS)
def test_the_c_row_reads_timestamps_as_micros_does(ts: str, received: str) -> None:
    env = msgspec.structs.replace(_wire(), ts_text=ts, received_text=received)
    row = _native(env)
    assert row is not None
    assert (row[3], row[4]) == (micros(ts), micros(received))


@pytest.mark.parametrize(
    "ts",
    [
        "2023-02-29T10:00:00.000000Z",  # not a leap year
        "2100-02-29T10:00:00.000000Z",  # nor is 2100
        "2024-04-31T10:00:00.000000Z",
        "2024-13-01T10:00:00.000000Z",
        "2024-00-01T10:00:00.000000Z",
        "0000-01-01T10:00:00.000000Z",
        "2024-03-01T24:00:00.000000Z",
        "2024-03-01T10:60:00.000000Z",
        "2024-03-01T10:00:60.000000Z",
        "2024-03-01t10:00:00.000000Z",
        "2024-03-01T10:00:00.000000z",
        "2024-03-01T10:00:00.00000aZ",
        "2024-03-01T10:00:00.0000001Z",
        "2024-03-01T10:00:00Z",
        "２024-03-01T10:00:00.000000Z",
    ],
)
def test_the_c_row_leaves_timestamps_not_in_the_encoders_form_to_python(ts: str) -> None:
    env = msgspec.structs.replace(_wire(), ts_text=ts)
    assert _native(env) is None


def test_the_c_row_takes_leap_days_that_exist() -> None:
    for ts in ("2024-02-29T23:59:59.999999Z", "2000-02-29T00:00:00.000000Z", "1970-01-01T00:00:00.000000Z"):
        row = _native(msgspec.structs.replace(_wire(), ts_text=ts))
        assert row is not None
        assert row[3] == micros(ts)
