"""GET /api/v1/health and /api/v1/health/{target}/history against stored data."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from api.app import create_app
from callscope.store.client import Store
from tests.api.conftest import READ_TOKEN, bearer, client_for
from tests.api_health.conftest import Seeded, make_health_context


def _ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


async def _get(client: httpx.AsyncClient, url: str, **params: Any) -> dict[str, Any]:
    resp = await client.get(url, params=params)
    assert resp.status_code == 200, resp.text
    doc: dict[str, Any] = resp.json()
    return doc


async def test_every_target_with_its_vantage_points(
    health_client: httpx.AsyncClient, trunks_partial_outage: Seeded
) -> None:
    seeded = trunks_partial_outage
    doc = await _get(health_client, "/api/v1/health")
    by_name = {t["name"]: t for t in doc["targets"]}
    assert [t["name"] for t in doc["targets"]] == ["198.51.100.7:5060", "ast1", "carrier-a", "carrier-b", "carrier-c"]
    assert doc["count"] == 5

    a = by_name["carrier-a"]
    assert (a["kind"], a["configured"], a["state"], a["flapping"]) == ("trunk", True, "partial", False)
    assert _ts(a["since"]) == seeded.at(260)
    sbc1, sbc2 = a["vantage_points"]
    assert (sbc1["node"], sbc1["state"], sbc1["last_error"], sbc1["last_status"], sbc1["last_rtt_ms"]) == (
        "sbc1",
        "down",
        "timeout",
        None,
        None,
    )
    assert (_ts(sbc1["since"]), _ts(sbc1["last_probe_at"]), sbc1["stale"]) == (seeded.at(260), seeded.at(260), False)
    assert (sbc2["node"], sbc2["state"], sbc2["last_status"], sbc2["last_reason"], sbc2["last_rtt_ms"]) == (
        "sbc2",
        "up",
        200,
        "OK",
        12.0,
    )
    assert (sbc2["last_server"], sbc2["passive"], _ts(sbc2["since"])) == ("carrier SBC", False, seeded.at(0.5))

    b = by_name["carrier-b"]
    assert b["state"] == "up"
    assert [(v["node"], v["state"], v["stale"]) for v in b["vantage_points"]] == [
        ("sbc1", "up", False),
        ("sbc2", "up", True),  # its last probe is older than 3 x 30 s + 5 s
    ]

    c = by_name["carrier-c"]
    assert (c["state"], c["since"], c["vantage_points"], c["configured"]) == ("unknown", None, [], True)
    assert by_name["ast1"]["kind"] == "node"

    passive = by_name["198.51.100.7:5060"]
    assert (passive["kind"], passive["configured"], passive["state"]) == ("other", False, "up")
    assert [(v["node"], v["passive"]) for v in passive["vantage_points"]] == [("kam1", True)]

    nodes = {n["node"]: n for n in doc["nodes"]}
    assert set(nodes) == {"kam1", "sbc1", "sbc2"}
    assert {k: nodes["sbc1"][k] for k in ("targets", "up", "down", "degraded", "unknown", "stale")} == {
        "targets": 2,
        "up": 1,
        "down": 1,
        "degraded": 0,
        "unknown": 0,
        "stale": 0,
    }
    assert nodes["sbc2"]["stale"] == 1
    assert _ts(nodes["sbc1"]["last_probe_at"]) == seeded.at(261)


async def test_filters_and_pages(health_client: httpx.AsyncClient) -> None:
    doc = await _get(health_client, "/api/v1/health", kind="other")
    assert [t["name"] for t in doc["targets"]] == ["198.51.100.7:5060"]
    doc = await _get(health_client, "/api/v1/health", state="partial")
    assert [t["name"] for t in doc["targets"]] == ["carrier-a"]
    names: list[str] = []
    url = "/api/v1/health?limit=2"
    while url:
        resp = await health_client.get(url)
        assert resp.status_code == 200
        page = resp.json()
        assert page["count"] <= 2
        names.extend(t["name"] for t in page["targets"])
        url = page["next"]
    assert names == ["198.51.100.7:5060", "ast1", "carrier-a", "carrier-b", "carrier-c"]
    assert (await health_client.get("/api/v1/health", params={"cursor": "garbage"})).status_code == 422
    assert (await health_client.get("/api/v1/health", params={"state": "sideways"})).status_code == 422


async def test_history_newest_first_with_filters(
    health_client: httpx.AsyncClient, trunks_partial_outage: Seeded
) -> None:
    seeded = trunks_partial_outage
    doc = await _get(health_client, "/api/v1/health/carrier-a/history")
    rows = [(t["scope"], t["node"], t["from_state"], t["to_state"], _ts(t["at"])) for t in doc["transitions"]]
    assert rows == [  # at one instant the aggregate first, then the vantage points that caused it
        ("target", "", "up", "partial", seeded.at(260)),
        ("node", "sbc1", "up", "down", seeded.at(260)),
        ("node", "sbc2", "unknown", "up", seeded.at(0.5)),
        ("target", "", "unknown", "up", seeded.at(0)),
        ("node", "sbc1", "unknown", "up", seeded.at(0)),
    ]
    down = next(t for t in doc["transitions"] if t["to_state"] == "down")
    assert (down["reason"], down["error"], down["status"], down["rtt_ms"], down["kind"]) == (
        "3 consecutive timeouts",
        "timeout",
        None,
        None,
        "trunk",
    )
    assert doc["next"] is None

    doc = await _get(health_client, "/api/v1/health/carrier-a/history", scope="target")
    assert [t["to_state"] for t in doc["transitions"]] == ["partial", "up"]
    doc = await _get(health_client, "/api/v1/health/carrier-a/history", node="sbc2")
    assert [t["to_state"] for t in doc["transitions"]] == ["up"]
    window = {"from": seeded.at(100).isoformat(), "to": seeded.at(300).isoformat()}
    doc = await _get(health_client, "/api/v1/health/carrier-a/history", **window)
    assert {t["to_state"] for t in doc["transitions"]} == {"partial", "down"}


async def test_history_pages(health_client: httpx.AsyncClient) -> None:
    seen: list[str] = []
    url = "/api/v1/health/carrier-a/history?limit=2"
    while url:
        resp = await health_client.get(url)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        seen.extend(t["id"] for t in page["transitions"])
        url = page["next"]
    assert len(seen) == len(set(seen)) == 5
    everything = await _get(health_client, "/api/v1/health/carrier-a/history")
    assert seen == [t["id"] for t in everything["transitions"]]


async def test_history_of_unknown_and_never_probed_targets(health_client: httpx.AsyncClient) -> None:
    resp = await health_client.get("/api/v1/health/no-such-trunk/history")
    assert resp.status_code == 404
    doc = await _get(health_client, "/api/v1/health/carrier-c/history")
    assert (doc["count"], doc["transitions"]) == (0, [])
    doc = await _get(health_client, "/api/v1/health/198.51.100.7:5060/history")
    assert [(t["scope"], t["to_state"]) for t in doc["transitions"]] == [("target", "up"), ("node", "up")]


async def test_needs_a_token(tmp_path: Path, migrated_store: Store) -> None:
    async with client_for(create_app(make_health_context(tmp_path, migrated_store))) as anon:
        assert (await anon.get("/api/v1/health")).status_code == 401
        assert (await anon.get("/api/v1/health/carrier-a/history")).status_code == 401


async def test_without_a_store(tmp_path: Path) -> None:
    async with client_for(create_app(make_health_context(tmp_path, None))) as client:
        resp = await client.get("/api/v1/health", headers=bearer(READ_TOKEN))
        assert resp.status_code == 503
