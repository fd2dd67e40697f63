"""grafana/dashboard-linter's rules, as tests.

The linter itself does not install here: the Go module proxy lists no version of
github.com/grafana/dashboard-linter and refuses the versions tried (v0.1.1, and the pseudo-version
v0.2.1-0.20260618155201-4d0844b40d49 of its newest commit: 403 "not available"). These tests
check the rules of its default rule set that apply to callscope's dashboards, written from their
descriptions (see dashboards/README.md for the list and the two deliberate differences).
"""

from __future__ import annotations

import re
from typing import Any

from dashboards.grafana.gen.panels import CLICKHOUSE_TYPE, PROMETHEUS_TYPE
from tests.dashboards.model import dashboards, panel_id, panels, prometheus_targets

#: Grafana unit ids the dashboards may use (valueFormats categories: misc, throughput, time, data, date).
GRAFANA_UNITS = {
    "none", "string", "short", "percent", "percentunit", "ops", "cps", "cpm", "pps", "reqps", "rps", "ms", "s",
    "m", "h", "d", "dtdurations", "dtdurationms", "bytes", "decbytes", "dateTimeAsIso", "bool",
}  # fmt: skip
#: The datasource variable each plugin's panels must use (template-datasource-rule's naming).
DATASOURCE_VARIABLES = {PROMETHEUS_TYPE: "prometheus_datasource", CLICKHOUSE_TYPE: "clickhouse_datasource"}
DATASOURCE_LABELS = {PROMETHEUS_TYPE: "Prometheus data source", CLICKHOUSE_TYPE: "ClickHouse data source"}


def _variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board["templating"]["list"]}


def test_template_datasource_rule() -> None:
    """Each plugin used has one templated datasource variable, named and labelled ``<type> data source``."""
    for board in dashboards().values():
        templated = {v["query"]: v for v in board["templating"]["list"] if v["type"] == "datasource"}
        assert set(templated) == set(DATASOURCE_VARIABLES), board["uid"]
        for kind, variable in templated.items():
            assert variable["name"] == DATASOURCE_VARIABLES[kind]
            assert variable["label"] == DATASOURCE_LABELS[kind]


def test_panel_datasource_rule() -> None:
    """Panels and their targets use the templated datasource, never a fixed uid."""
    for stem, panel in panels():
        if panel["type"] == "text":
            continue
        ds = panel["datasource"]
        assert ds["uid"] == "${" + DATASOURCE_VARIABLES[ds["type"]] + "}", panel_id(stem, panel)
        for target in panel["targets"]:
            assert target.get("datasource", ds) == ds, panel_id(stem, panel, target)


def test_template_on_time_change_reload_rule() -> None:
    for board in dashboards().values():
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["refresh"] == 2, (board["uid"], variable["name"])


def test_template_variables_use_a_templated_datasource() -> None:
    for board in dashboards().values():
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == "${clickhouse_datasource}"


def test_panel_title_description_rule() -> None:
    for stem, panel in panels():
        assert panel["title"].strip(), panel_id(stem, panel)
        assert panel["description"].strip(), panel_id(stem, panel)


def test_panel_units_rule() -> None:
    """Every panel (text included, where it is "none") has a unit Grafana knows."""
    for stem, panel in panels():
        assert panel["fieldConfig"]["defaults"]["unit"] in GRAFANA_UNITS, panel_id(stem, panel)


def test_panel_no_targets_rule() -> None:
    for stem, panel in panels():
        if panel["type"] != "text":
            assert panel["targets"], panel_id(stem, panel)


def _call_ranges(expr: str, functions: tuple[str, ...]) -> list[tuple[str, str]]:
    """(function, range) for every ``f(selector[range])`` of the given functions."""
    pattern = r"\b(" + "|".join(functions) + r")\(\s*[a-zA-Z_:][\w:]*(\{[^}]*\})?\[([^\]]+)\]"
    return [(m.group(1), m.group(3)) for m in re.finditer(pattern, expr)]


def test_target_rate_interval_rule() -> None:
    """rate() and irate() use $__rate_interval."""
    checked = 0
    for stem, panel, target in prometheus_targets():
        for function, window in _call_ranges(target["expr"], ("rate", "irate")):
            assert window == "$__rate_interval", (panel_id(stem, panel, target), function, window)
            checked += 1
    assert checked >= 5


def test_rate_interval_check_catches_a_fixed_window() -> None:
    assert _call_ranges('sum(rate(x_total{a="b"}[5m]))', ("rate", "irate")) == [("rate", "5m")]


def test_target_counter_agg_rule() -> None:
    """Counters and histogram buckets are read through rate() or increase(), never raw."""
    for stem, panel, target in prometheus_targets():
        expr = target["expr"]
        counters = re.findall(r"\bcallscope_\w+_(?:total|bucket)\b", expr)
        wrapped = [
            m.group(2) for m in re.finditer(r"\b(rate|irate|increase)\(\s*(callscope_\w+_(?:total|bucket))\b", expr)
        ]
        assert sorted(counters) == sorted(wrapped), panel_id(stem, panel, target)


def test_target_promql_variables_are_defined() -> None:
    """Every $variable in a query (PromQL or SQL) is a variable of its dashboard or a Grafana built-in."""
    builtins = {"__rate_interval", "__interval", "__range", "__value", "__url_time_range", "__all"}
    for stem, board in dashboards().items():
        defined = set(_variables(board)) | builtins
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                text = target.get("expr", "") + target.get("rawSql", "")
                used = set(re.findall(r"\$\{?([A-Za-z_]\w*)", text))
                used = {u for u in used if not u.startswith("__") or u in builtins}
                assert used <= defined, (panel_id(stem, panel, target), used - defined)
