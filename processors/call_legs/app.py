"""I/O shell of the call_legs processor, and the shell the correlating processors share.

Delivery (as the events processor): at-least-once. Rows produced from a batch of
records are written (BatchSink: the store acknowledged) before those records'
offsets are committed. Rows are coalesced per key before writing (the newest
version of a leg per flush), so a call costs a few rows, not one per message; the
call_legs core builds a leg's row only when the shell writes (``_changed_rows``).

Crash and restart: records after the last commit are read again. The legs they
touch are reloaded first: on start the shell reads every leg still live (state
live/ringing/answered) updated within ``reload_hours``, and every leg closed
within ``final_linger_secs``, from ``call_legs FINAL`` and restores it from its
``checkpoint`` column (the correlator's own state, including the envelope ids it
has applied), so re-fed messages are recognised and change nothing; newer ones
continue the leg. Rows are versioned and ReplacingMergeTree keeps the newest.

Several processes: a reloaded leg may belong to a partition another process now
owns. Such "orphans" are kept only for their timeouts, and before a timeout row
of an orphan is written the shell checks that the stored version did not move
(else the owner is alive and the orphan is dropped). Timeout rows are computed
from event times, so two processes closing the same leg write the same row.

Timeouts run from a periodic ``expire(now)`` with the wall clock, here only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence, Sized
from datetime import UTC, datetime
from typing import Any

from callscope.bus.base import Bus, Consumer, Record, TopicPartition
from callscope.bus.envelopes import SHARED, EnvelopeCache
from callscope.settings import ProcessorConfig, StoreConfig
from callscope.store.client import Store
from callscope.store.sink import BatchSink
from callscope.telemetry import Telemetry
from processors.call_legs.config import CallLegsConfig
from processors.call_legs.correlator import FINAL_STATES, LIVE_STATES, LegCorrelator, LegRow, LinkRow, Output
from processors.call_legs.trunks import TrunkCounter
from schemas.errors import BusError
from schemas.topics import topic_for
from schemas.wire import SIP_ENVELOPES, Decoded

NAME = "call_legs"

PendingRow = tuple[str, str, tuple[Any, ...]]  # table, coalescing key, values


def utc_now() -> datetime:
    return datetime.now(UTC)


class CorrelatingShell:
    """Consume topics, feed a pure core, write coalesced rows, commit after the store acknowledged.

    Subclasses set ``name``, ``topics``, ``tables`` and implement :meth:`_feed` and
    :meth:`_expire` (and optionally :meth:`_reload` and :meth:`_filter_expired`).
    """

    name = "shell"
    topics: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    # Where records are decoded: shared by the processors of the process (callscope.bus.envelopes).
    envelopes: EnvelopeCache = SHARED

    def __init__(
        self,
        config: ProcessorConfig,
        store_config: StoreConfig,
        bus: Bus,
        store: Store,
        telemetry: Telemetry,
        *,
        node: str,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
        expire_interval_secs: float = 1.0,
    ) -> None:
        self._config = config
        self._store_config = store_config
        self._bus = bus
        self._store = store
        self._telemetry = telemetry
        self._node = node
        self._clock = clock
        self._wall = wall
        self._expire_interval = expire_interval_secs
        self._log = telemetry.logger(self.name)
        self._offsets: dict[TopicPartition, int] = {}
        self._pending: dict[str, dict[str, tuple[Any, ...]]] = {t: {} for t in self.tables}
        self._pending_since: float | None = None
        self._consumer: Consumer | None = None
        self._received: dict[str, Any] = {}  # topic -> events_received child
        self._sinks = {
            table: BatchSink.for_table(store, table, store_config, telemetry, clock=clock) for table in self.tables
        }
        self.group = f"{config.group_prefix}.{self.name}"
        self.ready = asyncio.Event()

    # -- hooks ---------------------------------------------------------------------------------

    def _feed(self, env: Decoded) -> list[PendingRow]:
        raise NotImplementedError

    def _expire(self, now: datetime) -> list[PendingRow]:
        raise NotImplementedError

    async def _reload(self) -> None:
        """Take back in-flight state from the store before consuming (default: nothing)."""

    def _wants(self, topic: str, value: bytes, record: Record | None) -> bool:
        """Cheap check before the full validation: False skips a record the core would ignore anyway.

        ``self.envelopes.peek(value, record)`` gives the envelope of ``value`` when another processor
        of the process decoded it already (``record``: the record it may ride on, or None). Raises ``ValueError``
        for a record that is not even JSON (counted as an ``envelope`` error). The events
        processor validates and dead-letters every envelope; shells only read.
        """
        return True

    async def _filter_expired(self, rows: list[PendingRow]) -> list[PendingRow]:
        return rows

    def _changed_rows(self) -> list[PendingRow]:
        """Rows a core builds lazily (when the shell writes), not per record (default: none)."""
        return []

    # -- loop ----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then flush and commit what was read."""
        await self._reload()
        self._consumer = await self._bus.consumer(self.group, self.topics)
        self._telemetry.component_up.labels(self.name).set(1)
        self.ready.set()
        self._log.info("processor started", group=self.group, topics=len(self.topics))
        next_expire = self._clock() + self._expire_interval
        try:
            while not stop.is_set():
                records = await self._consumer.getmany(
                    timeout_ms=self._config.poll_timeout_ms, max_records=self._config.poll_max_records
                )
                last: dict[tuple[str, int], int] = {}  # one TopicPartition per batch, not per record
                received: dict[str, int] = {}  # the received counters move once per batch and topic
                carried = self._consumer.carries_envelopes
                for rec in records:
                    self._handle(rec, rec if carried else None)
                    last[rec.topic, rec.partition] = rec.offset
                    received[rec.topic] = received.get(rec.topic, 0) + 1
                for (topic, partition), offset in last.items():
                    self._offsets[TopicPartition(topic, partition)] = offset + 1
                for topic, count in received.items():
                    self._count_received(topic, count)
                if records:
                    self._telemetry.last_event_ts.labels(self.name).set(time.time())
                if self._clock() >= next_expire:
                    expired = self._expire(self._wall())
                    if expired:
                        self._add(await self._filter_expired(expired))
                    next_expire = self._clock() + self._expire_interval
                    self._report_state()
                if (self._offsets or self._pending_count()) and (not records or self._due()):
                    await self._flush_and_commit()
            await self._flush_and_commit()
        finally:
            self._telemetry.component_up.labels(self.name).set(0)
            await self._consumer.close()
            self._log.info("processor stopped", group=self.group)

    def _count_received(self, topic: str, count: int) -> None:
        received = self._received.get(topic)
        if received is None:
            received = self._received[topic] = self._telemetry.events_received.labels(
                self.name, topic.rsplit(".", 1)[-1]
            )
        received.inc(count)

    def _handle(self, rec: Record, carrier: Record | None) -> None:
        """One record (counted by the caller, :meth:`run`, per batch); ``carrier``: ``rec`` when its
        decoded envelope may ride on it (``Consumer.carries_envelopes``), else None."""
        value = rec.value
        try:
            if not self._wants(rec.topic, value, carrier):
                return
            env = self.envelopes.decode(value, carrier)
        except ValueError:
            # The events processor dead-letters it; here it is only counted.
            self._telemetry.errors.labels(self.name, "envelope").inc()
            return
        self._add(self._feed(env))

    def _add(self, rows: Sequence[PendingRow]) -> None:
        if rows and self._pending_since is None:
            self._pending_since = self._clock()
        for table, key, values in rows:
            self._pending[table][key] = values

    def _pending_count(self) -> int:
        return sum(len(p) for p in self._pending.values())

    def _state_entries(self) -> int:
        """Entries of in-memory state (the core's ``len``); subclasses with more state add theirs."""
        core = getattr(self, "correlator", None)
        if core is None:
            core = getattr(self, "core", None)
        return len(core) if isinstance(core, Sized) else 0

    def _report_state(self) -> None:
        """Set the state and pending-rows gauges (once per expire pass: ``len`` may walk dicts)."""
        name = self.name
        self._telemetry.processor_state.labels(name).set(self._state_entries())
        pending = self._pending_count() + sum(s.pending_rows for s in self._sinks.values())
        self._telemetry.processor_pending.labels(name).set(pending)

    def _due(self) -> bool:
        sc = self._store_config
        if self._pending_count() >= sc.batch_max_rows:
            return True
        return self._pending_since is not None and self._clock() - self._pending_since >= sc.batch_max_age_secs

    async def _flush_and_commit(self) -> None:
        written = 0
        self._add(self._changed_rows())
        for table, rows in self._pending.items():
            sink = self._sinks[table]
            for values in rows.values():
                sink.add(values, 256)
            rows.clear()
        self._pending_since = None
        for sink in self._sinks.values():
            written += await sink.flush()
        if self._offsets:
            assert self._consumer is not None
            try:
                await self._consumer.commit(dict(self._offsets))
            except BusError as exc:
                self._telemetry.errors.labels(self.name, "commit").inc()
                self._log.warning("offset commit failed", error=str(exc))
            self._offsets.clear()
        if written:
            self._telemetry.events_sent.labels(self.name, "rows").inc(written)

    def stats(self) -> dict[str, Any]:
        return {"group": self.group, "pending": {t: s.pending_rows for t, s in self._sinks.items()}}


def leg_rows(outputs: Sequence[Output]) -> list[PendingRow]:
    out: list[PendingRow] = []
    for o in outputs:
        if isinstance(o, LegRow):
            out.append(("call_legs", o.leg_id, o.values()))
        else:
            out.append(("call_links", o.id, o.values()))
    return out


class CallLegsProcessor(CorrelatingShell):
    """SIP messages into ``call_legs`` and ``call_links`` (see the module docstring)."""

    name = NAME
    topics = (topic_for("sip"),)
    tables = ("call_legs", "call_links")

    def __init__(
        self,
        config: ProcessorConfig,
        store_config: StoreConfig,
        bus: Bus,
        store: Store,
        telemetry: Telemetry,
        *,
        node: str,
        legs: CallLegsConfig | None = None,
        trunks: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.legs_config = legs or CallLegsConfig()
        super().__init__(
            config,
            store_config,
            bus,
            store,
            telemetry,
            node=node,
            clock=clock,
            wall=wall,
            expire_interval_secs=self.legs_config.expire_interval_secs,
        )
        self.correlator = LegCorrelator(self.legs_config)
        self._orphans: dict[str, int] = {}  # leg_id -> version at reload, until a message touches it
        self.trunks = TrunkCounter(trunks or {})

    def _state_entries(self) -> int:
        return len(self.correlator) + len(self._orphans)

    async def _reload(self) -> None:
        cfg = self.legs_config
        sql = (
            "SELECT leg_id, version, state, checkpoint FROM call_legs FINAL"
            " WHERE (state IN {live:Array(String)} AND updated_at >= {now:DateTime64(6, 'UTC')}"
            " - toIntervalSecond({window:UInt32}))"
            " OR (state IN {final:Array(String)} AND updated_at >= {now:DateTime64(6, 'UTC')}"
            " - toIntervalSecond({linger:UInt32}))"
        )
        params = {
            "live": list(LIVE_STATES),
            "final": sorted(FINAL_STATES),
            "now": self._wall(),
            "window": int(cfg.reload_hours * 3600),
            "linger": int(cfg.final_linger_secs) + 60,
        }
        rows = await asyncio.to_thread(self._store.query, sql, params)
        for row in rows:
            if row["state"] in FINAL_STATES:
                self.trunks.seen(str(row["leg_id"]))  # counted by the process that closed it
            if row["checkpoint"]:
                leg_id = self.correlator.restore(str(row["checkpoint"]))
                self._orphans[leg_id] = int(row["version"])
        if rows:
            self._log.info("legs reloaded", legs=len(rows))

    def _feed(self, env: Decoded) -> list[PendingRow]:
        if not isinstance(env, SIP_ENVELOPES):
            return []
        body = env.body
        if self.trunks.trunks and body.method == "INVITE" and body.is_request:
            self.trunks.invite(f"{body.call_id}:{body.from_tag or ''}", body.src.ip, body.dst.ip)
        links = self.correlator.touch(env)
        if self._pending_since is None and self.correlator.dirty_count:
            self._pending_since = self._clock()  # the leg's row is due with the batch it belongs to
        return leg_rows(links)

    def _changed_rows(self) -> list[PendingRow]:
        """The rows of the legs changed since the last write: one per leg, its newest content."""
        rows = leg_rows(self._count_trunks(list(self.correlator.rows())))
        if self._orphans:
            for table, key, _ in rows:
                if table == "call_legs":
                    self._orphans.pop(key, None)  # a message touched it: this process owns it
        return rows

    def _pending_count(self) -> int:
        return super()._pending_count() + self.correlator.dirty_count

    def _expire(self, now: datetime) -> list[PendingRow]:
        changed = self._changed_rows()  # first: the orphans these touched are owned here
        return changed + leg_rows(self._count_trunks(self.correlator.expire(now)))

    def _count_trunks(self, outputs: list[Output]) -> list[Output]:
        if self.trunks.trunks:
            for out in outputs:
                if isinstance(out, LegRow):
                    closed = self.trunks.closed(out)
                    if closed is not None:
                        self._telemetry.trunk_calls.labels(*closed).inc()
                        if closed[1] == "answered" and out.duration_secs is not None:
                            self._telemetry.trunk_call_duration.labels(closed[0]).observe(out.duration_secs)
        return outputs

    async def _filter_expired(self, rows: list[PendingRow]) -> list[PendingRow]:
        orphans = [key for table, key, _ in rows if table == "call_legs" and key in self._orphans]
        if not orphans:
            return rows
        stored = await asyncio.to_thread(
            self._store.query,
            "SELECT leg_id, max(version) AS v FROM call_legs WHERE leg_id IN {ids:Array(String)} GROUP BY leg_id",
            {"ids": orphans},
        )
        moved = {str(r["leg_id"]) for r in stored if int(r["v"]) != self._orphans[str(r["leg_id"])]}
        for key in orphans:
            self._orphans.pop(key, None)
        if moved:
            self._log.info("orphan legs owned elsewhere", legs=len(moved))
        return [r for r in rows if not (r[0] == "call_legs" and r[1] in moved)]


__all__ = ["CallLegsProcessor", "CorrelatingShell", "LinkRow", "PendingRow", "leg_rows", "utc_now"]
