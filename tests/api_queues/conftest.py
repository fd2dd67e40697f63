"""A small queue day whose SLA figures are worked out by hand in test_sla_api.py, stored by the real core.

Queue ``sales`` on 2024-03-01 (every row the correlator wrote, non-final versions
included; the materialized view fills the rollup from the final ones):

=====  =============  ===================  ====================================
#      entered        outcome              wait / talk (s)
=====  =============  ===================  ====================================
1      10:00:00       completed_caller     10 / 100
2      10:01:00       completed_agent      25 / 200
3      10:02:00       transferred          20 / 60
4      10:03:00       abandoned            3 (a short abandon)
5      10:04:00       abandoned            40
6      10:05:00       timeout              300
7      10:06:00       exit_key             8
8      10:07:00       full                 (never entered: rejected)
9      10:16:00       completed_caller     5 / 30
10     10:17:00       abandoned            5 (not short: 5 is not < 5)
11     10:18:00       exit_empty           2
12     10:20:00       still waiting        (not counted)
=====  =============  ===================  ====================================

plus one stay in queue ``support`` (10:00, answered) that ``sales`` must not count.

Queue ``recent`` (entered 4, 3 and 2 minutes ago, so the API's tail finds them): one
session ended and final, one ended but not final yet (its final row is held back), and
one being talked by Agent/1002 now. Agent/1001 is a member of sales (paused "lunch") and logged in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.context import ApiContext
from callscope.settings import ApiConfig, AuthConfig, Settings
from callscope.store.client import Store
from callscope.telemetry import Telemetry
from processors.queue_sessions.agents import AgentStateRow
from processors.queue_sessions.correlator import QueueCorrelator
from processors.queue_sessions.session import SessionRow
from schemas.tables import COLUMNS
from tests.api.conftest import READ_TOKEN, TOKENS, bearer, client_for
from tests.queue_sessions.gen import AGENT, answered, at, entered, ql, unanswered

DAY = at(0)  # 2024-03-01 10:00 UTC


def _minute(n: int) -> float:
    return 60.0 * n


def sales_day() -> list[Any]:
    envs: list[Any] = []
    envs += answered(_minute(0), wait=10, talk=100, callid="s1")
    envs += answered(_minute(1), wait=25, talk=200, by="COMPLETEAGENT", callid="s2")
    envs += answered(_minute(2), wait=20, talk=60, by="BLINDTRANSFER", callid="s3")
    envs += unanswered(_minute(3), wait=3, callid="s4")
    envs += unanswered(_minute(4), wait=40, callid="s5")
    envs += unanswered(_minute(5), wait=300, event="EXITWITHTIMEOUT", callid="s6")
    envs += unanswered(_minute(6), wait=8, event="EXITWITHKEY", callid="s7")
    envs.append(ql(_minute(7), "FULL", callid="s8"))
    envs += answered(_minute(16), wait=5, talk=30, callid="s9", agent="Agent/1002")
    envs += unanswered(_minute(17), wait=5, callid="s10")
    envs += unanswered(_minute(18), wait=2, event="EXITEMPTY", callid="s11")
    envs.append(entered(_minute(20), callid="s12"))
    envs += answered(_minute(0), wait=1, talk=10, callid="x1", queue="support")
    envs += [
        ql(0, "AGENTLOGIN", "PJSIP/1001-00000001", callid="NONE", queue="NONE", agent=AGENT),
        ql(0, "ADDMEMBER", callid="NONE", queue="sales", agent=AGENT),
        ql(60, "PAUSE", "lunch", callid="NONE", queue="sales", agent=AGENT),
    ]
    return sorted(envs, key=lambda e: e.ts)


@dataclass(frozen=True)
class Seeded:
    now: datetime
    recent_start: datetime  # 15-minute boundary before the recent sessions
    rows: list[SessionRow]


def _insert(store: Store, rows: list[Any]) -> None:
    sessions = [r.values() for r in rows if isinstance(r, SessionRow)]
    agents = [r.values() for r in rows if isinstance(r, AgentStateRow)]
    if sessions:
        store.insert("queue_sessions", sessions, COLUMNS["queue_sessions"])
    if agents:
        store.insert("agent_states", agents, COLUMNS["agent_states"])


def seed(store: Store) -> Seeded:
    c = QueueCorrelator()
    rows: list[Any] = [r for e in sales_day() for r in c.feed(e)]
    rows += c.expire(at(_minute(30)))  # everything ended has settled; s12 still waits
    now = datetime.now(UTC).replace(microsecond=0)
    first = now - timedelta(seconds=240)
    recent_start = first.replace(minute=first.minute - first.minute % 15, second=0)
    base = (first - DAY).total_seconds()
    live = QueueCorrelator()
    recent: list[Any] = []
    for e in [
        *answered(base, wait=4, talk=30, callid="r1", queue="recent"),
        *unanswered(base + 60, wait=7, callid="r2", queue="recent"),
        *answered(base + 120, wait=2, talk=600, callid="r3", queue="recent", agent="Agent/1002")[:2],
    ]:
        recent += live.feed(e)
    finals = [r for r in live.expire(at(base + 60 + 7 + 31)) if isinstance(r, SessionRow)]
    recent += [r for r in finals if r.callid == "r1"]  # r2's final row is held back: ended, not final
    all_rows = rows + recent
    _insert(store, all_rows)
    return Seeded(now, recent_start, [r for r in all_rows if isinstance(r, SessionRow)])


def make_context(data_dir: Path, store: Store | None) -> ApiContext:
    settings = Settings(
        node="api-test",
        data_dir=data_dir,
        api=ApiConfig(listen="127.0.0.1:0", auth=AuthConfig(enabled=True, tokens=TOKENS)),
    )
    return ApiContext(settings=settings, telemetry=Telemetry(node="api-test"), store=store)


@pytest.fixture
def seeded(migrated_store: Store) -> Seeded:
    return seed(migrated_store)


@pytest.fixture
async def client(tmp_path: Path, migrated_store: Store, seeded: Seeded) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(make_context(tmp_path, migrated_store))) as c:
        c.headers.update(bearer(READ_TOKEN))
        yield c
