"""The file collectors' I/O shell: a :class:`~collectors.tail.tailer.Tailer`, a format's parser, the bus.

Loop: read the next lines (rotated files first), turn them into envelopes
(:func:`collectors.tail.translate.translate`), publish them on ``callscope.<kind>`` and what
could not be parsed on ``callscope.deadletter``, wait for ``producer.flush()``, and only
then commit the lines in the tailer and (at most every ``checkpoint_interval_secs``) write
the checkpoint. When the bus refuses (a :class:`~schemas.errors.TransientError`), nothing
is committed: the tailer rewinds, the collector waits (capped exponential backoff) and
reads the same lines again; their ids are stable, so what reached the bus twice is stored once.

Delivery: at-least-once from the file. ``run`` returns after ``stop`` once the batch in
hand is delivered, with the checkpoint written; a last line still waiting for its
newline stays after the checkpoint and is read at the next start.

Metrics (besides the shared ``callscope_events_*``, ``callscope_errors_total`` and
``callscope_deadletters_total`` with ``component`` = the collector's name):
``callscope_tail_lines_total{component,result}`` (published, deadlettered, skipped),
``callscope_tail_file_events_total{component,event}`` (rotated, truncated, missing ... see
:data:`collectors.tail.tailer.EVENTS`), ``callscope_tail_offset_bytes{component}`` (the
committed offset of the current file) and ``callscope_tail_lag_bytes{component}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from callscope.bus.base import Producer
from callscope.settings import Settings
from callscope.telemetry import Telemetry
from collectors.tail.checkpoint import CheckpointStore, checkpoint_file
from collectors.tail.config import TailConfig
from collectors.tail.files import Chunk
from collectors.tail.tailer import EVENTS, Tailer
from collectors.tail.translate import EnvelopeMaker, LineParser, Translated, add_deadletter, translate
from schemas.errors import TransientError
from schemas.topics import DEADLETTER, topic_for

_SLICE = 2000  # lines translated between yields to the event loop


@dataclass(frozen=True, slots=True)
class TailMetrics:
    lines: Counter
    file_events: Counter
    offset: Gauge
    lag: Gauge


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, TailMetrics] = weakref.WeakKeyDictionary()


def tail_metrics(telemetry: Telemetry) -> TailMetrics:
    """The tailers' metrics, registered once per registry (shared by the cdr, cel and queue_log collectors)."""
    found = _METRICS.get(telemetry.registry)
    if found is None:
        r = telemetry.registry
        found = TailMetrics(
            lines=Counter(
                "callscope_tail_lines_total",
                "Lines a file collector read, by outcome (published, deadlettered, skipped).",
                ["component", "result"],
                registry=r,
            ),
            file_events=Counter(
                "callscope_tail_file_events_total",
                "What happened to a tailed file: rotations, truncations, disappearances, read problems.",
                ["component", "event"],
                registry=r,
            ),
            offset=Gauge(
                "callscope_tail_offset_bytes",
                "Committed (delivered) offset in the file a collector follows.",
                ["component"],
                registry=r,
            ),
            lag=Gauge(
                "callscope_tail_lag_bytes",
                "Bytes written to the followed files and not yet delivered.",
                ["component"],
                registry=r,
            ),
        )
        _METRICS[telemetry.registry] = found
    return found


class TailCollector:
    """Follows one file and publishes one envelope per line (the base of the cdr, cel and queue_log collectors)."""

    name: str = "tail"
    description: str = "lines"

    def __init__(
        self, config: TailConfig, parser: LineParser, settings: Settings, producer: Producer, telemetry: Telemetry
    ) -> None:
        self.config = config
        self.parser = parser
        self.settings = settings
        self.producer = producer
        self.telemetry = telemetry
        self.ready = asyncio.Event()
        self.node = config.node or settings.node
        self.log = telemetry.logger(self.name, source_node=self.node, path=str(config.path))
        self.kind = parser.kind
        self.topic = topic_for(parser.kind)
        self.maker = EnvelopeMaker(parser.kind, self.node, settings.topology.role_of(self.node))
        self.store = CheckpointStore(checkpoint_file(settings.data_dir / "checkpoints", self.name, config.path))
        self.tailer = Tailer(config.path, self.store, config, self._file_event)
        self.metrics = tail_metrics(telemetry)
        self._running = False
        self._stopping = False
        self._received = telemetry.events_received.labels(self.name, self.kind)
        self._sent = telemetry.events_sent.labels(self.name, self.kind)
        self._published = self.metrics.lines.labels(self.name, "published")
        self._dead = self.metrics.lines.labels(self.name, "deadlettered")
        self._skipped = self.metrics.lines.labels(self.name, "skipped")

    # ------------------------------------------------------------------ protocol
    def describe(self) -> str:
        return f"{self.config.path} ({self.description}, node {self.node})"

    def healthcheck(self) -> bool:
        return self._running and not self._stopping

    async def run(self, stop: asyncio.Event) -> None:
        tailer = self.tailer
        tailer.start(time.monotonic())
        self._running = True
        self.telemetry.component_up.labels(self.name).set(1)
        self.log.info("following", file=self.describe(), checkpoint=str(self.store.file))
        self.ready.set()
        backoff = self.config.retry_initial_secs
        try:
            while not stop.is_set():
                chunk = tailer.read(time.monotonic())
                if chunk is None:
                    tailer.save(time.monotonic())
                    self._gauges()
                    await _wait(stop, self.config.poll_interval_secs)
                    continue
                out = await self._translate(chunk)
                try:
                    await self._deliver(out)
                except TransientError as exc:
                    tailer.rewind()
                    self.telemetry.errors.labels(self.name, "bus").inc()
                    self.log.warning("the bus refused a batch; retrying", error=str(exc), retry_secs=backoff)
                    await _wait(stop, backoff)
                    backoff = min(backoff * 2, self.config.retry_max_secs)
                    continue
                backoff = self.config.retry_initial_secs
                tailer.commit(chunk, time.monotonic())
                self._count(out)
                tailer.save(time.monotonic())
                await asyncio.sleep(0)  # a file that keeps growing must not starve the other tasks
        finally:
            self._stopping = True
            self.telemetry.component_up.labels(self.name).set(0)
            tailer.save(time.monotonic(), force=True)
            self._gauges()
            tailer.close()
            self._running = False
            self.log.info("stopped")

    # ------------------------------------------------------------------ steps
    async def _translate(self, chunk: Chunk) -> Translated:
        out = Translated()
        received_us = time.time_ns() // 1000
        lines = chunk.lines
        for start in range(0, len(lines), _SLICE):
            translate(lines[start : start + _SLICE], self.parser, self.maker, received_us, component=self.name, out=out)
            if start + _SLICE < len(lines):
                await asyncio.sleep(0)  # let the API, the processors and the other collectors run
        for head in chunk.oversize:
            add_deadletter(
                out,
                "line_too_long",
                f"line longer than {self.config.max_line_bytes} bytes (first {len(head)} kept)",
                head,
                component=self.name,
                node=self.node,
            )
        return out

    async def _deliver(self, out: Translated) -> None:
        if out.envelopes:
            await self.producer.send_many(self.topic, out.envelopes)
        if out.deadletters:
            await self.producer.send_many(DEADLETTER, [(None, record) for record in out.deadletters])
        if out.envelopes or out.deadletters:
            await self.producer.flush()

    def _count(self, out: Translated) -> None:
        published = len(out.envelopes)
        if published:
            self._received.inc(published)
            self._sent.inc(published)
            self._published.inc(published)
            self.telemetry.last_event_ts.labels(self.name).set(time.time())
        if out.deadletters:
            self._dead.inc(len(out.deadletters))
            for reason, n in out.reasons.items():
                self.telemetry.deadletters.labels(self.name, reason).inc(n)
                self.telemetry.errors.labels(self.name, reason).inc(n)
            self.log.warning("lines dead-lettered", reasons=out.reasons)
        if out.skipped:
            self._skipped.inc(out.skipped)

    def _gauges(self) -> None:
        cur = self.tailer.current
        self.metrics.offset.labels(self.name).set(cur.committed if cur is not None else 0)
        self.metrics.lag.labels(self.name).set(self.tailer.lag_bytes())

    def _file_event(self, event: str, message: str, fields: dict[str, Any]) -> None:
        self.metrics.file_events.labels(self.name, event).inc()
        if EVENTS.get(event, True):
            self.telemetry.errors.labels(self.name, event).inc()
            self.log.warning(message, file_event=event, **fields)
        else:
            self.log.info(message, file_event=event, **fields)


async def _wait(stop: asyncio.Event, secs: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), secs)
