"""Queue sessions, queues and agents from ClickHouse: the SQL behind ``/api/v1/queues`` and ``/agents``.

Plain functions over a :class:`api.context.QueryStore` (blocking: call them in a worker
thread), so other modules reuse them. The SLA figures are in :mod:`api.queue_sla`.

:func:`sessions_for_callids` is the call trace's hook: the queue sessions of the
Asterisk channels (uniqueids or linkedids) a trace found.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from api.context import QueryStore
from api.where import Where
from schemas.tables import COLUMNS

#: The session's own columns: the stored row without its id and version bookkeeping.
SESSION_COLUMNS = tuple(c for c in COLUMNS["queue_sessions"] if c not in ("id", "version", "updated_at", "checkpoint"))
_SESSION_SELECT = ", ".join(SESSION_COLUMNS)
_FINAL_SETTINGS = "SETTINGS do_not_merge_across_partitions_select_final = 1"
MAX_CALLIDS = 1000


def _session(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["sources"] = list(out["sources"])
    out["answered"], out["gap"], out["final"] = bool(out["answered"]), bool(out["gap"]), bool(out["final"])
    return out


def sessions_for_callids(store: QueryStore, callids: Sequence[str]) -> list[dict[str, Any]]:
    """Every queue session of these Asterisk channels, oldest first.

    ``callids`` are channel uniqueids or linkedids (a session matches by its caller
    channel's uniqueid, its linkedid, or the answering agent channel's uniqueid); at
    most :data:`MAX_CALLIDS` are used. Each dict has :data:`SESSION_COLUMNS`.
    """
    ids = sorted({c for c in callids if c})[:MAX_CALLIDS]
    if not ids:
        return []
    rows = store.query(
        f"SELECT {_SESSION_SELECT} FROM queue_sessions FINAL"  # noqa: S608 - fixed SQL text; values are bound parameters
        " WHERE callid IN {ids:Array(String)} OR linkedid IN {ids:Array(String)}"
        " OR agent_uniqueid IN {ids:Array(String)}"
        f" ORDER BY entered_at, session_id {_FINAL_SETTINGS}",
        {"ids": ids},
    )
    return [_session(r) for r in rows]


def sessions_page(
    store: QueryStore,
    queue: str,
    *,
    start: datetime,
    end: datetime | None,
    limit: int,
    after: tuple[datetime, str] | None = None,
    outcomes: Sequence[str] = (),
    states: Sequence[str] = (),
    agent: str | None = None,
    caller: str | None = None,
    callid: str | None = None,
    answered: bool | None = None,
    min_wait_secs: float | None = None,
) -> list[dict[str, Any]]:
    """One page of a queue's sessions, newest entry first (keyset: ``(entered_at, session_id) < after``)."""
    where = Where(
        "queue = {queue:String}", "entered_at >= {start:DateTime64(6, 'UTC')}", queue=queue, start=start, limit=limit
    )
    where.add("entered_at < {end:DateTime64(6, 'UTC')}", end=end)
    if after is not None:
        after_ts, after_id = after
        where.add(
            "(entered_at, session_id) < ({after_ts:DateTime64(6, 'UTC')}, {after_id:String})",
            after_ts=after_ts,
            after_id=after_id,
        )
    where.add("outcome IN {outcomes:Array(String)}", outcomes=list(outcomes) or None)
    where.add("state IN {states:Array(String)}", states=list(states) or None)
    where.add("agent = {agent:String}", agent=agent or None)
    where.add("position(caller, {caller:String}) > 0", caller=caller or None)
    where.add("(callid = {callid:String} OR linkedid = {callid:String})", callid=callid or None)
    where.add("answered = {answered:Bool}", answered=answered)
    where.add("ifNull(wait_secs, 0) >= {min_wait:Float64}", min_wait=min_wait_secs)
    sql = (
        f"SELECT {_SESSION_SELECT} FROM queue_sessions FINAL WHERE {where.sql}"  # noqa: S608 - fixed SQL text; values are bound parameters
        f" ORDER BY entered_at DESC, session_id DESC LIMIT {{limit:UInt32}} {_FINAL_SETTINGS}"
    )
    return [_session(r) for r in store.query(sql, where.params)]


def queue_overview(store: QueryStore, *, now: datetime, live_window_secs: float) -> list[dict[str, Any]]:
    """Every queue seen (sessions in the rollup or live, or members): callers waiting and talking now,
    the longest current wait, members and paused members, the last entry."""
    since = now - timedelta(seconds=live_window_secs)
    live = store.query(
        "SELECT queue, countIf(state = 'waiting') AS waiting, countIf(state = 'talking') AS talking,"  # noqa: S608 - fixed SQL text; values are bound parameters
        " minIf(entered_at, state = 'waiting') AS oldest_waiting, countIf(state = 'waiting') > 0 AS any_waiting,"
        " max(entered_at) AS last_entered_at"
        " FROM queue_sessions FINAL WHERE entered_at >= {since:DateTime64(6, 'UTC')}"
        f" GROUP BY queue {_FINAL_SETTINGS}",
        {"since": since},
    )
    history = store.query(
        "SELECT queue, max(interval_start) AS last_interval FROM queue_sla_15m GROUP BY queue",
    )
    members = store.query(
        "SELECT queue, uniqExactIf(agent, state = 'member') AS members, uniqExactIf(agent, state = 'paused') AS paused"
        " FROM agent_states FINAL WHERE ended_at IS NULL AND queue != '' GROUP BY queue",
    )
    queues: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return queues.setdefault(
            name,
            {
                "name": name,
                "waiting": 0,
                "talking": 0,
                "longest_wait_secs": None,
                "members": 0,
                "paused_members": 0,
                "last_entered_at": None,
            },
        )

    for r in history:
        q = entry(str(r["queue"]))
        q["last_entered_at"] = r["last_interval"]
    for r in live:
        q = entry(str(r["queue"]))
        q["waiting"], q["talking"] = int(r["waiting"]), int(r["talking"])
        q["last_entered_at"] = r["last_entered_at"]
        if r["any_waiting"]:
            q["longest_wait_secs"] = round(max(0.0, (now - r["oldest_waiting"]).total_seconds()), 3)
    for r in members:
        q = entry(str(r["queue"]))
        q["members"], q["paused_members"] = int(r["members"]), int(r["paused"])
    return [queues[name] for name in sorted(queues)]


def agents_overview(
    store: QueryStore,
    *,
    now: datetime,
    stats_from: datetime,
    live_window_secs: float,
    agent: str | None = None,
) -> list[dict[str, Any]]:
    """The current state of every agent with an open interval or a call since ``stats_from``: logged in,
    memberships and pauses per queue, the call being talked now, calls answered and talk time since
    ``stats_from``."""
    params: dict[str, Any] = {
        "since": now - timedelta(seconds=live_window_secs),
        "stats_from": stats_from,
        "agent": agent or "",
    }
    only = " AND agent = {agent:String}" if agent else ""
    intervals = store.query(
        "SELECT node, agent, queue, state, reason, interface, started_at FROM agent_states FINAL"  # noqa: S608 - fixed SQL text; values are bound parameters
        f" WHERE ended_at IS NULL{only} ORDER BY agent, queue, state",
        params,
    )
    calls = store.query(
        "SELECT agent, queue, session_id, callid, caller, answered_at FROM queue_sessions FINAL"  # noqa: S608 - fixed SQL text; values are bound parameters
        " WHERE entered_at >= {since:DateTime64(6, 'UTC')} AND state = 'talking' AND agent != ''"
        f"{only} ORDER BY answered_at {_FINAL_SETTINGS}",
        params,
    )
    stats = store.query(
        "SELECT agent, count() AS calls, sum(ifNull(talk_secs, 0)) AS talk, max(answered_at) AS last_call"  # noqa: S608 - fixed SQL text; values are bound parameters
        " FROM queue_sessions FINAL WHERE entered_at >= {stats_from:DateTime64(6, 'UTC')} AND answered"
        f" AND agent != ''{only} GROUP BY agent {_FINAL_SETTINGS}",
        params,
    )
    agents: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return agents.setdefault(
            name,
            {
                "agent": name,
                "nodes": [],
                "logged_in": False,
                "logged_in_since": None,
                "interface": "",
                "paused": False,
                "queues": {},
                "on_call": None,
                "calls_answered": 0,
                "talk_secs": 0.0,
                "last_call_at": None,
            },
        )

    for r in intervals:
        a = entry(str(r["agent"]))
        if r["node"] not in a["nodes"]:
            a["nodes"].append(r["node"])
        if r["state"] == "logged_in":
            a["logged_in"], a["logged_in_since"] = True, r["started_at"]
            a["interface"] = a["interface"] or r["interface"]
            continue
        q = a["queues"].setdefault(
            r["queue"],
            {"queue": r["queue"], "member": False, "member_since": None, "paused": False, "paused_since": None},
        )
        if r["state"] == "member":
            q["member"], q["member_since"] = True, r["started_at"]
            a["interface"] = a["interface"] or r["interface"]
        elif r["state"] == "paused":
            q["paused"], q["paused_since"], q["pause_reason"] = True, r["started_at"], r["reason"]
            a["paused"] = True
    for r in calls:
        a = entry(str(r["agent"]))
        a["on_call"] = {k: r[k] for k in ("queue", "session_id", "callid", "caller", "answered_at")}
    for r in stats:
        a = entry(str(r["agent"]))
        a["calls_answered"], a["talk_secs"] = int(r["calls"]), round(float(r["talk"]), 3)
        a["last_call_at"] = r["last_call"]
    out = []
    for name in sorted(agents):
        a = agents[name]
        a["queues"] = [a["queues"][q] for q in sorted(a["queues"])]
        for q in a["queues"]:
            q.setdefault("pause_reason", "")
        out.append(a)
    return out


def agent_history(
    store: QueryStore,
    agent: str,
    *,
    start: datetime,
    end: datetime | None,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> list[dict[str, Any]]:
    """An agent's intervals (logged in, member, paused) overlapping [start, end), newest first."""
    where = ["agent = {agent:String}", "(ended_at IS NULL OR ended_at >= {start:DateTime64(6, 'UTC')})"]
    params: dict[str, Any] = {"agent": agent, "start": start, "limit": limit}
    if end is not None:
        where.append("started_at < {end:DateTime64(6, 'UTC')}")
        params["end"] = end
    if after is not None:
        where.append("(started_at, id) < ({after_ts:DateTime64(6, 'UTC')}, {after_id:String})")
        params["after_ts"], params["after_id"] = after
    sql = (
        "SELECT id, node, agent, queue, state, reason, interface, started_at, ended_at, duration_secs, end_reason,"  # noqa: S608 - fixed SQL text; values are bound parameters
        f" source FROM agent_states FINAL WHERE {' AND '.join(where)}"
        " ORDER BY started_at DESC, id DESC LIMIT {limit:UInt32}"
    )
    return store.query(sql, params)
