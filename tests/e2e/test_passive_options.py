"""Passive OPTIONS end to end: Kamailio's dispatcher keep-alive pings, seen in HEP, become health results.

Kamailio 5.6's dispatcher pings two destinations with OPTIONS every second (``ds_probing_mode 1``):
a sipp UAS answering 200, configured in callscope as the trunk ``trunk-a``, and a UDP port where
nothing listens, configured nowhere. siptrace's ``trace_mode 1`` mirrors every packet Kamailio
sends or receives, the pings it generates itself and their answers included, to ``callscope run``'s
HEP collector as capture id 4242, which the topology maps to the node ``proxy1``. callscope's health
processor turns each OPTIONS transaction into a probe result marked passive, from ``proxy1``.

Read back the way an engineer would: ``GET /api/v1/health``, the stored results through
``GET /api/v1/events?kind=options``, the history, and ``/metrics``. Then the sipp trunk stops
(``proxy1``'s pings time out: down) and starts again on the same port (up again).

callscope also probes ``trunk-a`` actively from its own node (``collector1``): the active and the
passive results of one target meet in one state machine, each vantage point with its own state.

Two further tests hold the timing facts real Kamailio traffic brings (docs/health.md): with the
default stale time a stopped trunk goes from up to down (passive timeouts arrive
passive_timeout_secs after their ping), and a node address IP:PORT ignores only requests to
that port.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.cli_process import Running, start
from tests.e2e.conftest import KAMAILIO_CAPTURE_ID, need_peers
from tests.peers import harness

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRUNK = "trunk-a"
NODE = "proxy1"  # the Kamailio that pings, as callscope knows it (its HEP capture id)
COLLECTOR = "collector1"  # callscope's own node, the active prober's vantage point
PING_INTERVAL_SECS = 1  # dispatcher's ds_ping_interval
PING_FR_TIMER_MS = 1000  # Kamailio gives an unanswered ping up after this (one retransmission at T1 = 500 ms)
PASSIVE_TIMEOUT_SECS = 3.0
FAILURES_TO_DOWN = 2
SUCCESSES_TO_UP = 2
SIPP_CALLS = 1_000_000  # each OPTIONS is one sipp "call"; the UAS must not run out during the test
#: Kamailio, sipp and callscope starting on two shared cores.
START_TIMEOUT_SECS = 40.0
#: A ping that times out is a result PASSIVE_TIMEOUT_SECS after it was sent (plus up to two expiry
#: rounds of 1 s); FAILURES_TO_DOWN of them, one ping a second, and room for a loaded machine.
DOWN_TIMEOUT_SECS = 20.0
UP_TIMEOUT_SECS = 15.0
#: The stale time of the main test. The default (3 x the trunk's active interval + its timeout,
#: 3.5 s here) is shorter than a passive timeout takes to become a result (PASSIVE_TIMEOUT_SECS
#: after the ping, plus up to two expiry rounds): see test_default_stale_time_lets_passive_timeouts_count.
STALE_SECS = 15.0


def start_trunk(workdir: Path, name: str, port: int | None = None) -> harness.Uas:
    """A sipp UAS answering every OPTIONS with 200; on ``port`` when given (a restart), else a free one."""
    return harness.start_uas(harness.SIPP_DIR / "uas_options.xml", workdir, name=name, calls=SIPP_CALLS, port=port)


def callscope_config(path: Path, trunk_uri: str, *, stale_secs: float | None, node_address: str | None) -> Path:
    """Topology with the pinging Kamailio, the trunk as a configured target, short passive timers."""
    proxy: dict[str, Any] = {"name": NODE, "role": "sbc", "hep_capture_id": KAMAILIO_CAPTURE_ID}
    if node_address is not None:
        proxy["address"] = node_address
    health: dict[str, Any] = {
        "passive_timeout_secs": PASSIVE_TIMEOUT_SECS,
        "passive_linger_secs": PASSIVE_TIMEOUT_SECS,
        "failures_to_down": FAILURES_TO_DOWN,
        "successes_to_up": SUCCESSES_TO_UP,
    }
    if stale_secs is not None:
        health["stale_secs"] = stale_secs
    config = {
        "node": COLLECTOR,
        "topology": {"nodes": [proxy]},
        "collectors": {
            "options": {
                # The trunk is probed actively too (every second); the dead destination is not
                # configured, so the prober's defaults judge it (kind other).
                "targets": [
                    {"name": TRUNK, "uri": trunk_uri, "kind": "trunk", "interval_secs": 1, "timeout_secs": 0.5}
                ],
            }
        },
        "processors": {"health": health},
        "store": {"batch_max_age_secs": 0.2},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Scene:
    workdir: Path
    trunk: harness.Uas
    dead: str  # host:port where nothing listens, the name it gets in callscope
    kamailio: harness.Kamailio
    callscope: Running
    stack: ExitStack

    def get(self, path: str, **params: Any) -> Any:
        resp = httpx.get(f"{self.callscope.url}{path}", params=params, headers=self.callscope.headers(), timeout=10)
        assert resp.status_code == 200, f"GET {path}: {resp.status_code} {resp.text}"
        return resp.json()

    def targets(self) -> dict[str, dict[str, Any]]:
        """``GET /api/v1/health``'s targets by name."""
        return {t["name"]: t for t in self.get("/api/v1/health", limit=1000)["targets"]}

    def view(self, target: str, node: str = NODE) -> dict[str, Any] | None:
        """One vantage point of a target in ``GET /api/v1/health``."""
        found = self.targets().get(target)
        for point in found["vantage_points"] if found else []:
            if point["node"] == node:
                result: dict[str, Any] = point
                return result
        return None

    def state(self, target: str, node: str = NODE) -> str | None:
        view = self.view(target, node)
        return None if view is None else str(view["state"])

    def history(self, target: str, node: str = NODE) -> list[dict[str, Any]]:
        """The vantage point's transitions, newest first."""
        page = self.get(f"/api/v1/health/{target}/history", scope="node", node=node, limit=1000)
        transitions: list[dict[str, Any]] = page["transitions"]
        return transitions

    def story(self, since: float, target: str = TRUNK, node: str = NODE) -> list[tuple[str, str]]:
        """(from, to) of the vantage point's transitions at or after ``since`` (epoch seconds), oldest first.

        A transition's time is the time of the result that caused it: for a passive result, when the
        ping was sent.
        """
        return [
            (t["from_state"], t["to_state"])
            for t in reversed(self.history(target, node))
            if datetime.fromisoformat(t["at"].replace("Z", "+00:00")).timestamp() >= since
        ]

    def results(self, target: str, node: str = NODE) -> list[dict[str, Any]]:
        """Stored probe results of ``target`` from ``node`` (``options_probes``), oldest first."""
        page = self.get("/api/v1/events", kind="options", key=target, node=node, limit=10000)
        events: list[dict[str, Any]] = page["events"]
        return events

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """``/metrics`` parsed: (sample name, labels) -> value."""
        text = httpx.get(f"{self.callscope.url}/metrics", timeout=10).text
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def diagnose(self) -> str:
        health: object
        history: object
        try:
            health = self.get("/api/v1/health", limit=1000)
            history = self.history(TRUNK)
        except (AssertionError, httpx.HTTPError) as exc:
            health = history = f"(no answer: {exc})"
        return (
            f"health: {health}\n"
            f"proxy1's {TRUNK} history: {history}\n"
            f"callscope stderr:\n{self.callscope.stderr[-3000:]}\n"
            f"--- {self.kamailio.process.describe()}"
        )

    def wait(
        self, what: str, check: Callable[[], bool], timeout: float, *, broken: Callable[[], str | None] | None = None
    ) -> float:
        """Poll ``check`` until true; the seconds it took.

        Fails with the API's view when it never is, or as soon as ``broken`` says why it never will.
        """
        started = time.monotonic()
        deadline = started + timeout
        while not check():
            why = broken() if broken is not None else None
            if why is not None:
                pytest.fail(f"while waiting for {what}: {why}\n{self.diagnose()}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{self.diagnose()}")
            time.sleep(0.2)
        return time.monotonic() - started

    def settle(self, timeout: float = START_TIMEOUT_SECS) -> float:
        """Wait for proxy1's pings to give both destinations a verdict: the trunk up, the dead port down."""

        def settled() -> bool:
            return self.state(TRUNK) == "up" and self.state(self.dead) == "down"

        return self.wait("proxy1's passive view: trunk up, dead port down", settled, timeout)


SceneFactory = Callable[..., Scene]


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


@pytest.fixture
def make_scene(tmp_path: Path) -> Iterator[SceneFactory]:
    """Start the trunk, callscope and the pinging Kamailio; everything is stopped after the test.

    ``stale_secs``: ``processors.health.stale_secs`` (None: the default). ``node_address``:
    give proxy1 its topology address, Kamailio's IP:PORT.
    """
    need_peers("kamailio", "sipp")
    runs: list[Running] = []
    with ExitStack() as stack:

        def make(*, stale_secs: float | None = STALE_SECS, node_address: bool = False) -> Scene:
            trunk = start_trunk(tmp_path / "sipp", "trunk-a")
            stack.callback(trunk.stop)
            dead_port = harness.free_udp_port()
            sip_port = harness.free_udp_port() if node_address else None
            config = callscope_config(
                tmp_path / "callscope.yaml",
                f"sip:{trunk.hostport}",
                stale_secs=stale_secs,
                node_address=f"{harness.LOOPBACK}:{sip_port}" if sip_port is not None else None,
            )
            # callscope first: Kamailio's configuration needs its HEP port (from the banner).
            run = start(tmp_path / "callscope" / "data", "--config", str(config), "--hep-listen", "127.0.0.1:0")
            stack.callback(run.close)
            runs.append(run)
            assert run.hep_port is not None, run.stdout_lines
            kamailio = harness.start_kamailio_dispatcher(
                tmp_path / "kamailio",
                hep_port=run.hep_port,
                capture_id=KAMAILIO_CAPTURE_ID,
                destinations=[f"sip:{trunk.hostport}", f"sip:{harness.LOOPBACK}:{dead_port}"],
                ping_interval_secs=PING_INTERVAL_SECS,
                fr_timer_ms=PING_FR_TIMER_MS,
                sip_port=sip_port,
            )
            stack.callback(kamailio.stop)
            return Scene(tmp_path, trunk, f"{harness.LOOPBACK}:{dead_port}", kamailio, run, stack)

        yield make
        # callscope stops cleanly after all this.
        for run in runs:
            code = run.stop(signal.SIGTERM)
            assert code == 0, f"callscope run exited {code}: {run.stderr[-3000:]}"
            assert "Traceback" not in run.stderr, run.stderr[-5000:]


def test_dispatcher_pings_become_passive_results_from_the_proxy(make_scene: SceneFactory) -> None:
    scene = make_scene()
    started = time.monotonic()
    timings: dict[str, float] = {}

    # 1. Both destinations get a verdict from proxy1's pings: the trunk up, the dead port down.
    timings["settled"] = scene.settle()
    targets = scene.targets()

    trunk = targets[TRUNK]
    assert (trunk["kind"], trunk["configured"]) == ("trunk", True), trunk
    points = {p["node"]: p for p in trunk["vantage_points"]}
    assert set(points) == {NODE, COLLECTOR}, trunk
    seen = points[NODE]
    assert seen["passive"] is True, seen
    assert (seen["state"], seen["last_status"], seen["last_error"], seen["stale"]) == ("up", 200, None, False), seen
    assert seen["last_rtt_ms"] is not None, seen
    assert 0 <= seen["last_rtt_ms"] < 1000, seen
    # The active prober's own view of the same trunk: not passive.
    assert points[COLLECTOR]["passive"] is False, points[COLLECTOR]

    dead = targets[scene.dead]
    assert (dead["kind"], dead["configured"], dead["state"]) == ("other", False, "down"), dead
    assert [p["node"] for p in dead["vantage_points"]] == [NODE], dead
    dead_seen = dead["vantage_points"][0]
    assert dead_seen["passive"] is True, dead_seen
    assert (dead_seen["last_error"], dead_seen["last_status"], dead_seen["last_rtt_ms"]) == ("timeout", None, None)

    # 2. The stored results: one per ping, passive, from proxy1, with what Kamailio sent.
    answered = scene.results(TRUNK)
    assert answered, "no passive result of the trunk stored"
    for event in answered:
        body = event["body"]
        assert (event["node"], event["key"], body["passive"], body["target_kind"]) == (NODE, TRUNK, True, "trunk")
        assert (body["status"], body["error"], body["transport"]) == (200, None, "udp"), event
        assert body["remote"] == scene.trunk.hostport, event
        assert body["uri"] == f"sip:{scene.trunk.hostport}", event
        assert body["rtt_ms"] is not None, event
        assert body["rtt_ms"] >= 0, event
    timeouts = scene.results(scene.dead)
    assert len(timeouts) >= FAILURES_TO_DOWN, timeouts
    for event in timeouts:
        body = event["body"]
        assert (body["passive"], body["target_kind"], body["error"], body["status"]) == (True, "other", "timeout", None)
        assert body["remote"] == scene.dead, event
    # Kamailio retransmits an unanswered ping (T1 = 500 ms) before its fr_timer gives up: the copies
    # are one transaction, so one result counting both sends, and one result per ping.
    assert max(e["body"]["attempts"] for e in timeouts) >= 2, timeouts
    assert len({e["ts"] for e in timeouts}) == len(timeouts), timeouts

    # 3. /metrics: the passive vantage point's gauges and counters.
    metrics = scene.metrics()
    assert metrics[("callscope_options_up", labels(node=NODE, target=TRUNK, kind="trunk"))] == 1.0
    assert metrics[("callscope_options_up", labels(node=NODE, target=scene.dead, kind="other"))] == 0.0
    assert metrics[("callscope_options_probes_total", labels(node=NODE, target=TRUNK, result="ok"))] >= 1
    assert metrics[("callscope_options_probes_total", labels(node=NODE, target=scene.dead, result="timeout"))] >= 2
    assert metrics[("callscope_options_rtt_seconds_count", labels(node=NODE, target=TRUNK, kind="trunk"))] >= 1
    assert metrics[("callscope_target_state", labels(target=scene.dead, kind="other", state="down"))] == 1.0

    # 4. The trunk stops answering: proxy1's pings time out and it turns down from proxy1. Judged by
    #    the transitions caused by pings sent since (a ping in flight at the stop may be lost too).
    stopped = time.monotonic()
    since_stop = time.time() - PING_INTERVAL_SECS
    scene.trunk.stop()

    def down_since_stop() -> bool:
        return ("up", "down") in scene.story(since_stop)

    timings["down"] = scene.wait("trunk-a down from proxy1", down_since_stop, DOWN_TIMEOUT_SECS)
    seen = scene.view(TRUNK)
    assert seen is not None
    assert (seen["passive"], seen["last_error"], seen["last_status"]) == (True, "timeout", None), seen
    metrics = scene.metrics()
    assert metrics[("callscope_options_up", labels(node=NODE, target=TRUNK, kind="trunk"))] == 0.0
    assert metrics[("callscope_options_probes_total", labels(node=NODE, target=TRUNK, result="timeout"))] >= 2
    down = scene.history(TRUNK)[0]
    assert (down["from_state"], down["to_state"], down["passive"], down["error"]) == ("up", "down", True, "timeout")

    # 5. The trunk answers again on the same port: up again from proxy1, on Kamailio's next pings.
    since_restart = time.time()
    restarted = start_trunk(scene.workdir / "sipp", "trunk-a-restarted", port=scene.trunk.port)
    scene.stack.callback(restarted.stop)

    def up_since_restart() -> bool:
        return ("down", "up") in scene.story(since_restart)

    timings["up"] = scene.wait("trunk-a up again from proxy1", up_since_restart, UP_TIMEOUT_SECS)
    seen = scene.view(TRUNK)
    assert seen is not None
    assert (seen["passive"], seen["last_status"], seen["last_error"]) == (True, 200, None), seen
    assert scene.metrics()[("callscope_options_up", labels(node=NODE, target=TRUNK, kind="trunk"))] == 1.0
    # proxy1's story of the trunk since the stop, in order and nothing else (never stale in between).
    history = scene.history(TRUNK)
    assert scene.story(since_stop) == [("up", "down"), ("down", "up")], history
    assert history[-1]["from_state"] == "unknown", history  # and it began with passive results only
    assert all(t["passive"] for t in history), history
    # The dead destination stays down throughout.
    assert scene.targets()[scene.dead]["state"] == "down"
    timings["stopped_to_up"] = time.monotonic() - stopped
    timings["total"] = time.monotonic() - started
    print(f"passive OPTIONS e2e timings (s): {', '.join(f'{k} {v:.1f}' for k, v in timings.items())}")


def test_default_stale_time_lets_passive_timeouts_count(make_scene: SceneFactory) -> None:
    """With the default stale time, proxy1's view of a stopped trunk goes from up to down, not via unknown."""
    scene = make_scene(stale_secs=None)
    scene.settle()
    since_stop = time.time() - PING_INTERVAL_SECS
    scene.trunk.stop()

    def went_stale() -> str | None:
        story = scene.story(since_stop)
        return f"proxy1's view went stale before down: {story}" if ("up", "unknown") in story else None

    scene.wait(
        "trunk-a down from proxy1",
        lambda: ("up", "down") in scene.story(since_stop),
        DOWN_TIMEOUT_SECS,
        broken=went_stale,
    )
    assert scene.story(since_stop) == [("up", "down")]


def test_node_address_with_port_ignores_only_requests_to_that_port(make_scene: SceneFactory) -> None:
    """proxy1's address IP:PORT: pings to other ports of that IP count; OPTIONS sent to Kamailio do not."""
    scene = make_scene(node_address=True)
    # One ping a second: both verdicts within seconds when the pings are not dropped.
    scene.settle(timeout=15)
    # The harness's readiness OPTIONS to Kamailio itself (mirrored too) are someone probing proxy1.
    assert scene.kamailio.hostport not in scene.targets()
