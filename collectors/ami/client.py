"""panoramisk 1.4, fitted for a collector that must notice a dead peer. The AMI traffic goes through it.

What callscope uses of panoramisk: its :class:`~panoramisk.Manager` (connect, the Login
action with the secret, actions and their answers matched by ActionID, list actions
gathered up to their ``...Complete`` event, event dispatch) and its ``AMIProtocol``
(sending actions, routing answers and events). What it changes, by subclassing:

- **framing**: :class:`AmiProtocol` parses what arrives with :class:`.wire.AmiFramer`
  (resynchronises after garbage, LF or CRLF, bounded) instead of panoramisk's
  split on blank lines, and hands each block on as a panoramisk ``Message`` with the parsed
  :class:`.wire.Block` and its receive time attached; garbage goes to the listener.
- **no reconnect, no ping of its own**: panoramisk 1.4 reconnects after a fixed 2 s and its
  ping never checks for an answer (FACTS.md). :class:`AmiManager` reports a lost or failed
  connection to its listener and does nothing else; the session (:mod:`.session`) pings with a
  reply deadline and reconnects with capped exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, Protocol

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from collectors.ami.wire import AmiFramer, Banner, Block, Garbage

__all__ = ["AmiListener", "AmiManager", "AmiProtocol", "to_message"]

_SECRET = re.compile(r"""(?i)(secret['"]?\s*[:=]\s*['"]?)[^\s'",}\\]+""")


class _RedactSecrets(logging.Filter):
    """panoramisk logs an action whole when it cannot send it: mask any ``Secret`` in the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "ecret" in text:
            record.msg = _SECRET.sub(r"\1***", text)
            record.args = None
        return True


#: panoramisk's own log lines go here, any ``Secret`` in them masked.
PANORAMISK_LOG = logging.getLogger("callscope.ami.panoramisk")
PANORAMISK_LOG.addFilter(_RedactSecrets())
#: Actions panoramisk must not queue again after a reconnect (the session sends them afresh).
FORGETABLE_ACTIONS = ("ping", "login", "logoff", "coreshowchannels", "queuestatus")


class AmiListener(Protocol):
    """What a connection reports to its session (called from the event loop, never blocking)."""

    def on_banner(self, banner: Banner) -> None: ...

    def on_data(self, received_us: int) -> None: ...

    def on_garbage(self, garbage: Garbage, received_us: int) -> None: ...

    def on_connection_lost(self, reason: str) -> None: ...


def to_message(block: Block, received_us: int) -> Any:
    """A panoramisk ``Message`` for a parsed block (repeated keys as lists, as panoramisk keeps them)."""
    headers: dict[str, Any] = {}
    for key, value in block.fields.items():
        headers[key] = value.split("\n") if "\n" in value else value
    message = Message(headers, block.output or "")
    message.callscope_block = block
    message.callscope_received_us = received_us
    return message


class AmiProtocol(AMIProtocol):  # type: ignore[misc]  # panoramisk is untyped
    """panoramisk's AMI protocol with callscope's framing."""

    def __init__(self, listener: AmiListener) -> None:
        super().__init__()
        self.listener = listener
        self.framer = AmiFramer()
        self._early: list[Any] = []  # messages that came before the manager attached itself

    def data_received(self, data: bytes) -> None:
        received_us = time.time_ns() // 1000
        listener = self.listener
        listener.on_data(received_us)
        for item in self.framer.feed(data):
            if isinstance(item, Block):
                if item.kind == "action":
                    continue  # Asterisk sends no actions; an echo of ours is not news
                message = to_message(item, received_us)
                if self.factory is None:
                    self._early.append(message)
                else:
                    self._handle(message)
            elif isinstance(item, Banner):
                self.version = item.version
                listener.on_banner(item)
            else:
                listener.on_garbage(item, received_us)

    def attached(self) -> None:
        """The manager attached itself (``factory`` is set): handle what came before."""
        early, self._early = self._early, []
        for message in early:
            self._handle(message)

    def _handle(self, message: Any) -> None:
        if self._early and self.factory is not None:
            self.attached()
        self.handle_message(message)


class AmiManager(Manager):  # type: ignore[misc]  # panoramisk is untyped
    """panoramisk's Manager without its reconnect and its unanswered ping; failures go to the listener."""

    def __init__(self, listener: AmiListener, **config: Any) -> None:
        super().__init__(
            protocol_factory=lambda: AmiProtocol(listener),
            log=PANORAMISK_LOG,
            forgetable_actions=FORGETABLE_ACTIONS,
            **config,
        )
        self.listener = listener
        #: Set by the session when it gave this connection up (timeout, stop): a late connect is closed.
        self.abandoned = False

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if f.cancelled() or f.exception() is not None:
            return  # the session sees the failure on the connect task and decides when to retry
        if self.abandoned:
            transport, _ = f.result()
            transport.abort()
            return
        super().connection_made(f)
        self._no_pinger()
        protocol = self.protocol
        if isinstance(protocol, AmiProtocol):
            protocol.attached()

    def login(self, future: asyncio.Future[Any]) -> bool:
        if future.cancelled() or future.exception() is not None:
            self.authenticated_future = None
            return False
        ok = bool(super().login(future))
        self._no_pinger()
        return ok

    def ping(self) -> None:
        """panoramisk's ping sends and forgets; the session pings with a reply deadline instead."""

    def connection_lost(self, exc: Any) -> None:
        self._connected = False
        self._no_pinger()
        reason = "connection_lost"
        if isinstance(exc, Message) and str(exc.get("event", "")).lower() == "shutdown":
            reason = "shutdown"
        self.listener.on_connection_lost(reason)

    def _no_pinger(self) -> None:
        pinger: asyncio.TimerHandle | None = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
            self.pinger = None

    def abort(self) -> None:
        """Close now, dropping whatever is unsent (a peer that stopped answering)."""
        self._no_pinger()
        protocol = self.protocol
        if protocol is not None:
            transport = getattr(protocol, "transport", None)
            protocol.closed = True
            if transport is not None:
                transport.abort()
