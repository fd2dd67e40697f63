"""Trunk-down alerting end to end, with real software only.

Two sipp UASes play trunks answering OPTIONS, Kamailio is a cluster node answering OPTIONS
itself, and one trunk points at a port where nothing listens. ``callscope run`` probes all four
(collectors.options) and turns the results into health states (processors.health) on its
``/metrics``; a real Prometheus scrapes it every second and evaluates the repository's rule
files unchanged. Stopping one sipp trunk must bring ``TrunkDownAllNodes`` for it to ``firing``
on Prometheus's ``/api/v1/alerts`` within the rule's own ``for:`` (read from the rule file) plus
the detection time; starting it again on the same port must resolve it.

Only the test's configuration is shortened (probe interval 0.5 s, scrape and rule evaluation
every second, two failures to down): the shipped rules are used as they are.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.ci import unavailable
from tests.cli_process import Running, start
from tests.e2e.conftest import need_peers
from tests.peers import harness
from tests.peers.prometheus import Prometheus, promtool, require, start_prometheus
from tests.prometheus.rules import alerts, rule_files

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ALERT = "TrunkDownAllNodes"
PROBE_INTERVAL_SECS = 0.5
PROBE_TIMEOUT_SECS = 0.4
FAILURES_TO_DOWN = 2
SUCCESSES_TO_UP = 2
#: Stopping a trunk to the alert becoming active: FAILURES_TO_DOWN probe rounds, a scrape and an
#: evaluation (1 s each), with room for a loaded machine.
DETECTION_SECS = 15.0
SIPP_CALLS = 1_000_000  # each OPTIONS is one sipp "call"; the UAS must not run out during the test
OPTIONS_SCENARIO = harness.SIPP_DIR / "uas_options.xml"
#: sipp logs, Kamailio, callscope and Prometheus all starting on two shared cores.
START_TIMEOUT_SECS = 60.0


def need_prometheus() -> None:
    try:
        require("prometheus")
        require("promtool")
    except harness.PeerMissing as exc:
        unavailable(str(exc))


def start_trunk(workdir: Path, name: str, port: int | None = None) -> harness.Uas:
    """A sipp UAS answering every OPTIONS with 200; on ``port`` when given (a restart), else a free one."""
    return harness.start_uas(OPTIONS_SCENARIO, workdir, name=name, calls=SIPP_CALLS, port=port)


def callscope_config(path: Path, targets: dict[str, tuple[str, str]]) -> Path:
    """The test's configuration: fast probes and small health thresholds; ``targets`` name -> (uri, kind)."""
    config = {
        "node": "probe1",
        "collectors": {
            "options": {
                "interval_secs": PROBE_INTERVAL_SECS,
                "timeout_secs": PROBE_TIMEOUT_SECS,
                "t1_ms": 100,
                "t2_ms": 400,
                "targets": [{"name": name, "uri": uri, "kind": kind} for name, (uri, kind) in targets.items()],
            }
        },
        "processors": {
            "health": {
                "failures_to_down": FAILURES_TO_DOWN,
                "successes_to_up": SUCCESSES_TO_UP,
                # a late probe on a busy machine must not turn a pair unknown (and reset a pending alert)
                "stale_secs": 10,
            }
        },
        "store": {"batch_max_age_secs": 0.2},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Scene:
    workdir: Path
    trunk_a: harness.Uas
    trunk_b: harness.Uas
    kamailio: harness.Kamailio
    callscope: Running
    prometheus: Prometheus
    stack: ExitStack

    def states(self) -> dict[str, str]:
        """Each target's state as Prometheus scraped it (``callscope_target_state == 1``)."""
        return {
            s["metric"]["target"]: s["metric"]["state"] for s in self.prometheus.query("callscope_target_state == 1")
        }

    def alerts(self, target: str | None = None) -> list[dict[str, Any]]:
        found = self.prometheus.alerts()
        return [a for a in found if target is None or a["labels"].get("target") == target]

    def diagnose(self) -> str:
        parts = [
            f"alerts: {self.prometheus.alerts()}",
            f"target states: {self.states()}",
            f"callscope stderr:\n{self.callscope.stderr[-3000:]}",
            f"--- prometheus ---\n{self.prometheus.describe()}",
        ]
        return "\n".join(parts)

    def api_target(self, name: str) -> dict[str, Any] | None:
        """The target in callscope's own ``GET /api/v1/health`` (the runbook's first check)."""
        resp = httpx.get(f"{self.callscope.url}/api/v1/health", headers=self.callscope.headers(), timeout=10)
        assert resp.status_code == 200, resp.text
        for target in resp.json()["targets"]:
            if target["name"] == name:
                found: dict[str, Any] = target
                return found
        return None

    def api_state(self, name: str) -> str | None:
        target = self.api_target(name)
        return None if target is None else str(target["state"])

    def wait(self, what: str, check: Any, timeout: float) -> float:
        try:
            return self.prometheus.wait_for(what, check, timeout)
        except harness.PeerFailed as exc:
            pytest.fail(f"{exc}\n{self.diagnose()}")


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    need_peers("sipp", "kamailio")
    need_prometheus()
    with ExitStack() as stack:
        sipp_dir = tmp_path / "sipp"
        trunk_a = start_trunk(sipp_dir, "trunk-a")
        stack.callback(trunk_a.stop)
        trunk_b = start_trunk(sipp_dir, "trunk-b")
        stack.callback(trunk_b.stop)
        sink = harness.HepSink.open()  # Kamailio mirrors its traffic somewhere harmless
        stack.callback(sink.close)
        kamailio = harness.start_kamailio(tmp_path / "kamailio", hep_port=sink.port, capture_id=4242)
        stack.callback(kamailio.stop)
        config = callscope_config(
            tmp_path / "callscope.yaml",
            {
                "trunk-a": (f"sip:{trunk_a.hostport}", "trunk"),
                "trunk-b": (f"sip:{trunk_b.hostport}", "trunk"),
                "proxy1": (f"sip:{kamailio.hostport}", "node"),
                "trunk-dead": (f"sip:127.0.0.1:{harness.free_udp_port()}", "trunk"),
            },
        )
        run = start(tmp_path / "callscope" / "data", "--config", str(config))
        stack.callback(run.close)
        prometheus = start_prometheus(
            tmp_path / "prometheus", targets=[run.url.removeprefix("http://")], rule_files=rule_files()
        )
        stack.callback(prometheus.stop)
        yield Scene(tmp_path, trunk_a, trunk_b, kamailio, run, prometheus, stack)
        # callscope must stop cleanly after all this.
        code = run.stop(signal.SIGTERM)
        assert code == 0, f"callscope run exited {code}: {run.stderr[-3000:]}"
        assert "Traceback" not in run.stderr, run.stderr[-5000:]


def active_since(alert: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(alert["activeAt"]).replace("Z", "+00:00")).timestamp()


def test_trunk_down_alert_fires_and_resolves_in_a_real_prometheus(scene: Scene) -> None:
    rule = alerts()[ALERT]
    started = time.monotonic()
    timings: dict[str, float] = {}

    # 1. Every target reaches its state, as Prometheus sees it: the two trunks and Kamailio up,
    #    the port where nothing listens down.
    expected = {"trunk-a": "up", "trunk-b": "up", "proxy1": "up", "trunk-dead": "down"}
    timings["states"] = scene.wait(f"target states {expected}", lambda: scene.states() == expected, START_TIMEOUT_SECS)
    assert scene.alerts("trunk-a") == []
    assert scene.alerts("trunk-b") == []
    assert scene.alerts("proxy1") == []
    # Exactly one state is 1 per target (the contract the rules rely on).
    per_target = scene.prometheus.query("sum by (target) (callscope_target_state)")
    assert {s["metric"]["target"]: s["value"][1] for s in per_target} == dict.fromkeys(expected, "1")
    # The real /metrics, with every health series in it, is well-formed for Prometheus.
    exposition = httpx.get(f"{scene.callscope.url}/metrics", timeout=10).content
    check = promtool("check", "metrics", stdin=exposition)
    assert check.returncode == 0, check.describe()

    # 2. Trunk A stops answering: the page reaches `firing` within its own `for:` plus detection.
    stopped_wall = time.time()
    stopped = time.monotonic()
    scene.trunk_a.stop()

    def firing() -> dict[str, Any] | None:
        for alert in scene.alerts("trunk-a"):
            if alert["labels"]["alertname"] == ALERT and alert["state"] == "firing":
                return alert
        return None

    seen_pending: list[dict[str, Any]] = []

    def fired() -> bool:
        seen_pending.extend(
            a for a in scene.alerts("trunk-a") if a["labels"]["alertname"] == ALERT and a["state"] == "pending"
        )
        return firing() is not None

    deadline = rule.for_secs + DETECTION_SECS
    timings["firing"] = scene.wait(f"{ALERT} for trunk-a to fire within {deadline:.0f} s", fired, deadline)
    alert = firing()
    assert alert is not None
    assert alert["labels"] == {
        "alertname": ALERT,
        "severity": "page",
        "target": "trunk-a",
        "kind": "trunk",
        "state": "down",
        "instance": scene.callscope.url.removeprefix("http://"),
        "job": "callscope",
    }
    assert "(failing from: probe1)" in alert["annotations"]["description"], alert
    assert alert["annotations"]["runbook_url"].endswith("#trunkdownallnodes")
    # It was pending first, became active only after the trunk stopped, and fired no sooner than `for:`.
    assert seen_pending, "the alert was never seen pending: was `for:` honoured?"
    assert active_since(alert) >= stopped_wall - 1, alert
    assert time.time() - active_since(alert) >= rule.for_secs - 1, alert
    assert time.monotonic() - stopped >= rule.for_secs
    # The other trunk and the node raise nothing; the dead trunk pages too; no partial alert
    # (one vantage point: down from it is down from all).
    assert scene.alerts("trunk-b") == [], scene.diagnose()
    assert scene.alerts("proxy1") == [], scene.diagnose()
    assert {a["labels"]["alertname"] for a in scene.alerts("trunk-a")} == {ALERT}
    dead = scene.alerts("trunk-dead")
    assert [(a["labels"]["alertname"], a["state"]) for a in dead] == [(ALERT, "firing")], dead
    # What the runbook tells on-call to look at first agrees: the API shows it down, from probe1,
    # with the error class, and its history holds the transition.
    scene.wait("the API to show trunk-a down", lambda: scene.api_state("trunk-a") == "down", 10)
    target = scene.api_target("trunk-a")
    assert target is not None
    points = {p["node"]: p for p in target["vantage_points"]}
    assert set(points) == {"probe1"}, target
    assert points["probe1"]["state"] == "down", target
    assert points["probe1"]["last_error"] in {"timeout", "refused"}, target
    history = httpx.get(
        f"{scene.callscope.url}/api/v1/health/trunk-a/history", headers=scene.callscope.headers(), timeout=10
    )
    assert history.status_code == 200, history.text
    assert "down" in [t["to_state"] for t in history.json()["transitions"]], history.text

    # 3. Trunk A answers again on the same port: the alert resolves (leaves /api/v1/alerts).
    restarted = start_trunk(scene.workdir / "sipp", "trunk-a-restarted", port=scene.trunk_a.port)
    scene.stack.callback(restarted.stop)
    timings["resolved"] = scene.wait(f"{ALERT} for trunk-a to resolve", lambda: scene.alerts("trunk-a") == [], 30)
    assert scene.states()["trunk-a"] == "up"
    scene.wait("the API to show trunk-a up again", lambda: scene.api_state("trunk-a") == "up", 10)
    dead = scene.alerts("trunk-dead")
    assert [(a["labels"]["alertname"], a["state"]) for a in dead] == [(ALERT, "firing")], dead
    timings["total"] = time.monotonic() - started
    print(f"alert e2e timings (s): {', '.join(f'{k} {v:.1f}' for k, v in timings.items())}")
