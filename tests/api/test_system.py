"""/readyz checks with timeouts, /metrics format and the HTTP request counter."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.context import ReadyCheck
from callscope.telemetry import Telemetry
from tests.api.conftest import READ_TOKEN, bearer, client_for, make_context


async def _ok() -> bool:
    return True


async def _down() -> bool:
    return False


async def _hangs() -> bool:
    await asyncio.sleep(30)
    return True


async def _raises() -> bool:
    raise ConnectionRefusedError("store refused")


async def _readyz(tmp_path: Path, checks: dict[str, ReadyCheck], timeout_secs: float = 0.2) -> httpx.Response:
    ctx = make_context(tmp_path, ready_checks=checks, ready_timeout_secs=timeout_secs)
    async with client_for(create_app(ctx)) as client:
        return await client.get("/readyz")


async def test_readyz_ok_when_every_check_passes(tmp_path: Path) -> None:
    response = await _readyz(tmp_path, {"bus": _ok, "store": _ok})
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"bus": "ok", "store": "ok"}}


async def test_readyz_503_when_a_check_fails(tmp_path: Path) -> None:
    response = await _readyz(tmp_path, {"bus": _ok, "store": _down})
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"bus": "ok", "store": "failed"}}


async def test_readyz_503_when_a_check_times_out(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await _readyz(tmp_path, {"bus": _hangs, "store": _ok})
    assert loop.time() - started < 5
    assert response.status_code == 503
    assert response.json()["checks"] == {"bus": "timeout", "store": "ok"}


async def test_readyz_503_when_a_check_raises(tmp_path: Path) -> None:
    response = await _readyz(tmp_path, {"store": _raises})
    assert response.status_code == 503
    assert response.json()["checks"] == {"store": "error"}


async def test_readyz_checks_run_concurrently(tmp_path: Path) -> None:
    async def slow() -> bool:
        await asyncio.sleep(0.3)
        return True

    loop = asyncio.get_running_loop()
    started = loop.time()
    # A timeout well above one check's 0.3 s (a loaded machine must not turn a slow check into a timeout);
    # one after the other the three would take 0.9 s.
    response = await _readyz(tmp_path, {"a": slow, "b": slow, "c": slow}, timeout_secs=2.0)
    assert response.status_code == 200, response.text
    assert loop.time() - started < 0.8


def _sample(telemetry: Telemetry, name: str, labels: dict[str, str]) -> float | None:
    return telemetry.registry.get_sample_value(name, labels)


async def test_metrics_content_type_and_parses(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"callscope_events_received", "callscope_http_requests"} <= names


async def test_http_requests_counted_by_route_template_and_status_class(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    async with client_for(create_app(ctx)) as client:
        await client.get("/healthz")
        await client.get("/healthz")
        await client.get("/api/v1/info")  # 401
        await client.get("/api/v1/info", headers=bearer(READ_TOKEN))
        await client.get("/no/such/path/abc123")
        await client.get("/another/unknown/path")
        await client.request("BREW", "/healthz")
    t = ctx.telemetry
    name = "callscope_http_requests_total"
    assert _sample(t, name, {"route": "/healthz", "method": "GET", "status": "2xx"}) == 2
    assert _sample(t, name, {"route": "/api/v1/info", "method": "GET", "status": "4xx"}) == 1
    assert _sample(t, name, {"route": "/api/v1/info", "method": "GET", "status": "2xx"}) == 1
    assert _sample(t, name, {"route": "<unmatched>", "method": "GET", "status": "4xx"}) == 2
    assert _sample(t, name, {"route": "/healthz", "method": "other", "status": "4xx"}) == 1
    rendered = t.render().decode()
    assert "abc123" not in rendered
    assert "BREW" not in rendered
