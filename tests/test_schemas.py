"""Envelope contract: validation, stable ids, encoding, exported JSON Schema is current."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from schemas import export
from schemas.envelope import ENVELOPE_MODELS, KINDS, decode, encode, event_id, validate
from schemas.errors import EnvelopeError
from schemas.topics import ALL_TOPICS, DEADLETTER, deadletter_record, partition_for, topic_for
from tests.samples import sample_envelope


def test_every_kind_has_a_model_and_a_topic() -> None:
    assert set(ENVELOPE_MODELS) == set(KINDS)
    assert [topic_for(k) for k in KINDS] == [f"callscope.{k}" for k in KINDS]
    assert DEADLETTER == "callscope.deadletter"
    assert ALL_TOPICS[-1] == DEADLETTER
    with pytest.raises(ValueError, match="unknown kind"):
        topic_for("fax")


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_every_kind(kind: str) -> None:
    env = validate(sample_envelope(kind))
    again = decode(encode(env))
    assert again == env
    assert again.kind == kind
    assert again.ts.tzinfo is not None


def test_timestamps_keep_microseconds_and_become_utc() -> None:
    doc = sample_envelope("log")
    doc["ts"] = "2024-03-01T12:00:00.123456+02:00"
    env = validate(doc)
    assert env.ts == datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert orjson.loads(encode(env))["ts"] == "2024-03-01T10:00:00.123456Z"


def test_event_id_is_stable_and_input_sensitive() -> None:
    a = event_id("sip", "sbc1", b"INVITE sip:1@x SIP/2.0", "1700000000.000001")
    assert a == event_id("sip", "sbc1", b"INVITE sip:1@x SIP/2.0", "1700000000.000001")
    assert len(a) == 32
    assert a != event_id("sip", "sbc2", b"INVITE sip:1@x SIP/2.0", "1700000000.000001")
    assert a != event_id("sip", "sbc1", b"INVITE sip:1@x SIP/2.0", "1700000000.000002")
    # parts are delimited: moving a byte between parts changes the id
    assert event_id("cdr", "n", "ab", "c") != event_id("cdr", "n", "a", "bc")


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.pop("key"), "key"),
        (lambda d: d.update(kind="fax"), "kind"),
        (lambda d: d.update(role="pbx"), "role"),
        (lambda d: d["body"].pop("call_id"), "body.call_id"),
        (lambda d: d["body"].update(status=42), "body.status"),
        (lambda d: d.update(surprise=1), "surprise"),
        (lambda d: d.update(v=99), "v"),
    ],
)
def test_invalid_envelopes_name_the_field(mutate: object, needle: str) -> None:
    doc = sample_envelope("sip")
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(EnvelopeError) as info:
        validate(doc)
    assert needle in str(info.value)


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1,2]", b"{", b'"text"'])
def test_undecodable_input_is_an_envelope_error(raw: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode(raw)


def test_partition_for_is_stable_and_in_range() -> None:
    keys = [f"call-{i}@host".encode() for i in range(1000)]
    parts = [partition_for(k, 12) for k in keys]
    assert parts == [partition_for(k, 12) for k in keys]
    assert set(parts) == set(range(12))
    assert partition_for(None, 12) == 0


def test_deadletter_record_carries_reason_and_raw_bytes() -> None:
    doc = orjson.loads(deadletter_record(component="hep", reason="short", detail="2 bytes", raw=b"\x00\x01", node="n1"))
    assert doc["reason"] == "short"
    assert doc["component"] == "hep"
    assert doc["raw_b64"] == "AAE="


def test_exported_json_schema_is_current() -> None:
    stale = export.stale_files()
    assert stale == [], f"run `callscope schemas export`; stale: {stale}"


def test_exported_schema_describes_every_kind() -> None:
    doc = orjson.loads((export.JSON_DIR / "envelope.schema.json").read_bytes())
    assert set(doc["discriminator"]["mapping"]) == set(KINDS)
