"""The ladder page in a real browser: headless Chromium against a real uvicorn server.

The page is served by the app under uvicorn on an OS-given port (auth disabled, which
settings allow on a loopback listen address), with the session engine seeded with
ab_answered_via_sbc. Chromium's ``--dump-dom`` returns the DOM after the page's
scripts ran; the page's script marks ``<body data-arrows=N>`` once it wired N arrows.
Set ``CALLSCOPE_LADDER_SCREENSHOT=path.png`` to also keep a screenshot.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.context import ApiContext
from callscope.settings import ApiConfig, AuthConfig, Settings
from callscope.store.client import Store
from callscope.telemetry import Telemetry
from tests.api_calls.conftest import TOPOLOGY
from tests.api_calls.scenario import A_LEG, DISTINCT_HOPS
from tests.ci import unavailable

pytestmark = pytest.mark.e2e

DEADLINE_SECS = 20.0
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return unavailable("chromium is not installed (apt-get install chromium; tests/system-deps.sh)")


class _Arrows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.arrow_ids: list[str] = []
        self.body_marker: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if "arrow" in (attributes.get("class") or "").split():
            self.arrow_ids.append(attributes.get("data-arrow-id") or "")
        if tag == "body":
            self.body_marker = attributes.get("data-arrows")


@pytest.fixture
async def server_url(tmp_path: Path, ab_answered_via_sbc: Store) -> AsyncIterator[str]:
    settings = Settings(
        node="api-test",
        data_dir=tmp_path,
        api=ApiConfig(listen="127.0.0.1:0", auth=AuthConfig(enabled=False)),
        topology=TOPOLOGY,
    )
    ctx = ApiContext(settings=settings, telemetry=Telemetry(node="api-test"), store=ab_answered_via_sbc)
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
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:
            assert (await client.get("/healthz")).status_code == 200
        yield url
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=DEADLINE_SECS)


async def run_chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / "chromium-profile"
    proc = await asyncio.create_subprocess_exec(
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return stdout.decode()


async def test_ladder_page_renders_one_arrow_per_hop(server_url: str, tmp_path: Path) -> None:
    page = f"{server_url}/api/v1/calls/{A_LEG}/ladder?format=html"
    dom = await run_chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", page)
    parser = _Arrows()
    parser.feed(dom)
    assert len(parser.arrow_ids) == DISTINCT_HOPS  # 22 captured copies, 15 hops
    assert len(set(parser.arrow_ids)) == DISTINCT_HOPS
    assert all(parser.arrow_ids)
    assert parser.body_marker == str(DISTINCT_HOPS)  # the page's script ran and wired every arrow
    shot = os.environ.get("CALLSCOPE_LADDER_SCREENSHOT")
    if shot:
        await run_chromium(tmp_path, "--window-size=1400,900", f"--screenshot={shot}", "--hide-scrollbars", page)
        assert (await asyncio.to_thread(Path(shot).stat)).st_size > 0
