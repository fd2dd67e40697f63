"""`callscope run` as a user runs it: a real process, a real socket, the embedded store.

Each test starts the CLI in a subprocess on an OS-given port, probes /healthz for
readiness, talks HTTP to it and stops it with SIGTERM.
"""

from __future__ import annotations

import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from callscope.settings import PROCESSOR_NAMES
from tests.cli_process import CLI, Running, ingest, ndjson, start, wait_count
from tests.samples import sample_envelope

pytestmark = pytest.mark.e2e


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    run = start(tmp_path / "data")
    try:
        yield run
    finally:
        run.close()


def test_run_serves_health_readiness_metrics_and_docs(running: Running) -> None:
    assert httpx.get(f"{running.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{running.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"]) == {"bus", "store"}
    metrics = httpx.get(f"{running.url}/metrics").text
    assert 'callscope_component_up{component="events"} 1.0' in metrics
    assert 'callscope_bus_lag_messages{group="callscope.events",topic="callscope.sip"} 0.0' in metrics
    assert httpx.get(f"{running.url}/openapi.json").json()["info"]["title"] == "callscope"
    banner = "".join(running.stdout_lines)
    assert "store: chdb://" in banner
    assert running.hep_port is not None  # the HEP collector runs in the embedded default
    assert "token: admin API token created in" in banner


def test_generated_token_is_private_and_required(running: Running) -> None:
    path = running.data_dir / "api-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert httpx.get(f"{running.url}/api/v1/events/stats").status_code == 401
    assert httpx.get(f"{running.url}/api/v1/events/stats", headers=running.headers()).status_code == 200


def test_ingested_events_are_stored_once_and_survive_a_restart(tmp_path: Path) -> None:
    run = start(tmp_path / "data")
    try:
        docs = [sample_envelope("sip", id=f"sip-{i:04d}", key=f"call-{i % 7}@e2e") for i in range(300)]
        bad = [b'{"kind": "sip", "id": "broken"}', b"not json at all"]
        body = ndjson(docs) + b"\n".join(bad) + b"\n"
        resp = ingest(run, body)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"accepted": 300, "deadlettered": 2, "lines": 302}
        # The same 300 again: a replay must not duplicate anything.
        resp = ingest(run, ndjson(docs))
        assert resp.json()["accepted"] == 300
        stats = wait_count(run, "sip", 300)
        deadline = time.monotonic() + 30
        while stats["deadletters"] != 2 and time.monotonic() < deadline:  # rejects travel one more hop
            time.sleep(0.1)
            stats = wait_count(run, "sip", 300)
        tables = stats["tables"]
        assert isinstance(tables, dict)
        assert tables["sip"]["events"] == 300
        assert tables["sip"]["distinct_ids"] == 300
        assert stats["deadletters"] == 2
        one = httpx.get(
            f"{run.url}/api/v1/events", params={"kind": "sip", "key": "call-3@e2e"}, headers=run.headers()
        ).json()
        assert {e["id"] for e in one["events"]} == {f"sip-{i:04d}" for i in range(300) if i % 7 == 3}
        assert all(e["body"]["raw"].startswith("INVITE sip:bob@") for e in one["events"])
        assert run.stop() == 0
        assert "Traceback" not in run.stderr
    finally:
        run.close()
    again = start(tmp_path / "data")
    try:
        stats = wait_count(again, "sip", 300)
        assert stats["tables"]["sip"]["events"] == 300  # type: ignore[index]
        assert "token: admin API token reused in" in "".join(again.stdout_lines)
        assert again.stop(signal.SIGINT) == 0
    finally:
        again.close()


def test_events_buffered_at_shutdown_are_flushed(tmp_path: Path) -> None:
    # A long batch age: rows stay in the sink until shutdown forces the flush.
    env_config = tmp_path / "c.yaml"
    env_config.write_text("store:\n  batch_max_age_secs: 300\n  batch_max_rows: 1000000\n")
    run = start(tmp_path / "data", "--config", str(env_config))
    try:
        docs = [sample_envelope("cdr", id=f"cdr-{i}", key=f"17000.{i}") for i in range(50)]
        resp = ingest(run, ndjson(docs))
        assert resp.json()["accepted"] == 50
        assert run.stop() == 0
    finally:
        run.close()
    again = start(tmp_path / "data")
    try:
        stats = wait_count(again, "cdr", 50)
        assert stats["tables"]["cdr"]["events"] == 50  # type: ignore[index]
        again.stop()
    finally:
        again.close()


def test_second_process_on_the_same_data_dir_exits_2(running: Running) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "callscope.cli",
            "run",
            "--data-dir",
            str(running.data_dir),
            "--api-listen",
            "127.0.0.1:0",
            "--hep-listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "in use by another process" in proc.stderr
    assert "Traceback" not in proc.stderr
    # The first instance is unharmed.
    assert httpx.get(f"{running.url}/readyz").status_code == 200


def test_port_in_use_exits_2(running: Running, tmp_path: Path) -> None:
    port = running.url.rsplit(":", 1)[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "callscope.cli",
            "run",
            "--data-dir",
            str(tmp_path / "other"),
            "--api-listen",
            f"127.0.0.1:{port}",
            "--hep-listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "api.listen" in proc.stderr


def test_replay_into_embedded_pipeline_then_serve_it(tmp_path: Path) -> None:
    recording = tmp_path / "events.jsonl"
    docs = [sample_envelope(k, id=f"{k}-r{i}") for k in ("ami", "queue_log", "options") for i in range(20)]
    recording.write_bytes(ndjson(docs) + b'{"kind": "ami"}\n')
    data = tmp_path / "data"
    proc = subprocess.run(
        [*CLI, "replay", "--data-dir", str(data), "--no-progress", str(recording)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "60 accepted, 1 dead-lettered" in proc.stdout
    run = start(data)
    try:
        stats = wait_count(run, "options", 20)
        tables = stats["tables"]
        assert isinstance(tables, dict)
        assert [tables[k]["events"] for k in ("ami", "queue_log", "options")] == [20, 20, 20]
        assert stats["deadletters"] == 1
        run.stop()
    finally:
        run.close()


def test_replay_to_a_running_instance(running: Running, tmp_path: Path) -> None:
    recording = tmp_path / "events.jsonl"
    recording.write_bytes(ndjson([sample_envelope("log", id=f"log-{i}") for i in range(40)]))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "callscope.cli",
            "replay",
            "--to",
            running.url,
            "--token",
            running.token,
            str(recording),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "40 accepted, 0 dead-lettered" in proc.stdout
    assert wait_count(running, "log", 40)["tables"]["log"]["events"] == 40  # type: ignore[index]
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "callscope.cli",
            "replay",
            "--to",
            running.url,
            "--token",
            "wrong-token-123456",
            str(recording),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode != 0
    assert "401" in bad.stderr


def test_processors_enabled_runs_only_those_named(tmp_path: Path) -> None:
    """``processors.enabled: [events]``: the raw rows are stored, no other processor runs or writes."""
    run = start(tmp_path / "data", env_extra={"CALLSCOPE_PROCESSORS__ENABLED": '["events"]'})
    try:
        docs = [sample_envelope("sip", id=f"sip-{i:04d}", key=f"call-{i}@e2e") for i in range(50)]
        for i, doc in enumerate(docs):
            doc["body"]["call_id"] = f"call-{i}@e2e"  # an INVITE each: 50 legs where call_legs runs
        resp = ingest(run, ndjson(docs))
        assert resp.json()["accepted"] == 50
        assert wait_count(run, "sip", 50)["tables"]["sip"]["events"] == 50  # type: ignore[index]
        metrics = httpx.get(f"{run.url}/metrics").text
        up = sorted(re.findall(r'callscope_component_up\{component="([a-z_]+)"\} 1\.0', metrics))
        assert set(up) & set(PROCESSOR_NAMES) == {"events"}, up
        groups = set(re.findall(r'callscope_bus_lag_messages\{group="callscope\.([a-z_]+)"', metrics))
        assert groups == {"events"}, groups  # no other consumer group joined the bus
    finally:
        run.close()
