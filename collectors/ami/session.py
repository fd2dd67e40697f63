"""One Asterisk node's AMI connection, kept up for as long as the collector runs.

The life of a connection (:meth:`AmiSession.run`):

1. connect through panoramisk (:class:`.client.AmiManager`) within ``connect_timeout_secs``;
   panoramisk sends ``Login`` with the secret; its answer must come within the same
   deadline. A refused login is logged (Asterisk's message, never the secret), counted
   (``callscope_ami_login_failures_total``) and retried like any failure.
2. resynchronise: ``CoreShowChannels`` and ``QueueStatus`` (list actions, gathered up to
   their ``...Complete`` event by panoramisk) within ``resync_timeout_secs``. After a
   reconnect, ``CallscopeGap`` markers go out first (the node's and one per live channel
   key, :func:`.events.gap_envelopes`), then the list results, each marked
   ``CallscopeResync: "1"``. AMI replays nothing after a reconnect: the snapshot is what
   there is. A list action Asterisk refuses (no ``reporting`` read permission) is logged
   and skipped.
3. keep-alive: a ``Ping`` every ``ping_interval_secs``; no answer within
   ``ping_timeout_secs`` closes the connection (reason ``ping_timeout``): a silent peer
   is noticed within interval + timeout even when TCP never says the connection died.
4. whatever ended the connection (``connection_lost``, ``shutdown``, ``ping_timeout``,
   ``connect_failed``, ``connect_timeout``, ``login_refused``, ``login_timeout``,
   ``resync_timeout``) is counted in ``callscope_ami_reconnects_total{node,reason}`` and
   the next attempt waits a capped exponential backoff with jitter (:mod:`.backoff`),
   reset once a connection logged in and resynchronised.

Meanwhile every event panoramisk dispatches becomes an envelope in the collector's outbox,
in arrival order, and text that is not AMI a dead letter (:class:`.publish.NodeEvents`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

from callscope.telemetry import Telemetry
from collectors.ami.backoff import Backoff
from collectors.ami.client import AmiManager
from collectors.ami.config import AmiConnection
from collectors.ami.metrics import AmiMetrics
from collectors.ami.publish import COMPONENT, NodeEvents, Outbox
from collectors.ami.wire import Banner, Block, Garbage

__all__ = ["AmiSession"]

RESYNC_ACTIONS = ("CoreShowChannels", "QueueStatus")


class AmiSession:
    """The AMI connection to one Asterisk node (see the module docstring)."""

    def __init__(
        self,
        conn: AmiConnection,
        *,
        host: str,
        secret: str,
        role: str,
        outbox: Outbox,
        metrics: AmiMetrics,
        telemetry: Telemetry,
        on_state: Callable[[str, bool], None] = lambda node, up: None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.conn = conn
        self.node = conn.node
        self.host = host
        self.role = role
        self._secret = secret
        self._metrics = metrics
        self._telemetry = telemetry
        self._on_state = on_state
        self._rand = rand
        self.events = NodeEvents(
            node=conn.node,
            role=role,
            event_filter=conn.events.compile(),
            outbox=outbox,
            metrics=metrics,
            telemetry=telemetry,
        )
        self.log = telemetry.logger(COMPONENT, asterisk=conn.node)
        self.backoff = Backoff(conn.reconnect_backoff_initial_secs, conn.reconnect_backoff_max_secs)
        self.connected = False
        self.logins = 0  # successful logins so far
        self.banner: str | None = None
        self.paused = False
        self._manager: AmiManager | None = None
        self._lost = asyncio.Event()
        self._lost_reason = "connection_lost"
        self._last_rx_us = 0
        self._gap_since_us: int | None = None
        self._gap_reason = ""
        self._login_us = 0
        self._logged = False
        self._connected_gauge = metrics.connected.labels(self.node)
        self._connected_gauge.set(0)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.conn.port}"

    # ------------------------------------------------------------------ the loop
    async def run(self, stop: asyncio.Event) -> None:
        """Connect, and reconnect after every failure, until ``stop`` is set."""
        while not stop.is_set():
            reason = await self._connect_once(stop)
            if stop.is_set():
                return
            self._metrics.reconnects.labels(self.node, reason).inc()
            delay = self.backoff.next_delay(self._rand())
            self.log.warning(
                "ami connection ended, reconnecting", reason=reason, address=self.address, retry_in_secs=round(delay, 3)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _connect_once(self, stop: asyncio.Event) -> str:
        conn = self.conn
        loop = asyncio.get_running_loop()
        self._lost = asyncio.Event()
        self._lost_reason = "connection_lost"
        self.events.new_connection()
        manager = AmiManager(
            self,
            host=self.host,
            port=conn.port,
            username=conn.username,
            secret=self._secret,
            events=conn.event_classes,
            loop=loop,
        )
        manager.register_event("*", self._on_event)
        self._manager = manager
        self._logged = False
        reason = "stopped"
        try:
            reason = await self._attempt(manager, stop)
            return reason
        finally:
            self._close(manager, graceful=stop.is_set())
            if self._logged:
                self._logged_out(reason)

    async def _attempt(self, manager: AmiManager, stop: asyncio.Event) -> str:
        conn = self.conn
        task = manager.connect()
        outcome, _ = await self._wait(task, conn.connect_timeout_secs, stop)
        if outcome in ("timeout", "stop"):
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a failure at the last moment is not news
            task.cancel()
            return "connect_timeout" if outcome == "timeout" else "stopped"
        error = task.exception() if not task.cancelled() else None
        if error is not None:
            detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            self.log.warning("cannot connect to ami", address=self.address, error=detail)
            return "connect_failed"
        login = manager.authenticated_future
        if login is None:  # pragma: no cover - panoramisk sends Login whenever a username is set
            return "connect_failed"
        outcome, answer = await self._wait(login, conn.connect_timeout_secs, stop)
        if outcome != "ok":
            return self._ended(outcome, "login_timeout")
        if not answer.success:
            self._metrics.login_failures.labels(self.node).inc()
            self.log.error(
                "ami login refused",
                address=self.address,
                username=conn.username,
                message=str(answer.get("message", ""))[:200],
            )
            return "login_refused"
        self._logged_in()
        reason = await self._resync(stop)
        if reason:
            return reason
        self.backoff.reset()
        return await self._keepalive(stop)

    def _ended(self, outcome: str, timeout_reason: str) -> str:
        if outcome == "timeout":
            return timeout_reason
        if outcome == "lost":
            return self._lost_reason
        return "stopped"

    def _logged_in(self) -> None:
        now_us = time.time_ns() // 1000
        self._logged = True
        self.logins += 1
        self.events.new_session(str(now_us))
        self._login_us = now_us
        self.connected = True
        self._connected_gauge.set(1)
        self._on_state(self.node, True)
        self.log.info("ami logged in", address=self.address, banner=self.banner, dialect=self.events.tracker.dialect)

    def _logged_out(self, reason: str) -> None:
        self.connected = False
        self._connected_gauge.set(0)
        self._on_state(self.node, False)
        if self._gap_since_us is None:  # the earliest loss counts: a gap not yet announced stays open
            self._gap_since_us = self._last_rx_us or time.time_ns() // 1000
            self._gap_reason = reason

    def _close(self, manager: AmiManager, *, graceful: bool) -> None:
        self._manager = None
        manager.abandoned = True  # a connect that completes after this is closed at once
        protocol = manager.protocol
        if protocol is None or protocol.closed:
            return
        if graceful:
            with contextlib.suppress(Exception):
                protocol.send({"Action": "Logoff"})
            manager.close()
        else:
            manager.abort()

    # ------------------------------------------------------------------ waiting
    async def _wait(self, fut: Any | None, within: float, stop: asyncio.Event) -> tuple[str, Any]:
        """``("ok", result)``, or ``("timeout" | "lost" | "stop", None)``, whichever comes first.

        With ``fut`` None this is a sleep that the loss of the connection or the stop cuts short.
        """
        lost = asyncio.ensure_future(self._lost.wait())
        stopped = asyncio.ensure_future(stop.wait())
        waiting = {lost, stopped} if fut is None else {fut, lost, stopped}
        try:
            done, _ = await asyncio.wait(waiting, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            stopped.cancel()
        if fut is not None and fut in done:
            if fut.cancelled() or fut.exception() is not None:
                return "lost", None
            return "ok", fut.result()
        if stopped in done:
            return "stop", None
        if lost in done:
            return "lost", None
        return "timeout", None

    # ------------------------------------------------------------------ resync
    async def _resync(self, stop: asyncio.Event) -> str:
        """Ask for the live channels and queues; publish the gap markers and the results. '' when done."""
        manager = self._manager
        assert manager is not None
        results: list[tuple[Block, int]] = []
        for action in RESYNC_ACTIONS:
            outcome, answer = await self._wait(
                manager.send_action({"Action": action}), self.conn.resync_timeout_secs, stop
            )
            if outcome != "ok":
                return self._ended(outcome, "resync_timeout")
            messages = answer if isinstance(answer, list) else [answer]
            if not messages or not messages[0].success:
                message = str(messages[0].get("message", "")) if messages else ""
                self._telemetry.errors.labels(COMPONENT, "resync_refused").inc()
                self.log.warning("ami resync action refused", action=action, message=message[:200])
                continue
            for msg in messages:
                block = getattr(msg, "callscope_block", None)
                if isinstance(block, Block) and block.kind == "event":
                    results.append((block, getattr(msg, "callscope_received_us", 0) or self._login_us))
        until_us = self._login_us
        if self._gap_since_us is not None:
            markers = self.events.gap(
                reason=self._gap_reason,
                since_us=self._gap_since_us,
                until_us=until_us,
                channels=[b.fields for b, _ in results if b.name == "CoreShowChannel"],
            )
            self.log.warning(
                "ami events may be missing",
                reason=self._gap_reason,
                since_us=self._gap_since_us,
                until_us=until_us,
                live_calls=markers - 1,
            )
            self._gap_since_us = None
        self.events.resync(results)
        return ""

    # ------------------------------------------------------------------ keep-alive
    async def _keepalive(self, stop: asyncio.Event) -> str:
        conn = self.conn
        manager = self._manager
        assert manager is not None
        while True:
            outcome, _ = await self._wait(None, conn.ping_interval_secs, stop)
            if outcome != "timeout":
                return self._ended(outcome, "")
            if self.paused:
                continue  # not reading: an unanswered ping would say nothing about the peer
            sent = time.monotonic()
            outcome, answer = await self._wait(manager.send_action({"Action": "Ping"}), conn.ping_timeout_secs, stop)
            if outcome == "timeout":
                if self.paused:
                    continue
                self.log.warning(
                    "ami peer did not answer a ping in time",
                    address=self.address,
                    ping_timeout_secs=conn.ping_timeout_secs,
                )
                return "ping_timeout"
            if outcome != "ok":
                return self._ended(outcome, "ping_timeout")
            self._metrics.ping_rtt.labels(self.node).observe(time.monotonic() - sent)
            response = str(answer.get("response", "")).lower() if not isinstance(answer, list) else ""
            if response not in ("success", "pong"):
                self._telemetry.errors.labels(COMPONENT, "ping_answer").inc()

    # ------------------------------------------------------------------ backpressure
    def pause_reading(self) -> None:
        self.paused = True
        self._transport_call("pause_reading")

    def resume_reading(self) -> None:
        self.paused = False
        self._transport_call("resume_reading")

    def _transport_call(self, name: str) -> None:
        manager = self._manager
        protocol = manager.protocol if manager is not None else None
        transport = getattr(protocol, "transport", None)
        if transport is not None and not transport.is_closing():
            with contextlib.suppress(RuntimeError):
                getattr(transport, name)()

    # ------------------------------------------------------------------ listener (from the protocol)
    def on_banner(self, banner: Banner) -> None:
        self.banner = banner.text
        self.events.tracker.banner(banner.version)

    def on_data(self, received_us: int) -> None:
        self._last_rx_us = received_us

    def on_garbage(self, garbage: Garbage, received_us: int) -> None:
        del received_us
        self.events.deadletter(garbage.error, garbage.raw)

    def on_connection_lost(self, reason: str) -> None:
        self._lost_reason = reason
        self._lost.set()

    def _on_event(self, manager: Any, message: Any) -> None:
        """panoramisk's dispatch of an event (a Message with callscope's parsed block attached)."""
        del manager
        block = getattr(message, "callscope_block", None)
        if isinstance(block, Block):
            received_us = getattr(message, "callscope_received_us", 0) or time.time_ns() // 1000
            self.events.live(block, received_us)
