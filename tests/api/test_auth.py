"""Bearer-token auth: open process routes, 401/403 under /api, auth disabled on loopback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from api.app import create_app
from callscope.tokens import effective_tokens
from tests.api.conftest import ADMIN_TOKEN, READ_TOKEN, RecordingProducer, bearer, client_for, make_context

LINE = (
    b'{"v":1,"kind":"options","id":"e1","node":"sbc1","role":"sbc","ts":"2024-05-01T10:00:00Z",'
    b'"received":"2024-05-01T10:00:00Z","key":"trunk-a","body":{"target":"trunk-a"}}\n'
)
NDJSON = {"Content-Type": "application/x-ndjson"}


async def test_healthz_is_open(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_metrics_is_open(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "callscope_events_received_total" in response.text


async def test_api_without_token_is_401_with_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/info")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {ADMIN_TOKEN}x",
        f"Bearer {ADMIN_TOKEN[:-1]}",
        "Bearer not-a-token-at-all-but-long",
        f"Basic {ADMIN_TOKEN}",
        "Bearer ",
    ],
    ids=["longer", "prefix", "unknown", "wrong-scheme", "empty"],
)
async def test_api_with_wrong_token_is_401(client: httpx.AsyncClient, authorization: str) -> None:
    response = await client.get("/api/v1/info", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_read_token_reads(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/info", headers=bearer(READ_TOKEN))
    assert response.status_code == 200
    body = response.json()
    assert (body["principal"], body["scope"], body["node"]) == ("grafana", "read", "api-test")


async def test_read_token_cannot_ingest(client: httpx.AsyncClient, producer: RecordingProducer) -> None:
    response = await client.post("/api/v1/ingest", content=LINE, headers={**NDJSON, **bearer(READ_TOKEN)})
    assert response.status_code == 403
    assert producer.sent == []


async def test_wrong_token_cannot_ingest(client: httpx.AsyncClient, producer: RecordingProducer) -> None:
    response = await client.post("/api/v1/ingest", content=LINE, headers={**NDJSON, **bearer(READ_TOKEN + "!")})
    assert response.status_code == 401
    assert producer.sent == []


async def test_admin_token_ingests_and_reads(client: httpx.AsyncClient, producer: RecordingProducer) -> None:
    response = await client.post("/api/v1/ingest", content=LINE, headers={**NDJSON, **bearer(ADMIN_TOKEN)})
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "deadlettered": 0, "lines": 1}
    assert len(producer.sent) == 1
    info = await client.get("/api/v1/info", headers=bearer(ADMIN_TOKEN))
    assert info.json()["scope"] == "admin"


async def test_no_tokens_configured_locks_api(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, RecordingProducer(), configured_tokens=())
    async with client_for(create_app(ctx)) as client:
        assert (await client.get("/api/v1/info", headers=bearer(ADMIN_TOKEN))).status_code == 401
        assert (await client.get("/healthz")).status_code == 200


async def test_generated_admin_token_is_accepted(tmp_path: Path) -> None:
    generated = "generated-token-0123456789abcdefghij"
    ctx = make_context(tmp_path, RecordingProducer(), configured_tokens=())
    ctx.tokens = effective_tokens(ctx.settings.api.auth, generated)
    async with client_for(create_app(ctx)) as client:
        response = await client.post("/api/v1/ingest", content=LINE, headers={**NDJSON, **bearer(generated)})
        assert response.status_code == 200
        info = await client.get("/api/v1/info", headers=bearer(generated))
        assert (info.json()["principal"], info.json()["scope"]) == ("generated-admin", "admin")


async def test_auth_disabled_opens_api(tmp_path: Path) -> None:
    producer = RecordingProducer()
    ctx = make_context(tmp_path, producer, auth_enabled=False)
    async with client_for(create_app(ctx)) as client:
        info = await client.get("/api/v1/info")
        assert info.status_code == 200
        assert info.json()["scope"] == "admin"
        response = await client.post("/api/v1/ingest", content=LINE, headers=NDJSON)
        assert response.status_code == 200
        assert len(producer.sent) == 1


async def test_openapi_documents_bearer_auth(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["info"]["title"] == "callscope"
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "security" in doc["paths"]["/api/v1/ingest"]["post"]
    assert "security" not in doc["paths"]["/healthz"]["get"]
    assert (await client.get("/docs")).status_code == 200


async def test_every_api_route_is_closed_without_token(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    api_paths = [path for path in doc["paths"] if path.startswith("/api/")]
    assert "/api/v1/ingest" in api_paths
    for path, operations in doc["paths"].items():
        concrete = path.replace("{", "").replace("}", "")
        for method in operations:
            response = await client.request(method.upper(), concrete)
            if path.startswith("/api/"):
                assert response.status_code == 401, f"{method.upper()} {path} is open"
            else:
                assert response.status_code != 401, f"{method.upper()} {path} wants a token"
