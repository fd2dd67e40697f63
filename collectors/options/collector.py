"""The OPTIONS collector's I/O shell: probes every configured target on its schedule, publishes results.

- Schedule (:mod:`.schedule`): each target at its effective interval, first probes spread
  over ``jitter * interval`` by a hash of the name; a target whose previous probe is still
  in flight (waiting for a slot or for its answer) skips that slot
  (``callscope_options_skipped_total``).
- At most ``max_concurrency`` probes run at once (a semaphore), DNS lookups included.
- Each result becomes one ``options`` envelope keyed by the target name
  (:func:`.events.envelope_from_result`), published on ``callscope.options`` in batches
  of whatever finished since the last send.
- ``run`` returns soon after ``stop``: probes in flight are cancelled (they produce no
  result), the results already produced are published and the producer flushed.

Delivery: at-most-once per probe (a probe cancelled by the stop is lost); every produced
result is handed to the bus before ``run`` returns.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import socket
import time
from collections import Counter as Tally

from callscope.bus.base import Producer
from callscope.settings import Settings
from callscope.telemetry import Telemetry
from collectors.options.config import OptionsConfig
from collectors.options.events import ProbeSpec, envelope_from_result, spec_for
from collectors.options.prober import COMPONENT, Prober, make_ssl_context
from collectors.options.schedule import next_due, start_offset
from schemas.errors import StartupError
from schemas.topics import topic_for

__all__ = ["OptionsCollector"]

TOPIC = topic_for("options")


class OptionsCollector:
    """SIP OPTIONS probes from this node (the vantage point) to its targets."""

    name = COMPONENT

    def __init__(self, config: OptionsConfig, settings: Settings, producer: Producer, telemetry: Telemetry) -> None:
        self.config = config
        self.settings = settings
        self.producer = producer
        self.telemetry = telemetry
        self.ready = asyncio.Event()
        self.log = telemetry.logger(COMPONENT)
        self.specs: list[ProbeSpec] = [spec_for(t, config, settings.node) for t in config.targets]
        self.intervals = [config.effective_interval(t) for t in config.targets]
        self.offsets = [
            start_offset(t.name, i, config.jitter) for t, i in zip(config.targets, self.intervals, strict=True)
        ]
        self.prober: Prober | None = None
        self._node = settings.node
        self._role = settings.role
        self._cseq = [0] * len(self.specs)
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._out: list[tuple[bytes | None, bytes]] = []
        self._wake = asyncio.Event()
        self._running = False
        self._stopping = False
        self._scheduler_alive = False
        self._received = telemetry.events_received.labels(COMPONENT, "options")
        self._sent = telemetry.events_sent.labels(COMPONENT, "options")
        self._last = telemetry.last_event_ts.labels(COMPONENT)

    # ------------------------------------------------------------------ protocol
    def describe(self) -> str:
        n = len(self.specs)
        transports = Tally(spec.sip.transport for spec in self.specs)
        mix = ", ".join(f"{count} {name}" for name, count in sorted(transports.items()))
        low, high = (min(self.intervals), max(self.intervals)) if self.intervals else (0.0, 0.0)
        every = f"every {low:g}s" if low == high else f"every {low:g}-{high:g}s"
        return f"{n} target{'s' if n != 1 else ''} ({mix}), {every}, max {self.config.max_concurrency} in flight"

    def healthcheck(self) -> bool:
        if not self._running or self._stopping or not self._scheduler_alive:
            return False
        return self.prober is not None and self.prober.healthy()

    async def run(self, stop: asyncio.Event) -> None:
        self.prober = self._open()
        publisher = asyncio.create_task(self._publish_loop(), name="options-publisher")
        stop_wait = asyncio.create_task(stop.wait())
        self._running = self._scheduler_alive = True
        self.telemetry.component_up.labels(COMPONENT).set(1)
        self.log.info("probing", targets=len(self.specs), describe=self.describe())
        self.ready.set()
        try:
            await self._schedule(stop, stop_wait, publisher)
        finally:
            self._scheduler_alive = False
            self.telemetry.component_up.labels(COMPONENT).set(0)
            stop_wait.cancel()
            tasks = list(self._inflight.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.prober.close()
            self._stopping = True
            self._wake.set()
            if not publisher.done():
                await publisher  # publishes what is left, then returns
            await self.producer.flush()
            self._running = False
            self.log.info("stopped")

    # ------------------------------------------------------------------ start
    def _open(self) -> Prober:
        config = self.config
        tls = make_ssl_context(config) if any(s.sip.transport == "tls" for s in self.specs) else None
        prober = Prober(config, self.telemetry, tls=tls)
        if any(s.sip.transport == "udp" for s in self.specs):
            family = socket.AF_INET6 if ":" in config.bind else socket.AF_INET
            try:  # bind now, so a bad bind address fails the start rather than every probe
                prober.udp.endpoint(family)
            except OSError as exc:
                prober.close()
                raise StartupError(
                    f"collectors.options.bind: cannot bind {config.bind} (udp): {exc.strerror or exc}"
                ) from None
        return prober

    # ------------------------------------------------------------------ scheduling
    async def _schedule(
        self, stop: asyncio.Event, stop_wait: asyncio.Task[bool], publisher: asyncio.Task[None]
    ) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        heap = [(start + offset, i) for i, offset in enumerate(self.offsets)]
        heapq.heapify(heap)
        while not stop.is_set():
            now = loop.time()
            while heap and heap[0][0] <= now:
                due, i = heap[0]
                self._launch(i)
                heapq.heapreplace(heap, (next_due(due, self.intervals[i], now), i))
            delay = heap[0][0] - loop.time() if heap else None
            done, _ = await asyncio.wait([stop_wait, publisher], timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            if publisher in done:
                publisher.result()  # re-raise a bus failure
                raise RuntimeError("the options publisher stopped")  # pragma: no cover - it only ends at stop

    def _launch(self, i: int) -> None:
        if i in self._inflight:
            assert self.prober is not None
            self.prober.metrics.skipped.inc()
            return
        task = asyncio.create_task(self._probe(i), name="options-probe")
        self._inflight[i] = task
        task.add_done_callback(functools.partial(self._done, i))

    def _done(self, i: int, _task: asyncio.Task[None]) -> None:
        self._inflight.pop(i, None)

    async def _probe(self, i: int) -> None:
        assert self.prober is not None
        spec = self.specs[i]
        async with self._slots:
            self._cseq[i] += 1
            try:
                result = await self.prober.probe(spec, self._cseq[i])
            except Exception as exc:  # a bug must cost one probe, not the collector
                self.telemetry.errors.labels(COMPONENT, "probe_failed").inc()
                self.log.exception("probe raised", target=spec.name, error=repr(exc))
                return
        key, envelope = envelope_from_result(
            spec, result, node=self._node, role=self._role, received_us=time.time_ns() // 1000
        )
        self._out.append((key, envelope))
        self._received.inc()
        self._wake.set()
        if result.error is not None:
            self.log.debug(
                "probe failed", target=spec.name, error=result.error, detail=result.error_detail, status=result.status
            )

    # ------------------------------------------------------------------ publishing
    async def _publish_loop(self) -> None:
        while True:
            if not self._out:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._publish()

    async def _publish(self) -> None:
        batch, self._out = self._out, []
        if not batch:
            return
        await self.producer.send_many(TOPIC, batch)
        self._sent.inc(len(batch))
        self._last.set(time.time())
