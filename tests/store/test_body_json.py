"""schemas.tables.row_for writes the body column with orjson: the same text as pydantic's dump, always.

The reference is what the column was before the fast path: ``body.model_dump_json()``
(``exclude={"raw"}`` for SIP) and :func:`schemas.tables.micros` for the timestamps.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, computed_field, field_serializer, model_serializer

from callscope.bus.envelopes import validate_json
from schemas import bodies
from schemas.envelope import KINDS, validate
from schemas.tables import TABLES, body_json, micros, plain_json_models, row_for
from tests.samples import sample_envelope


def _reference_body(kind: str, body: BaseModel) -> str:
    return body.model_dump_json(exclude={"raw"}) if kind == "sip" else body.model_dump_json()


def _reference_row(env: Any) -> tuple[Any, ...]:
    return (
        env.id,
        env.node,
        env.role,
        micros(env.ts),
        micros(env.received),
        env.key,
        _reference_body(env.kind, env.body),
    )


def test_every_body_model_takes_the_fast_path() -> None:
    # A body model that gains an alias, a serializer or a computed field falls back to pydantic
    # (same text, old cost); this test says so, so it is a decision and not an accident.
    with_endpoints: tuple[type[BaseModel], ...] = (bodies.SipBody, bodies.RtcpBody, bodies.LogBody)
    for cls in with_endpoints:
        models = plain_json_models(cls)
        assert models is not None, cls
        assert bodies.Endpoint in models
    sip = frozenset([bodies.SipBody, bodies.Endpoint, bodies.SdpSummary, bodies.SdpMedia])
    assert plain_json_models(bodies.SipBody) == sip
    flat: tuple[type[BaseModel], ...] = (
        bodies.AmiBody,
        bodies.CdrBody,
        bodies.CelBody,
        bodies.QueueLogBody,
        bodies.OptionsBody,
    )
    for cls in flat:
        assert plain_json_models(cls) == frozenset([cls])


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int = 1


class _Aliased(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int = Field(default=1, serialization_alias="y")


class _Excluded(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int = Field(default=1, exclude=True)


class _FieldSerializer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int = 1

    @field_serializer("x")
    def _x(self, value: int) -> str:
        return str(value)


class _ModelSerializer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int = 1

    @model_serializer
    def _all(self) -> dict[str, Any]:
        return {"x": self.x}


class _Computed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int = 1

    @computed_field  # type: ignore[prop-decorator]
    @property
    def double(self) -> int:
        return 2 * self.x


class _ExtraAllowed(BaseModel):
    model_config = ConfigDict(extra="allow")
    x: int = 1


class _InfNan(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")
    x: float = 1.0


class _AsAny(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inner: SerializeAsAny[_Inner] = Field(default_factory=_Inner)


class _HoldsAliased(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inner: _Aliased = Field(default_factory=_Aliased)


class _Plain(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inner: _Inner = Field(default_factory=_Inner)
    items: list[_Inner] = Field(default_factory=list)


@pytest.mark.parametrize(
    "cls",
    [_Aliased, _Excluded, _FieldSerializer, _ModelSerializer, _Computed, _ExtraAllowed, _InfNan, _AsAny, _HoldsAliased],
)
def test_models_that_write_themselves_differently_are_not_plain(cls: type[BaseModel]) -> None:
    assert plain_json_models(cls) is None


def test_a_plain_model_lists_its_nested_models() -> None:
    expected = frozenset([_Plain, _Inner])
    assert plain_json_models(_Plain) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_row_for_is_the_reference_row_for_every_kind(kind: str) -> None:
    env = validate(sample_envelope(kind))
    table, row = row_for(env)
    assert table == TABLES[kind]
    assert row[:7] == _reference_row(env)
    assert isinstance(row[6], str)


def test_fields_in_another_order_and_left_to_defaults_give_the_reference_rows() -> None:
    doc = sample_envelope("sip")
    body = doc["body"]
    for name in ("headers", "correlation", "via_branches", "sdp", "vq_report", "transport"):
        body.pop(name, None)
    doc["body"] = dict(reversed(body.items()))
    doc["body"]["src"] = dict(reversed(doc["body"]["src"].items()))
    env = validate_json(orjson.dumps(dict(reversed(doc.items()))))
    assert list(orjson.loads(row_for(env)[1][6]))[:3] == ["src", "dst", "transport"]
    assert row_for(env)[1][:7] == _reference_row(env)


@pytest.mark.parametrize(
    "ts",
    [datetime(2024, 3, 1, 10, 0, 0, 1), 1_709_287_200_000_001, "2024-03-01T10:00:00.000001Z"],
    ids=repr,
)
def test_timestamps_of_envelopes_built_without_validation_read_as_micros_reads_them(ts: Any) -> None:
    env = validate(sample_envelope("log"))
    built = type(env).model_construct(**{**dict(env), "ts": ts})
    assert row_for(built)[1][3] == micros(ts) == 1_709_287_200_000_001


def test_generated_sip_traffic_gives_the_reference_rows() -> None:
    from bench.events_path import sip_records

    for value in sip_records(600, seed=3):
        env = validate_json(value)
        assert row_for(env)[1][:7] == _reference_row(env)


# -- arbitrary values -------------------------------------------------------------------------------

# Characters whose escaping differs between JSON writers, if anything does.
_TRICKY = (
    "\x00\x01\x08\t\n\x0b\x0c\r\x1b\x1f \"'/\\\x7f\x80\x9f\xa0\xad\u00e9\u2028\u2029\ufeff\uffff\U0001f600\U0010ffff"
)
texts = st.text(alphabet=st.one_of(st.sampled_from(_TRICKY), st.characters(exclude_categories=["Cs"])), max_size=24)
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e16, 1e17, 1e21, 1e22, 1e-7, 5e-324, 1.7976931348623157e308, 0.1, 100.0]),
)
ints = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1]))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), ints, floats, texts),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)),
    max_leaves=12,
)


def _sip_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = sample_envelope("sip")["body"]
    body.update(changes)
    return body


@settings(max_examples=300, deadline=None)
@given(
    call_id=texts,
    reason=st.one_of(st.none(), texts),
    headers=st.dictionaries(texts, texts, max_size=4),
    vq_report=st.one_of(st.none(), st.dictionaries(texts, json_values, max_size=5)),
    capture_id=st.one_of(st.none(), st.integers(0, 2**70)),
    with_sdp=st.booleans(),
)
def test_sip_bodies_with_arbitrary_values_write_the_reference_text(
    call_id: str,
    reason: str | None,
    headers: dict[str, str],
    vq_report: dict[str, Any] | None,
    capture_id: int | None,
    with_sdp: bool,
) -> None:
    body = bodies.SipBody.model_validate(
        _sip_body(
            call_id=call_id,
            reason=reason,
            headers=headers,
            vq_report=vq_report,
            capture_id=capture_id,
            sdp={"media": [{"media": "audio", "port": 4000, "codecs": ["PCMA/8000"]}]} if with_sdp else None,
        )
    )
    assert body_json("sip", body) == _reference_body("sip", body)


@settings(max_examples=200, deadline=None)
@given(report=st.dictionaries(texts, json_values, max_size=6), extra=st.one_of(st.none(), texts, st.just({"a": 1.5})))
def test_other_kinds_with_arbitrary_values_write_the_reference_text(report: dict[str, Any], extra: Any) -> None:
    rtcp = bodies.RtcpBody(
        src=bodies.Endpoint(ip="10.0.0.1", port=1), dst=bodies.Endpoint(ip="::1", port=2), report=report
    )
    assert body_json("rtcp", rtcp) == _reference_body("rtcp", rtcp)
    cel = bodies.CelBody.model_validate({**sample_envelope("cel")["body"], "extra": extra})
    assert body_json("cel", cel) == _reference_body("cel", cel)


@settings(max_examples=200, deadline=None)
@given(report=st.dictionaries(texts, json_values, max_size=6), call_id=texts)
def test_bodies_read_from_json_write_the_reference_text(report: dict[str, Any], call_id: str) -> None:
    # As the bus delivers them: validated from JSON bytes, here written by the json module, which
    # also writes what orjson would not (ints past 64 bits; NaN and Infinity, which pydantic reads).
    doc = sample_envelope("sip")
    doc["body"].update(call_id=call_id, vq_report=report)
    env = validate_json(json.dumps(doc).encode())
    assert row_for(env)[1][:7] == _reference_row(env)


class _Colour(enum.Enum):
    RED = "red"


class _Text(str):
    pass


class _Number(int):
    pass


@dataclasses.dataclass
class _Point:
    x: int


class _Other(BaseModel):
    a: int = 1


@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 3, 1, 10, 0, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 0),
        Decimal("1.10"),
        b"bytes",
        {1, 2},
        (1, "two", None),
        uuid.UUID(int=5),
        _Colour.RED,
        _Text("sub"),
        _Number(7),
        _Point(1),
        _Other(),
        bodies.Endpoint(ip="10.0.0.1", port=5060),
        {"nested": [datetime(2024, 1, 1, tzinfo=UTC), math.inf]},
        {2: "int key"},
        2**80,
    ],
    ids=repr,
)
def test_python_values_orjson_would_write_differently_fall_back(value: Any) -> None:
    # Bodies built in Python (not from the bus) may hold anything in their Any fields.
    body = bodies.SipBody.model_validate(_sip_body(vq_report={"value": value}))
    assert body_json("sip", body) == _reference_body("sip", body)
    rtcp = bodies.RtcpBody.model_validate({**sample_envelope("rtcp")["body"], "report": {"v": value}})
    assert body_json("rtcp", rtcp) == _reference_body("rtcp", rtcp)


def test_copies_and_constructed_bodies_write_the_reference_text() -> None:
    body = bodies.SipBody.model_validate(_sip_body())
    updated = body.model_copy(update={"call_id": "other@host", "raw": "changed"})
    assert body_json("sip", updated) == _reference_body("sip", updated)
    constructed = bodies.SipBody.model_construct(**dict(body))
    assert body_json("sip", constructed) == _reference_body("sip", constructed)


def test_a_subclass_of_a_body_model_takes_pydantic_s_path() -> None:
    class Extended(bodies.AmiBody):
        more: str = "x"

    body = Extended(event="Newchannel")
    assert body_json("ami", body) == body.model_dump_json()
    assert '"more":"x"' in body_json("ami", body)
