"""I/O shell of the events processor: consume every topic, batch into the store, commit.

Delivery: at-least-once. Offsets are committed only after every sink holding
rows from those offsets has been flushed (the store acknowledged the insert) and
the dead letters produced for them are on the bus. Rows carry stable event ids,
and tables deduplicate on them, so a redelivery after a crash stores nothing twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from callscope.bus.base import Bus, Consumer, Producer, Record, TopicPartition
from callscope.bus.envelopes import SHARED, EnvelopeCache
from callscope.settings import ProcessorConfig, StoreConfig
from callscope.store.client import Store
from callscope.store.sink import BatchSink
from callscope.telemetry import Telemetry
from processors.events.route import Rejected, route
from schemas.errors import BusError
from schemas.topics import ALL_TOPICS, DEADLETTER, deadletter_record

NAME = "events"
MAX_SOURCES = 1000  # (node, kind) label pairs of callscope_source_last_event_timestamp_seconds


class EventsProcessor:
    """Stores every envelope in its raw table and every dead letter in ``deadletters``."""

    name = NAME
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
    ) -> None:
        self._config = config
        self._store_config = store_config
        self._bus = bus
        self._store = store
        self._telemetry = telemetry
        self._node = node
        self._clock = clock
        self._log = telemetry.logger(NAME)
        self._sinks: dict[str, BatchSink] = {}
        self._offsets: dict[TopicPartition, int] = {}
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._received: dict[str, Any] = {}  # topic -> events_received child
        self._sources: dict[tuple[str, str], Any] = {}  # (node, kind) -> source_last_event_ts child
        self._batch_sources: set[tuple[str, str]] = set()
        self._kinds: dict[str, str] = {}  # topic -> kind (its last segment), the source label
        self.group = f"{config.group_prefix}.{NAME}"
        self.ready = asyncio.Event()

    def _sink(self, table: str) -> BatchSink:
        sink = self._sinks.get(table)
        if sink is None:
            sink = BatchSink.for_table(self._store, table, self._store_config, self._telemetry, clock=self._clock)
            self._sinks[table] = sink
        return sink

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then flush and commit what was read."""
        self._consumer = await self._bus.consumer(self.group, ALL_TOPICS)
        self._producer = self._bus.producer()
        self._telemetry.component_up.labels(NAME).set(1)
        self.ready.set()
        self._log.info("processor started", group=self.group, topics=len(ALL_TOPICS))
        try:
            while not stop.is_set():
                records = await self._consumer.getmany(
                    timeout_ms=self._config.poll_timeout_ms, max_records=self._config.poll_max_records
                )
                last: dict[tuple[str, int], int] = {}  # one TopicPartition per batch, not per record
                received: dict[str, int] = {}  # the received counters move once per batch and topic
                carried = self._consumer.carries_envelopes
                for rec in records:
                    rejected = self._add_record(rec, rec if carried else None)
                    if rejected is not None:
                        await self._dead_letter(rec.topic, rec.value, rec.key, rejected)
                    last[rec.topic, rec.partition] = rec.offset
                    received[rec.topic] = received.get(rec.topic, 0) + 1
                for (topic, partition), offset in last.items():
                    self._offsets[TopicPartition(topic, partition)] = offset + 1
                for topic, count in received.items():
                    self._count_received(topic, count)
                if records:
                    self._mark_sources(time.time())
                if self._offsets and (not records or any(s.due() for s in self._sinks.values())):
                    await self._flush_and_commit()
            await self._flush_and_commit()
        finally:
            self._telemetry.component_up.labels(NAME).set(0)
            await self._producer.close()
            await self._consumer.close()
            self._log.info("processor stopped", group=self.group)

    def _count_received(self, topic: str, count: int) -> None:
        received = self._received.get(topic)
        if received is None:
            received = self._received[topic] = self._telemetry.events_received.labels(NAME, topic.rsplit(".", 1)[-1])
        received.inc(count)

    def _add_record(self, rec: Record, carrier: Record | None = None) -> Rejected | None:
        """Add one record's row to its table's sink; the reason when it belongs on the dead-letter topic.

        ``carrier``: ``rec`` when its decoded envelope may ride on it (``Consumer.carries_envelopes``).
        """
        topic, value = rec.topic, rec.value
        out = route(topic, value, self.envelopes, carrier)
        if isinstance(out, Rejected):
            return out
        self._sink(out.table).add(out.values, len(value))
        if out.node:
            kind = self._kinds.get(topic)
            if kind is None:
                kind = self._kinds[topic] = topic.rsplit(".", 1)[-1]
            self._batch_sources.add((out.node, kind))
        return None

    async def _dead_letter(self, topic: str, value: bytes, key: bytes | None, out: Rejected) -> None:
        self._telemetry.deadletters.labels(NAME, out.reason).inc()
        self._log.warning("envelope rejected", topic=topic, reason=out.reason, detail=out.detail[:200])
        assert self._producer is not None
        await self._producer.send(
            DEADLETTER,
            deadletter_record(
                component=NAME, reason=out.reason, detail=out.detail, raw=value, node=self._node, source_topic=topic
            ),
            key,
        )

    def _mark_sources(self, now: float) -> None:
        """Last-event time per source node and kind (a silent collector shows as an old timestamp)."""
        self._telemetry.last_event_ts.labels(NAME).set(now)
        for source in self._batch_sources:
            child = self._sources.get(source)
            if child is None:
                if len(self._sources) >= MAX_SOURCES:
                    self._telemetry.events_dropped.labels(NAME, "source_labels_full").inc()
                    continue
                child = self._sources[source] = self._telemetry.source_last_event_ts.labels(*source)
            child.set(now)
        self._batch_sources.clear()

    async def _flush_and_commit(self) -> None:
        if not self._offsets:
            return
        written = 0
        for sink in self._sinks.values():
            written += await sink.flush()
        assert self._producer is not None
        assert self._consumer is not None
        await self._producer.flush()
        try:
            await self._consumer.commit(dict(self._offsets))
        except BusError as exc:
            # The rows are stored; after a rebalance the partitions' new owner re-reads
            # from the last commit and the stable ids deduplicate what it stores again.
            self._telemetry.errors.labels(NAME, "commit").inc()
            self._log.warning("offset commit failed", error=str(exc))
        if written:
            self._telemetry.events_sent.labels(NAME, "rows").inc(written)
        self._offsets.clear()

    def stats(self) -> dict[str, Any]:
        return {"group": self.group, "pending": {t: s.pending_rows for t, s in self._sinks.items()}}
