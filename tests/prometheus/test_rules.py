"""The alert rules in dashboards/prometheus as code: promtool accepts them, their unit tests pass,
every alert is complete (severity, summary, description, runbook), tested firing and not
firing, and documented; the metrics callscope exports pass ``promtool check metrics`` and
include every family the rules read.

promtool comes from Debian's ``prometheus`` package (tests/system-deps.sh): without it these
tests skip, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from callscope.telemetry import Telemetry
from collectors.hep.collector import packets_counter
from tests.ci import unavailable
from tests.cli_process import Running, start
from tests.peers import harness
from tests.peers.prometheus import promtool, require
from tests.prometheus.rules import (
    RULES_DIR,
    RUNBOOK,
    RUNBOOK_URL,
    SEVERITIES,
    Rule,
    alerts,
    load,
    metric_names,
    rule_files,
    rules,
    runbook_anchors,
    unit_test_files,
)

RULE_FILES = rule_files()
TEST_FILES = unit_test_files()
ALERTS = alerts()
#: Runbook sections that are not about one alert.
RUNBOOK_PREAMBLE = {"before-you-start"}


@pytest.fixture(scope="module", autouse=True)
def need_promtool() -> None:
    try:
        require("promtool")
    except harness.PeerMissing as exc:
        unavailable(str(exc))


def test_the_rules_and_their_tests_are_there() -> None:
    assert {p.name for p in RULE_FILES} >= {"health.rules.yml", "pipeline.rules.yml", "traffic.rules.yml"}
    assert TEST_FILES, "no promtool test files under dashboards/prometheus/tests"
    assert set(ALERTS) >= {
        "TrunkDownAllNodes",
        "TrunkDownSomeNodes",
        "TrunkFlapping",
        "TrunkSlow",
        "NodeUnreachable",
        "CollectorSilent",
        "HepIntakeStalled",
        "TrunkAsrDrop",
    }


# --------------------------------------------------------------------------- promtool


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path) -> None:
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.describe()
    expected = len(rules([path]))
    assert f"SUCCESS: {expected} rules found" in result.output, result.describe()


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(path: Path) -> None:
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.describe()
    assert "SUCCESS" in result.output, result.describe()
    assert "FAILED" not in result.output, result.describe()


def test_promtool_test_rules_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests can fail: the shipped rule, a test that expects it to fire too early."""
    wrong = {
        "rule_files": [str(RULES_DIR / "health.rules.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'callscope_target_state{target="t", kind="trunk", state="down"}',
                        "values": "1x5",
                    }
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "0m",  # `for: 1m` has not passed yet
                        "alertname": "TrunkDownAllNodes",
                        "exp_alerts": [{"exp_labels": {"severity": "page", "target": "t", "kind": "trunk"}}],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "wrong.test.yml"
    path.write_text(yaml.safe_dump(wrong))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 1, result.describe()
    assert "FAILED" in result.output, result.describe()


def test_every_rule_file_is_unit_tested() -> None:
    tested: set[Path] = set()
    for path in TEST_FILES:
        tested.update((path.parent / name).resolve() for name in load(path).get("rule_files", []))
    assert {p.resolve() for p in RULE_FILES} <= tested


# --------------------------------------------------------------------------- completeness


def test_alert_and_record_names_are_unique_and_conventional() -> None:
    everything = rules()
    names = [r.alert or r.record for r in everything]
    assert len(names) == len(set(names)), names
    for rule in everything:
        if rule.record is not None:
            # level:metric:operations (https://prometheus.io/docs/practices/rules/)
            assert re.fullmatch(r"[a-z_]+:callscope_[a-z0-9_]+:[a-z0-9_]+", rule.record), rule.record
        else:
            assert rule.alert is not None
            assert re.fullmatch(r"[A-Z][A-Za-z]+", rule.alert), rule.alert


def test_groups_leave_the_evaluation_interval_to_the_server() -> None:
    """No group pins its own `interval`: the end-to-end test shortens it in its own configuration."""
    for path in RULE_FILES:
        for group in load(path)["groups"]:
            assert "interval" not in group, f"{path.name}: group {group['name']} sets interval"


@pytest.mark.parametrize("rule", list(ALERTS.values()), ids=lambda r: r.alert)
def test_alert_has_severity_summary_description_and_runbook(rule: Rule) -> None:
    assert rule.alert is not None
    # The only label an alert adds is its severity; the rest come from bounded series labels.
    assert set(rule.labels) == {"severity"}, rule.labels
    assert rule.labels["severity"] in SEVERITIES
    annotations = rule.annotations
    assert set(annotations) >= {"summary", "description", "runbook_url"}
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert annotations["runbook_url"] == f"{RUNBOOK_URL}#{rule.alert.lower()}"
    assert 0 < rule.for_secs <= 3600, f"{rule.alert}: for {rule.for_secs} s"
    # The summary names the thing that is broken.
    assert re.search(r"\$labels\.(target|trunk|node|component|instance)", annotations["summary"]), annotations


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in load(path).get("tests", []):
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(ALERTS) - firing == set(), "alerts never shown firing"
    assert set(ALERTS) - quiet == set(), "alerts never shown not firing"
    assert (firing | quiet) - set(ALERTS) == set(), "tests name alerts that do not exist"


def test_every_alert_has_a_runbook_section() -> None:
    anchors = runbook_anchors()
    assert len(anchors) == len(set(anchors)), anchors
    expected = {name.lower() for name in ALERTS}
    assert expected - set(anchors) == set(), f"alerts without a section in {RUNBOOK}"
    assert set(anchors) - expected - RUNBOOK_PREAMBLE == set(), "runbook sections for alerts that do not exist"
    # The runbook's summary table states each alert's severity and `for:` as the rules do.
    table = {
        m.group(1): (m.group(2), m.group(3))
        for m in re.finditer(r"^\| \[(\w+)\]\(#\w+\) \| (\w+) \| .+ \| (\w+) \|$", RUNBOOK.read_text(), re.MULTILINE)
    }
    assert table == {name: (r.labels["severity"], str(r.body["for"])) for name, r in ALERTS.items()}


# --------------------------------------------------------------------------- promtool check metrics


def check_metrics(exposition: bytes) -> None:
    """``promtool check metrics``: exit 0 clean, 3 style warnings (listed), 1 a parse error."""
    result = promtool("check", "metrics", stdin=exposition)
    assert result.returncode == 0, result.describe()


def test_promtool_check_metrics_catches_broken_and_unconventional_expositions() -> None:
    assert promtool("check", "metrics", stdin=b"callscope_x{a=} 1\n").returncode == 1
    style = promtool("check", "metrics", stdin=b"# HELP callscope_y Y.\n# TYPE callscope_y counter\ncallscope_y 1\n")
    assert style.returncode == 3, style.describe()
    assert '"_total" suffix' in style.output, style.describe()


def test_rendered_telemetry_registry_passes_promtool_check_metrics() -> None:
    telemetry = Telemetry(node="n1")
    telemetry.events_received.labels("hep", "sip").inc()
    telemetry.events_sent.labels("hep", "sip").inc()
    telemetry.events_dropped.labels("hep", "queue_full").inc()
    telemetry.errors.labels("hep", "truncated").inc()
    telemetry.deadletters.labels("hep", "truncated").inc()
    telemetry.bus_lag.labels("callscope.events", "callscope.sip").set(0)
    telemetry.bus_buffered.labels("memory").set(0)
    telemetry.sink_batch_rows.labels("sip_messages").observe(10)
    telemetry.sink_insert_seconds.labels("sip_messages").observe(0.01)
    telemetry.sink_retries.labels("sip_messages").inc()
    telemetry.component_up.labels("hep").set(1)
    telemetry.last_event_ts.labels("hep").set(time.time())
    telemetry.http_requests.labels("/metrics", "GET", "2xx").inc()
    packets_counter(telemetry).labels("udp", "keepalive").inc()
    check_metrics(telemetry.render())


@pytest.fixture
def probing_callscope(tmp_path: Path) -> Iterator[Running]:
    """`callscope run` probing one trunk where nothing answers, so every health series exists."""
    config = {
        "collectors": {
            "options": {
                "interval_secs": 0.5,
                "timeout_secs": 0.4,
                "targets": [{"name": "trunk-x", "uri": f"sip:127.0.0.1:{harness.free_udp_port()}", "kind": "trunk"}],
            }
        }
    }
    path = tmp_path / "callscope.yaml"
    path.write_text(yaml.safe_dump(config))
    run = start(tmp_path / "data", "--config", str(path))
    try:
        yield run
    finally:
        run.close()


@pytest.mark.e2e
def test_running_callscope_exports_what_the_rules_read(probing_callscope: Running) -> None:
    """A real /metrics: promtool accepts it, and it has every metric family an alert or record reads."""
    needed: set[str] = set()
    for rule in rules():
        needed |= metric_names(str(rule.body["expr"]))
    deadline = time.monotonic() + 30
    while True:
        text = httpx.get(f"{probing_callscope.url}/metrics", timeout=10).text
        if ("callscope_target_state{" in text and 'target="trunk-x"' in text) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    families = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
    exported = {re.sub(r"_total$", "", f) for f in families} | families
    missing = {n for n in needed if n not in exported and re.sub(r"_total$", "", n) not in exported}
    assert missing == set(), f"metrics the rules read but callscope does not export: {sorted(missing)}"
    assert 'target="trunk-x"' in text, "the probed trunk never showed up in /metrics"
    check_metrics(text.encode())
