"""The AMI collector's I/O shell: one :class:`.session.AmiSession` per Asterisk node, envelopes on the bus.

- At construction every connection's secret is read (config, environment variable or file)
  and its host resolved (the topology node's address when ``host`` is not given): a missing
  variable, file or host is a :class:`~schemas.errors.ConfigError` naming the option, before
  anything starts. A connection whose node is not in ``topology.nodes`` is taken as a
  ``logic`` node (and logged).
- ``run`` starts the sessions and is ready at once: an Asterisk that is down is retried in
  the background, not a reason to refuse to start.
- Sessions leave envelopes (and dead letters) in one outbox, in arrival order; one
  publisher sends them with ``send_many`` per topic in batches of ``batch_max_messages`` or
  every ``batch_max_age_ms``. When the bus falls behind and the outbox passes
  ``OUTBOX_HIGH`` messages, the sessions stop reading their sockets (TCP pushes back on
  Asterisk) until it is under ``OUTBOX_LOW`` again; pings are not judged meanwhile.
- ``callscope_component_up{component="ami"}`` is 1 while every connection is logged in;
  ``callscope_ami_connected{node}`` says which is not.

Delivery: an event read from a socket is in the outbox, then on the bus before ``run``
returns (the outbox is drained and the producer flushed at stop). What Asterisk sent while
no connection was up is lost to AMI itself (it replays nothing); the ``CallscopeGap``
markers say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

from callscope.bus.base import Producer
from callscope.settings import Settings
from callscope.telemetry import Telemetry
from collectors.ami.config import AmiConfig
from collectors.ami.metrics import ami_metrics
from collectors.ami.publish import COMPONENT
from collectors.ami.session import AmiSession
from schemas.errors import ConfigError
from schemas.topics import DEADLETTER

__all__ = ["OUTBOX_HIGH", "OUTBOX_LOW", "AmiCollector"]

OUTBOX_HIGH = 50_000
OUTBOX_LOW = 10_000


class _Outbox:
    """Envelopes waiting for the bus, in arrival order, and the wake-up of the publisher."""

    def __init__(self, on_high: Callable[[], None], on_low: Callable[[], None]) -> None:
        self.items: deque[tuple[str, bytes | None, bytes]] = deque()
        self.wake = asyncio.Event()
        self.paused = False
        self._on_high = on_high
        self._on_low = on_low

    def put(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.items.append((topic, key, value))
        self.wake.set()
        if not self.paused and len(self.items) >= OUTBOX_HIGH:
            self.paused = True
            self._on_high()

    def drained(self) -> None:
        if self.paused and len(self.items) <= OUTBOX_LOW:
            self.paused = False
            self._on_low()


class AmiCollector:
    """AMI events from every configured Asterisk node (panoramisk), as ``ami`` envelopes."""

    name = COMPONENT

    def __init__(self, config: AmiConfig, settings: Settings, producer: Producer, telemetry: Telemetry) -> None:
        self.config = config
        self.settings = settings
        self.producer = producer
        self.telemetry = telemetry
        self.ready = asyncio.Event()
        self.log = telemetry.logger(COMPONENT)
        self.metrics = ami_metrics(telemetry)
        self.outbox = _Outbox(self._pause_all, self._resume_all)
        self._up: set[str] = set()
        self._running = False
        self._publisher: asyncio.Task[None] | None = None
        self._sent = telemetry.events_sent.labels(COMPONENT, "ami")
        self._last = telemetry.last_event_ts.labels(COMPONENT)
        self.sessions = [self._session(i) for i in range(len(config.connections))]

    def _session(self, index: int) -> AmiSession:
        conn = self.config.connections[index]
        path = f"collectors.ami.connections.{index}"
        secret = conn.resolve_secret(path)
        topology = self.settings.topology
        node = next((n for n in topology.nodes if n.name == conn.node), None)
        host = conn.host or (node.address if node is not None else None)
        if not host:
            raise ConfigError([(f"{path}.host", f"not given, and topology node {conn.node!r} has no address")])
        if node is None:
            self.log.warning("ami node is not in topology.nodes; taken as a logic node", asterisk=conn.node)
        return AmiSession(
            conn,
            host=host,
            secret=secret,
            role=node.role if node is not None else "logic",
            outbox=self.outbox,
            metrics=self.metrics,
            telemetry=self.telemetry,
            on_state=self._state,
        )

    # ------------------------------------------------------------------ protocol
    def describe(self) -> str:
        parts = [f"{s.node} {s.address}{'' if s.connected else ' (connecting)'}" for s in self.sessions]
        return f"{len(parts)} connection{'s' if len(parts) != 1 else ''}: {', '.join(parts)}"

    def healthcheck(self) -> bool:
        return self._running and self._publisher is not None and not self._publisher.done()

    async def run(self, stop: asyncio.Event) -> None:
        session_stop = asyncio.Event()
        self._publisher = asyncio.create_task(self._publish_loop(), name="ami-publisher")
        tasks = [asyncio.create_task(s.run(session_stop), name=f"ami-{s.node}") for s in self.sessions]
        self._running = True
        self.telemetry.component_up.labels(COMPONENT).set(0)
        self.log.info("connecting", describe=self.describe())
        self.ready.set()
        try:
            stop_wait = asyncio.create_task(stop.wait())
            await asyncio.wait([stop_wait, self._publisher, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            for task in (self._publisher, *tasks):
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            self._running = False
            session_stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.telemetry.component_up.labels(COMPONENT).set(0)
            self.outbox.wake.set()
            if not self._publisher.done():
                self._publisher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._publisher
            await self._publish(len(self.outbox.items))  # what is left
            await self.producer.flush()
            self.log.info("stopped")

    # ------------------------------------------------------------------ state
    def _state(self, node: str, up: bool) -> None:
        if up:
            self._up.add(node)
        else:
            self._up.discard(node)
        every = len(self._up) == len(self.sessions) and self._running
        self.telemetry.component_up.labels(COMPONENT).set(1 if every else 0)

    def _pause_all(self) -> None:
        self.log.warning("bus behind: pausing ami reads", queued=len(self.outbox.items))
        for session in self.sessions:
            session.pause_reading()

    def _resume_all(self) -> None:
        self.log.info("bus caught up: resuming ami reads", queued=len(self.outbox.items))
        for session in self.sessions:
            session.resume_reading()

    # ------------------------------------------------------------------ publishing
    async def _publish_loop(self) -> None:
        outbox = self.outbox
        max_age = self.config.batch_max_age_ms / 1000
        while True:
            if not outbox.items:
                outbox.wake.clear()
                await outbox.wake.wait()
                if len(outbox.items) < self.config.batch_max_messages:
                    await asyncio.sleep(max_age)  # let a batch gather
            await self._publish(min(len(outbox.items), self.config.batch_max_messages))

    async def _publish(self, n: int) -> None:
        items = self.outbox.items
        batches: dict[str, list[tuple[bytes | None, bytes]]] = {}
        for _ in range(min(n, len(items))):
            topic, key, value = items.popleft()
            batches.setdefault(topic, []).append((key, value))
        for topic, batch in batches.items():
            await self.producer.send_many(topic, batch)
            if topic != DEADLETTER:
                self._sent.inc(len(batch))
                self._last.set(time.time())
        self.outbox.drained()
