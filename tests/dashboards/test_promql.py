"""Every Prometheus expression of the dashboards passes ``promtool check rules`` and reads only
series callscope exports or its recording rules record.

The expressions go into a temporary rules file as recording rules, with Grafana's variables
replaced the way Grafana would before sending them ($__rate_interval by a duration, a
variable by a regex). promtool comes from tests/system-deps.sh: without it these tests skip,
except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.ci import unavailable
from tests.dashboards.model import panel_id, prometheus_targets
from tests.peers import harness
from tests.peers.prometheus import promtool, require
from tests.prometheus.rules import RULES_DIR, metric_names

ROOT = Path(__file__).resolve().parents[2]
#: Grafana's built-in interval variables and what the check substitutes for them.
BUILTINS = {"$__rate_interval": "1m", "$__interval": "30s", "$__range": "1h"}


@pytest.fixture(scope="module", autouse=True)
def need_promtool() -> None:
    try:
        require("promtool")
    except harness.PeerMissing as exc:
        unavailable(str(exc))


def as_sent(expr: str) -> str:
    """The expression with Grafana's variables replaced: intervals by durations, $var by ``.*``."""
    for name, value in BUILTINS.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$\{?[A-Za-z_]\w*(:\w+)?\}?", ".*", expr)


def _rules_file(tmp_path: Path, exprs: list[str]) -> Path:
    rules = [{"record": f"callscope_dashboard:expr_{n}:check", "expr": e} for n, e in enumerate(exprs)]
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    return path


def test_every_expression_passes_promtool(tmp_path: Path) -> None:
    exprs = [as_sent(t["expr"]) for _, _, t in prometheus_targets()]
    assert len(exprs) >= 15
    assert all("$" not in e for e in exprs)
    result = promtool("check", "rules", str(_rules_file(tmp_path, exprs)))
    assert result.returncode == 0, result.output
    assert f"SUCCESS: {len(exprs)} rules found" in result.output


def test_promtool_rejects_a_broken_expression(tmp_path: Path) -> None:
    """The check above can fail: an unbalanced expression is refused."""
    result = promtool("check", "rules", str(_rules_file(tmp_path, ["sum(rate(callscope_errors_total[1m])"])))
    assert result.returncode != 0
    assert "FAILED" in result.output


def _exported_metrics() -> set[str]:
    names: set[str] = set()
    for folder in ("callscope", "collectors", "processors"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(re.findall(r"\"(callscope_[a-z0-9_]+)\"", path.read_text(encoding="utf-8")))
    return {re.sub(r"_total$", "", n) for n in names} | names


def _recorded_series() -> set[str]:
    recorded: set[str] = set()
    for path in RULES_DIR.glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            recorded |= {r["record"] for r in group["rules"] if "record" in r}
    return recorded


def test_expressions_read_only_series_that_exist() -> None:
    exported, recorded = _exported_metrics(), _recorded_series()
    missing = []
    for stem, panel, target in prometheus_targets():
        expr = target["expr"]
        for name in metric_names(expr) - exported:
            missing.append(f"{panel_id(stem, panel, target)}: metric {name}")
        for name in set(re.findall(r"[a-z_]+:callscope_[a-z0-9_]+:[a-z0-9_]+", expr)) - recorded:
            missing.append(f"{panel_id(stem, panel, target)}: recording rule {name}")
    assert missing == []
    # The wallboard uses the recording rules of dashboards/prometheus, not copies of them.
    used = " ".join(t["expr"] for _, _, t in prometheus_targets())
    assert "trunk:callscope_trunk_asr:ratio_rate30m" in used
    assert "node_target:callscope_options_rtt_seconds:p90_rate5m" in used
