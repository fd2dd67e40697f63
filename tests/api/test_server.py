"""The app under a real uvicorn server on an OS-given port, probed over a real socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import uvicorn

from api.app import create_app
from tests.api.conftest import ADMIN_TOKEN, bearer, make_context

DEADLINE_SECS = 10.0


async def test_healthz_over_a_real_socket(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    config = uvicorn.Config(
        create_app(ctx), host="127.0.0.1", port=0, lifespan="off", log_level="warning", ws="none", http="h11"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECS
    try:
        while not server.started:
            assert not task.done(), "uvicorn exited before binding"
            assert loop.time() < deadline, "uvicorn did not bind in time"
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        assert port != 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as client:
            while True:
                try:
                    response = await client.get("/healthz")
                    break
                except httpx.TransportError:
                    assert loop.time() < deadline, "/healthz did not answer in time"
                    await asyncio.sleep(0.05)
            assert response.status_code == 200
            assert response.json() == {"status": "ok"}
            unauthorized = await client.get("/api/v1/info")
            assert unauthorized.status_code == 401
            authorized = await client.get("/api/v1/info", headers=bearer(ADMIN_TOKEN))
            assert authorized.json()["scope"] == "admin"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=DEADLINE_SECS)
