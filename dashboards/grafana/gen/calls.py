"""Trunks, Call quality and the Call trace dashboard."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards.grafana.gen import panels as p
from dashboards.grafana.gen.noc import ASR, LEG_NODES, NER, TRUNK_OPTIONS_UP

NODE = "$__conditionalAll(node IN (${node:singlequote}), $node)"
TRUNK_TARGET = "$__conditionalAll(target IN (${trunk:singlequote}), $trunk)"

OPTIONS_FAILURES = f"""
SELECT target, node, if(error = '', toString(status), error) AS result, count() AS probes, max(ts) AS last_seen
FROM options_probes
WHERE $__timeFilter(ts) AND target_kind = 'trunk' AND (status = 0 OR status >= 300)
  AND {TRUNK_TARGET} AND {NODE}
GROUP BY target, node, result
ORDER BY probes DESC
LIMIT 100
"""

OPTIONS_RTT = f"""
SELECT $__timeInterval(ts) AS time, concat(target, ' via ', node) AS series, quantile(0.9)(rtt_ms) AS rtt_p90_ms
FROM options_probes
WHERE $__timeFilter(ts) AND target_kind = 'trunk' AND rtt_ms IS NOT NULL AND {TRUNK_TARGET} AND {NODE}
GROUP BY time, series
ORDER BY time
"""

HEALTH_TRANSITIONS = f"""
SELECT at, target, node, from_state, to_state, reason, status, error, flapping
FROM health_transitions
WHERE $__timeFilter(at) AND target_kind = 'trunk' AND {TRUNK_TARGET}
ORDER BY at DESC
LIMIT 200
"""

FINAL_STATUS = f"""
SELECT $__timeInterval(started_at) AS time, concat(toString(intDiv(status, 100)), 'xx') AS status_class, count() AS legs
FROM call_legs FINAL
WHERE $__timeFilter(started_at) AND status > 0 AND {LEG_NODES}
GROUP BY time, status_class
ORDER BY time
"""

FAILED_LEGS = f"""
SELECT started_at, call_id, caller, callee, status, reason, src_ip, dst_ip, arrayStringConcat(nodes, ',') AS seen_by
FROM call_legs FINAL
WHERE $__timeFilter(started_at) AND state IN ('failed', 'timeout') AND {LEG_NODES}
ORDER BY started_at DESC
LIMIT 100
"""

TRUNK_RESULTS = 'sum by (trunk, result) (increase(callscope_trunk_calls_total{trunk=~"$trunk"}[$__rate_interval]))'
TARGET_STATE = 'max by (target, state) (callscope_target_state{kind="trunk", target=~"$trunk"}) == 1'
OPTIONS_RTT_P90 = 'node_target:callscope_options_rtt_seconds:p90_rate5m{kind="trunk", target=~"$trunk", node=~"$node"}'


def _variables(board: dashboard.Dashboard, *names: str) -> dashboard.Dashboard:
    labels = {"node": "Node", "trunk": "Trunk", "queue": "Queue"}
    for variable in [*p.datasource_variables(), p.api_url_variable()]:
        board = board.with_variable(variable)
    for name in names:
        board = board.with_variable(p.filter_variable(name, labels[name]))
    return board


def trunks() -> dashboard.Dashboard:
    board = p.new_dashboard(
        "callscope-trunks",
        "callscope / Trunks",
        "Carrier trunks: answer ratios, call results, OPTIONS reachability and round-trip time from every "
        "vantage node, health transitions and the failed calls to look at.",
        ["trunks"],
    )
    board = _variables(board, "node", "trunk")
    return (
        board.with_panel(
            p.prom_timeseries(
                "ASR and NER per trunk",
                "Answer-seizure ratio (answered / all) and network effectiveness ratio (answered, busy or "
                "no answer / all) over 30-minute windows.",
                "percentunit",
                [p.promql(ASR, "ASR {{trunk}}", ref_id="A"), p.promql(NER, "NER {{trunk}}", ref_id="B")],
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Calls per trunk by result",
                "Closed call legs through each trunk per interval, by result (answered, busy, no_answer, "
                "cancelled, failed).",
                "short",
                [p.promql(TRUNK_RESULTS, "{{trunk}} {{result}}")],
            )
        )
        .with_panel(
            p.prom_status_history(
                "OPTIONS reachability by vantage node",
                "1 (UP) when the last SIP OPTIONS probe from the node to the trunk was answered.",
                "none",
                [p.promql(TRUNK_OPTIONS_UP, "{{target}} via {{node}}")],
            )
        )
        .with_panel(
            p.prom_timeseries(
                "OPTIONS round-trip time p90",
                "90th percentile of the OPTIONS round-trip time per node and trunk over 5 minutes "
                "(recording rule node_target:callscope_options_rtt_seconds:p90_rate5m); TrunkSlow fires above 0.5 s.",
                "s",
                [p.promql(OPTIONS_RTT_P90, "{{target}} via {{node}}")],
            )
        )
        .with_panel(
            p.prom_stat(
                "Trunk health now",
                "The health processor's verdict over all vantage points (up, degraded, partial, down, unknown).",
                "none",
                [p.promql(TARGET_STATE, "{{target}}: {{state}}", instant=True)],
                width=12,
            )
        )
        .with_panel(
            p.ch_timeseries(
                "OPTIONS round-trip time p90 (stored probes)",
                "The same round-trip time from the stored probe results, per trunk and node.",
                "ms",
                OPTIONS_RTT,
            )
        )
        .with_panel(
            p.ch_table(
                "OPTIONS failures",
                "Probes without a 2xx answer in the time range, by trunk, node and result (SIP status or error).",
                "none",
                OPTIONS_FAILURES,
            )
        )
        .with_panel(
            p.ch_table(
                "Health transitions",
                "State changes of the trunks (per vantage node and overall) with their cause.",
                "none",
                HEALTH_TRANSITIONS,
            )
        )
        .with_panel(
            p.ch_timeseries(
                "Final SIP status classes",
                "Call legs per interval by the class of their final answer (2xx answered, 4xx-6xx failures).",
                "short",
                FINAL_STATUS,
                stack=True,
            )
        )
        .with_panel(
            p.ch_table(
                "Failed calls",
                "The latest failed or timed-out call legs; click a Call-ID to open its trace.",
                "none",
                FAILED_LEGS,
                call_id_column="call_id",
            )
        )
    )


MOS_OVER_TIME = f"""
SELECT $__timeInterval(ts) AS time, node, avg(mos) AS mos_avg
FROM media_quality
WHERE $__timeFilter(ts) AND mos IS NOT NULL AND {NODE}
GROUP BY time, node
ORDER BY time
"""

LOSS_OVER_TIME = f"""
SELECT $__timeInterval(ts) AS time, node, avg(fraction_lost) AS loss
FROM media_quality
WHERE $__timeFilter(ts) AND {NODE}
GROUP BY time, node
ORDER BY time
"""

JITTER_OVER_TIME = f"""
SELECT $__timeInterval(ts) AS time, node, quantile(0.95)(jitter_ms) AS jitter_p95_ms
FROM media_quality
WHERE $__timeFilter(ts) AND jitter_ms IS NOT NULL AND {NODE}
GROUP BY time, node
ORDER BY time
"""

RTT_OVER_TIME = f"""
SELECT $__timeInterval(ts) AS time, node, quantile(0.95)(rtt_ms) AS rtt_p95_ms
FROM media_quality
WHERE $__timeFilter(ts) AND rtt_ms IS NOT NULL AND {NODE}
GROUP BY time, node
ORDER BY time
"""

QUALITY_BY_CODEC = f"""
SELECT if(codec = '', 'default', codec) AS codec, count() AS reports, round(avg(mos), 2) AS mos_avg,
       round(avg(fraction_lost) * 100, 2) AS loss_avg_pct, round(avg(jitter_ms), 1) AS jitter_avg_ms
FROM media_quality
WHERE $__timeFilter(ts) AND {NODE}
GROUP BY codec
ORDER BY reports DESC
"""

POOR_CALLS = f"""
SELECT call_id, round(min(mos), 2) AS mos_min, round(avg(mos), 2) AS mos_avg,
       round(max(fraction_lost) * 100, 1) AS loss_max_pct, round(max(jitter_ms), 1) AS jitter_max_ms,
       round(max(rtt_ms), 1) AS rtt_max_ms, groupUniqArray(report_type) AS reports, min(ts) AS first_report
FROM media_quality
WHERE $__timeFilter(ts) AND call_id != '' AND {NODE}
GROUP BY call_id
HAVING mos_min < 3.6 OR loss_max_pct > 2
ORDER BY mos_min ASC
LIMIT 100
"""


def call_quality() -> dashboard.Dashboard:
    board = p.new_dashboard(
        "callscope-call-quality",
        "callscope / Call quality",
        "Media quality from RTCP and RTCP-XR reports: MOS, loss, jitter and round-trip time per node, by "
        "codec, and the calls below the quality bar.",
        ["quality"],
    )
    board = _variables(board, "node")
    return (
        board.with_panel(
            p.ch_timeseries("MOS", "Average estimated MOS (E-model, docs/mos.md) per node.", "none", MOS_OVER_TIME)
        )
        .with_panel(
            p.ch_timeseries(
                "Packet loss", "Average fraction of packets lost per report, per node.", "percentunit", LOSS_OVER_TIME
            )
        )
        .with_panel(
            p.ch_timeseries("Jitter p95", "95th percentile of interarrival jitter per node.", "ms", JITTER_OVER_TIME)
        )
        .with_panel(
            p.ch_timeseries(
                "Round-trip time p95", "95th percentile of the RTCP round-trip time per node.", "ms", RTT_OVER_TIME
            )
        )
        .with_panel(
            p.ch_table(
                "Quality by codec",
                "Reports, average MOS, loss and jitter per codec in the time range.",
                "none",
                QUALITY_BY_CODEC,
            )
        )
        .with_panel(
            p.ch_table(
                "Calls below the quality bar",
                "Calls whose MOS fell below 3.6 or whose loss exceeded 2 %; click a Call-ID to open its trace.",
                "none",
                POOR_CALLS,
                call_id_column="call_id",
            )
        )
    )


#: The call's Call-ID from the variable, quoted as an SQL string (Grafana's sqlstring format).
CALL = "${call_id:sqlstring}"

TRACE_MESSAGES = f"""
SELECT ts, node, if(is_request, method, concat(toString(status), ' ', reason)) AS message, cseq,
       concat(src_ip, ':', toString(src_port)) AS source, concat(dst_ip, ':', toString(dst_port)) AS destination,
       transport, user_agent
FROM sip_messages
WHERE call_id = {CALL}
ORDER BY ts, id
LIMIT 1000
"""

TRACE_LEGS = f"""
SELECT call_id, leg_id, caller, callee, state, status, reason, started_at, answered_at, ended_at,
       pdd_ms, duration_secs, arrayStringConcat(nodes, ',') AS seen_by
FROM call_legs FINAL
WHERE call_id = {CALL} OR call_id IN (SELECT linked_call_id FROM call_links WHERE call_id = {CALL})
ORDER BY started_at
"""

TRACE_QUALITY = f"""
SELECT ts, node, report_type, round(mos, 2) AS mos, round(fraction_lost * 100, 2) AS loss_pct, jitter_ms, rtt_ms
FROM media_quality
WHERE call_id = {CALL}
ORDER BY ts
LIMIT 500
"""

LADDER_HTML = (
    '<div style="height:100%;overflow:auto">'
    '<a href="${api_url}/api/v1/calls/${call_id}/ladder?format=html" target="_blank">Open the full trace page</a><br/>'
    '<img src="${api_url}/api/v1/calls/${call_id}/ladder?format=svg" alt="SIP ladder of ${call_id}"'
    ' style="max-width:100%"/>'
    "</div>"
)


def call_trace() -> dashboard.Dashboard:
    board = p.new_dashboard(
        p.TRACE_DASHBOARD_UID,
        "callscope / Call trace",
        "One call by Call-ID: the SIP ladder from callscope's API beside the messages, its legs (and linked "
        "calls) and its media quality.",
        ["trace"],
    ).time("now-24h", "now")
    for variable in [*p.datasource_variables(), p.api_url_variable()]:
        board = board.with_variable(variable)
    board = board.with_variable(
        dashboard.TextBoxVariable("call_id")
        .label("Call-ID")
        .description("The SIP Call-ID to trace (Call-ID cells of the other dashboards link here).")
        .default_value("")
    )
    return (
        board.with_panel(
            p.html_panel(
                "SIP ladder",
                "The call's message sequence diagram as callscope's API renders it (SVG); the link opens the "
                "full trace page.",
                LADDER_HTML,
            )
        )
        .with_panel(
            p.ch_table(
                "SIP messages",
                "Every stored SIP message of the Call-ID, from every node, in time order.",
                "none",
                TRACE_MESSAGES,
                height=16,
            )
        )
        .with_panel(
            p.ch_table(
                "Call legs",
                "The call's dialogs and those of the calls linked to it (same correlation, X-CID, transfer).",
                "none",
                TRACE_LEGS,
                width=24,
                call_id_column="call_id",
            )
        )
        .with_panel(
            p.ch_table(
                "Media quality reports",
                "RTCP and RTCP-XR reports of the call.",
                "none",
                TRACE_QUALITY,
                width=24,
            )
        )
    )


__all__ = ["call_quality", "call_trace", "trunks"]
