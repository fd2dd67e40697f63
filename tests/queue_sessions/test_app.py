"""The queue_sessions shell on the in-process bus and the embedded engine: rows, restarts, one final row each."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from api.queue_sla import SlaRequest, exact, rollup
from callscope.store.client import Store
from processors.queue_sessions.app import QueueSessionsProcessor
from processors.queue_sessions.config import QueueSessionsConfig
from schemas.tables import COLUMNS
from tests.call_legs.conftest import Env, drained, publish, running
from tests.queue_sessions.gen import AGENT, CALLID, QUEUE, ami, ami_answered, answered, at, ql, unanswered

FAST = QueueSessionsConfig(expire_interval_secs=0.05)


def wall_at(secs: float) -> Callable[[], datetime]:
    return lambda: at(secs)


def sessions(store: Store) -> dict[str, dict[str, Any]]:
    return {r["session_id"]: r for r in store.query("SELECT * FROM queue_sessions FINAL")}


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not check():
            await asyncio.sleep(0.05)


def final_count(store: Store) -> int:
    return int(store.query("SELECT count() AS n FROM queue_sessions WHERE final")[0]["n"])


def rolled_up(store: Store) -> int:
    return int(store.query("SELECT sum(offered) + sum(rejected) AS n FROM queue_sla_15m")[0]["n"])


def test_columns_match_the_migrated_tables(migrated_store: Store) -> None:
    for table in ("queue_sessions", "agent_states", "queue_sla_15m"):
        rows = migrated_store.query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}"
            " AND default_kind = '' ORDER BY position",
            {"db": migrated_store.database, "t": table},
        )
        assert tuple(r["name"] for r in rows) == COLUMNS[table], table


async def test_sessions_agents_and_the_rollup_from_the_bus(env: Env) -> None:
    envs: list[Any] = [
        *answered(0),
        *ami_answered(0, lag=0.4),  # the same stay over AMI: one session
        *unanswered(5, wait=3, callid="c2"),
        *unanswered(8, wait=40, event="EXITWITHTIMEOUT", callid="c3"),
        ami(1, "Newexten", Uniqueid="c9", Linkedid="c9", Application="Queue"),  # not a queue event
        ql(0, "ADDMEMBER", callid="NONE", agent=AGENT),
        ql(0, "ADDMEMBER", callid="NONE", queue=QUEUE, agent=AGENT),
        ql(30, "PAUSE", "lunch", callid="NONE", queue=QUEUE, agent=AGENT),
    ]
    async with running(env, QueueSessionsProcessor, queues=FAST, wall=wall_at(1000)) as p:
        await publish(env, envs)
        await drained(env, p)
        await until(lambda: final_count(env.store) == 3)
    stored = sessions(env.store)
    assert set(stored) == {f"ast1/{QUEUE}/{CALLID}", f"ast1/{QUEUE}/c2", f"ast1/{QUEUE}/c3"}
    main = stored[f"ast1/{QUEUE}/{CALLID}"]
    assert (main["outcome"], main["wait_secs"], main["talk_secs"], list(main["sources"])) == (
        "completed_caller",
        12.0,
        60.0,
        ["ami", "queue_log"],
    )
    assert (stored[f"ast1/{QUEUE}/c2"]["outcome"], stored[f"ast1/{QUEUE}/c3"]["outcome"]) == ("abandoned", "timeout")
    assert rolled_up(env.store) == 3
    req = SlaRequest(QUEUE, at(0), at(900), 900, 20, 5, "answered_abandoned", include_timeouts=False)
    assert exact(env.store, req, at(0), at(900)) == rollup(env.store, req, at(0), at(900))
    states = env.store.query("SELECT queue, state, reason, ended_at FROM agent_states FINAL ORDER BY queue, state")
    assert [(r["queue"], r["state"], r["reason"], r["ended_at"]) for r in states] == [
        (QUEUE, "member", "", None),
        (QUEUE, "paused", "lunch", None),
    ]
    received = env.telemetry.registry.get_sample_value(
        "callscope_queue_events_total", {"source": "ami", "result": "applied"}
    )
    assert received == 4  # Join, Connect, Leave, Complete: AgentCalled and Newexten are skipped unread
    assert (
        env.telemetry.registry.get_sample_value("callscope_queue_events_total", {"source": "ami", "result": "ignored"})
        is None
    )
    assert env.telemetry.registry.get_sample_value("callscope_queue_sessions_total", {"outcome": "timeout"}) == 1


async def test_a_session_continues_across_a_restart(env: Env) -> None:
    lines = answered(0, rings=1)
    async with running(env, QueueSessionsProcessor, queues=FAST, wall=wall_at(14)) as p:
        await publish(env, lines[:3])  # entered, rang, connected
        await drained(env, p)
        await until(lambda: sessions(env.store).get(f"ast1/{QUEUE}/{CALLID}", {}).get("state") == "talking")
    # A crash after the store acknowledged but before the commit re-feeds the CONNECT.
    await publish(env, [lines[2], lines[3]])
    async with running(env, QueueSessionsProcessor, queues=FAST, wall=wall_at(1000)) as p:
        await drained(env, p)
        await until(lambda: final_count(env.store) == 1)
    row = sessions(env.store)[f"ast1/{QUEUE}/{CALLID}"]
    assert (row["outcome"], row["ring_attempts"], row["wait_secs"], bool(row["final"])) == (
        "completed_caller",
        2,
        12.0,
        True,
    )
    assert rolled_up(env.store) == 1


async def test_a_replayed_stay_is_not_counted_twice(env: Env) -> None:
    async with running(env, QueueSessionsProcessor, queues=FAST, wall=wall_at(1000)) as p:
        await publish(env, unanswered(0, wait=20))
        await drained(env, p)
        await until(lambda: final_count(env.store) == 1)
    # The same file replayed months later (new envelope ids): nothing of it is reloaded any more,
    # the stay is rebuilt and settles again, and the stored final row stops a second one.
    later = at(0) + timedelta(days=90)
    replay = [e.model_copy(update={"id": f"replay-{e.id}"}) for e in unanswered(0, wait=20)]
    async with running(env, QueueSessionsProcessor, queues=FAST, wall=lambda: later) as p:
        assert isinstance(p, QueueSessionsProcessor)
        await publish(env, replay)
        await drained(env, p)
        correlator = p.correlator
        await until(lambda: bool(correlator.sessions()) and correlator.sessions()[0].final)
    # stopping flushed whatever the final round produced
    assert final_count(env.store) == 1
    assert rolled_up(env.store) == 1
