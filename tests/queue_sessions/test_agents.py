"""Agent states as intervals, from queue_log and AMI: logins, memberships, pauses; duplicates and stale copies."""

from __future__ import annotations

from typing import Any

from processors.queue_sessions.agents import AgentStateRow
from processors.queue_sessions.correlator import QueueCorrelator
from tests.corpus import corpus_file
from tests.queue_sessions.gen import AGENT, ami, at, ql, wazo_rows


def agent_rows(c: QueueCorrelator, envs: list[Any]) -> list[AgentStateRow]:
    return [r for e in envs for r in c.feed(e) if isinstance(r, AgentStateRow)]


def brief(rows: list[AgentStateRow]) -> list[tuple[Any, ...]]:
    return [(r.queue, r.state, r.reason, r.started_at, r.ended_at, r.end_reason) for r in rows]


def agent_ql(secs: float, event: str, *data: str, queue: str = "NONE", agent: str = AGENT) -> Any:
    return ql(secs, event, *data, callid="NONE", queue=queue, agent=agent)


def test_wazo_callback_login_and_logoff() -> None:
    c = QueueCorrelator()
    rows = agent_rows(c, wazo_rows(corpus_file("wazo-doc/source/api_sdk/queue_log.rst")))
    assert [(r.agent, r.queue, r.state, r.interface, r.ended_at is None) for r in rows] == [
        ("Agent/3001", "", "logged_in", "1002@pcm-dev", True),
        ("Agent/3001", "", "logged_in", "1002@pcm-dev", False),
    ]
    closed = rows[-1]
    assert closed.started_at.isoformat() == "2012-07-03T15:27:23.896208+00:00"
    assert (closed.end_reason, closed.duration_secs, closed.id) == ("CommandLogoff", 42.353149, rows[0].id)
    assert closed.version > rows[0].version


def test_membership_and_pauses_with_reasons() -> None:
    c = QueueCorrelator()
    rows = agent_rows(
        c,
        [
            agent_ql(0, "ADDMEMBER", queue="sales"),
            agent_ql(1, "ADDMEMBER", queue="support"),
            agent_ql(10, "PAUSE", "lunch", queue="sales"),
            agent_ql(20, "PAUSE", "meeting", queue="sales"),  # another reason: a new interval
            agent_ql(30, "UNPAUSE", "", queue="sales"),
            agent_ql(40, "PAUSEALL", "break"),  # every queue the agent is a member of
            agent_ql(50, "UNPAUSEALL"),
            agent_ql(60, "REMOVEMEMBER", queue="support"),
        ],
    )
    assert brief(rows) == [
        ("sales", "member", "", at(0), None, ""),
        ("support", "member", "", at(1), None, ""),
        ("sales", "paused", "lunch", at(10), None, ""),
        ("sales", "paused", "lunch", at(10), at(20), ""),
        ("sales", "paused", "meeting", at(20), None, ""),
        ("sales", "paused", "meeting", at(20), at(30), ""),
        ("sales", "paused", "break", at(40), None, ""),
        ("support", "paused", "break", at(40), None, ""),
        ("sales", "paused", "break", at(40), at(50), ""),
        ("support", "paused", "break", at(40), at(50), ""),
        ("support", "member", "", at(1), at(60), ""),
    ]
    assert [(i.queue, i.state) for i in c.agents.open_intervals()] == [("sales", "member")]


def test_the_same_change_from_queue_log_and_ami_is_one_interval() -> None:
    c = QueueCorrelator()
    member = {"Queue": "sales", "MemberName": AGENT, "Interface": "Local/1001@agents"}
    rows = agent_rows(
        c,
        [
            ami(0.2, "QueueMemberAdded", Paused="0", **member),
            agent_ql(0, "ADDMEMBER", queue="sales"),
            agent_ql(10, "PAUSE", "lunch", queue="sales"),
            ami(10.3, "QueueMemberPause", Paused="1", PausedReason="lunch", **member),
            agent_ql(15, "UNPAUSE", queue="sales"),
            ami(12, "QueueMemberPaused", Paused="1", Reason="lunch", **member),  # a stale copy, older than the UNPAUSE
            ami(15.2, "QueueMemberPause", Paused="0", **member),
            agent_ql(15, "UNPAUSE", queue="sales"),  # the same line twice
        ],
    )
    assert brief(rows) == [
        ("sales", "member", "", at(0.2), None, ""),
        ("sales", "paused", "lunch", at(10), None, ""),
        ("sales", "paused", "lunch", at(10), at(15), ""),
    ]
    assert rows[0].interface == "Local/1001@agents"
    assert (c.agents.stale, c.agents.duplicates) == (1, 1)  # the other copies are no-ops: already so


def test_ami_logins_resync_and_logoff_without_login() -> None:
    c = QueueCorrelator()
    rows = agent_rows(
        c,
        [
            ami(0, "AgentLogin", Agent="1001", Channel="PJSIP/1001-0001"),
            ami(5, "QueueMember", CallscopeResync="1", Queue="sales", Name=AGENT, Location="Local/1001", Paused="1",
                PausedReason="wrapup"),
            ami(9, "AgentLogoff", Agent="1001", Logintime="9"),
            agent_ql(100, "AGENTLOGOFF", "PJSIP/1002-0003", "40", agent="Agent/1002"),  # login never seen
        ],
    )  # fmt: skip
    assert [(r.agent, r.queue, r.state, r.reason, r.started_at, r.ended_at) for r in rows] == [
        (AGENT, "", "logged_in", "", at(0), None),
        (AGENT, "sales", "member", "", at(5), None),
        (AGENT, "sales", "paused", "wrapup", at(5), None),
        (AGENT, "", "logged_in", "", at(0), at(9)),
        ("Agent/1002", "", "logged_in", "", at(60), at(100)),
    ]
    assert rows[0].interface == "PJSIP/1001-0001"
    assert c.feed_result(ami(10, "QueueMemberPause", Queue="sales", MemberName=AGENT)).problem == "missing_paused"
    assert c.feed_result(agent_ql(11, "ADDMEMBER", queue="NONE")).problem == "missing_queue"
    assert c.feed_result(agent_ql(12, "PAUSE", agent="NONE")).problem == "missing_agent"


def test_restored_open_intervals_close_later() -> None:
    c = QueueCorrelator()
    (opened,) = agent_rows(c, [agent_ql(0, "ADDMEMBER", queue="sales")])
    resumed = QueueCorrelator()
    resumed.agents.restore(
        {
            "node": opened.node,
            "agent": opened.agent,
            "queue": opened.queue,
            "state": opened.state,
            "reason": opened.reason,
            "interface": opened.interface,
            "started_at": opened.started_at,
            "source": opened.source,
            "version": opened.version,
        }
    )
    (closed,) = agent_rows(resumed, [agent_ql(30, "REMOVEMEMBER", queue="sales")])
    assert (closed.id, closed.ended_at, closed.duration_secs) == (opened.id, at(30), 30.0)
    assert closed.version > opened.version
