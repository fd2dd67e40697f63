"""``callscope run`` with an AMI connection: a real process, real panoramisk, events queryable through the API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from collectors.ami.dialect import correlation_key
from tests.ami.corpus import CACOFONISK
from tests.ami.server import AmiServer, load_recording
from tests.cli_process import start
from tests.corpus import corpus_file

SECRET = "e2e-secret-7f3a"


@pytest.mark.e2e
async def test_callscope_run_collects_ami_events_into_the_store(tmp_path: Path) -> None:
    events = load_recording(corpus_file(f"{CACOFONISK}/simple/ab_success_a_hangup.json"))
    linkedid = next(e["Linkedid"] for e in events if "Linkedid" in e)
    per_call = sum(correlation_key(e, "ast-1") == linkedid for e in events)
    async with AmiServer(secret=SECRET) as ami:
        config = tmp_path / "callscope.yaml"
        config.write_text(
            "topology:\n"
            "  nodes:\n"
            "    - {name: ast-1, role: logic, address: 127.0.0.1}\n"
            "collectors:\n"
            "  ami:\n"
            "    connections:\n"
            f"      - {{node: ast-1, port: {ami.port}, username: {ami.username}, secret_env: CALLSCOPE_TEST_AMI}}\n"
        )
        run = await asyncio.to_thread(
            start, tmp_path / "data", "--config", str(config), env_extra={"CALLSCOPE_TEST_AMI": SECRET}
        )
        try:
            assert any(line.strip().startswith("ami:") and "ast-1" in line for line in run.stdout_lines)
            await ami.wait_logged_in(within=60)
            await ami.replay(events)
            async with httpx.AsyncClient(base_url=run.url, headers=run.headers(), timeout=30) as client:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 60
                while True:
                    page = (await client.get("/api/v1/events", params={"kind": "ami", "key": linkedid})).json()
                    if page["count"] >= per_call or loop.time() > deadline:
                        break
                    await asyncio.sleep(0.2)
                metrics = (await client.get("/metrics")).text
        finally:
            code = await asyncio.to_thread(run.stop)
            run.close()
    assert page["count"] == per_call
    stored = page["events"]
    assert {e["node"] for e in stored} == {"ast-1"}
    assert {e["body"]["dialect"] for e in stored} == {"asterisk13"}
    # Stored in Asterisk's order (ordered by ts, the receive time a microsecond apart).
    assert [e["body"]["event"] for e in stored] == [
        e["Event"] for e in events if correlation_key(e, "ast-1") == linkedid
    ]
    assert 'callscope_ami_connected{node="ast-1"} 1.0' in metrics
    assert 'callscope_component_up{component="ami"} 1.0' in metrics
    assert code == 0
    assert ami.actions[-1]["Action"] == "Logoff"  # a clean stop logs off
    assert SECRET not in run.stderr
    assert SECRET not in "".join(run.stdout_lines)
