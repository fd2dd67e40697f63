"""`callscope run` on the real Kafka broker: the same pipeline, a different bus."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from callscope.bus.kafka import KafkaBus
from callscope.settings import KafkaConfig
from callscope.telemetry import Telemetry
from schemas.topics import ALL_TOPICS
from tests.cli_process import CLI, ingest, ndjson, start, wait_count
from tests.samples import sample_envelope

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def _kafka_env(bootstrap: str) -> dict[str, str]:
    return {
        "CALLSCOPE_BUS__KIND": "kafka",
        "CALLSCOPE_BUS__KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "CALLSCOPE_BUS__KAFKA__PARTITIONS": "3",
        "CALLSCOPE_BUS__KAFKA__CONNECT_BACKOFF_MAX_SECS": "1",
        # a fresh consumer group per test: the broker is shared by the session
        "CALLSCOPE_PROCESSORS__GROUP_PREFIX": f"e2e-{uuid.uuid4().hex[:8]}",
    }


def test_pipeline_on_kafka_stores_every_event_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    run = start(tmp_path / "data", env_extra=_kafka_env(kafka_bootstrap))
    try:
        assert "bus:   kafka" in "".join(run.stdout_lines)
        ready = httpx.get(f"{run.url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        marker = uuid.uuid4().hex[:8]
        docs = [sample_envelope("sip", id=f"k-{marker}-{i}", key=f"call-{marker}-{i % 11}") for i in range(500)]
        first = ingest(run, ndjson(docs), timeout=60)
        assert first.json()["accepted"] == 500
        again = ingest(run, ndjson(docs[:100]), timeout=60)
        assert again.json()["accepted"] == 100
        deadline = time.monotonic() + 60
        while True:
            page = httpx.get(
                f"{run.url}/api/v1/events",
                params={"kind": "sip", "key": f"call-{marker}-3", "limit": 1000},
                headers=run.headers(),
                timeout=10,
            ).json()
            if page["count"] >= len([i for i in range(500) if i % 11 == 3]) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert {e["id"] for e in page["events"]} == {f"k-{marker}-{i}" for i in range(500) if i % 11 == 3}
        stats = wait_count(run, "sip", 500)
        assert stats["tables"]["sip"]["events"] == stats["tables"]["sip"]["distinct_ids"]  # type: ignore[index]
        metrics = httpx.get(f"{run.url}/metrics").text
        assert 'callscope_component_up{component="events"} 1.0' in metrics
        assert run.stop() == 0
        assert "Traceback" not in run.stderr
    finally:
        run.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_unreachable_kafka_is_retried_and_said_and_stop_is_clean(tmp_path: Path) -> None:
    env = dict(os.environ, **_kafka_env(f"127.0.0.1:{_free_port()}"))
    err_path = tmp_path / "stderr.log"
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            [
                *CLI,
                "run",
                "--data-dir",
                str(tmp_path / "data"),
                "--api-listen",
                "127.0.0.1:0",
                "--hep-listen",
                "127.0.0.1:0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        attempts: list[dict[str, object]] = []
        while len(attempts) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
            attempts = [
                doc
                for line in err_path.read_bytes().splitlines()
                if line.startswith(b"{") and (doc := orjson.loads(line)).get("event") == "kafka unreachable, retrying"
            ]
        assert len(attempts) >= 3, err_path.read_text()
        delays = [float(a["next_delay_secs"]) for a in attempts]  # type: ignore[arg-type]
        assert delays == sorted(delays)
        assert delays[-1] <= 1.0  # capped by connect_backoff_max_secs
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in err_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def _wait_for_zero_lag(bootstrap: str, group: str) -> int:
    bus = KafkaBus(KafkaConfig(bootstrap_servers=bootstrap), Telemetry())
    await bus.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            lag = await bus.lag(group, ALL_TOPICS)
            total = sum(lag.values())
            if (lag and total == 0) or time.monotonic() > deadline:
                return total
            await asyncio.sleep(0.2)
    finally:
        await bus.stop()


def test_roles_split_across_processes_on_kafka(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`--role api` takes the ingest onto Kafka; a separate `--role processor` stores it.

    Each process owns its own embedded store here (chDB is one process per data
    directory); in production both point at one ClickHouse server. The processor's
    store is read afterwards by an API process started on its directory.
    """
    env_extra = _kafka_env(kafka_bootstrap)
    env = dict(os.environ, CALLSCOPE_LOG__LEVEL="warning", **env_extra)
    processor_dir = tmp_path / "processor"
    err_path = tmp_path / "processor.err"
    with err_path.open("wb") as err:
        processor = subprocess.Popen(
            # no collectors: no HEP port; health and metrics only on an OS-given port
            [*CLI, "run", "--role", "processor", "--data-dir", str(processor_dir), "--api-listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            text=True,
        )
    api = None
    try:
        assert processor.stdout is not None
        banner: list[str] = []
        while not banner or "stop with Ctrl-C" not in banner[-1]:
            line = processor.stdout.readline()
            assert line, f"processor exited: {err_path.read_text()[-2000:]}"
            banner.append(line)
        assert not any("api:" in line for line in banner)  # the processor role serves no query API
        http_line = next(line for line in banner if line.strip().startswith("http:"))
        processor_url = http_line.split()[1]
        metrics = httpx.get(f"{processor_url}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert 'callscope_component_up{component="events"} 1.0' in metrics.text
        assert httpx.get(f"{processor_url}/readyz", timeout=10).status_code == 200
        assert httpx.get(f"{processor_url}/api/v1/info", timeout=10).status_code == 404
        api = start(tmp_path / "api", "--role", "api", env_extra=env_extra)
        marker = uuid.uuid4().hex[:8]
        docs = [sample_envelope("queue_log", id=f"q-{marker}-{i}", key=f"1700.{i}") for i in range(200)]
        resp = ingest(api, ndjson(docs), timeout=60)
        assert resp.json()["accepted"] == 200
        # The API process stored nothing itself: it has no processor.
        assert wait_count(api, "queue_log", 1)["tables"]["queue_log"]["events"] == 0  # type: ignore[index]
        api.stop()
        # The processor commits only after its store acknowledged: zero lag means stored.
        group = f"{env_extra['CALLSCOPE_PROCESSORS__GROUP_PREFIX']}.events"
        assert asyncio.run(_wait_for_zero_lag(kafka_bootstrap, group)) == 0
        processor.send_signal(signal.SIGTERM)
        assert processor.wait(timeout=60) == 0
        assert "Traceback" not in err_path.read_text()
        reader = start(processor_dir, "--role", "api", env_extra=env_extra)
        try:
            stats = wait_count(reader, "queue_log", 200)
            assert stats["tables"]["queue_log"]["events"] == 200  # type: ignore[index]
        finally:
            reader.close()
    finally:
        if api is not None:
            api.close()
        if processor.poll() is None:
            processor.kill()
            processor.wait()
        if processor.stdout is not None:
            processor.stdout.close()
