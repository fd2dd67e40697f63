"""The queue session state machine: one generated scenario per outcome, corpus samples, order and duplicates."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import pytest

from processors.queue_sessions.config import QueueSessionsConfig
from processors.queue_sessions.correlator import QueueCorrelator
from processors.queue_sessions.session import SessionRow
from tests.corpus import corpus_file
from tests.queue_sessions.gen import (
    AGENT,
    CALLID,
    QUEUE,
    ami,
    ami11_answered,
    ami_answered,
    answered,
    at,
    cacofonisk_events,
    entered,
    ql,
    unanswered,
    wazo_rows,
)

SID = f"ast1/{QUEUE}/{CALLID}"


def feed_all(c: QueueCorrelator, envs: list[Any]) -> list[SessionRow]:
    return [r for e in envs for r in c.feed(e) if isinstance(r, SessionRow)]


def settle(c: QueueCorrelator, secs: float) -> list[SessionRow]:
    return [r for r in c.expire(at(secs)) if isinstance(r, SessionRow)]


def finals(envs: list[Any], secs: float = 1000, config: QueueSessionsConfig | None = None) -> dict[str, SessionRow]:
    c = QueueCorrelator(config)
    feed_all(c, envs)
    return {r.session_id: r for r in settle(c, secs) if r.final}


def only(rows: dict[str, SessionRow]) -> SessionRow:
    assert len(rows) == 1, list(rows)
    return next(iter(rows.values()))


def answered_golden(**changes: Any) -> dict[str, Any]:
    golden: dict[str, Any] = {
        "session_id": SID,
        "node": "ast1",
        "queue": QUEUE,
        "callid": CALLID,
        "linkedid": "",
        "caller": "0612345678",
        "entered_at": at(0),
        "answered_at": at(12),
        "ended_at": at(72),
        "wait_secs": 12.0,
        "talk_secs": 60.0,
        "ring_attempts": 1,
        "ring_secs": 3.0,
        "agent": AGENT,
        "agent_uniqueid": f"{CALLID}9",
        "position": None,
        "original_position": 1,
        "state": "ended",
        "outcome": "completed_caller",
        "answered": True,
        "transfer_target": "",
        "exit_key": "",
        "sources": ("queue_log",),
        "gap": False,
        "final": True,
    }
    golden.update(changes)
    return golden


# -- one scenario per outcome -----------------------------------------------------------------


def test_answered_and_completed_by_the_caller_row_by_row() -> None:
    c = QueueCorrelator()
    rows = feed_all(c, answered())
    assert [(r.state, r.outcome, r.final) for r in rows] == [
        ("waiting", "", False),
        ("talking", "", False),
        ("ended", "completed_caller", False),
    ]
    assert [r.version for r in rows] == sorted({r.version for r in rows})  # strictly increasing
    assert rows[0].wait_secs is None
    assert rows[1].wait_secs == 12.0
    assert rows[1].talk_secs is None
    assert settle(c, 72 + 29) == []  # not settled yet
    (final,) = settle(c, 72 + 30)
    assert final.golden() == answered_golden()
    assert final.id == f"{SID}@{final.version}"
    assert final.version > rows[-1].version
    assert settle(c, 500) == []  # one final row per session


@pytest.mark.parametrize(
    ("by", "outcome", "target"),
    [
        ("COMPLETEAGENT", "completed_agent", ""),
        ("TRANSFER", "transferred", "200@from-internal"),
        ("BLINDTRANSFER", "transferred", "200@from-internal"),
        ("ATTENDEDTRANSFER", "transferred", "BRIDGE:1709287300.7"),
    ],
)
def test_answered_then_completed_by_the_agent_or_transferred(by: str, outcome: str, target: str) -> None:
    row = only(finals(answered(by=by)))
    assert row.golden() == answered_golden(outcome=outcome, transfer_target=target)


@pytest.mark.parametrize(
    ("event", "outcome", "key"),
    [
        ("ABANDON", "abandoned", ""),
        ("EXITWITHTIMEOUT", "timeout", ""),
        ("EXITEMPTY", "exit_empty", ""),
        ("EXITWITHKEY", "exit_key", "5"),
    ],
)
def test_unanswered_outcomes(event: str, outcome: str, key: str) -> None:
    row = only(finals(unanswered(wait=30, event=event)))
    golden = answered_golden(
        answered_at=None,
        ended_at=at(30),
        wait_secs=30.0,
        talk_secs=None,
        ring_attempts=0,
        ring_secs=0.0,
        agent="",
        agent_uniqueid="",
        position=1,
        outcome=outcome,
        answered=False,
        exit_key=key,
    )
    assert row.golden() == golden


def test_short_abandon_keeps_asterisks_wait() -> None:
    row = only(finals(unanswered(wait=3)))
    assert (row.outcome, row.wait_secs, row.ended_at) == ("abandoned", 3.0, at(3))


def test_ring_no_answer_counts_and_ring_time() -> None:
    row = only(finals(answered(rings=3)))
    # three agents rang 15 s each without answering, the fourth answered after 3 s of ringing
    assert (row.ring_attempts, row.ring_secs) == (4, 48.0)
    cancelled = [entered(), ql(5, "RINGCANCELED", "4000", agent="Agent/7"), ql(6, "ABANDON", "1", "1", "6")]
    row = only(finals(cancelled))
    assert (row.outcome, row.ring_attempts, row.ring_secs, row.agent) == ("abandoned", 1, 4.0, "")


@pytest.mark.parametrize("event", ["FULL", "JOINEMPTY", "JOINUNAVAIL", "CLOSED"])
def test_callers_who_never_entered_are_rejected_at_once(event: str) -> None:
    c = QueueCorrelator()
    (row,) = feed_all(c, [ql(5, event)])
    outcome = {"FULL": "full", "JOINEMPTY": "join_empty", "JOINUNAVAIL": "join_unavail", "CLOSED": "closed"}[event]
    assert (row.state, row.outcome, row.wait_secs, row.entered_at, row.ended_at) == (
        "ended",
        outcome,
        0.0,
        at(5),
        at(5),
    )
    (final,) = settle(c, 100)
    assert final.final
    assert final.outcome == outcome


def test_a_channel_entering_the_same_queue_again_is_a_second_session() -> None:
    envs = [
        entered(0),
        ql(10, "EXITWITHKEY", "5", "1", "1", "10"),
        entered(15),
        ql(20, "CONNECT", "5", "x.9", "1", agent=AGENT),
        ql(80, "COMPLETEAGENT", "5", "60", "1", agent=AGENT),
    ]
    rows = finals(envs)
    assert sorted(rows) == [SID, f"{SID}/1"]
    assert (rows[SID].outcome, rows[SID].exit_key, rows[SID].wait_secs) == ("exit_key", "5", 10.0)
    second = rows[f"{SID}/1"]
    assert (second.outcome, second.entered_at, second.wait_secs, second.talk_secs) == (
        "completed_agent",
        at(15),
        5.0,
        60.0,
    )


# -- order, duplicates, two sources -----------------------------------------------------------


def test_out_of_order_lines_give_the_same_session() -> None:
    lines = answered(rings=1)
    expected = only(finals(lines)).golden()
    for order in itertools.permutations(lines):
        assert only(finals(list(order))).golden() == expected, [e.body.event for e in order]


def test_duplicate_lines_change_nothing() -> None:
    lines = answered(rings=2)
    c = QueueCorrelator()
    once = feed_all(c, lines)
    again = QueueCorrelator()
    twice = feed_all(again, [e for line in lines for e in (line, line.model_copy(update={"id": line.id + "-dup"}))])
    assert [r.golden() for r in twice] == [r.golden() for r in once]
    assert again.stats["duplicate"] == len(lines)
    assert [r.golden() for r in settle(again, 500)] == [r.golden() for r in settle(c, 500)]


@pytest.mark.parametrize("order", ["queue_log_first", "ami_first", "by_time"])
def test_ami_and_queue_log_for_one_stay_are_one_session(order: str) -> None:
    lines, events = answered(), ami_answered(lag=0.4)
    envs: list[Any] = {
        "queue_log_first": [*lines, *events],
        "ami_first": [*events, *lines],
        "by_time": sorted([*lines, *events], key=lambda e: e.ts),
    }[order]
    c = QueueCorrelator()
    feed_all(c, envs)
    assert len(c) == 1
    rows = {r.session_id: r for r in settle(c, 1000) if r.final}
    # queue_log's values win; the linkedid comes from AMI; the ring is counted once
    assert only(rows).golden() == answered_golden(linkedid=CALLID, sources=("ami", "queue_log"), position=1)


def test_ami_only_sessions_in_both_dialects() -> None:
    row = only(finals(ami_answered(lag=0)))
    assert row.golden() == answered_golden(
        linkedid=CALLID, sources=("ami",), position=1, ring_attempts=1, agent_uniqueid=f"{CALLID}9"
    )
    old = only(finals(ami11_answered()))
    assert (old.outcome, old.wait_secs, old.talk_secs, old.agent, old.agent_uniqueid, old.ring_secs) == (
        "completed_agent",
        12.0,
        60.0,
        AGENT,
        f"{CALLID}9",
        2.0,
    )
    assert (old.entered_at, old.answered_at, old.linkedid) == (at(0), at(12), "")


def test_ami_leave_without_answer_is_an_exit_until_queue_log_says_why() -> None:
    ch = {"Queue": QUEUE, "Uniqueid": CALLID, "Linkedid": CALLID}
    c = QueueCorrelator()
    feed_all(c, [ami(0, "QueueCallerJoin", Position="2", **ch), ami(20, "QueueCallerLeave", Position="1", **ch)])
    assert settle(c, 22) == []  # within leave_grace_secs an AgentConnect or QueueCallerAbandon may follow
    (row,) = settle(c, 23)
    assert (row.outcome, row.ended_at, row.wait_secs, row.position, row.final) == ("exit", at(20), 20.0, 1, False)
    (row,) = feed_all(c, [ql(20, "EXITWITHTIMEOUT", "1", "2", "20")])
    assert (row.outcome, row.sources) == ("timeout", ("ami", "queue_log"))
    (final,) = settle(c, 100)
    assert (final.outcome, final.final, final.original_position) == ("timeout", True, 2)


def test_a_resync_lists_a_known_caller_without_a_second_session() -> None:
    ch = {"Queue": QUEUE, "Uniqueid": CALLID}
    c = QueueCorrelator()
    feed_all(c, [ami(0, "QueueCallerJoin", Position="3", **ch)])
    resync = ami(30, "QueueEntry", Position="1", Wait="30", CallscopeResync="1", **ch)
    (row,) = feed_all(c, [resync])
    assert (len(c), row.session_id, row.entered_at, row.position, row.original_position) == (1, SID, at(0), 1, 3)
    other = ami(40, "QueueEntry", Position="2", Wait="25", CallscopeResync="1", Queue=QUEUE, Uniqueid="new.1")
    (row,) = feed_all(c, [other])  # a caller that joined while the collector was away
    assert (row.session_id, row.entered_at, row.state) == (f"ast1/{QUEUE}/new.1", at(15), "waiting")


def test_ami_abandon_holdtime_is_the_wait() -> None:
    ch = {"Queue": QUEUE, "Uniqueid": CALLID}
    envs = [
        ami(0, "QueueCallerJoin", Position="1", **ch),
        ami(9, "QueueCallerAbandon", Position="1", OriginalPosition="1", HoldTime="9", **ch),
        ami(9, "QueueCallerLeave", Position="1", **ch),
    ]
    row = only(finals(envs))
    assert (row.outcome, row.wait_secs, row.ended_at) == ("abandoned", 9.0, at(9))


# -- time -------------------------------------------------------------------------------------


def test_waiting_and_talking_sessions_time_out_on_event_time() -> None:
    cfg = QueueSessionsConfig(max_wait_secs=600, answered_max_secs=3600)
    c = QueueCorrelator(cfg)
    feed_all(c, [entered(0), entered(1, callid="other")])
    feed_all(c, [ql(2, "CONNECT", "1", "x", "1", callid="other", agent=AGENT)])
    assert settle(c, 10_000) == []  # the wall clock alone does not time out (a replay of old files)
    feed_all(c, [entered(650, callid="third")])  # newer events move the horizon
    rows = {r.session_id: r for r in settle(c, 10_000)}
    lost = rows[SID]
    assert (lost.outcome, lost.ended_at, lost.final) == ("lost", at(0), True)
    feed_all(c, [entered(3700, callid="fourth")])
    rows = {r.session_id: r for r in settle(c, 10_000)}
    talk = rows["ast1/sales/other"]
    # nobody knows how long it lasted: no talk time (AHT leaves it out)
    assert (talk.outcome, talk.answered, talk.ended_at, talk.talk_secs) == ("answered_lost", True, at(2), None)


def test_late_events_after_the_final_row_change_nothing_then_are_forgotten() -> None:
    cfg = QueueSessionsConfig(tombstone_secs=100)
    c = QueueCorrelator(cfg)
    feed_all(c, answered())
    assert len(settle(c, 200)) == 1
    late = ami_answered(lag=0.4)[-1]  # AMI's AgentComplete arriving after the settle time
    assert c.feed(late) == []
    assert c.stats["late"] == 1
    feed_all(c, [entered(400, callid="other")])
    settle(c, 1000)
    assert [s.session_id for s in c.sessions()] == ["ast1/sales/other"]


def test_restore_from_checkpoint_resumes_and_ignores_replayed_lines() -> None:
    lines = answered(rings=1)
    straight = only(finals(lines)).golden()
    first = QueueCorrelator()
    rows = feed_all(first, lines[:2])
    resumed = QueueCorrelator()
    resumed.restore(rows[-1].checkpoint)
    assert feed_all(resumed, lines[:2]) == []  # a crash before the commit re-feeds them
    assert resumed.stats["duplicate"] == 2
    feed_all(resumed, lines[2:])
    assert {r.session_id: r for r in settle(resumed, 1000) if r.final}[SID].golden() == straight


def test_an_ami_gap_marks_the_open_sessions_of_its_node() -> None:
    c = QueueCorrelator()
    feed_all(c, [entered(0), entered(0, callid="done"), ql(5, "ABANDON", "1", "1", "5", callid="done")])
    gap = ami(30, "CallscopeGap", reason="reconnect", since=at(10).isoformat(), until=at(28).isoformat())
    (row,) = feed_all(c, [gap])
    assert (row.session_id, row.gap) == (SID, True)


def test_malformed_numbers_are_reported_and_the_timestamps_used() -> None:
    c = QueueCorrelator()
    feed_all(c, [entered(0)])
    result = c.feed_result(ql(14, "CONNECT", "abc", "x.9", "2", agent=AGENT))
    assert result.problem == "bad_number"
    (row,) = result.rows
    assert isinstance(row, SessionRow)
    assert row.wait_secs == 14.0  # from ENTERQUEUE -> CONNECT
    ignored = c.feed_result(ql(20, "ENTERQUEUE", "", "1", "1", queue="NONE"))
    assert (ignored.rows, ignored.status, ignored.problem) == ([], "ignored", "missing_queue")
    assert c.feed_result(ql(21, "QUEUESTART", callid="NONE", queue="NONE")).problem is None


def test_a_source_switched_off_is_not_read() -> None:
    c = QueueCorrelator(QueueSessionsConfig(sources=("queue_log",)))
    assert feed_all(c, ami_answered()) == []
    assert (c.stats["source_off"], c.stats["ignored"]) == (4, 1)  # AgentCalled is not read at all


# -- corpus -----------------------------------------------------------------------------------


def test_wazo_doc_queue_log_samples() -> None:
    envs = wazo_rows(corpus_file("wazo-doc/source/api_sdk/queue_log.rst"))
    assert len(envs) == 12
    c = QueueCorrelator()
    live = {r.session_id: r for r in feed_all(c, envs)}
    last = max(e.ts for e in envs)
    rows = {r.session_id: r for r in c.expire(last) if isinstance(r, SessionRow)}
    rows.update(
        {
            r.session_id: r
            for r in c.expire(datetime.fromtimestamp(last.timestamp() + 60, last.tzinfo))
            if isinstance(r, SessionRow)
        }
    )

    def row(callid: str, queue: str = "q1") -> SessionRow:
        sid = f"wazo/{queue}/{callid}"
        return rows.get(sid) or live[sid]

    answered_ = row("1341401601.24")  # ENTERQUEUE then CONNECT (the sample stops there)
    assert (answered_.state, answered_.caller, answered_.agent, answered_.agent_uniqueid) == (
        "talking",
        "1000",
        "Agent/3001",
        "1341401601.27",
    )
    assert (answered_.wait_secs, answered_.ring_attempts, answered_.ring_secs, answered_.original_position) == (
        2.0,
        1,
        1.0,
        1,
    )
    assert answered_.entered_at.isoformat() == "2012-07-04T07:33:21+00:00"

    completed = row("1341401851.34")  # COMPLETEAGENT alone: holdtime 2, talktime 12
    assert (completed.outcome, completed.final, completed.wait_secs, completed.talk_secs) == (
        "completed_agent",
        True,
        2.0,
        12.0,
    )
    assert completed.answered_at is not None
    assert completed.answered_at.isoformat() == "2012-07-04T07:37:34.601754+00:00"
    abandoned = row("1341402586.51")  # ABANDON position 1, origposition 1, waittime 6
    assert (abandoned.outcome, abandoned.wait_secs, abandoned.position, abandoned.original_position) == (
        "abandoned",
        6.0,
        1,
        1,
    )
    assert abandoned.entered_at.isoformat() == "2012-07-04T07:49:46+00:00"
    assert {row(c).outcome for c in ("1341401275.9", "1341402016.44", "1341402482.49")} == {
        "join_empty",
        "full",
        "closed",
    }
    logged = list(c.agents.open_intervals())
    assert logged == []  # logged in and out again; UNPAUSE without a pause opens nothing


def test_cacofonisk_queue_a_cancel() -> None:
    envs = cacofonisk_events(corpus_file("cacofonisk/tests/fixtures/queue/queue_a_cancel.json"))
    c = QueueCorrelator()
    assert feed_all(c, envs) == []  # no QueueCallerJoin in the recording: unanchored until final
    (row,) = settle(c, 100)
    assert (row.queue, row.callid, row.linkedid) == (
        "670100-540100",
        "40a7a1f2a669-1585318545.326",
        "40a7a1f2a669-1585318545.326",
    )
    assert (row.outcome, row.wait_secs, row.position, row.original_position, row.final) == (
        "abandoned",
        11.0,
        1,
        1,
        True,
    )
    abandon = next(e for e in envs if e.body.event == "QueueCallerAbandon")
    assert (abandon.ts - row.entered_at).total_seconds() == pytest.approx(11.0, abs=1.0)
