"""An Asterisk Manager Interface peer: a TCP server that speaks AMI, for tests and ``callscope generate``.

It listens on 127.0.0.1 and an OS-given port unless told ``host``/``port``. It is what a
collector (through the real panoramisk client) meets on port 5038: the banner, ``Login``
with the secret checked, ``Ping`` answered, ``CoreShowChannels`` and ``QueueStatus`` answered
as list events ending in their ``...Complete`` event with the action's ``ActionID``,
``Logoff``; and events pushed to every logged-in session as CRLF wire blocks. Actions are
read with callscope's own framing (:mod:`collectors.ami.wire`), keys case-insensitively.

Usage (every wait has a deadline; nothing sleeps a fixed time)::

    async with AmiServer(username="callscope", secret="s3cret") as ami:
        ...                                   # point the collector at ami.host, ami.port
        await ami.wait_logged_in()            # a session is logged in (count=2: the second login)
        await ami.replay(load_recording(path))  # a cacofonisk JSON list or panoramisk transcript
        await ami.send({"Event": "Newchannel", ...})
        await ami.send_raw(b"garbage\\r\\n\\r\\n")
        ami.drop()                            # close every connection now (mid_block=...: after half a block)
        ami.go_silent()                       # stop answering and sending; the sockets stay open
        ami.mute_new_sessions = True          # later connections get the banner, then silence
        ami.channels                          # live channels (from the events sent) that CoreShowChannels lists
        ami.queue_status = [{...}]            # the events QueueStatus answers with

``banner`` picks the dialect the collector sees: ``Asterisk Call Manager/5.0.1`` (Asterisk 13,
the default) or ``Asterisk Call Manager/1.3`` (Asterisk 11: CoreShowChannel then spells
``UniqueID`` and carries no ``Linkedid``). ``actions`` records every action received, with
``Secret`` masked; ``logins`` and ``failed_logins`` count login attempts (``login_times`` has
when each came); ``wait_action(name)`` and ``wait_failed_logins(n)`` wait for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from collectors.ami.replay import load_events
from collectors.ami.wire import AmiFramer, Block, encode_block, parse_wire

__all__ = ["AmiServer", "AmiWaitTimeout", "load_recording"]

_SNAPSHOT_13 = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)


def load_recording(path: Path) -> list[dict[str, str]]:
    """The events of a recording: a JSON list (cacofonisk) or a raw wire transcript (panoramisk).

    Transcripts give their ``Event`` blocks only (actions and responses are the other side's
    business); JSON lists lose the recorder's empty ``content`` key.
    """
    data = path.read_bytes()
    if data.lstrip()[:1] == b"[":
        return load_events(data)
    return [dict(item.fields) for item in parse_wire(data) if isinstance(item, Block) and item.kind == "event"]


class AmiWaitTimeout(AssertionError):  # noqa: N818 - read as a failed expectation
    """A ``wait_*`` deadline passed (an AssertionError, so a test reads it as a failed expectation)."""


@dataclass
class _Session:
    writer: asyncio.StreamWriter
    logged_in: bool = False
    events_on: bool = True
    silent: bool = False
    actions: list[dict[str, str]] = field(default_factory=list)


class AmiServer:
    """See the module docstring."""

    def __init__(
        self,
        *,
        username: str = "callscope",
        secret: str = "s3cret",  # noqa: S107 - the tests' peer; callscope generate always passes one
        banner: str = "Asterisk Call Manager/5.0.1",
        crlf: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.host = host
        self._listen_port = port
        self.username = username
        self.secret = secret
        self.banner = banner
        self.crlf = crlf
        self.channels: dict[str, dict[str, str]] = {}
        self.queue_status: list[dict[str, str]] = []
        self.actions: list[dict[str, str]] = []
        self.logins = 0
        self.failed_logins = 0
        self.login_times: list[float] = []  # monotonic time of every login attempt
        self.sessions: list[_Session] = []
        #: New connections get the banner and then silence (a hung Asterisk): nothing is answered.
        self.mute_new_sessions = False
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()
        self._handlers: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ life
    async def start(self) -> AmiServer:
        self._server = await asyncio.start_server(self._serve, self.host, self._listen_port)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> AmiServer:
        return await self.start()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ controls
    @property
    def live_sessions(self) -> list[_Session]:
        """Logged-in sessions whose connection is open."""
        return [s for s in self.sessions if s.logged_in and not s.writer.is_closing()]

    async def wait_logged_in(self, count: int = 1, within: float = 10.0) -> None:
        """Until ``count`` logins succeeded in all and one logged-in session is open."""
        await self._wait(lambda: self.logins >= count and bool(self.live_sessions), within, f"{count} login(s)")

    async def wait_failed_logins(self, count: int, within: float = 10.0) -> None:
        await self._wait(lambda: self.failed_logins >= count, within, f"{count} failed login(s)")

    async def wait_action(self, name: str, count: int = 1, within: float = 10.0) -> None:
        """Until ``count`` actions named ``name`` (case-insensitively) arrived."""
        lower = name.lower()
        await self._wait(
            lambda: sum(a.get("Action", "").lower() == lower for a in self.actions) >= count,
            within,
            f"{name} x{count}",
        )

    async def send(self, event: Mapping[str, str]) -> int:
        """One event to every logged-in, speaking session with events on; returns to how many."""
        self._track(event)
        data = encode_block(dict(event), crlf=self.crlf)
        sent = 0
        for session in self.live_sessions:
            if session.events_on and not session.silent:
                session.writer.write(data)
                sent += 1
        await self._drain()
        return sent

    async def replay(self, events: Iterable[Mapping[str, str]]) -> int:
        """Every event in order (see :meth:`send`); returns how many."""
        n = 0
        for event in events:
            await self.send(event)
            n += 1
        return n

    async def send_raw(self, data: bytes) -> None:
        """Bytes as they are, to every logged-in speaking session (garbage, half blocks)."""
        for session in self.live_sessions:
            if not session.silent:
                session.writer.write(data)
        await self._drain()

    def drop(self, *, mid_block: Mapping[str, str] | None = None) -> None:
        """Close every connection at once; with ``mid_block``, after writing the first half of that block."""
        for session in self.sessions:
            if session.writer.is_closing():
                continue
            if mid_block is not None and session.logged_in:
                data = encode_block(dict(mid_block), crlf=self.crlf)
                session.writer.write(data[: len(data) // 2])
            transport = session.writer.transport
            transport.abort() if mid_block is None else transport.close()

    def go_silent(self) -> None:
        """The open sessions stop answering and sending (actions are still recorded); their sockets stay open.

        New sessions speak normally.
        """
        for session in self.sessions:
            session.silent = True

    # ------------------------------------------------------------------ internals
    async def _wait(self, predicate: Callable[[], bool], within: float, what: str) -> None:
        try:
            async with asyncio.timeout(within):
                async with self._changed:
                    await self._changed.wait_for(predicate)
        except TimeoutError:
            raise AmiWaitTimeout(f"AMI server: no {what} within {within}s") from None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _drain(self) -> None:
        for session in self.live_sessions:
            with contextlib.suppress(ConnectionError):
                await session.writer.drain()

    def _track(self, event: Mapping[str, str]) -> None:
        """Keep the live-channel table that CoreShowChannels answers from."""
        name = event.get("Event", "")
        uid = event.get("Uniqueid") or event.get("UniqueID")
        if not uid:
            return
        if name == "Hangup":
            self.channels.pop(uid, None)
        elif name == "Newchannel":
            self.channels[uid] = {k: event[k] for k in _SNAPSHOT_13 if k in event}
        elif uid in self.channels:
            chan = self.channels[uid]
            for key in _SNAPSHOT_13:
                if key in event:
                    chan[key] = event[key]
            if name == "Rename" and "Newname" in event:
                chan["Channel"] = event["Newname"]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        session = _Session(writer, silent=self.mute_new_sessions)
        self.sessions.append(session)
        framer = AmiFramer()
        eol = "\r\n" if self.crlf else "\n"
        try:
            writer.write(f"{self.banner}{eol}".encode())
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                for item in framer.feed(data):
                    if isinstance(item, Block) and item.kind == "action" and not await self._action(session, item):
                        return
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._handlers.discard(task)
            writer.close()
            await self._notify()

    async def _action(self, session: _Session, block: Block) -> bool:
        """Answer one action; False closes the connection."""
        fields = dict(block.fields)
        for key in list(fields):
            if key.lower() == "secret":
                fields[key] = "***"
        self.actions.append(fields)
        session.actions.append(fields)
        if session.silent:  # heard, recorded, never answered
            await self._notify()
            return True
        name = block.name.lower()
        action_id = block.get("ActionID") or ""
        head = {"ActionID": action_id} if action_id else {}
        write = session.writer.write
        keep = True
        if name == "login":
            self.login_times.append(time.monotonic())
            if block.get("Username") == self.username and block.get("Secret") == self.secret:
                self.logins += 1
                session.logged_in = True
                session.events_on = (block.get("Events") or "on").lower() != "off"
                write(self._block({"Response": "Success", **head, "Message": "Authentication accepted"}))
                write(self._block({"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"}))
            else:
                self.failed_logins += 1
                write(self._block({"Response": "Error", **head, "Message": "Authentication failed"}))
                keep = False
        elif not session.logged_in:
            write(self._block({"Response": "Error", **head, "Message": "Permission denied"}))
        elif name == "ping":
            write(self._block({"Response": "Success", **head, "Ping": "Pong", "Timestamp": f"{time.time():.6f}"}))
        elif name == "coreshowchannels":
            self._list(write, head, "Channels will follow", self._channel_events(), "CoreShowChannelsComplete")
        elif name == "queuestatus":
            self._list(write, head, "Queue status will follow", self.queue_status, "QueueStatusComplete")
        elif name == "logoff":
            write(self._block({"Response": "Goodbye", **head, "Message": "Thanks for all the fish."}))
            keep = False
        else:
            write(self._block({"Response": "Error", **head, "Message": "Invalid/unknown command"}))
        await self._notify()
        return keep

    def _list(
        self,
        write: Callable[[bytes], None],
        head: dict[str, str],
        message: str,
        events: list[dict[str, str]],
        done: str,
    ) -> None:
        write(self._block({"Response": "Success", **head, "EventList": "start", "Message": message}))
        for event in events:
            write(
                self._block(
                    {"Event": event.get("Event", ""), **head, **{k: v for k, v in event.items() if k != "Event"}}
                )
            )
        write(self._block({"Event": done, **head, "EventList": "Complete", "ListItems": str(len(events))}))

    def _channel_events(self) -> list[dict[str, str]]:
        old = not self.banner.rpartition("/")[2].startswith(tuple("23456789"))
        out = []
        for chan in self.channels.values():
            if old:  # Asterisk 11's CoreShowChannel
                out.append(
                    {
                        "Event": "CoreShowChannel",
                        "Channel": chan.get("Channel", ""),
                        "UniqueID": chan.get("Uniqueid", ""),
                        "Context": chan.get("Context", ""),
                        "Extension": chan.get("Exten", ""),
                        "Priority": chan.get("Priority", ""),
                        "ChannelState": chan.get("ChannelState", ""),
                        "ChannelStateDesc": chan.get("ChannelStateDesc", ""),
                        "Application": "",
                        "ApplicationData": "",
                        "CallerIDnum": chan.get("CallerIDNum", ""),
                        "Duration": "00:00:01",
                        "AccountCode": chan.get("AccountCode", ""),
                        "BridgedChannel": "",
                        "BridgedUniqueID": "",
                    }
                )
            else:
                out.append(
                    {
                        "Event": "CoreShowChannel",
                        **chan,
                        "Application": "",
                        "ApplicationData": "",
                        "Duration": "00:00:01",
                    }
                )
        return out

    def _block(self, fields: dict[str, str]) -> bytes:
        # Asterisk writes Response/Event first; JSON recordings keep their keys sorted.
        ordered: dict[str, str] = {k: fields[k] for k in ("Response", "Event") if k in fields}
        ordered.update(fields)
        return encode_block(ordered, crlf=self.crlf)
