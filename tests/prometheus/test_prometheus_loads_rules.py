"""A real Prometheus 2.42 loads the shipped rule files as they are and evaluates every rule
without error, against a scrape target that serves a fixed exposition.

This needs no callscope: a small HTTP server on an OS-given port serves the series the rules
read. The alert of a trunk reported down turns pending at once (its `for:` has not passed),
the healthy one stays absent. The full path (prober -> health -> /metrics -> Prometheus ->
firing -> resolved) is tests/e2e/test_health_alerts.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.ci import unavailable
from tests.peers import harness
from tests.peers.prometheus import Prometheus, require, start_prometheus
from tests.prometheus.rules import alerts, rule_files, rules

pytestmark = pytest.mark.e2e

EXPOSITION = """\
# HELP callscope_target_state Health state of a target.
# TYPE callscope_target_state gauge
callscope_target_state{target="carrier-a",kind="trunk",state="down"} 1
callscope_target_state{target="carrier-a",kind="trunk",state="up"} 0
callscope_target_state{target="carrier-b",kind="trunk",state="down"} 0
callscope_target_state{target="carrier-b",kind="trunk",state="up"} 1
# HELP callscope_options_up Last OPTIONS result from a node to a target.
# TYPE callscope_options_up gauge
callscope_options_up{node="sbc1",target="carrier-a",kind="trunk"} 0
callscope_options_up{node="sbc1",target="carrier-b",kind="trunk"} 1
# HELP callscope_component_up 1 while a component runs and is connected.
# TYPE callscope_component_up gauge
callscope_component_up{component="options"} 1
"""


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = EXPOSITION.encode()
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def exporter() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, name="exposition", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def prometheus(tmp_path: Path, exporter: str) -> Iterator[Prometheus]:
    try:
        require("prometheus")
        require("promtool")
    except harness.PeerMissing as exc:
        unavailable(str(exc))
    with start_prometheus(tmp_path / "prometheus", targets=[exporter], rule_files=rule_files()) as prom:
        yield prom


def test_prometheus_loads_and_evaluates_every_shipped_rule(prometheus: Prometheus) -> None:
    prometheus.wait_for("the scrape target to be up", lambda: prometheus.targets_health() == ["up"], 30)
    expected = {r.alert or r.record for r in rules()}

    def evaluated() -> bool:
        loaded = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        return {r["name"] for r in loaded} == expected and all(
            r.get("lastEvaluation", "0001").startswith("2") for r in loaded
        )

    try:
        prometheus.wait_for("every rule to be evaluated", evaluated, 30)
    except harness.PeerFailed as exc:
        pytest.fail(f"{exc}\nrules: {prometheus.api('rules')}\n{prometheus.describe()}")
    for group in prometheus.api("rules")["groups"]:
        for rule in group["rules"]:
            assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"

    def pending() -> list[dict[str, Any]]:
        return [a for a in prometheus.alerts() if a["labels"]["alertname"] == "TrunkDownAllNodes"]

    prometheus.wait_for("TrunkDownAllNodes to be pending", lambda: bool(pending()), 30)
    seen = pending()
    assert [a["labels"]["target"] for a in seen] == ["carrier-a"]
    assert seen[0]["state"] == "pending", seen  # `for: 1m` has not passed
    rule_for = alerts()["TrunkDownAllNodes"].for_secs
    assert rule_for >= 30, "the shipped rule was not used as it is"
    annotations = seen[0]["annotations"]
    assert annotations["description"].startswith("Trunk carrier-a does not answer SIP OPTIONS from any callscope node")
    assert "(failing from: sbc1)" in annotations["description"]
    # A healthy component and a healthy trunk raise nothing, not even pending.
    names = {a["labels"]["alertname"] for a in prometheus.alerts()}
    assert names == {"TrunkDownAllNodes"}, names
