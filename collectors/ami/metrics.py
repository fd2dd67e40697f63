"""The AMI collector's own metrics, registered once per :class:`~callscope.telemetry.Telemetry` registry.

Labels are bounded: ``node`` is a configured connection's node, ``reason`` and ``result``
come from fixed sets (see :mod:`.session` and :mod:`.wire`).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from callscope.telemetry import Telemetry


@dataclass(frozen=True)
class AmiMetrics:
    connected: Gauge
    reconnects: Counter
    gaps: Counter
    events: Counter
    parse_errors: Counter
    login_failures: Counter
    ping_rtt: Histogram


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, AmiMetrics] = weakref.WeakKeyDictionary()


def ami_metrics(telemetry: Telemetry) -> AmiMetrics:
    metrics = _METRICS.get(telemetry.registry)
    if metrics is not None:
        return metrics
    r = telemetry.registry
    metrics = AmiMetrics(
        connected=Gauge(
            "callscope_ami_connected", "1 while the AMI connection to the node is logged in.", ["node"], registry=r
        ),
        reconnects=Counter(
            "callscope_ami_reconnects_total",
            "AMI connections that ended (or failed) and were retried, by why.",
            ["node", "reason"],
            registry=r,
        ),
        gaps=Counter(
            "callscope_ami_gaps_total",
            "Reconnects after which events may be missing (a CallscopeGap marker was published).",
            ["node"],
            registry=r,
        ),
        events=Counter(
            "callscope_ami_events_total",
            "AMI events read per node: published, filtered (by the event filters) or resync (list results).",
            ["node", "result"],
            registry=r,
        ),
        parse_errors=Counter(
            "callscope_ami_parse_errors_total",
            "Text on the AMI stream that is not a block, or an event that cannot be an envelope (dead-lettered).",
            ["node", "reason"],
            registry=r,
        ),
        login_failures=Counter(
            "callscope_ami_login_failures_total", "AMI Login actions Asterisk refused.", ["node"], registry=r
        ),
        ping_rtt=Histogram(
            "callscope_ami_ping_rtt_seconds",
            "Time from an AMI Ping to its answer.",
            ["node"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
            registry=r,
        ),
    )
    _METRICS[r] = metrics
    return metrics
