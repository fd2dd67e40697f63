"""GET /api/v1/queues, /queues/{queue}/sessions, /agents, /agents/{agent}/states; the call trace's hook."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from api.queue_queries import sessions_for_callids
from callscope.store.client import Store
from tests.api_queues.conftest import DAY, Seeded
from tests.queue_sessions.gen import AGENT

SESSIONS = "/api/v1/queues/sales/sessions"
DAY_RANGE = {"from": DAY.isoformat(), "to": (DAY + timedelta(hours=1)).isoformat()}


async def get(client: httpx.AsyncClient, url: str, **params: Any) -> dict[str, Any]:
    resp = await client.get(url, params=params)
    assert resp.status_code == 200, resp.text
    doc: dict[str, Any] = resp.json()
    return doc


async def test_sessions_newest_first_with_every_column(client: httpx.AsyncClient) -> None:
    doc = await get(client, SESSIONS, **DAY_RANGE)
    assert [s["callid"] for s in doc["sessions"]] == [f"s{n}" for n in range(12, 0, -1)]
    s1 = doc["sessions"][-1]
    assert {k: s1[k] for k in ("outcome", "state", "wait_secs", "talk_secs", "agent", "caller", "final")} == {
        "outcome": "completed_caller",
        "state": "ended",
        "wait_secs": 10.0,
        "talk_secs": 100.0,
        "agent": AGENT,
        "caller": "0612345678",
        "final": True,
    }
    assert datetime.fromisoformat(s1["entered_at"]) == DAY
    assert doc["sessions"][0]["state"] == "waiting"


async def test_session_filters(client: httpx.AsyncClient) -> None:
    async def callids(**params: Any) -> list[str]:
        doc = await get(client, SESSIONS, **DAY_RANGE, **params)
        return [s["callid"] for s in doc["sessions"]]

    assert await callids(outcome="abandoned") == ["s10", "s5", "s4"]
    assert await callids(outcome=["timeout", "exit_key"]) == ["s7", "s6"]
    assert await callids(answered="true") == ["s9", "s3", "s2", "s1"]
    assert await callids(agent="Agent/1002") == ["s9"]
    assert await callids(min_wait_secs=30) == ["s6", "s5"]
    assert await callids(state="waiting") == ["s12"]
    assert await callids(callid="s3") == ["s3"]
    assert await callids(caller="12345") == [f"s{n}" for n in range(12, 0, -1) if n != 8]  # FULL has no caller
    resp = await client.get(SESSIONS, params={**DAY_RANGE, "outcome": "nonsense"})
    assert resp.status_code == 422


async def test_sessions_are_paginated_by_cursor(client: httpx.AsyncClient) -> None:
    seen: list[str] = []
    resp = await client.get(SESSIONS, params={**DAY_RANGE, "limit": 5})
    while True:
        assert resp.status_code == 200
        doc = resp.json()
        seen += [s["callid"] for s in doc["sessions"]]
        if doc["next"] is None:
            break
        resp = await client.get(doc["next"])  # the link keeps the filters
    assert seen == [f"s{n}" for n in range(12, 0, -1)]
    bad = await client.get(SESSIONS, params={"cursor": "garbage"})
    assert bad.status_code == 422


async def test_queues_list_what_is_live_and_what_was_seen(client: httpx.AsyncClient, seeded: Seeded) -> None:
    doc = await get(client, "/api/v1/queues")
    by_name = {q["name"]: q for q in doc["queues"]}
    assert sorted(by_name) == ["recent", "sales", "support"]
    recent = by_name["recent"]
    assert (recent["waiting"], recent["talking"]) == (0, 1)
    sales = by_name["sales"]
    assert (sales["members"], sales["paused_members"], sales["waiting"]) == (1, 1, 0)  # s12's wait is two years old
    assert datetime.fromisoformat(sales["last_entered_at"]) == DAY + timedelta(minutes=15)  # its last rollup interval


async def test_agents_now(client: httpx.AsyncClient, seeded: Seeded) -> None:
    doc = await get(client, "/api/v1/agents", **{"from": DAY.isoformat()})
    by_name = {a["agent"]: a for a in doc["agents"]}
    a1 = by_name[AGENT]
    assert (a1["logged_in"], a1["interface"], a1["paused"], a1["on_call"]) == (True, "PJSIP/1001-00000001", True, None)
    assert a1["queues"] == [
        {
            "queue": "sales",
            "member": True,
            "member_since": DAY.isoformat().replace("+00:00", "Z"),
            "paused": True,
            "paused_since": (DAY + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
            "pause_reason": "lunch",
        }
    ]
    # s1, s2, s3 (sales), x1 (support) and r1 (recent): 100 + 200 + 60 + 10 + 30 s
    assert (a1["calls_answered"], a1["talk_secs"]) == (5, 400.0)
    a2 = by_name["Agent/1002"]
    assert a2["on_call"]["callid"] == "r3"
    assert (a2["on_call"]["queue"], a2["logged_in"], a2["calls_answered"]) == ("recent", False, 2)  # s9, r3
    only = await get(client, "/api/v1/agents", agent=AGENT)
    assert [a["agent"] for a in only["agents"]] == [AGENT]


async def test_an_agents_intervals(client: httpx.AsyncClient) -> None:
    doc = await get(client, f"/api/v1/agents/{AGENT}/states", **{"from": DAY.isoformat()})
    assert [(i["queue"], i["state"], i["reason"], i["ended_at"]) for i in doc["intervals"]] == [
        ("sales", "paused", "lunch", None),
        ("sales", "member", "", None),
        ("", "logged_in", "", None),
    ]
    page = await get(client, f"/api/v1/agents/{AGENT}/states", **{"from": DAY.isoformat(), "limit": 2})
    assert page["count"] == 2
    assert page["next_cursor"]


def test_sessions_for_callids(migrated_store: Store, seeded: Seeded) -> None:
    rows = sessions_for_callids(migrated_store, ["s3", "unknown.1", ""])
    assert [(r["callid"], r["queue"], r["outcome"], r["transfer_target"]) for r in rows] == [
        ("s3", "sales", "transferred", "200@from-internal")
    ]
    by_agent_channel = sessions_for_callids(migrated_store, ["s19"])  # the answering agent channel of s1
    assert [r["callid"] for r in by_agent_channel] == ["s1"]
    assert sessions_for_callids(migrated_store, []) == []
