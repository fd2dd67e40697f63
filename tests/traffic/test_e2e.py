"""``callscope generate`` into a running ``callscope run``: what is stored equals what was generated.

Both are real processes. callscope's AMI collector logs in to the AMI peer that
``callscope generate`` serves, its tailers follow the files generate appends to, and its
HEP collector takes the packets; then the stored counts, the legs per state, the queue
sessions per outcome and a multi-leg trace are compared with generate's summary.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.cli_process import Running, start

SECRET = "gen-e2e-5b1d"
GENERATED_AMI = "Newchannel VarSet Newstate DialBegin DialEnd BridgeCreate BridgeEnter BridgeLeave BridgeDestroy Hangup"
QUEUE_AMI = (
    "QueueCallerJoin QueueCallerLeave QueueCallerAbandon AgentCalled AgentConnect AgentComplete AgentRingNoAnswer"
)


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _config(path: Path, ami_port: int, files: Path) -> None:
    path.write_text(
        "topology:\n"
        "  nodes:\n"
        "    - {name: sbc1, role: sbc, address: 10.0.0.10, hep_capture_id: 101}\n"
        "    - {name: proxy1, role: registrar, address: 10.0.0.20, hep_capture_id: 102}\n"
        "    - {name: ast1, role: logic, address: 127.0.0.1, hep_capture_id: 103}\n"
        "collectors:\n"
        "  ami:\n"
        "    connections:\n"
        f"      - {{node: ast1, port: {ami_port}, username: callscope, secret_env: CALLSCOPE_TEST_AMI,"
        " reconnect_backoff_initial_secs: 0.2, reconnect_backoff_max_secs: 1}\n"
        "  queue_log:\n"
        f"    {{enabled: true, path: {files / 'queue_log'}, node: ast1, timezone: UTC, poll_interval_secs: 0.1}}\n"
        "  cdr:\n"
        f"    {{enabled: true, path: {files / 'Master.csv'}, node: ast1, timezone: UTC, poll_interval_secs: 0.1}}\n"
        "  cel:\n"
        f"    {{enabled: true, path: {files / 'cel-custom.csv'}, node: ast1, timezone: UTC, poll_interval_secs: 0.1}}\n"
    )


def _get(run: Running, path: str, **params: Any) -> Any:
    return httpx.get(f"{run.url}{path}", params=params, headers=run.headers(), timeout=30).json()


def _trace(run: Running, call_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = _get(run, f"/api/v1/calls/{call_id}")
    return doc


def _settled(doc: dict[str, Any], example: dict[str, Any]) -> bool:
    """Every leg of the example is in the trace with its final state (and the Asterisk call has ended)."""
    states = {leg["call_id"]: leg["state"] for leg in doc.get("legs", []) + doc.get("linked_legs", [])}
    if states != example["legs"]:
        return False
    if "asterisk_outcome" in example and not all(c["outcome"] for c in doc.get("asterisk_calls", [])):
        return False
    return "queue_outcome" not in example or all(q["outcome"] for q in doc.get("queue_sessions", []))


def _wait(what: str, probe: Any, ok: Any, within: float = 120.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {value!r} after {within}s")
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.e2e
def test_generated_traffic_is_stored_and_correlated_as_summarised(tmp_path: Path) -> None:
    files = tmp_path / "asterisk"
    files.mkdir()
    ami_port = _free_tcp_port()
    config = tmp_path / "callscope.yaml"
    _config(config, ami_port, files)
    run = start(tmp_path / "data", "--config", str(config), env_extra={"CALLSCOPE_TEST_AMI": SECRET})
    try:
        assert run.hep_port is not None
        summary_path = tmp_path / "summary.json"
        gen = subprocess.run(
            [
                sys.executable,
                "-m",
                "callscope.cli",
                "generate",
                "--hep",
                f"127.0.0.1:{run.hep_port}",
                "--ami-listen",
                f"127.0.0.1:{ami_port}",
                "--ami-secret",
                SECRET,
                "--files",
                str(files),
                "--calls",
                "20",
                "--rate",
                "200",
                "--seed",
                "7",
                "--time-scale",
                "0.03",
                "--summary-json",
                str(summary_path),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert gen.returncode == 0, gen.stderr
        assert "\r[" not in gen.stderr  # no progress bar when stderr is not a terminal
        summary = orjson.loads(summary_path.read_bytes())
        expected = summary["kinds"]
        assert summary["events"] >= 300

        def stats() -> dict[str, int]:
            doc = _get(run, "/api/v1/events/stats")
            return {k: v["events"] for k, v in doc["tables"].items()} | {"deadletters": doc["deadletters"]}

        def complete(counts: dict[str, int]) -> bool:
            return all(counts.get(k, 0) >= n for k, n in expected.items())

        counts = _wait("stored events", stats, complete)
        for kind in ("sip", "rtcp", "log", "cdr", "cel", "queue_log"):
            assert counts[kind] == expected[kind], kind
        assert counts["deadletters"] == 0
        # AMI: the generated events, plus what the collector itself asked for at login (resync lists).
        ami = _get(run, "/api/v1/events", kind="ami", limit=10000)["events"]
        generated = [e for e in ami if e["body"]["event"] in (GENERATED_AMI + " " + QUEUE_AMI).split()]
        assert len(generated) == expected["ami"]
        assert len(ami) == counts["ami"]
        extras = [e for e in ami if e["body"]["event"] not in (GENERATED_AMI + " " + QUEUE_AMI).split()]
        assert all(
            e["body"]["event"] == "FullyBooted" or e["body"]["fields"].get("CallscopeResync") == "1" for e in extras
        ), {e["body"]["event"] for e in extras}
        assert all(e["node"] == "ast1" for e in generated)

        # SIP legs per state, once every leg has its final row.
        want_legs = summary["expected"]["leg_states"]

        def legs() -> dict[str, int]:
            return {state: len(_get(run, "/api/v1/calls", state=state, limit=1000)["legs"]) for state in want_legs}

        assert _wait("legs per state", legs, lambda got: got == want_legs, within=60) == want_legs

        # Queue sessions per outcome (queue_log and AMI merged into one session each).
        want_queue = summary["expected"]["queue_outcomes"]

        def sessions() -> dict[str, int]:
            got: dict[str, int] = {}
            for queue in ("sales", "support"):
                for s in _get(run, f"/api/v1/queues/{queue}/sessions", limit=1000).get("sessions", []):
                    if s["outcome"]:
                        got[s["outcome"]] = got.get(s["outcome"], 0) + 1
            return got

        assert _wait("queue sessions", sessions, lambda got: got == want_queue, within=90) == want_queue

        # The first call of each scenario: one trace with every leg (across sbc1, proxy1 and ast1), each
        # in the state the summary expects, and the Asterisk call and queue session it expects.
        examples = summary["examples"]
        assert {"answered", "busy", "cancelled", "queue_answered", "queue_abandoned", "queue_timeout"} <= set(examples)
        for scenario, example in examples.items():
            doc = _wait(scenario, lambda e=example: _trace(run, e["call_id"]), lambda d, e=example: _settled(d, e))
            states = {leg["call_id"]: leg["state"] for leg in doc["legs"] + doc["linked_legs"]}
            assert states == example["legs"], scenario
            nodes = {n for leg in doc["legs"] + doc["linked_legs"] for n in leg["nodes"]}
            if "asterisk_outcome" in example:
                assert {"sbc1", "proxy1", "ast1"} <= nodes, scenario
                assert [c["outcome"] for c in doc["asterisk_calls"]] == [example["asterisk_outcome"]], scenario
            else:
                assert nodes == {"sbc1", "proxy1"}, scenario
            if "queue_outcome" in example:
                assert [q["outcome"] for q in doc["queue_sessions"]] == [example["queue_outcome"]], scenario
            if scenario in ("answered", "queue_answered"):
                assert doc["media_quality"], scenario
                assert doc["logs"], scenario
    finally:
        code = run.stop()
        run.close()
    assert code == 0
