"""Datasources, variables and panel helpers shared by every dashboard.

ClickHouse panels use the official plugin (``grafana-clickhouse-datasource``); the SDK has no
builder for it, so :class:`ClickHouseQuery` is one (a cog ``Dataquery`` variant). Every helper
takes a title, a description and a unit, so no panel can be built without them.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence

from grafana_foundation_sdk.builders import bargauge, dashboard, stat, statushistory, table, text, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import text as textmodel

CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"
PROMETHEUS_TYPE = "prometheus"
#: The uids of the provisioned datasources (provisioning/datasources/callscope.yaml).
CLICKHOUSE_UID = "callscope-clickhouse"
PROMETHEUS_UID = "callscope-prometheus"
#: Panels point at the datasource variables, so one dashboard serves several clusters.
CLICKHOUSE = dm.DataSourceRef(type_val=CLICKHOUSE_TYPE, uid="${clickhouse_datasource}")
PROMETHEUS = dm.DataSourceRef(type_val=PROMETHEUS_TYPE, uid="${prometheus_datasource}")
#: Where callscope's API answers, as the browser sees it (a text box: set it once per Grafana).
DEFAULT_API_URL = "http://localhost:8080"
#: The API's trace page of one call: the target of every Call-ID cell.
TRACE_URL = "${api_url}/api/v1/calls/${__value.raw}/ladder?format=html"
TRACE_DASHBOARD_UID = "callscope-call-trace"

Kind = typing.Literal["timeseries", "table"]
#: Threshold steps: (from value, colour), the first from None.
Steps = Sequence[tuple[float | None, str]]
#: The plugin's result format (its ``Format`` enum): 0 time series, 1 table.
_FORMATS: dict[Kind, int] = {"timeseries": 0, "table": 1}


class ClickHouseDataquery(cogvariants.Dataquery):
    """A raw-SQL query of the ClickHouse plugin (v4 query model)."""

    def __init__(self, sql: str, kind: Kind, ref_id: str) -> None:
        self.sql = sql
        self.kind = kind
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": CLICKHOUSE.to_json(),
            "editorType": "sql",
            "format": _FORMATS[self.kind],
            "pluginVersion": "4.0.0",
            "queryType": self.kind,
            "rawSql": self.sql,
            "refId": self.ref_id,
        }


class ClickHouseQuery(cogbuilder.Builder[ClickHouseDataquery]):
    def __init__(self, sql: str, kind: Kind = "table", ref_id: str = "A") -> None:
        self._query = ClickHouseDataquery(sql.strip(), kind, ref_id)

    def build(self) -> ClickHouseDataquery:
        return self._query


def promql(expr: str, legend: str = "__auto", *, instant: bool = False, ref_id: str = "A") -> prom.Dataquery:
    query = prom.Dataquery().expr(" ".join(expr.split())).legend_format(legend).ref_id(ref_id)
    return query.instant() if instant else query.range()


# -- variables ---------------------------------------------------------------------------------


def datasource_variables() -> list[cogbuilder.Builder[dm.VariableModel]]:
    """One datasource variable per plugin, named ``<type>_datasource`` as dashboard-linter asks
    (``clickhouse`` stands for the plugin id, which is not a valid variable name), defaulting to the
    provisioned datasources."""
    return [
        dashboard.DatasourceVariable("prometheus_datasource")
        .label("Prometheus data source")
        .type(PROMETHEUS_TYPE)
        .current(dm.VariableOption(selected=True, text="callscope Prometheus", value=PROMETHEUS_UID)),
        dashboard.DatasourceVariable("clickhouse_datasource")
        .label("ClickHouse data source")
        .type(CLICKHOUSE_TYPE)
        .current(dm.VariableOption(selected=True, text="callscope ClickHouse", value=CLICKHOUSE_UID)),
    ]


def api_url_variable() -> cogbuilder.Builder[dm.VariableModel]:
    return (
        dashboard.TextBoxVariable("api_url")
        .label("callscope API")
        .description("Base URL of callscope's API as the browser reaches it; Call-ID links open its trace page.")
        .default_value(DEFAULT_API_URL)
        .current(dm.VariableOption(selected=True, text=DEFAULT_API_URL, value=DEFAULT_API_URL))
    )


#: SQL of the node, trunk and queue variables (tested on the engine like the panels).
VARIABLE_SQL = {
    "node": """
SELECT DISTINCT node FROM (
    SELECT node FROM sip_messages WHERE ts >= now() - INTERVAL 1 DAY
    UNION ALL SELECT node FROM options_probes WHERE ts >= now() - INTERVAL 1 DAY
    UNION ALL SELECT node FROM ami_events WHERE ts >= now() - INTERVAL 1 DAY
) WHERE node != '' ORDER BY node
""",
    "trunk": """
SELECT DISTINCT target FROM options_probes
WHERE target_kind = 'trunk' AND ts >= now() - INTERVAL 7 DAY ORDER BY target
""",
    "queue": """
SELECT DISTINCT queue FROM queue_sessions
WHERE entered_at >= now() - INTERVAL 7 DAY AND queue != '' ORDER BY queue
""",
}


def filter_variable(name: str, label: str) -> cogbuilder.Builder[dm.VariableModel]:
    """A multi-value ClickHouse query variable with All (no custom all value: All = every value)."""
    sql = " ".join(VARIABLE_SQL[name].split())
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(CLICKHOUSE)
        .query(sql)
        .multi(True)
        .include_all(True)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


# -- panels ------------------------------------------------------------------------------------


def _thresholds(steps: Steps) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=value, color=color) for value, color in steps])
    )


def _last() -> common_builders.ReduceDataOptions:
    """Show each series' (or column's) last non-null value."""
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


GREEN: Steps = ((None, "green"),)
#: Higher is better (ratios 0..1): red below 0.5, amber below 0.8.
RATIO_GOOD_HIGH: Steps = ((None, "red"), (0.5, "orange"), (0.8, "green"))


def call_id_links() -> list[dm.DynamicConfigValue]:
    """Field override: a Call-ID cell opens the API's trace page (and the trace dashboard)."""
    links = [
        {"title": "Open the call trace (callscope API)", "url": TRACE_URL, "targetBlank": True},
        {
            "title": "Call trace dashboard",
            "url": f"/d/{TRACE_DASHBOARD_UID}?var-call_id=${{__value.raw}}&${{__url_time_range}}",
        },
    ]
    return [dm.DynamicConfigValue(id_val="links", value=links)]


def _common(panel: typing.Any, title: str, description: str, unit: str, *, height: int, width: int) -> typing.Any:
    return panel.title(title).description(description).unit(unit).height(height).span(width)


def ch_timeseries(
    title: str, description: str, unit: str, sql: str, *, height: int = 8, width: int = 12, stack: bool = False
) -> timeseries.Panel:
    panel = _common(timeseries.Panel(), title, description, unit, height=height, width=width)
    panel = panel.datasource(CLICKHOUSE).with_target(ClickHouseQuery(sql, "timeseries")).fill_opacity(10)
    if stack:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    return typing.cast(timeseries.Panel, panel)


def ch_table(
    title: str,
    description: str,
    unit: str,
    sql: str,
    *,
    height: int = 8,
    width: int = 12,
    call_id_column: str | None = None,
) -> table.Panel:
    panel = _common(table.Panel(), title, description, unit, height=height, width=width)
    panel = panel.datasource(CLICKHOUSE).with_target(ClickHouseQuery(sql, "table"))
    if call_id_column is not None:
        panel = panel.override_by_name(call_id_column, call_id_links())
    return typing.cast(table.Panel, panel)


def ch_stat(
    title: str,
    description: str,
    unit: str,
    sql: str,
    *,
    height: int = 6,
    width: int = 6,
    steps: Steps = GREEN,
    kind: Kind = "table",
) -> stat.Panel:
    panel = _common(stat.Panel(), title, description, unit, height=height, width=width)
    panel = (
        panel.datasource(CLICKHOUSE)
        .with_target(ClickHouseQuery(sql, kind))
        .thresholds(_thresholds(steps))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA if kind == "timeseries" else common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(_last())
    )
    return typing.cast(stat.Panel, panel)


def prom_timeseries(
    title: str,
    description: str,
    unit: str,
    queries: list[prom.Dataquery],
    *,
    height: int = 8,
    width: int = 12,
) -> timeseries.Panel:
    panel = _common(timeseries.Panel(), title, description, unit, height=height, width=width)
    panel = panel.datasource(PROMETHEUS).targets(list(queries)).fill_opacity(10)
    return typing.cast(timeseries.Panel, panel)


def prom_stat(
    title: str,
    description: str,
    unit: str,
    queries: list[prom.Dataquery],
    *,
    height: int = 6,
    width: int = 6,
    steps: Steps = GREEN,
    mappings: list[dm.ValueMapping] | None = None,
) -> stat.Panel:
    panel = _common(stat.Panel(), title, description, unit, height=height, width=width)
    panel = (
        panel.datasource(PROMETHEUS)
        .targets(list(queries))
        .thresholds(_thresholds(steps))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(_last())
    )
    if mappings:
        panel = panel.mappings(mappings)
    return typing.cast(stat.Panel, panel)


def prom_bargauge(
    title: str,
    description: str,
    unit: str,
    queries: list[prom.Dataquery],
    *,
    height: int = 8,
    width: int = 8,
    steps: Steps = RATIO_GOOD_HIGH,
    max_value: float = 1,
) -> bargauge.Panel:
    panel = _common(bargauge.Panel(), title, description, unit, height=height, width=width)
    panel = (
        panel.datasource(PROMETHEUS)
        .targets(list(queries))
        .thresholds(_thresholds(steps))
        .min(0)
        .max(max_value)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .reduce_options(_last())
    )
    return typing.cast(bargauge.Panel, panel)


def ch_bargauge(
    title: str,
    description: str,
    unit: str,
    sql: str,
    *,
    height: int = 8,
    width: int = 8,
    steps: Steps = RATIO_GOOD_HIGH,
) -> bargauge.Panel:
    """One bar per row of a (name, number) table, e.g. per queue: large enough for a wall screen."""
    panel = _common(bargauge.Panel(), title, description, unit, height=height, width=width)
    panel = (
        panel.datasource(CLICKHOUSE)
        .with_target(ClickHouseQuery(sql, "table"))
        .thresholds(_thresholds(steps))
        .min(0)
        .max(1)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(True))
    )
    return typing.cast(bargauge.Panel, panel)


def prom_status_history(
    title: str, description: str, unit: str, queries: list[prom.Dataquery], *, height: int = 8, width: int = 12
) -> statushistory.Panel:
    panel = _common(statushistory.Panel(), title, description, unit, height=height, width=width)
    panel = panel.datasource(PROMETHEUS).targets(list(queries)).mappings(up_down_mappings())
    return typing.cast(statushistory.Panel, panel)


def up_down_mappings() -> list[dm.ValueMapping]:
    return [
        dm.ValueMap(
            options={
                "0": dm.ValueMappingResult(text="DOWN", color="red", index=0),
                "1": dm.ValueMappingResult(text="UP", color="green", index=1),
            }
        )
    ]


def html_panel(title: str, description: str, content: str, *, height: int = 16, width: int = 12) -> text.Panel:
    panel = _common(text.Panel(), title, description, "none", height=height, width=width)
    return typing.cast(text.Panel, panel.mode(textmodel.TextMode.HTML).content(content))


def new_dashboard(uid: str, title: str, description: str, tags: list[str]) -> dashboard.Dashboard:
    """A dashboard with the shared settings: UTC, last hour, 1 minute refresh, tags, links."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["callscope", *tags])
        .timezone("utc")
        .time("now-1h", "now")
        .refresh("1m")
        .editable()
        .link(
            dashboard.DashboardLink("callscope")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["callscope"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
