"""CEL alone builds legs and calls: the Asterisk test suite's CELMaster CSVs, and Asterisk 12+ JSON extras."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collectors.cel.parse import CelParser
from processors.asterisk_calls.correlator import AsteriskCorrelator
from schemas.envelope import CelEnvelope, event_id
from tests.asterisk_calls.corpus import corpus_path
from tests.asterisk_calls.support import check_golden, document, feed

SELF_TEST = "asterisk-testsuite/lib/python/asterisk/self_test"
T0 = datetime(2024, 6, 1, 9, 0, 0, tzinfo=UTC)


def cel_file(name: str) -> list[CelEnvelope]:
    """The envelopes the CEL collector's parser makes of a cel_custom CSV (read in place)."""
    parser = CelParser(timezone="UTC")
    out = []
    for i, line in enumerate(corpus_path(f"{SELF_TEST}/{name}").read_text().splitlines()):
        parsed = parser.parse(line)
        assert parsed is not None
        key, ts_us, body = parsed
        assert ts_us is not None
        ts = datetime.fromtimestamp(ts_us / 1e6, UTC)
        out.append(
            CelEnvelope(
                kind="cel",
                id=event_id("cel", "ast1", name, str(i)),
                node="ast1",
                role="logic",
                ts=ts,
                received=ts,
                key=key,
                body=body,
            )
        )
    return out


def test_celmaster1_one_answered_bridged_call() -> None:
    core, final = feed(cel_file("CELMaster1.csv"))
    assert not core.problems
    call = final.call()
    assert (call.linkedid, call.state, call.outcome, call.channels) == ("1335310195.0", "ended", "completed", 3)
    assert call.caller_channel == "TinCan/string"
    assert call.answered_at is not None
    assert sorted(final.legs) == ["1335310195.0", "1335310195.1", "1335310195.2"]
    caller = final.legs["1335310195.0"]
    assert caller.bridged_with == ("Local/x@default-1545;1",)
    assert caller.bridged_secs == pytest.approx(17.19, abs=0.01)  # BRIDGE_START .531291 -> BRIDGE_END 212.721349
    assert (caller.hangup_cause, caller.hangup_cause_text, caller.outcome) == (16, "Normal call clearing", "completed")
    assert all(leg.sources == ("cel",) and leg.state == "hungup" for leg in final.legs.values())
    assert not any(leg.incomplete for leg in final.legs.values())
    check_golden("celmaster1", document(final))


def test_celmaster2_missing_chan_end_is_tolerated() -> None:
    core, final = feed(cel_file("CELMaster2.csv"))
    assert not core.problems
    call = final.call()
    assert (call.linkedid, call.state, call.outcome) == ("1335310697.0", "ended", "completed")
    assert all(leg.state == "hungup" for leg in final.legs.values())  # HANGUP closes; CHAN_END is not needed


def test_linkedid_end_closes_a_call_whose_hangups_were_missed() -> None:
    envs = cel_file("CELMaster1.csv")
    kept = [e for e in envs if e.body.eventtype not in ("HANGUP", "CHAN_END")]
    _, final = feed(kept)
    call = final.call()
    assert call.state == "ended"
    assert call.ended_at == kept[-1].ts


def cel(i: int, eventtype: str, uid: str, channel: str, extra: Any = None, **cols: str) -> CelEnvelope:
    fields = {"eventtype": eventtype, "uniqueid": uid, "linkedid": "L1", "channame": channel, **cols}
    ts = T0 + timedelta(seconds=i)
    return CelEnvelope(
        kind="cel",
        id=event_id("cel", "ast13", str(i)),
        node="ast13",
        role="logic",
        ts=ts,
        received=ts,
        key="L1",
        body={
            "eventtype": eventtype,
            "uniqueid": uid,
            "linkedid": "L1",
            "channame": channel,
            "extra": extra,
            "fields": fields,
        },
    )


def test_asterisk12_json_extras_transfers_pickup_and_sip_call_id() -> None:
    a, b, c = "PJSIP/100-01", "PJSIP/200-02", "PJSIP/300-03"
    envs = [
        cel(0, "CHAN_START", "L1", a, cid_num="100", exten="200", userfield="call-a@10.0.0.1"),
        cel(1, "CHAN_START", "L1.1", b),
        cel(2, "ANSWER", "L1.1", b),
        cel(3, "ANSWER", "L1", a),
        cel(4, "BRIDGE_ENTER", "L1", a, {"bridge_id": "br1", "bridge_technology": "simple_bridge"}),
        cel(5, "BRIDGE_ENTER", "L1.1", b, {"bridge_id": "br1", "bridge_technology": "simple_bridge"}),
        cel(
            6,
            "BLINDTRANSFER",
            "L1.1",
            b,
            {
                "extension": "300",
                "context": "default",
                "bridge_id": "br1",
                "transferee_channel_name": a,
                "transferee_channel_uniqueid": "L1",
            },
        ),
        cel(7, "BRIDGE_EXIT", "L1.1", b, {"bridge_id": "br1"}),
        cel(8, "HANGUP", "L1.1", b, {"hangupcause": 16, "hangupsource": b, "dialstatus": ""}),
        cel(9, "CHAN_START", "L1.2", c),
        cel(10, "PICKUP", "L1.2", c, {"pickup_channel": "PJSIP/400-04"}),
        cel(11, "ANSWER", "L1.2", c),
        cel(12, "BRIDGE_ENTER", "L1.2", c, {"bridge_id": "br1"}),
        cel(13, "HANGUP", "L1", a, {"hangupcause": 17, "hangupsource": "", "dialstatus": ""}),
        cel(14, "HANGUP", "L1.2", c, {"hangupcause": 16}),
        cel(15, "LINKEDID_END", "L1", a),
    ]
    core, final = feed(envs)
    assert not core.problems
    kinds = {t.kind: t for t in final.transfers.values()}
    blind = kinds["blind"]
    assert (blind.transferer_channel, blind.transferee_channel, blind.target_exten) == (b, a, "300")
    assert kinds["pickup"].transferer_channel == "PJSIP/400-04"
    assert final.legs["L1"].hangup_cause == 17
    assert final.legs["L1"].sip_call_id == "call-a@10.0.0.1"
    assert final.legs["L1"].connected_to == (b, c)
    call = final.call()
    assert (call.state, call.outcome, call.transfers) == ("ended", "busy", ("blind", "pickup"))
    assert [(r.call_id, r.via, r.value) for r in final.links.values()] == [("call-a@10.0.0.1", "asterisk", "L1@ast13")]


def test_cel_without_uniqueid_is_counted() -> None:
    core = AsteriskCorrelator()
    assert core.feed(cel(0, "CHAN_START", "", "PJSIP/1-01")) == []
    assert core.take_problems() == {"cel_no_uniqueid": 1}
