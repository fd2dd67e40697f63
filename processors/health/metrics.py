"""The health processor's Prometheus metrics, registered once per :class:`Telemetry` registry.

Names and labels are a contract with the alert rules (dashboards/prometheus/):

- ``callscope_options_up{node,target,kind}``: 1 when the last result from ``node`` to
  ``target`` was reachable, else 0; the series goes when the pair goes stale.
- ``callscope_options_rtt_seconds{node,target,kind}``: RTT of answered probes.
- ``callscope_options_probes_total{node,target,result}``: results by outcome
  (ok, timeout, refused, dns, tls, malformed, unexpected_code).
- ``callscope_target_state{target,kind,state}``: one of up, degraded, partial, down,
  unknown is 1 per target, the others 0.
- ``callscope_target_flapping{target,kind}``: 0/1.
- ``callscope_health_transitions_total{target,kind,scope,to}``: state changes.
- ``callscope_options_passive_targets_dropped_total``: passive requests to targets over the bound.

Labels are bounded by the configured targets plus ``max_targets`` and ``max_passive_targets``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from callscope.telemetry import Telemetry
from processors.health.results import TARGET_STATES, ProbeResult, Transition

RTT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass
class HealthMetrics:
    up: Gauge
    rtt: Histogram
    probes: Counter
    target_state: Gauge
    flapping: Gauge
    transitions: Counter
    passive_dropped: Counter
    _up_kind: dict[tuple[str, str], str] = field(default_factory=dict)  # (node, target) -> kind of its series
    _target_kind: dict[str, str] = field(default_factory=dict)
    _children: dict[tuple[str, str, str], Any] = field(default_factory=dict)  # per-result children, cached

    def observe(self, r: ProbeResult) -> None:
        """A result was applied: the vantage point's series, at once."""
        pair = (r.node, r.target)
        old = self._up_kind.get(pair)
        if old is not None and old != r.kind:
            self.up.remove(r.node, r.target, old)
            self.rtt.remove(r.node, r.target, old)
            self._children.pop((r.node, r.target, old), None)
        self._up_kind[pair] = r.kind
        self.up.labels(r.node, r.target, r.kind).set(1 if r.ok else 0)
        if r.rtt_ms is not None and r.status is not None:
            rtt = self._children.get((r.node, r.target, r.kind))
            if rtt is None:
                rtt = self._children[r.node, r.target, r.kind] = self.rtt.labels(r.node, r.target, r.kind)
            rtt.observe(r.rtt_ms / 1000)
        self.probes.labels(r.node, r.target, r.result).inc()

    def restore_up(self, r: ProbeResult) -> None:
        """The last stored result of a fresh pair, after a restart (no counting)."""
        self._up_kind[r.node, r.target] = r.kind
        self.up.labels(r.node, r.target, r.kind).set(1 if r.ok else 0)

    def stale(self, node: str, target: str) -> None:
        kind = self._up_kind.pop((node, target), None)
        if kind is not None:
            self.up.remove(node, target, kind)

    def target(self, name: str, kind: str, state: str, flapping: bool) -> None:
        old = self._target_kind.get(name)
        if old is not None and old != kind:
            for s in TARGET_STATES:
                self.target_state.remove(name, old, s)
            self.flapping.remove(name, old)
        self._target_kind[name] = kind
        for s in TARGET_STATES:
            self.target_state.labels(name, kind, s).set(1 if s == state else 0)
        self.flapping.labels(name, kind).set(1 if flapping else 0)

    def transition(self, t: Transition) -> None:
        if t.state_change:
            self.transitions.labels(t.target, t.kind, t.scope, t.to_state).inc()


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, HealthMetrics] = weakref.WeakKeyDictionary()


def health_metrics(telemetry: Telemetry) -> HealthMetrics:
    """The metrics above on ``telemetry.registry``, registered on first use."""
    metrics = _METRICS.get(telemetry.registry)
    if metrics is None:
        r = telemetry.registry
        metrics = HealthMetrics(
            up=Gauge(
                "callscope_options_up",
                "1 when the last OPTIONS result from node to target was reachable, else 0 (removed when stale).",
                ["node", "target", "kind"],
                registry=r,
            ),
            rtt=Histogram(
                "callscope_options_rtt_seconds",
                "Round-trip time of answered OPTIONS probes (active and passive).",
                ["node", "target", "kind"],
                buckets=RTT_BUCKETS,
                registry=r,
            ),
            probes=Counter(
                "callscope_options_probes_total",
                "OPTIONS probe results by outcome (ok, timeout, refused, dns, tls, malformed, unexpected_code).",
                ["node", "target", "result"],
                registry=r,
            ),
            target_state=Gauge(
                "callscope_target_state",
                "Health of a target over its vantage points: 1 for its state (up, degraded, partial, down, "
                "unknown), 0 for the others.",
                ["target", "kind", "state"],
                registry=r,
            ),
            flapping=Gauge(
                "callscope_target_flapping",
                "1 while a target flaps (too many state changes within the flap window).",
                ["target", "kind"],
                registry=r,
            ),
            transitions=Counter(
                "callscope_health_transitions_total",
                "Health state changes, per target, scope (node: one vantage point; target: the aggregate) "
                "and new state.",
                ["target", "kind", "scope", "to"],
                registry=r,
            ),
            passive_dropped=Counter(
                "callscope_options_passive_targets_dropped_total",
                "Passive OPTIONS requests dropped because max_passive_targets host:port targets are tracked.",
                registry=r,
            ),
        )
        _METRICS[telemetry.registry] = metrics
    return metrics
