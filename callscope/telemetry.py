"""Telemetry: JSON logs (structlog) and Prometheus metrics.

One :class:`Telemetry` per process, created in the entry point and passed down.
Metrics live in its own registry (no import-time globals), so tests get a fresh
one. Labels are bounded: component names, kinds, topics, bounded reasons; never
a Call-ID or raw text.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure_logging(level: str = "info", fmt: str = "json", stream: Any = None) -> None:
    """Configure structlog for JSON (or console) lines on stderr."""
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(component: str, **bound: Any) -> Any:
    """A logger with ``component`` (and e.g. ``node``) bound."""
    return structlog.get_logger().bind(component=component, **bound)


class Telemetry:
    """The process's metrics and log binding (``node``)."""

    def __init__(self, node: str = "local", registry: CollectorRegistry | None = None) -> None:
        self.node = node
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_received = Counter(
            "callscope_events_received_total", "Events a component received.", ["component", "kind"], registry=r
        )
        self.events_sent = Counter(
            "callscope_events_sent_total",
            "Events a component handed on (bus or store).",
            ["component", "kind"],
            registry=r,
        )
        self.events_dropped = Counter(
            "callscope_events_dropped_total",
            "Events a component could not deliver.",
            ["component", "reason"],
            registry=r,
        )
        self.errors = Counter(
            "callscope_errors_total", "Errors caught, by component and class.", ["component", "error"], registry=r
        )
        self.deadletters = Counter(
            "callscope_deadletters_total", "Events sent to callscope.deadletter.", ["component", "reason"], registry=r
        )
        self.bus_lag = Gauge(
            "callscope_bus_lag_messages",
            "Messages not yet committed by a consumer group.",
            ["group", "topic"],
            registry=r,
        )
        self.processor_state = Gauge(
            "callscope_processor_state_entries",
            "Entries a correlating processor holds in memory (open legs, sessions, transactions, ...).",
            ["processor"],
            registry=r,
        )
        self.processor_pending = Gauge(
            "callscope_processor_pending_rows",
            "Rows a processor has produced that the store has not acknowledged yet.",
            ["processor"],
            registry=r,
        )
        self.bus_buffered = Gauge(
            "callscope_bus_buffered_messages", "Messages held by a producer, not yet on the bus.", ["bus"], registry=r
        )
        self.sink_batch_rows = Histogram(
            "callscope_sink_batch_rows",
            "Rows per insert batch.",
            ["table"],
            buckets=(1, 10, 100, 1000, 5000, 10000, 50000, 100000, 500000),
            registry=r,
        )
        self.sink_insert_seconds = Histogram(
            "callscope_sink_insert_seconds",
            "Insert latency per batch.",
            ["table"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.sink_retries = Counter(
            "callscope_sink_retries_total", "Insert batches retried after a store error.", ["table"], registry=r
        )
        self.component_up = Gauge(
            "callscope_component_up", "1 while a component runs and is connected.", ["component"], registry=r
        )
        self.last_event_ts = Gauge(
            "callscope_last_event_timestamp_seconds",
            "Unix time of the last event a component received.",
            ["component"],
            registry=r,
        )
        self.source_last_event_ts = Gauge(
            "callscope_source_last_event_timestamp_seconds",
            "Unix time the pipeline last stored an event from a source node, per kind (sip, ami, options ...).",
            ["node", "kind"],
            registry=r,
        )
        self.trunk_calls = Counter(
            "callscope_trunk_calls_total",
            "Call legs that ended through a configured trunk, by result (ASR = answered / all).",
            ["trunk", "result"],
            registry=r,
        )
        self.trunk_call_duration = Histogram(
            "callscope_trunk_call_duration_seconds",
            "Duration (answer to end) of the answered call legs through a configured trunk (ACD = sum / count).",
            ["trunk"],
            buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
            registry=r,
        )
        self.http_requests = Counter(
            "callscope_http_requests_total",
            "HTTP requests the API answered, by route template, method and status class.",
            ["route", "method", "status"],
            registry=r,
        )

    def logger(self, component: str, **bound: Any) -> Any:
        return get_logger(component, node=self.node, **bound)

    def render(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)
