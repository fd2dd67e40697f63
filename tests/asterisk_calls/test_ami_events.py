"""AMI details beyond the cacofonisk recordings: Asterisk 11's dialect (panoramisk's real transcript), the SIP
Call-ID from VarSet, ChanVariable and CDR, gap markers and resync, named timeouts, bad input, Q.850 causes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collectors.ami.dialect import correlation_key
from collectors.ami.wire import Block, parse_wire
from processors.asterisk_calls.causes import Q850, cause_text, outcome, parse_cause
from processors.asterisk_calls.config import AsteriskCallsConfig
from processors.asterisk_calls.correlator import AsteriskCorrelator
from processors.call_legs.correlator import LinkRow
from schemas.envelope import AmiEnvelope, CdrEnvelope, event_id
from tests.asterisk_calls.corpus import FAMILIES, corpus_path, envelopes, recording
from tests.asterisk_calls.support import check_golden, document, feed

T0 = datetime(2024, 6, 1, 9, 0, 0, tzinfo=UTC)
NODE = "ast1"


def ami(
    i: int, event: str, fields: dict[str, str], *, node: str = NODE, key: str | None = None, at: datetime | None = None
) -> AmiEnvelope:
    ts = at or T0 + timedelta(seconds=i)
    body: dict[str, Any] = {"event": event, "fields": {"Event": event, **fields}, "dialect": "asterisk13"}
    return AmiEnvelope(
        kind="ami",
        id=event_id("ami", node, event, str(i), repr(sorted(fields.items()))),
        node=node,
        role="logic",
        ts=ts,
        received=ts,
        key=key if key is not None else (fields.get("Linkedid") or fields.get("Uniqueid") or node),
        body=body,
    )


def chan(uid: str, name: str, state: str = "6", linkedid: str = "100.1", **more: str) -> dict[str, str]:
    return {"Channel": name, "Uniqueid": uid, "Linkedid": linkedid, "ChannelState": state, **more}


# -- Asterisk 11 -----------------------------------------------------------------------------------


def test_asterisk11_originate_transcript() -> None:
    """panoramisk's originate_with_events: Dial SubEvents, Bridge Link/Unlink, Masquerade, Rename, CEL over AMI."""
    data = corpus_path("panoramisk/tests/fixtures/originate_with_events.yaml").read_bytes()
    envs = []
    for i, item in enumerate(b for b in parse_wire(data) if isinstance(b, Block) and b.kind == "event"):
        ts = datetime(2014, 10, 28, 16, 36, 40, tzinfo=UTC) + timedelta(milliseconds=20 * i)
        envs.append(
            AmiEnvelope(
                kind="ami",
                id=event_id("ami", "ast11", "originate", str(i)),
                node="ast11",
                role="logic",
                ts=ts,
                received=ts,
                key=correlation_key(item.fields, "ast11"),
                body={"event": item.name, "fields": item.fields, "dialect": "asterisk11"},
            )
        )
    core, final = feed(envs)
    assert not core.problems
    call = final.call()  # no ghost call for the channels dialed into it
    assert (call.linkedid, call.state, call.outcome, call.channels) == ("1414510600.0", "ended", "completed", 4)
    assert call.connected_at is not None
    assert call.transfers == ("masquerade",)
    assert set(call.sip_call_ids) == {
        "414b3fd56f10332d23de4bda18636dc0@192.168.0.1:5060",
        "417341300e78b1ef0389221173d5bf6f@192.168.0.1:5060",
    }
    # After the masquerade, uniqueid .0 is the SIP phone's channel (renamed) and .2 the zombie.
    assert final.legs["1414510600.0"].channel == "SIP/ddddd-00000000"
    assert final.legs["1414510601.2"].channel == "Local/259@default-00000000;1<ZOMBIE>"
    assert final.legs["1414510600.0"].sip_call_id == final.legs["1414510601.2"].sip_call_id
    callee = final.legs["1414510609.3"]
    assert (callee.dial_status, callee.dialed_by, callee.connected_to) == (
        "ANSWER",
        "1414510600.0",
        ("SIP/ddddd-00000000",),
    )
    check_golden("asterisk11_originate", document(final))


# -- the SIP Call-ID -------------------------------------------------------------------------------


def test_sip_call_id_from_varset_with_inheritance_prefix() -> None:
    core = AsteriskCorrelator()
    rows = core.feed(ami(0, "Newchannel", chan("100.1", "PJSIP/100-01", "4")))
    rows += core.feed(
        ami(1, "VarSet", chan("100.1", "PJSIP/100-01", "4", Variable="__SIPCALLID", Value="abc@10.0.0.1"))
    )
    rows += core.feed(ami(2, "VarSet", chan("100.1", "PJSIP/100-01", "4", Variable="OTHER", Value="x")))
    links = [r for r in rows if isinstance(r, LinkRow)]
    assert [(r.call_id, r.linked_call_id, r.value) for r in links] == [("abc@10.0.0.1", "", "100.1@ast1")]


def test_sip_call_id_from_chanvariable_and_configured_name() -> None:
    core = AsteriskCorrelator(AsteriskCallsConfig(sip_call_id_variables=("PJSIP_CALLID",)))
    fields = chan("100.1", "PJSIP/100-01", "4", ChanVariable="FOO=1\nPJSIP_CALLID=xyz@host")
    _, final = feed([ami(0, "Newchannel", fields)], core)
    assert final.legs["100.1"].sip_call_id == "xyz@host"


def test_sip_call_id_from_cdr_userfield_for_a_known_and_a_forgotten_channel() -> None:
    core = AsteriskCorrelator()
    feed([ami(0, "Newchannel", chan("100.1", "PJSIP/100-01", "4"))], core)

    def cdr(uid: str, userfield: str) -> CdrEnvelope:
        return CdrEnvelope(
            kind="cdr",
            id=event_id("cdr", NODE, uid),
            node=NODE,
            role="logic",
            ts=T0,
            received=T0,
            key="100.1",
            body={"uniqueid": uid, "linkedid": "100.1", "fields": {"userfield": userfield}},
        )

    rows = core.feed(cdr("100.1", "cdr-call@h"))
    assert [getattr(r, "sip_call_id", None) for r in rows if hasattr(r, "leg_id")] == ["cdr-call@h"]
    (link,) = core.feed(cdr("999.9", "gone@h"))  # a channel no longer in memory: the link row alone
    assert (getattr(link, "call_id", ""), getattr(link, "value", "")) == ("gone@h", "100.1@ast1")
    assert core.feed(cdr("999.8", "has spaces")) == []  # not a Call-ID


# -- gaps, resync, timeouts ------------------------------------------------------------------------


def live_call(core: AsteriskCorrelator) -> None:
    feed(
        [
            ami(0, "Newchannel", chan("100.1", "PJSIP/100-01", "4")),
            ami(1, "Newchannel", chan("100.2", "PJSIP/200-02", "0")),
            ami(
                2,
                "DialBegin",
                {
                    **chan("100.1", "PJSIP/100-01", "4"),
                    **{f"Dest{k}": v for k, v in chan("100.2", "PJSIP/200-02", "0").items()},
                },
            ),
            ami(3, "Newstate", chan("100.2", "PJSIP/200-02", "6")),
            ami(4, "Newstate", chan("100.1", "PJSIP/100-01", "6")),
        ],
        core,
    )


def gap(i: int, key: str = NODE, until: str = "2024-06-01T09:00:30.000000Z") -> AmiEnvelope:
    return ami(
        i, "CallscopeGap", {"reason": "timeout", "since": "2024-06-01T09:00:05.000000Z", "until": until}, key=key
    )


def test_gap_marks_live_channels_incomplete_and_resync_confirms_them() -> None:
    core = AsteriskCorrelator()
    live_call(core)
    _, after_gap = feed([gap(30)], core)
    assert {leg.incomplete for leg in after_gap.legs.values()} == {True}
    assert after_gap.call().incomplete
    resync = ami(31, "CoreShowChannel", chan("100.1", "PJSIP/100-01", CallscopeResync="1", Duration="00:00:31"))
    feed([resync], core)
    # 100.1 was confirmed; 100.2 hung up while nobody listened: closed as lost at the reconnect.
    _, expired = feed([], core)
    expired.add(core.expire(datetime(2024, 6, 1, 9, 1, 31, tzinfo=UTC)))
    lost = expired.legs["100.2"]
    assert (lost.state, lost.ended_at, lost.incomplete) == ("lost", datetime(2024, 6, 1, 9, 0, 30, tzinfo=UTC), True)
    assert "100.1" not in expired.legs  # still live and confirmed: nothing new to write
    assert core.nodes[NODE].legs["100.1"].state() == "answered"


def test_gap_marker_read_after_the_calls_end_still_flags_it() -> None:
    """The marker travels on the node's partition: it may be read after the call's own later events."""
    core = AsteriskCorrelator()
    live_call(core)
    hangups = [
        ami(40 + i, "Hangup", chan(uid, name, "6", Cause="16"))
        for i, (uid, name) in enumerate([("100.2", "PJSIP/200-02"), ("100.1", "PJSIP/100-01")])
    ]
    _, final = feed([*hangups, gap(50)], core)
    assert {leg.incomplete for leg in final.legs.values()} == {True}
    assert final.call().incomplete
    assert core.expire(datetime(2024, 6, 1, 10, 0, 0, tzinfo=UTC)) == []  # ended channels are not 'lost'
    later = ami(60, "Newchannel", chan("500.1", "PJSIP/500-05", "4", linkedid="500.1"))
    _, after = feed([later, gap(61)], core)  # a channel born after the gap: not flagged
    assert not after.legs["500.1"].incomplete


def test_gap_for_one_linkedid_leaves_other_calls_alone() -> None:
    core = AsteriskCorrelator()
    live_call(core)
    feed([ami(10, "Newchannel", chan("200.1", "PJSIP/300-03", "4", linkedid="200.1"))], core)
    _, final = feed([gap(30, key="200.1")], core)
    assert set(final.legs) == {"200.1"}
    assert final.legs["200.1"].incomplete


def test_resync_recreates_an_unknown_channel_with_its_age() -> None:
    core = AsteriskCorrelator()
    fields = chan("300.1", "SIP/x-01", CallscopeResync="1", Duration="00:01:40", BridgeId="")
    resync = ami(100, "CoreShowChannel", fields)
    _, final = feed([resync], core)
    leg = final.legs["300.1"]
    assert (leg.started_at, leg.state, leg.incomplete) == (T0, "answered", True)


@pytest.mark.parametrize(
    ("answered", "limit"),
    [(False, AsteriskCallsConfig().unanswered_timeout_secs), (True, AsteriskCallsConfig().answered_max_secs)],
)
def test_named_timeouts_close_channels_that_never_hang_up(answered: bool, limit: float) -> None:
    core = AsteriskCorrelator()
    feed([ami(0, "Newchannel", chan("100.1", "PJSIP/100-01", "6" if answered else "4"))], core)
    assert core.expire(T0 + timedelta(seconds=limit - 1)) == []
    _, final = feed([], core)
    final.add(core.expire(T0 + timedelta(seconds=limit)))
    leg = final.legs["100.1"]
    assert (leg.state, leg.ended_at) == ("timeout", T0 + timedelta(seconds=limit))
    assert final.call().state == "ended"


def test_bad_input_is_counted_not_fatal() -> None:
    core = AsteriskCorrelator()
    assert core.feed(ami(0, "Hangup", {"Channel": "SIP/x", "Cause": "16"})) == []
    assert (
        core.feed(ami(1, "DialBegin", {"Channel": "SIP/x", "Uniqueid": "1.1", "Linkedid": "1.1"})) == []
    )  # no destination
    assert core.feed(ami(2, "Masquerade", {"Clone": "SIP/none", "Original": "SIP/nobody"})) == []
    assert core.feed(ami(3, "Newexten", {"Channel": "SIP/x", "Uniqueid": "1.1"})) == []  # not read here
    assert core.take_problems() == {"ami_no_uniqueid": 2, "masquerade_unknown_channel": 1}


def test_recording_fed_through_a_gap_keeps_going() -> None:
    """Half a recording, a gap, the rest: the call still ends, flagged incomplete."""
    envs = envelopes(recording(FAMILIES["simple_answered"]), tag="gap")
    half = len(envs) // 2
    when = envs[half].ts.isoformat()
    marker = ami(0, "CallscopeGap", {"reason": "eof", "since": when, "until": when}, key=NODE, at=envs[half].ts)
    _core, final = feed([*envs[:half], marker, *envs[half:]])
    call = final.call()
    assert (call.state, call.outcome, call.incomplete) == ("ended", "completed", True)
    assert all(leg.state == "hungup" for leg in final.legs.values())


# -- causes ----------------------------------------------------------------------------------------


def test_q850_texts_and_outcomes() -> None:
    assert Q850[16] == "Normal call clearing"
    assert Q850[17] == "User busy"
    assert Q850[127] == "Interworking, unspecified"
    assert cause_text(16, "Normal Clearing") == "Normal Clearing"  # the event's own text wins
    assert cause_text(200) == "Cause 200"
    assert cause_text(None) == ""
    assert [parse_cause(v) for v in ("16", " 17 ", "", "x", "300", True, 21)] == [16, 17, None, None, None, None, 21]
    assert outcome(16, answered=True) == "completed"
    assert outcome(16, answered=False) == "no-answer"
    assert outcome(16, answered=False, dial_status="BUSY") == "busy"
    assert outcome(0, answered=False) == "cancelled"
    assert outcome(0, answered=True) == "completed"
    assert outcome(17, answered=True) == "busy"
    assert outcome(19, answered=False) == "no-answer"
    assert outcome(21, answered=False) == "rejected"
    assert outcome(26, answered=False) == "answered-elsewhere"
    assert outcome(34, answered=False) == "failed"
    assert outcome(None, answered=False, dial_status="CANCEL") == "cancelled"
