"""AMI event -> envelope: keys, dialects, time, markers; on the corpus and on generated input."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.ami.dialect import DialectTracker, classify, correlation_key, dialect_of_version, linkedid, uniqueid
from collectors.ami.events import (
    GAP_EVENT,
    envelope_from_fields,
    gap_envelopes,
    mark_resync,
    timestamp_us,
)
from collectors.ami.wire import Block, parse_wire
from schemas.envelope import AmiEnvelope, validate
from schemas.errors import DecodeError
from tests.ami.corpus import CACOFONISK, PANORAMISK, recording_names
from tests.ami.server import load_recording
from tests.corpus import corpus_file

RECEIVED = 1_700_000_000_123_456


def _env(fields: dict[str, str], dialect: str = "unknown", **kw: object) -> AmiEnvelope:
    key, raw = envelope_from_fields(
        fields,
        node="ast-1",
        role="logic",
        dialect=dialect,  # type: ignore[arg-type]
        received_us=RECEIVED,
        id_parts=("s", "1"),
        **kw,  # type: ignore[arg-type]
    )
    env = validate(orjson.loads(raw))
    assert isinstance(env, AmiEnvelope)
    assert env.key == key
    return env


@pytest.mark.parametrize("name", recording_names())
def test_every_cacofonisk_event_is_an_asterisk13_envelope_keyed_by_its_call(name: str) -> None:
    path = corpus_file(f"{CACOFONISK}/{name}")
    events = load_recording(path)
    assert len(events) == path.read_bytes().count(b'"Event": "')  # a careful count of the list
    tracker = DialectTracker("5.0.1")
    envs = [_env(e, tracker.label(e["Event"], e)) for e in events]
    assert {e.body.dialect for e in envs} == {"asterisk13"}
    for event, env in zip(events, envs, strict=True):
        assert env.body.fields == event  # every key as received
        if "Linkedid" in event:
            assert env.key == event["Linkedid"]
        elif event["Event"] in ("BridgeCreate", "BridgeDestroy", "FullyBooted"):
            assert env.key == "ast-1"  # no channel: the node's partition
        else:  # DialBegin of an originate, transfers, LocalBridge: one of its channel blocks' Linkedid
            assert env.key in {v for k, v in event.items() if k.endswith("Linkedid")}, event["Event"]
    channels = {e["Uniqueid"] for e in events if e["Event"] == "Newchannel"}
    assert channels <= {e.key for e in envs} | {e["Uniqueid"] for e in events if "Linkedid" in e}


def test_transfers_and_originates_key_by_their_channel_blocks() -> None:
    events = load_recording(corpus_file(f"{CACOFONISK}/xfer_attended/xfer_abacbc.json"))
    attended = next(e for e in events if e["Event"] == "AttendedTransfer")
    assert "Linkedid" not in attended
    assert correlation_key(attended, "n") == attended["OrigTransfererLinkedid"]
    blind = next(
        e
        for e in load_recording(corpus_file(f"{CACOFONISK}/xfer_blind/xfer_blind_abacbc.json"))
        if e["Event"] == "BlindTransfer"
    )
    assert correlation_key(blind, "n") == blind["TransfererLinkedid"]
    bridge = {"Event": "BridgeCreate", "BridgeUniqueid": "b-1", "BridgeType": "basic"}
    assert correlation_key(bridge, "n") == "n"  # a bridge id is not a channel id


def test_asterisk11_transcript_is_keyed_by_uniqueid() -> None:
    items = parse_wire(corpus_file(f"{PANORAMISK}/originate_with_events.yaml").read_bytes())
    events = [i for i in items if isinstance(i, Block) and i.kind == "event"]
    tracker = DialectTracker()
    labels = Counter(tracker.label(b.name, b.fields) for b in events)
    assert labels == {"asterisk11": len(events)}  # the first event already says so (Uniqueid, no Linkedid)
    dial = next(b.fields for b in events if b.name == "Dial" and b.fields.get("SubEvent") == "Begin")
    assert "Linkedid" not in dial
    assert correlation_key(dial, "n") == dial["UniqueID"]
    bridge = next(b.fields for b in events if b.name == "Bridge")
    assert bridge["Bridgestate"] in ("Link", "Unlink")
    assert correlation_key(bridge, "n") == bridge["Uniqueid1"]
    masq = next(b.fields for b in events if b.name == "Masquerade")
    assert correlation_key(masq, "n") == "n"  # Clone/Original names, no ids
    rename = next(b.fields for b in events if b.name == "Rename")
    assert correlation_key(rename, "n") == rename["Uniqueid"]
    cel = next(b.fields for b in events if b.name == "CEL")
    assert linkedid(cel) == cel["LinkedID"]  # CEL over AMI spells it LinkedID
    assert uniqueid(cel) == cel["UniqueID"]


@pytest.mark.parametrize(
    ("event", "fields", "dialect"),
    [
        ("DialBegin", {}, "asterisk13"),
        ("Newchannel", {"Uniqueid": "1.1", "Linkedid": "1.1"}, "asterisk13"),
        ("Newchannel", {"Uniqueid": "1.1"}, "asterisk11"),
        ("Dial", {"SubEvent": "Begin"}, "asterisk11"),
        ("Bridge", {"Bridgestate": "Link", "Uniqueid1": "1.1"}, "asterisk11"),
        ("Masquerade", {}, "asterisk11"),
        ("PeerStatus", {"Peer": "SIP/x"}, "unknown"),
        ("CEL", {"UniqueID": "1.1", "LinkedID": "1.1"}, "unknown"),
    ],
)
def test_classify(event: str, fields: dict[str, str], dialect: str) -> None:
    assert classify(event, fields) == dialect


def test_banner_version_decides_the_dialect() -> None:
    assert dialect_of_version("1.3") == "asterisk11"
    assert dialect_of_version("2.8.0") == "asterisk13"
    assert dialect_of_version("7.0.3") == "asterisk13"
    assert dialect_of_version("x") == "unknown"
    tracker = DialectTracker("1.3")
    assert tracker.label("DialBegin", {}) == "asterisk11"  # the banner wins over one odd event
    loose = DialectTracker()
    assert loose.label("PeerStatus", {}) == "unknown"
    assert loose.label("BridgeEnter", {}) == "asterisk13"
    assert loose.label("PeerStatus", {}) == "asterisk13"  # sticky


def test_timestamp_and_receive_time() -> None:
    env = _env({"Event": "Hangup", "Uniqueid": "1.1", "Timestamp": "1409169929.412068"})
    assert env.ts.timestamp() == pytest.approx(1409169929.412068)
    assert int(env.received.timestamp() * 1_000_000) == RECEIVED
    for bad in ("", "soon", "1.2.3", "99", "99999999999999.5"):
        assert timestamp_us({"Timestamp": bad}) is None
        assert int(_env({"Event": "X", "Timestamp": bad}).ts.timestamp() * 1_000_000) == RECEIVED
    assert timestamp_us({"timestamp": "1409169929.4"}) == 1409169929_400000


def test_ids_are_stable_and_distinct() -> None:
    fields = {"Event": "VarSet", "Uniqueid": "1.1", "Variable": "A", "Value": "1"}
    one = envelope_from_fields(fields, node="n", role="logic", dialect="unknown", received_us=1, id_parts=("s", "1"))
    again = envelope_from_fields(fields, node="n", role="logic", dialect="unknown", received_us=1, id_parts=("s", "1"))
    other = envelope_from_fields(fields, node="n", role="logic", dialect="unknown", received_us=1, id_parts=("s", "2"))
    assert one == again
    assert orjson.loads(one[1])["id"] != orjson.loads(other[1])["id"]


def test_bad_events_raise_decode_errors() -> None:
    with pytest.raises(DecodeError) as err:
        _env({"Response": "Success"})
    assert err.value.reason == "no_event"
    with pytest.raises(DecodeError) as err:
        _env({"Event": "x" * 200})
    assert err.value.reason == "event_name"
    env = _env({"Event": "Odd", "Uniqueid": "u" * 5000})
    assert len(env.key) == 1024


def test_gap_markers_one_per_node_and_per_live_call() -> None:
    channels = [
        {"Event": "CoreShowChannel", "Uniqueid": "a.1", "Linkedid": "a.1"},
        {"Event": "CoreShowChannel", "Uniqueid": "a.2", "Linkedid": "a.1"},  # same call
        {"Event": "CoreShowChannel", "UniqueID": "b.1"},  # Asterisk 11
    ]
    out = gap_envelopes(
        node="ast-1",
        role="logic",
        dialect="asterisk13",
        reason="ping_timeout",
        since_us=1_700_000_000_000_000,
        until_us=1_700_000_005_500_000,
        session="42",
        channels=channels,
    )
    envs = [validate(orjson.loads(raw)) for _, raw in out]
    assert [e.key for e in envs] == ["ast-1", "a.1", "b.1"]
    for env in envs:
        assert isinstance(env, AmiEnvelope)
        assert env.body.event == GAP_EVENT
        assert env.body.fields["reason"] == "ping_timeout"
        assert env.body.fields["since"] == "2023-11-14T22:13:20.000000Z"
        assert env.body.fields["until"] == "2023-11-14T22:13:25.500000Z"
    assert envs[1].body.fields["Linkedid"] == "a.1"  # type: ignore[union-attr]
    assert envs[2].body.fields["Uniqueid"] == "b.1"  # type: ignore[union-attr]
    assert len({e.id for e in envs}) == 3
    assert mark_resync({"Event": "QueueParams"}) == {"Event": "QueueParams", "CallscopeResync": "1"}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=20), st.text(max_size=50), max_size=12))
def test_any_fields_give_a_valid_envelope_or_a_decode_error(fields: dict[str, str]) -> None:
    try:
        key, raw = envelope_from_fields(
            fields, node="ast-1", role="logic", dialect="unknown", received_us=RECEIVED, id_parts=("f",)
        )
    except DecodeError:
        return
    env = validate(orjson.loads(raw))
    assert env.key == key
