"""``callscope probe`` and ``callscope run --probe`` as a user runs them (subprocesses)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from tests.cli_process import CLI, start
from tests.options.conftest import Certs, closed_port
from tests.options.responder import Behaviour, SipResponder

LINE = re.compile(r'^(\d+): 200 OK  rtt (\d+\.\d{3}) ms  server "test-responder/1\.0"  \[127\.0\.0\.1:\d+\]$')


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False)


def test_help_lists_probe_and_run_options() -> None:
    assert "probe" in _cli("--help").stdout
    help_text = _cli("probe", "--help").stdout
    for flag in ("--count", "--interval-secs", "--timeout-secs", "--transport", "--expect", "--no-verify", "--json"):
        assert flag in help_text
    run_help = _cli("run", "--help").stdout
    assert "--probe NAME=URI" in run_help
    assert "--probe-interval-secs" in run_help


def test_probe_prints_one_line_per_answer_and_exits_0(responder: SipResponder) -> None:
    proc = _cli("probe", f"sip:127.0.0.1:{responder.udp_port}", "--count", "3", "--interval-secs", "0.05")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"OPTIONS sip:127.0.0.1:{responder.udp_port} over udp")
    probes = [LINE.match(line) for line in lines[1:4]]
    assert all(probes), lines
    assert [m.group(1) for m in probes if m] == ["1", "2", "3"]
    assert lines[4].startswith("--- 3 probes, 3 reachable, 0 failed; rtt min/median/max ")
    assert len(responder.requests) == 3
    assert [r.header("CSeq") for r in responder.requests] == ["1 OPTIONS", "2 OPTIONS", "3 OPTIONS"]


def test_probe_json_and_tcp(responder: SipResponder) -> None:
    proc = _cli("probe", f"127.0.0.1:{responder.tcp_port}", "--transport", "tcp", "--json", "-n", "2")
    assert proc.returncode == 0, proc.stderr
    docs = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert [d["seq"] for d in docs] == [1, 2]
    assert all(d["status"] == 200 and d["reachable"] and d["transport"] == "tcp" for d in docs)
    assert all(d["rtt_ms"] > 0 and d["server"] == "test-responder/1.0" for d in docs)


def test_probe_exits_1_when_a_probe_fails(responder: SipResponder) -> None:
    responder.behaviour = Behaviour(code=404, reason="Not Found")
    proc = _cli("probe", f"sip:127.0.0.1:{responder.udp_port}")
    assert proc.returncode == 1
    assert "1: 404 Not Found" in proc.stdout
    assert "unexpected_code" in proc.stdout
    assert _cli("probe", f"sip:127.0.0.1:{responder.udp_port}", "--expect", "200", "404").returncode == 0
    refused = _cli("probe", f"sip:127.0.0.1:{closed_port()}", "--timeout-secs", "2")
    assert refused.returncode == 1
    assert "1: refused  ICMP port unreachable" in refused.stdout
    silent = _cli("probe", "sip:127.0.0.1:9", "--transport", "tcp", "--timeout-secs", "1")
    assert silent.returncode == 1


def test_probe_over_tls(certs: Certs, make_responder: Callable[..., SipResponder]) -> None:
    r = make_responder(certs.server_context())
    trusted = _cli("probe", f"sips:127.0.0.1:{r.tls_port}", "--ca-file", str(certs.ca))
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    untrusted = _cli("probe", f"sips:127.0.0.1:{r.tls_port}")  # the system's CAs do not know the test CA
    assert untrusted.returncode == 1
    assert "1: tls  certificate" in untrusted.stdout
    assert _cli("probe", f"sips:127.0.0.1:{r.tls_port}", "--no-verify").returncode == 0


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["http://example.com"], "URI"),
        (["sip:[::1"], "URI"),
        (["sips:10.0.0.1", "--transport", "udp"], "URI"),
        (["sip:10.0.0.1", "--count", "0"], "--count"),
        (["sip:10.0.0.1", "--timeout-secs", "0"], "--timeout-secs"),
        (["sip:10.0.0.1", "--interval-secs", "-1"], "--interval-secs"),
        (["sip:10.0.0.1", "--expect", "2000"], "--expect"),
        (["sips:10.0.0.1", "--ca-file", "/nonexistent/ca.pem"], "--ca-file"),
    ],
)
def test_probe_bad_options_exit_2_naming_the_option(args: list[str], option: str) -> None:
    proc = _cli("probe", *args)
    assert proc.returncode == 2, proc.stdout
    assert f"config error: {option}: " in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--probe", "no-equals-sign"], "expected NAME=URI"),
        (["--probe", "=sip:10.0.0.1"], "expected NAME=URI"),
        (["--probe", "a=http://x"], "not a sip:/sips: URI"),
        (["--probe", "bad name=sip:10.0.0.1"], "String should match pattern"),
        (["--probe", "a=sip:10.0.0.1", "--probe", "a=sip:10.0.0.2"], "already used"),
        (["--probe", "configured=sip:10.0.0.2"], "already used"),
        (["--probe", "a=sip:10.0.0.1", "--probe-interval-secs", "0"], "--probe-interval-secs"),
        (["--probe", "a=sip:10.0.0.1", "--role", "processor"], "role processor"),
    ],
)
def test_run_probe_bad_values_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("collectors:\n  options:\n    targets:\n      - {name: configured, uri: 'sip:10.0.0.9'}\n")
    proc = _cli("run", "--data-dir", str(tmp_path / "d"), "--config", str(config), *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "config error: --probe" in proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "d").exists()  # refused before anything started


@pytest.mark.e2e
def test_run_probe_targets_are_probed_and_stored(tmp_path: Path, responder: SipResponder) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"collectors:\n  options:\n    targets:\n      - {{name: pbx-1, uri: 'sip:127.0.0.1:{responder.udp_port}',"
        " kind: node, interval_secs: 0.5}\nstore:\n  batch_max_age_secs: 0.2\n"
    )
    run = start(
        tmp_path / "data",
        "--config",
        str(config),
        "--probe",
        f"carrier-a=sip:127.0.0.1:{responder.udp_port}",
        "--probe",
        f"carrier-b=127.0.0.1:{responder.tcp_port};transport=tcp",
        "--probe-interval-secs",
        "0.5",
    )
    try:
        banner = "".join(run.stdout_lines)
        assert "options: 3 targets (1 tcp, 2 udp), every 0.5s" in banner
        missing = {"pbx-1", "carrier-a", "carrier-b"}
        deadline = time.monotonic() + 60
        while missing and time.monotonic() < deadline:
            for name in sorted(missing):
                page = httpx.get(
                    f"{run.url}/api/v1/events",
                    params={"kind": "options", "key": name, "limit": 5},
                    headers=run.headers(),
                    timeout=10,
                )
                assert page.status_code == 200, page.text
                for event in page.json()["events"]:
                    assert event["node"] == "local"
                    assert event["body"]["target"] == name
                    assert (event["body"]["error"], event["body"]["status"]) == (None, 200), event
                    missing.discard(name)
            time.sleep(0.1)
        assert not missing, run.stderr[-3000:]
        metrics = httpx.get(f"{run.url}/metrics", timeout=10).text
        assert 'callscope_component_up{component="options"} 1.0' in metrics
        assert run.stop() == 0
    finally:
        run.close()
