"""GET /api/v1/calls (search, pagination) and GET /api/v1/registrations (current state, history)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from callscope.store.client import Store
from tests.api.conftest import client_for
from tests.api_calls.conftest import READ, make_calls_context
from tests.api_calls.scenario import insert_dicts, leg_row

NOW = datetime.now(UTC).replace(microsecond=0)
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def legs_many() -> list[dict[str, Any]]:
    """12 legs, one a minute from T0: alternately answered (200) and busy (486); numbers 100..111."""
    rows = []
    for i in range(12):
        busy = i % 2 == 1
        rows.append(
            leg_row(
                f"call-{i:02d}",
                T0 + timedelta(minutes=i),
                id=f"call-{i:02d}:ft@1",
                leg_id=f"call-{i:02d}:ft",
                caller=f"+4930{100 + i}",
                callee="200" if i < 6 else "300",
                pai="" if i != 3 else "sip:+4930999@pai.example",
                status=486 if busy else 200,
                state="failed" if busy else "completed",
                duration_secs=None if busy else float(10 * i),
                nodes=["sbc1", "ast1"] if i % 3 == 0 else ["sbc1"],
                correlation_ids=["corr-7"] if i == 7 else [],
                x_cid="xc-5" if i == 5 else "",
            )
        )
    return rows


@pytest.fixture
async def search_client(tmp_path: Path, migrated_store: Store) -> AsyncIterator[httpx.AsyncClient]:
    insert_dicts(migrated_store, "call_legs", legs_many())
    async with client_for(create_app(make_calls_context(tmp_path, migrated_store))) as client:
        client.headers.update(READ)
        yield client


async def ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/api/v1/calls", params=params)
    assert response.status_code == 200, response.text
    return [leg["call_id"] for leg in response.json()["legs"]]


async def test_search_filters(search_client: httpx.AsyncClient) -> None:
    assert await ids(search_client) == [f"call-{i:02d}" for i in reversed(range(12))]  # newest first
    assert await ids(search_client, status="486", number="4930") == [
        "call-11",
        "call-09",
        "call-07",
        "call-05",
        "call-03",
        "call-01",
    ]
    assert await ids(search_client, status="4xx", state="failed") == await ids(search_client, status="486")
    assert await ids(search_client, status="2xx", min_duration_secs=80) == ["call-10", "call-08"]
    assert await ids(search_client, number="+4930104", number_match="exact") == ["call-04"]
    assert await ids(search_client, number="+4930999", number_match="exact") == ["call-03"]  # PAI user part
    assert await ids(search_client, number="999") == ["call-03"]  # PAI substring
    assert await ids(search_client, number="300", number_match="exact") == [f"call-{i:02d}" for i in range(11, 5, -1)]
    assert await ids(search_client, node="ast1") == ["call-09", "call-06", "call-03", "call-00"]
    assert await ids(search_client, correlation_id="corr-7") == ["call-07"]
    assert await ids(search_client, x_cid="xc-5") == ["call-05"]
    window = {"from": (T0 + timedelta(minutes=2)).isoformat(), "to": (T0 + timedelta(minutes=4)).isoformat()}
    assert await ids(search_client, **window) == ["call-03", "call-02"]
    leg = (await search_client.get("/api/v1/calls", params={"call_id": "call-01"})).json()["legs"][0]
    assert set(leg) >= {"pdd_ms", "setup_ms", "duration_secs", "codecs", "correlation_ids", "version", "updated_at"}
    assert (leg["status"], leg["state"], leg["duration_secs"]) == (486, "failed", None)


async def test_search_rejects_bad_input(search_client: httpx.AsyncClient) -> None:
    for params in ({"status": "4x"}, {"state": "bogus"}, {"limit": 1001}, {"cursor": "not-a-cursor"}):
        response = await search_client.get("/api/v1/calls", params=params)
        assert response.status_code == 422, params


async def test_search_pages_follow_next_links(search_client: httpx.AsyncClient) -> None:
    seen: list[str] = []
    url: str | None = "/api/v1/calls?limit=5&state=completed"
    pages = 0
    while url:
        body = (await search_client.get(url)).json()
        seen += [leg["call_id"] for leg in body["legs"]]
        url = body["next"]
        pages += 1
        assert body["count"] == len(body["legs"]) <= 5
    assert pages == 2
    assert seen == [f"call-{i:02d}" for i in range(10, -1, -2)]


def reg(aor: str, at: datetime, status: int, expires: int, rid: str, **over: Any) -> dict[str, Any]:
    row = {
        "id": rid,
        "aor": aor,
        "contact": f"<sip:{aor.split('@', maxsplit=1)[0]}@192.0.2.10:5060>",
        "expires": expires,
        "status": status,
        "reason": {200: "OK", 401: "Unauthorized", 403: "Forbidden"}.get(status, ""),
        "node": "reg1",
        "nodes": ["reg1"],
        "user_agent": "Phone/1.0",
        "src_ip": "192.0.2.10",
        "call_id": f"reg-{aor}",
        "cseq": 1,
        "requested_at": at,
        "answered_at": at + timedelta(milliseconds=20) if status else None,
        "challenge": status == 401,
        "version": 1,
    }
    row.update(over)
    return row


@pytest.fixture
async def reg_client(tmp_path: Path, migrated_store: Store) -> AsyncIterator[httpx.AsyncClient]:
    insert_dicts(
        migrated_store,
        "registrations",
        [
            reg("alice@example.com", NOW - timedelta(hours=2), 200, 3600, "a1"),
            reg("alice@example.com", NOW - timedelta(minutes=5), 401, 3600, "a2"),
            reg("alice@example.com", NOW - timedelta(minutes=5) + timedelta(seconds=1), 200, 3600, "a3",
                contact="<sip:alice@192.0.2.11:5060>", cseq=2),
            reg("bob@example.com", NOW - timedelta(hours=1), 200, 60, "b1"),
            reg("carol@example.com", NOW - timedelta(minutes=1), 403, 3600, "c1"),
            reg("dave@example.com", NOW - timedelta(hours=1), 200, 3600, "d1"),
            reg("dave@example.com", NOW - timedelta(minutes=1), 200, 0, "d2"),
        ],
    )  # fmt: skip
    async with client_for(create_app(make_calls_context(tmp_path, migrated_store))) as client:
        client.headers.update(READ)
        yield client


async def test_current_registration_state(reg_client: httpx.AsyncClient) -> None:
    body = (await reg_client.get("/api/v1/registrations")).json()
    assert body["history"] is None
    state = {r["aor"]: r for r in body["current"]}
    assert list(state) == ["alice@example.com", "bob@example.com", "dave@example.com"]  # carol never registered
    alice = state["alice@example.com"]
    assert (alice["contact"], alice["expired"], alice["last_attempt_status"]) == (
        "<sip:alice@192.0.2.11:5060>",
        False,
        200,
    )
    expires_at = datetime.fromisoformat(alice["expires_at"])
    assert expires_at - datetime.fromisoformat(alice["registered_at"]) == timedelta(seconds=3600)
    assert state["bob@example.com"]["expired"] is True  # 60 s binding an hour ago
    assert state["dave@example.com"]["expired"] is True  # de-registered
    live = (await reg_client.get("/api/v1/registrations", params={"expired": "false"})).json()
    assert [r["aor"] for r in live["current"]] == ["alice@example.com"]
    page = (await reg_client.get("/api/v1/registrations", params={"limit": 2})).json()
    assert [r["aor"] for r in page["current"]] == ["alice@example.com", "bob@example.com"]
    rest = (await reg_client.get(page["next"])).json()
    assert [r["aor"] for r in rest["current"]] == ["dave@example.com"]
    assert rest["next"] is None


async def test_registration_history_newest_first(reg_client: httpx.AsyncClient) -> None:
    body = (await reg_client.get("/api/v1/registrations", params={"aor": "alice@example.com", "limit": 2})).json()
    assert body["aor"] == "alice@example.com"
    assert body["current"] is None
    assert [(r["id"], r["status"], r["challenge"]) for r in body["history"]] == [("a3", 200, False), ("a2", 401, True)]
    assert body["history"][1]["expires_at"] is None  # a challenge grants nothing
    rest = (await reg_client.get(body["next"])).json()
    assert [r["id"] for r in rest["history"]] == ["a1"]
    assert rest["next"] is None
