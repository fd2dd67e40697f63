"""Queues and agents, Registrations, Nodes and pipeline."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards.grafana.gen import panels as p
from dashboards.grafana.gen.calls import NODE

QUEUE = "$__conditionalAll(queue IN (${queue:singlequote}), $queue)"

QUEUE_SLA = f"""
SELECT interval_start AS time, queue,
       arraySum(arrayFilter((n, secs) -> secs <= 20, hist.2, hist.1)) / greatest(offered_sum, 1) AS service_level
FROM
(
    SELECT interval_start, queue, sumMap(answered_wait_hist) AS hist, sum(offered) AS offered_sum
    FROM queue_sla_15m
    WHERE $__timeFilter(interval_start) AND {QUEUE}
    GROUP BY interval_start, queue
)
ORDER BY time
"""

QUEUE_VOLUMES = f"""
SELECT interval_start AS time, sum(offered) AS offered_calls, sum(answered) AS answered_calls,
       sum(abandoned) AS abandoned_calls, sum(timed_out) AS timed_out_calls
FROM queue_sla_15m
WHERE $__timeFilter(interval_start) AND {QUEUE}
GROUP BY time
ORDER BY time
"""

QUEUE_SUMMARY = f"""
SELECT queue, sum(offered) AS offered_calls, sum(answered) AS answered_calls, sum(abandoned) AS abandoned_calls,
       round(answered_calls / greatest(offered_calls, 1), 3) AS answer_ratio,
       round(sum(wait_answered_sum) / greatest(answered_calls, 1), 1) AS avg_wait_secs,
       round(sum(talk_sum) / greatest(sum(talked), 1), 1) AS avg_talk_secs,
       round(max(wait_max), 1) AS max_wait_secs
FROM queue_sla_15m
WHERE $__timeFilter(interval_start) AND {QUEUE}
GROUP BY queue
ORDER BY offered_calls DESC
"""

WAITING_NOW = f"""
SELECT count() AS waiting
FROM queue_sessions FINAL
WHERE NOT final AND answered_at IS NULL AND ended_at IS NULL
  AND entered_at >= now() - INTERVAL 1 DAY AND {QUEUE}
"""

AGENTS_NOW = """
SELECT agent, if(queue = '', '(all)', queue) AS queue, state, reason, started_at,
       dateDiff('second', started_at, now64(6)) AS for_secs, node
FROM agent_states FINAL
WHERE ended_at IS NULL AND started_at >= now() - INTERVAL 7 DAY
  AND $__conditionalAll(queue IN (${queue:singlequote}) OR queue = '', $queue)
ORDER BY agent, queue, state
"""

ABANDONED = f"""
SELECT entered_at, queue, caller, round(wait_secs, 1) AS wait_secs, outcome, original_position, callid, linkedid
FROM queue_sessions FINAL
WHERE $__timeFilter(entered_at) AND final AND NOT answered AND {QUEUE}
ORDER BY entered_at DESC
LIMIT 100
"""

AGENT_ANSWERED = f"""
SELECT agent, count() AS answered_calls, round(avg(talk_secs), 1) AS avg_talk_secs,
       round(avg(ring_secs), 1) AS avg_ring_secs
FROM queue_sessions FINAL
WHERE $__timeFilter(entered_at) AND answered AND agent != '' AND {QUEUE}
GROUP BY agent
ORDER BY answered_calls DESC
LIMIT 50
"""


def queues() -> dashboard.Dashboard:
    board = p.new_dashboard(
        "callscope-queues",
        "callscope / Queues and agents",
        "Asterisk queues: service level, offered/answered/abandoned calls, waits, who is waiting now, agent "
        "states and the abandoned calls.",
        ["queues"],
    )
    for variable in [*p.datasource_variables(), p.api_url_variable(), p.filter_variable("queue", "Queue")]:
        board = board.with_variable(variable)
    return (
        board.with_panel(
            p.ch_stat(
                "Callers waiting now",
                "Queue sessions entered and not yet answered or ended.",
                "short",
                WAITING_NOW,
                steps=[(None, "green"), (5, "orange"), (15, "red")],
                width=6,
            )
        )
        .with_panel(
            p.ch_timeseries(
                "Service level per queue",
                "Calls answered within 20 s / calls offered, per 15-minute interval (queue_sla_15m).",
                "percentunit",
                QUEUE_SLA,
                width=18,
            )
        )
        .with_panel(
            p.ch_timeseries(
                "Offered, answered, abandoned",
                "Queue calls per 15-minute interval by outcome.",
                "short",
                QUEUE_VOLUMES,
            )
        )
        .with_panel(
            p.ch_table(
                "Queues",
                "Per queue over the time range: volumes, answer ratio, average wait and talk, longest wait.",
                "none",
                QUEUE_SUMMARY,
            )
        )
        .with_panel(
            p.ch_table(
                "Agent states now",
                "Open agent intervals (logged in, paused with reason) and how long they have lasted.",
                "none",
                AGENTS_NOW,
            )
        )
        .with_panel(
            p.ch_table(
                "Answered per agent",
                "Calls answered per agent with average talk and ring time.",
                "none",
                AGENT_ANSWERED,
            )
        )
        .with_panel(
            p.ch_table(
                "Unanswered queue calls",
                "Abandoned, timed-out and other unanswered queue sessions, newest first.",
                "none",
                ABANDONED,
                width=24,
            )
        )
    )


REGISTERED_NOW = """
SELECT countIf(NOT expired) AS registered_aors, countIf(expired) AS expired_aors
FROM registrations_current
"""

REGISTER_RESULTS = f"""
SELECT $__timeInterval(requested_at) AS time,
       multiIf(status = 0, 'no answer', challenge AND status IN (401, 407), 'challenged',
               status < 300, 'ok', 'failed') AS result,
       count() AS registers
FROM registrations FINAL
WHERE $__timeFilter(requested_at) AND {NODE}
GROUP BY time, result
ORDER BY time
"""

REGISTER_FAILURES = f"""
SELECT aor, status, reason, count() AS failures, max(requested_at) AS last_failure, any(src_ip) AS src_ip,
       any(user_agent) AS user_agent
FROM registrations FINAL
WHERE $__timeFilter(requested_at) AND status >= 300 AND status NOT IN (401, 407) AND {NODE}
GROUP BY aor, status, reason
ORDER BY failures DESC
LIMIT 100
"""

CURRENT_REGISTRATIONS = f"""
SELECT aor, contact, expires, registered_at, expires_at, expired, node, user_agent, src_ip, last_attempt_status
FROM registrations_current
WHERE {NODE}
ORDER BY aor
LIMIT 1000
"""


def registrations() -> dashboard.Dashboard:
    board = p.new_dashboard(
        "callscope-registrations",
        "callscope / Registrations",
        "SIP registrations: how many AORs are registered, REGISTER results over time, failing AORs and "
        "the current binding of each AOR.",
        ["registrations"],
    )
    for variable in [*p.datasource_variables(), p.api_url_variable(), p.filter_variable("node", "Node")]:
        board = board.with_variable(variable)
    return (
        board.with_panel(
            p.ch_stat(
                "Registered AORs",
                "AORs whose last successful REGISTER has not expired, and those that expired.",
                "short",
                REGISTERED_NOW,
            )
        )
        .with_panel(
            p.ch_timeseries(
                "REGISTER results",
                "REGISTER transactions per interval: ok (2xx), challenged (401/407), failed, no answer.",
                "short",
                REGISTER_RESULTS,
                width=18,
                stack=True,
            )
        )
        .with_panel(
            p.ch_table(
                "Failing AORs",
                "AORs whose REGISTER got a final error other than an authentication challenge.",
                "none",
                REGISTER_FAILURES,
            )
        )
        .with_panel(
            p.ch_table(
                "Current registrations",
                "The current binding of each AOR (view registrations_current).",
                "none",
                CURRENT_REGISTRATIONS,
            )
        )
    )


SIP_PER_NODE = f"""
SELECT $__timeInterval(ts) AS time, node, count() / $__interval_s AS messages_per_second
FROM sip_messages
WHERE $__timeFilter(ts) AND {NODE}
GROUP BY time, node
ORDER BY time
"""

DEADLETTERS = """
SELECT received, component, reason, node, source_topic, substring(detail, 1, 200) AS detail
FROM deadletters
WHERE $__timeFilter(received) AND $__conditionalAll(node IN (${node:singlequote}), $node)
ORDER BY received DESC
LIMIT 100
"""

COMPONENT_UP = "callscope_component_up"
EVENTS_RECEIVED = "sum by (component, kind) (rate(callscope_events_received_total[$__rate_interval]))"
DEADLETTER_RATE = "sum by (component, reason) (rate(callscope_deadletters_total[$__rate_interval]))"
ERROR_RATE = "sum by (component, error) (rate(callscope_errors_total[$__rate_interval]))"
BUS_LAG_BY_GROUP = "sum by (group, topic) (callscope_bus_lag_messages)"
INSERT_P95 = (
    "histogram_quantile(0.95, sum by (table, le) (rate(callscope_sink_insert_seconds_bucket[$__rate_interval])))"
)
SOURCE_AGE = 'time() - max by (node, kind) (callscope_source_last_event_timestamp_seconds{node=~"$node"})'
HEP_RATE = "sum by (instance) (rate(callscope_hep_packets_total[$__rate_interval]))"


def nodes() -> dashboard.Dashboard:
    board = p.new_dashboard(
        "callscope-nodes",
        "callscope / Nodes and pipeline",
        "callscope itself: which components run, event rates, errors and dead letters, bus lag, store insert "
        "latency, and how long ago each source node last sent something.",
        ["pipeline"],
    )
    for variable in [*p.datasource_variables(), p.api_url_variable(), p.filter_variable("node", "Node")]:
        board = board.with_variable(variable)
    return (
        board.with_panel(
            p.prom_stat(
                "Components",
                "1 (UP) while a collector, processor or the bus connection runs and is connected.",
                "none",
                [p.promql(COMPONENT_UP, "{{instance}} {{component}}", instant=True)],
                width=24,
                steps=[(None, "red"), (1, "green")],
                mappings=p.up_down_mappings(),
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Events received",
                "Events per second each component received, by kind.",
                "ops",
                [p.promql(EVENTS_RECEIVED)],
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Source silence",
                "Seconds since the pipeline last stored an event from each source node, per kind "
                "(CollectorSilent fires past 600 s).",
                "s",
                [p.promql(SOURCE_AGE, "{{node}} {{kind}}")],
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Errors and dead letters",
                "Caught errors by component and class, and events dead-lettered by reason, per second.",
                "ops",
                [
                    p.promql(ERROR_RATE, "error {{component}} {{error}}", ref_id="A"),
                    p.promql(DEADLETTER_RATE, "dead letter {{component}} {{reason}}", ref_id="B"),
                ],
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Bus lag",
                "Messages not yet committed per consumer group and topic.",
                "short",
                [p.promql(BUS_LAG_BY_GROUP)],
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Store insert latency p95",
                "95th percentile of the batch insert time per table.",
                "s",
                [p.promql(INSERT_P95, "{{table}}")],
            )
        )
        .with_panel(
            p.prom_timeseries(
                "HEP packets", "HEP packets per second each collector receives.", "pps", [p.promql(HEP_RATE)]
            )
        )
        .with_panel(
            p.ch_timeseries(
                "SIP messages per node",
                "Stored SIP messages per second by capturing node.",
                "cps",
                SIP_PER_NODE,
            )
        )
        .with_panel(
            p.ch_table(
                "Dead letters",
                "The latest records that could not be parsed, with the reason (raw bytes are in the table).",
                "none",
                DEADLETTERS,
            )
        )
    )
