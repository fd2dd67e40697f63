"""I/O shell of the queue_sessions processor: ``callscope.queue_log`` and ``callscope.ami`` into
``queue_sessions`` and ``agent_states`` (the shared :class:`CorrelatingShell`).

Delivery as :mod:`processors.call_legs.app`: rows are written (coalesced per session:
the newest version per flush) before the offsets of the records that made them are
committed, so a crash re-feeds records whose rows may be stored already; their
content is recognised (the sessions are reloaded with the event fingerprints they
applied) and changes nothing.

Reload on start: every session updated within ``reload_hours`` that has no final row
yet, and the final ones within ``settle_secs + tombstone_secs`` (as tombstones: their
late events are ignored), from ``queue_sessions FINAL``'s ``checkpoint``; and every
open ``agent_states`` interval.

Final rows, one per session: before a final row is written the shell checks the
table for a final row of that session (a process that restarted after writing it,
or another process that reloaded the same session); if there is one, it is not
written again. Only final rows feed the ``queue_sla_15m`` rollup, so the rollup
counts each session once.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson
from prometheus_client import Counter

from callscope.bus.base import Bus, Record
from callscope.settings import ProcessorConfig, StoreConfig
from callscope.store.client import Store
from callscope.telemetry import Telemetry
from processors.call_legs.app import CorrelatingShell, PendingRow, utc_now
from processors.queue_sessions.agents import AgentStateRow
from processors.queue_sessions.config import QueueSessionsConfig
from processors.queue_sessions.correlator import Output, QueueCorrelator
from processors.queue_sessions.parse import AMI_EVENTS
from processors.queue_sessions.session import SESSION_ROW_FIELDS
from schemas.topics import topic_for
from schemas.wire import Decoded

NAME = "queue_sessions"
SESSIONS = "queue_sessions"
AGENTS = "agent_states"

_FINAL = SESSION_ROW_FIELDS.index("final")
_QUEUE = SESSION_ROW_FIELDS.index("queue")
_OUTCOME = SESSION_ROW_FIELDS.index("outcome")

_METRICS: weakref.WeakKeyDictionary[Any, tuple[Counter, Counter]] = weakref.WeakKeyDictionary()


def queue_metrics(telemetry: Telemetry) -> tuple[Counter, Counter]:
    """``callscope_queue_events_total{source,result}`` and ``callscope_queue_sessions_total{outcome}``,
    registered once per registry."""
    metrics = _METRICS.get(telemetry.registry)
    if metrics is None:
        events = Counter(
            "callscope_queue_events_total",
            "queue_log lines and AMI queue/agent events the queue_sessions processor read, by result "
            "(applied, duplicate, late, ignored, source_off).",
            ["source", "result"],
            registry=telemetry.registry,
        )
        sessions = Counter(
            "callscope_queue_sessions_total",
            "Queue sessions finalised (counted in the SLA rollup), by outcome.",
            ["outcome"],
            registry=telemetry.registry,
        )
        metrics = _METRICS[telemetry.registry] = (events, sessions)
    return metrics


def output_rows(outputs: Sequence[Output]) -> list[PendingRow]:
    out: list[PendingRow] = []
    for o in outputs:
        if isinstance(o, AgentStateRow):
            out.append((AGENTS, o.id, o.values()))
        else:
            out.append((SESSIONS, o.session_id, o.values()))
    return out


class QueueSessionsProcessor(CorrelatingShell):
    """queue_log and AMI queue events into ``queue_sessions`` and ``agent_states`` (module docstring)."""

    name = NAME
    tables = (SESSIONS, AGENTS)

    def __init__(
        self,
        config: ProcessorConfig,
        store_config: StoreConfig,
        bus: Bus,
        store: Store,
        telemetry: Telemetry,
        *,
        node: str,
        queues: QueueSessionsConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.queues_config = queues or QueueSessionsConfig()
        self.topics = tuple(topic_for(s) for s in self.queues_config.sources)
        super().__init__(
            config,
            store_config,
            bus,
            store,
            telemetry,
            node=node,
            clock=clock,
            wall=wall,
            expire_interval_secs=self.queues_config.expire_interval_secs,
        )
        self.correlator = QueueCorrelator(self.queues_config)
        self._events_metric, self._sessions_metric = queue_metrics(telemetry)

    async def _reload(self) -> None:
        cfg = self.queues_config
        rows = await asyncio.to_thread(
            self._store.query,
            "SELECT checkpoint FROM queue_sessions FINAL"
            " WHERE updated_at >= {now:DateTime64(6, 'UTC')} - toIntervalSecond({window:UInt32})"
            " AND (NOT final OR updated_at >= {now:DateTime64(6, 'UTC')} - toIntervalSecond({tomb:UInt32}))",
            {
                "now": self._wall(),
                "window": int(cfg.reload_hours * 3600),
                "tomb": int(cfg.settle_secs + cfg.tombstone_secs) + 60,
            },
        )
        for row in rows:
            if row["checkpoint"]:
                self.correlator.restore(str(row["checkpoint"]))
        agents = await asyncio.to_thread(
            self._store.query,
            "SELECT node, agent, queue, state, reason, interface, started_at, source, version"
            " FROM agent_states FINAL WHERE ended_at IS NULL",
        )
        for agent in agents:
            self.correlator.agents.restore(agent)
        if rows or agents:
            self._log.info("queue state reloaded", sessions=len(rows), agent_intervals=len(agents))

    def _wants(self, topic: str, value: bytes, record: Record | None) -> bool:
        if not topic.endswith(".ami"):
            return True
        # AMI carries every event of the node: only queue and agent events are validated and fed.
        doc = orjson.loads(value)
        if not isinstance(doc, dict):
            raise ValueError("not an envelope object")
        body = doc.get("body")
        return isinstance(body, dict) and str(body.get("event") or "").lower() in AMI_EVENTS

    def _feed(self, env: Decoded) -> list[PendingRow]:
        result = self.correlator.feed_result(env)
        self._events_metric.labels(env.kind, result.status).inc()
        if result.problem is not None:
            self._telemetry.errors.labels(self.name, result.problem).inc()
        return output_rows(result.rows)

    def _expire(self, now: datetime) -> list[PendingRow]:
        return output_rows(self.correlator.expire(now))

    async def _filter_expired(self, rows: list[PendingRow]) -> list[PendingRow]:
        finals = [(key, values) for table, key, values in rows if table == SESSIONS and values[_FINAL]]
        if not finals:
            return rows
        stored = await asyncio.to_thread(
            self._store.query,
            "SELECT DISTINCT session_id FROM queue_sessions"
            " WHERE queue IN {queues:Array(String)} AND session_id IN {ids:Array(String)} AND final",
            {"queues": sorted({str(v[_QUEUE]) for _, v in finals}), "ids": [key for key, _ in finals]},
        )
        written = {str(r["session_id"]) for r in stored}
        if written:
            self._log.info("final rows already stored", sessions=len(written))
        for key, values in finals:
            if key not in written:
                self._sessions_metric.labels(str(values[_OUTCOME])).inc()
        # Every row of such a session goes: the stored final row stays the newest word on it.
        return [r for r in rows if not (r[0] == SESSIONS and r[1] in written)]

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "sessions": len(self.correlator), "agent_intervals": len(self.correlator.agents)}
