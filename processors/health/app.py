"""I/O shell of the health processor: probe results into states, transitions, metrics.

Consumes ``callscope.options`` (every vantage point's probe results; keyed by target,
so one target's results meet in one process) and, for passive OPTIONS,
``callscope.sip``. Feeds :class:`processors.health.state.HealthCore`, writes its
transitions to ``health_transitions`` and updates the Prometheus metrics of
:mod:`processors.health.metrics` as each result is applied.

Passive OPTIONS (:mod:`processors.health.passive`) become ``options`` envelopes
published on ``callscope.options`` (keyed by the target, like the prober's): the
events processor stores them in ``options_probes`` like any probe result, and this
processor reads them back into the same state machine, in the process that owns
the target's partition. Their ids derive from the request's event id, so a replay
publishes the same envelopes and the duplicates are ignored (by id, per pair).

Delivery (as :mod:`processors.call_legs.app`, whose shell this is): transitions are
stored and passive envelopes are flushed onto the bus before the offsets of the
records that produced them are committed.

Restart: before consuming, the last row of every (node, target) and every target
is read from ``health_transitions`` (state, since, flapping, recent state changes)
and the last probe of every (node, target) from ``options_probes`` (its time starts
the stale clock; ``options_up`` is set again for fresh ones), so a restart writes no
transition that did not happen. Streak counters start afresh: after a restart a
down target needs ``successes_to_up`` answers again.

Staleness, quiet flapping and passive timeouts run from ``expire(now)`` with the wall
clock every ``expire_interval_secs`` (at most 1 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from callscope.bus.base import Bus, Producer, Record
from callscope.settings import ProcessorConfig, StoreConfig, TopologyConfig
from callscope.store.client import Store
from callscope.telemetry import Telemetry
from collectors.options.config import OptionsConfig
from processors.call_legs.app import CorrelatingShell, PendingRow, utc_now
from processors.health.config import HealthConfig
from processors.health.metrics import health_metrics
from processors.health.passive import Dropped, PassiveCorrelator, hostport, normalize_ip
from processors.health.policy import Policies
from processors.health.results import (
    STATES,
    TARGET_STATES,
    Ignored,
    Output,
    ProbeResult,
    Stale,
    Transition,
)
from processors.health.state import HealthCore
from processors.prefilter import method_is
from schemas.envelope import OptionsEnvelope, encode
from schemas.tables import micros
from schemas.topics import topic_for
from schemas.wire import SIP_ENVELOPES, Decoded

NAME = "health"
TABLE = "health_transitions"
_OPTIONS = topic_for("options")
_SIP = topic_for("sip")

_STATES_SQL = """
SELECT scope, node, target,
       argMax(target_kind, (at, id)) AS kind,
       argMax(to_state, (at, id)) AS state,
       argMax(flapping, (at, id)) AS flapping,
       maxIf(at, from_state != to_state) AS since,
       max(at) AS last_at,
       maxIf(at, {known_change}) AS last_change,
       groupArrayIf(at, {known_change} AND at > {flap_from:DateTime64(6, 'UTC')}) AS changes
FROM health_transitions FINAL
GROUP BY scope, node, target
""".replace("{known_change}", "from_state != to_state AND from_state != 'unknown' AND to_state != 'unknown'")

_LAST_PROBES_SQL = """
SELECT node, target,
       argMax(id, ts) AS id, argMax(target_kind, ts) AS kind, max(ts) AS last_ts,
       argMax(status, ts) AS status, argMax(tuple(rtt_ms), ts).1 AS last_rtt_ms, argMax(error, ts) AS error,
       argMax(passive, ts) AS passive
FROM options_probes
WHERE ts >= {since:DateTime64(6, 'UTC')}
GROUP BY node, target
"""


def own_addresses(topology: TopologyConfig) -> dict[str, frozenset[str]]:
    """Node name -> its address from the topology: ``IP:PORT`` (that port only) or a bare IP (every port)."""
    out: dict[str, frozenset[str]] = {}
    for node in topology.nodes:
        if not node.address:
            continue
        own = normalize_ip(node.address)
        if own is None:
            host, sep, port = node.address.rpartition(":")
            ip = normalize_ip(host) if sep and port.isdigit() else None
            own = hostport(ip, int(port)) if ip is not None else None
        if own is not None:
            out[node.name] = frozenset({own})
    return out


def sip_wants(value: bytes) -> bool:
    """OPTIONS requests and their answers (CSeq method), found in the canonical encoding without parsing it."""
    return method_is(value, b"options")


class HealthProcessor(CorrelatingShell):
    """OPTIONS results (active and passive) into health states, transitions and metrics."""

    name = NAME
    topics: tuple[str, ...] = (_OPTIONS, _SIP)
    tables = (TABLE,)

    core: HealthCore
    passive: PassiveCorrelator | None

    def __init__(
        self,
        config: ProcessorConfig,
        store_config: StoreConfig,
        bus: Bus,
        store: Store,
        telemetry: Telemetry,
        *,
        node: str,
        health: HealthConfig | None = None,
        options: OptionsConfig | None = None,
        topology: TopologyConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.health_config = health or HealthConfig()
        self.options_config = options or OptionsConfig()
        super().__init__(
            config,
            store_config,
            bus,
            store,
            telemetry,
            node=node,
            clock=clock,
            wall=wall,
            expire_interval_secs=self.health_config.expire_interval_secs,
        )
        if not self.health_config.passive:
            self.topics = (_OPTIONS,)
        self.policies = Policies(self.health_config, self.options_config)
        self.metrics = health_metrics(telemetry)
        self._own = own_addresses(topology or TopologyConfig())
        self._outbox: list[tuple[bytes | None, bytes]] = []
        self._producer: Producer | None = None
        self._dropped: dict[str, Any] = {}

    # -- start ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await super().run(stop)
        finally:
            if self._producer is not None:
                await self._producer.close()

    async def _reload(self) -> None:
        self.core = HealthCore(self.health_config, self.policies)
        self.passive = (
            PassiveCorrelator(self.health_config, self.options_config, self._own)
            if self.health_config.passive
            else None
        )
        now = self._wall()
        flap_from = now - timedelta(seconds=self.health_config.flap_window_secs)
        rows = await asyncio.to_thread(self._store.query, _STATES_SQL, {"flap_from": flap_from})
        for row in sorted(rows, key=lambda r: r["scope"] != "node"):  # vantage points before their targets
            changes = {micros(at) for at in row["changes"]}
            last_change = micros(row["last_change"])
            if last_change > 0:
                changes.add(last_change)
            kind, since, flapping = str(row["kind"]), micros(row["since"]), bool(row["flapping"])
            if since <= 0:  # no state change left (expired by the TTL): the newest row bounds it
                since = micros(row["last_at"])
            state = str(row["state"])
            if row["scope"] == "node" and state in STATES:
                self.core.restore_pair(
                    str(row["node"]),
                    str(row["target"]),
                    kind=kind,
                    state=state,
                    since=since,
                    flapping=flapping,
                    changes=changes,
                )
            elif row["scope"] == "target" and state in TARGET_STATES:
                self.core.restore_target(
                    str(row["target"]),
                    kind=kind,
                    state=state,
                    since=since,
                    flapping=flapping,
                    changes=changes,
                )
        probes_from = now - timedelta(seconds=self.health_config.reload_probes_secs)
        probes = await asyncio.to_thread(self._store.query, _LAST_PROBES_SQL, {"since": probes_from})
        now_us = micros(now)
        for p in probes:
            last = ProbeResult(
                id=str(p["id"]),
                node=str(p["node"]),
                target=str(p["target"]),
                kind=str(p["kind"]),
                ts=micros(p["last_ts"]),
                status=int(p["status"]) or None,
                rtt_ms=p["last_rtt_ms"],
                error=str(p["error"]) or None,
                passive=bool(p["passive"]),
            )
            self.core.restore_last(last)
            if now_us - last.ts < self.policies(last.target).stale_secs * 1_000_000:
                self.metrics.restore_up(last)
        for name in self.core.target_names():
            view = self.core.target(name)
            assert view is not None
            self.metrics.target(view.name, view.kind, view.state, view.flapping)
        if rows or probes:
            self._log.info("health state reloaded", targets=len(self.core), states=len(rows), probes=len(probes))

    # -- records -------------------------------------------------------------------------------

    def _wants(self, topic: str, value: bytes, record: Record | None) -> bool:
        return topic != _SIP or sip_wants(value)

    def _feed(self, env: Decoded) -> list[PendingRow]:
        if isinstance(env, OptionsEnvelope):
            result = ProbeResult.from_envelope(env)
            return self._apply(self.core.feed(result), result)
        if isinstance(env, SIP_ENVELOPES) and self.passive is not None:
            self._passive(self.passive.feed(env))
        return []

    def _expire(self, now: datetime) -> list[PendingRow]:
        now_us = micros(now)
        rows = self._apply(self.core.expire(now_us), None)
        if self.passive is not None:
            self._passive(self.passive.expire(now_us))
        return rows

    def _apply(self, outputs: Sequence[Output], result: ProbeResult | None) -> list[PendingRow]:
        rows: list[PendingRow] = []
        touched: set[str] = set()
        applied = result is not None
        for out in outputs:
            if isinstance(out, Ignored):
                applied = False
                self._drop(out.reason)
            elif isinstance(out, Stale):
                self.metrics.stale(out.node, out.target)
            else:
                rows.append((TABLE, out.id, out.values()))
                touched.add(out.target)
                self._transition(out)
        if result is not None and applied:
            self.metrics.observe(result)
            touched.add(result.target)
        for name in touched:
            view = self.core.target(name)
            if view is not None:
                self.metrics.target(view.name, view.kind, view.state, view.flapping)
        return rows

    def _transition(self, t: Transition) -> None:
        self.metrics.transition(t)
        self._log.info(
            "health transition" if t.state_change else "health flapping",
            scope=t.scope,
            vantage=t.node or None,
            target=t.target,
            from_state=t.from_state,
            to_state=t.to_state,
            flapping=t.flapping,
            reason=t.reason,
        )

    def _drop(self, reason: str) -> None:
        child = self._dropped.get(reason)
        if child is None:
            child = self._dropped[reason] = self._telemetry.events_dropped.labels(NAME, reason)
        child.inc()

    def _passive(self, outputs: Sequence[OptionsEnvelope | Dropped]) -> None:
        for out in outputs:
            if isinstance(out, Dropped):
                if out.reason == "target_limit":
                    self.metrics.passive_dropped.inc()
                self._drop(f"passive_{out.reason}")
                continue
            if self._pending_since is None:
                self._pending_since = self._clock()
            self._outbox.append((out.key.encode(), encode(out)))

    # -- delivery ------------------------------------------------------------------------------

    def _pending_count(self) -> int:
        return super()._pending_count() + len(self._outbox)

    async def _flush_and_commit(self) -> None:
        if self._outbox:
            if self._producer is None:
                self._producer = self._bus.producer()
            items, self._outbox = self._outbox, []
            await self._producer.send_many(_OPTIONS, items)
            await self._producer.flush()
            self._telemetry.events_sent.labels(NAME, "options").inc(len(items))
        await super()._flush_and_commit()
