"""The NOC wallboard: few, large panels readable on a wall screen at 3 m."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards.grafana.gen import panels as p

#: A leg passes the node filter when any node that saw it is selected.
LEG_NODES = "$__conditionalAll(hasAny(nodes, [${node:singlequote}]), $node)"

ACTIVE_CALLS = f"""
SELECT count() AS active_calls
FROM call_legs FINAL
WHERE state IN ('live', 'ringing', 'answered')
  AND started_at >= now() - INTERVAL 1 DAY
  AND {LEG_NODES}
"""

CALLS_PER_MINUTE = f"""
SELECT $__timeInterval(started_at) AS time, count() * 60 / $__interval_s AS calls_per_minute
FROM call_legs FINAL
WHERE $__timeFilter(started_at) AND {LEG_NODES}
GROUP BY time
ORDER BY time
"""

ACD = f"""
SELECT avg(duration_secs) AS acd
FROM call_legs FINAL
WHERE $__timeFilter(started_at) AND answered_at IS NOT NULL AND duration_secs IS NOT NULL AND {LEG_NODES}
"""

#: Service level: answered within 20 s over offered, per queue, in the last hour of 15-minute buckets.
QUEUE_SERVICE_LEVEL = """
SELECT
    queue,
    arraySum(arrayFilter((n, secs) -> secs <= 20, hist.2, hist.1)) / greatest(sum_offered, 1) AS service_level
FROM
(
    SELECT queue, sumMap(answered_wait_hist) AS hist, sum(offered) AS sum_offered
    FROM queue_sla_15m
    WHERE interval_start >= toStartOfFifteenMinutes(now()) - INTERVAL 45 MINUTE
      AND $__conditionalAll(queue IN (${queue:singlequote}), $queue)
    GROUP BY queue
)
ORDER BY queue
"""

WORST_QUALITY = """
SELECT
    call_id,
    round(min(mos), 2) AS mos_min,
    round(max(fraction_lost) * 100, 1) AS worst_loss_pct,
    round(max(jitter_ms), 1) AS worst_jitter_ms,
    any(node) AS seen_by
FROM media_quality
WHERE $__timeFilter(ts) AND mos IS NOT NULL AND call_id != ''
  AND $__conditionalAll(node IN (${node:singlequote}), $node)
GROUP BY call_id
ORDER BY mos_min ASC
LIMIT 10
"""

ASR = 'trunk:callscope_trunk_asr:ratio_rate30m{trunk=~"$trunk"}'
#: Over the same 30 minutes as the ASR recording rule (increase, not rate: the ratio is the same and
#: dashboard-linter's rate-interval rule only asks rate() to use $__rate_interval).
NER = """
sum by (trunk) (increase(callscope_trunk_calls_total{trunk=~"$trunk", result=~"answered|busy|no_answer"}[30m]))
/
sum by (trunk) (increase(callscope_trunk_calls_total{trunk=~"$trunk"}[30m]))
"""
#: Average duration of the answered calls through each trunk over 30 minutes (the histogram's sum / count).
ACD_PER_TRUNK = """
sum by (trunk) (increase(callscope_trunk_call_duration_seconds_sum{trunk=~"$trunk"}[30m]))
/
sum by (trunk) (increase(callscope_trunk_call_duration_seconds_count{trunk=~"$trunk"}[30m]))
"""
TRUNK_OPTIONS_UP = 'callscope_options_up{kind="trunk", target=~"$trunk", node=~"$node"}'
COMPONENTS_DOWN = "count(callscope_component_up == 0) or vector(0)"
DEADLETTERS_RATE = "sum(rate(callscope_deadletters_total[$__rate_interval])) or vector(0)"
BUS_LAG = "sum(callscope_bus_lag_messages) or vector(0)"


def noc_wallboard() -> dashboard.Dashboard:
    board = p.new_dashboard(
        "callscope-noc",
        "callscope / NOC wallboard",
        "The platform at a glance for the NOC wall: calls now, trunk answer ratios and OPTIONS health, "
        "queue service level, the worst call quality and whether callscope itself is healthy.",
        ["noc"],
    ).refresh("30s")
    for variable in [
        *p.datasource_variables(),
        p.api_url_variable(),
        p.filter_variable("node", "Node"),
        p.filter_variable("trunk", "Trunk"),
        p.filter_variable("queue", "Queue"),
    ]:
        board = board.with_variable(variable)
    busy = [(None, "green"), (500, "orange"), (1000, "red")]
    return (
        board.with_panel(
            p.ch_stat(
                "Active calls",
                "SIP dialogs not yet ended (live, ringing or answered) seen by the selected nodes.",
                "short",
                ACTIVE_CALLS,
                steps=busy,
            )
        )
        .with_panel(
            p.ch_stat(
                "Calls per minute",
                "New SIP dialogs per minute over the dashboard's time range (the sparkline); the value is the "
                "last interval.",
                "cpm",
                CALLS_PER_MINUTE,
                kind="timeseries",
            )
        )
        .with_panel(
            p.ch_stat(
                "ACD",
                "Average call duration (answer to BYE) of the answered calls that started in the time range.",
                "s",
                ACD,
            )
        )
        .with_panel(
            p.prom_stat(
                "Pipeline health",
                "callscope's own health: components down (0 is good), dead letters per second, bus messages not "
                "yet consumed. Any red tile means the other panels may be missing data.",
                "short",
                [
                    p.promql(COMPONENTS_DOWN, "components down", instant=True, ref_id="A"),
                    p.promql(DEADLETTERS_RATE, "dead letters/s", instant=True, ref_id="B"),
                    p.promql(BUS_LAG, "bus lag", instant=True, ref_id="C"),
                ],
                steps=[(None, "green"), (1, "red")],
            )
        )
        .with_panel(
            p.prom_bargauge(
                "ASR per trunk",
                "Answer-seizure ratio over 30 minutes: answered calls / all calls through the trunk "
                "(recording rule trunk:callscope_trunk_asr:ratio_rate30m).",
                "percentunit",
                [p.promql(ASR, "{{trunk}}", instant=True)],
                width=6,
            )
        )
        .with_panel(
            p.prom_bargauge(
                "NER per trunk",
                "Network effectiveness ratio over 30 minutes: calls answered, busy or not answered by the user "
                "(the network delivered them) / all calls through the trunk.",
                "percentunit",
                [p.promql(NER, "{{trunk}}", instant=True)],
                width=6,
            )
        )
        .with_panel(
            p.prom_bargauge(
                "ACD per trunk",
                "Average call duration over 30 minutes of the answered calls through each trunk "
                "(callscope_trunk_call_duration_seconds, answer to end of the leg).",
                "s",
                [p.promql(ACD_PER_TRUNK, "{{trunk}}", instant=True)],
                steps=[(None, "red"), (30, "orange"), (60, "green")],
                max_value=600,
                width=6,
            )
        )
        .with_panel(
            p.ch_bargauge(
                "Queue service level now",
                "Share of calls answered within 20 s of those offered to each queue in the last hour "
                "(queue_sla_15m, the current and three previous 15-minute intervals).",
                "percentunit",
                QUEUE_SERVICE_LEVEL,
                width=6,
            )
        )
        .with_panel(
            p.prom_stat(
                "Trunk OPTIONS status by vantage node",
                "Does each trunk answer SIP OPTIONS from each callscope node? One tile per trunk and node; "
                "red means that node's probes fail (a trunk red everywhere is down).",
                "none",
                [p.promql(TRUNK_OPTIONS_UP, "{{target}} via {{node}}", instant=True)],
                height=8,
                width=12,
                steps=[(None, "red"), (1, "green")],
                mappings=p.up_down_mappings(),
            )
        )
        .with_panel(
            p.ch_table(
                "Worst call quality",
                "The ten calls with the lowest MOS in the time range (RTCP and RTCP-XR reports); click a "
                "Call-ID to open its trace.",
                "none",
                WORST_QUALITY,
                call_id_column="call_id",
            )
        )
    )
