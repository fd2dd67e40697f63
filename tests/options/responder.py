"""A real SIP responder for the prober's tests: UDP, TCP and TLS on 127.0.0.1, OS-given ports.

It runs its own asyncio loop in a thread, so synchronous tests, subprocesses and async
tests can all talk to it. Its :class:`Behaviour` decides how it answers (mutable between
probes); every request it reads is recorded (:attr:`SipResponder.requests`) with its
arrival time, for assertions on retransmissions, headers and schedules.
Readiness is probed over SIP: :meth:`SipResponder.start` returns once an OPTIONS sent
over UDP (and over TCP) has been answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Literal, cast

Mode = Literal["answer", "silent", "garbage", "truncated", "close", "wrong_source", "wrong_call_id", "stray_first"]


@dataclass
class Behaviour:
    code: int = 200
    reason: str = "OK"
    server: str | None = "test-responder/1.0"
    user_agent: str | None = None
    drop_first: int = 0  # copies of each transaction's request ignored before answering
    provisional: bool = False  # "100 Trying" at once, the final answer after delay_secs
    delay_secs: float = 0.0
    mode: Mode = "answer"


@dataclass(frozen=True)
class Received:
    transport: str
    data: bytes
    source: tuple[str, int]
    at: float  # time.monotonic()

    def header(self, name: str) -> str | None:
        for line in self.data.decode(errors="replace").split("\r\n")[1:]:
            key, colon, value = line.partition(":")
            if colon and key.strip().lower() == name.lower():
                return value.strip()
        return None

    @property
    def call_id(self) -> str:
        return self.header("Call-ID") or ""

    @property
    def request_line(self) -> str:
        return self.data.split(b"\r\n", 1)[0].decode(errors="replace")


def answer_for(request: bytes, code: int, reason: str, *, server: str | None, user_agent: str | None) -> bytes:
    """A response to ``request``: its Via lines, From, To (tagged unless 100), Call-ID and CSeq copied."""
    head = request.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")[1:]
    picked: list[str] = []
    for wanted in ("via", "from", "to", "call-id", "cseq"):
        for line in head:
            if line.partition(":")[0].strip().lower() == wanted:
                tag = wanted == "to" and code != 100 and ";tag=" not in line
                picked.append(f"{line};tag={secrets.token_hex(4)}" if tag else line)
    lines = [f"SIP/2.0 {code} {reason}", *picked]
    if server:
        lines.append(f"Server: {server}")
    if user_agent:
        lines.append(f"User-Agent: {user_agent}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SipResponder) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.owner.on_udp(self, data, addr)


@dataclass
class SipResponder:
    """Start with :meth:`start`, stop with :meth:`stop` (the fixtures do both)."""

    tls_context: ssl.SSLContext | None = None
    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: list[Received] = field(default_factory=list)
    udp_port: int = 0
    tcp_port: int = 0
    tls_port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _udp: _Udp | None = None
    _other: _Udp | None = None
    _servers: list[asyncio.Server] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> SipResponder:
        bound = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._bind())
            except BaseException as exc:
                failure.append(exc)
                bound.set()
                loop.close()
                return
            bound.set()
            loop.run_forever()
            loop.run_until_complete(self._close())
            loop.close()

        self._thread = threading.Thread(target=main, name="sip-responder", daemon=True)
        self._thread.start()
        if not bound.wait(10):
            raise AssertionError("responder did not bind within 10 s")
        if failure:
            raise failure[0]
        self._probe_ready()
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        _, self._udp = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=("127.0.0.1", 0))
        _, self._other = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=("127.0.0.1", 0))
        assert self._udp.transport is not None
        self.udp_port = self._udp.transport.get_extra_info("sockname")[1]
        tcp = await asyncio.start_server(self._stream("tcp"), "127.0.0.1", 0)
        self._servers.append(tcp)
        self.tcp_port = tcp.sockets[0].getsockname()[1]
        if self.tls_context is not None:
            tls = await asyncio.start_server(self._stream("tls"), "127.0.0.1", 0, ssl=self.tls_context)
            self._servers.append(tls)
            self.tls_port = tls.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for proto in (self._udp, self._other):
            if proto is not None and proto.transport is not None:
                proto.transport.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    def _probe_ready(self) -> None:
        """One OPTIONS over UDP and one over TCP, answered: the responder is serving."""
        saved, self.behaviour = self.behaviour, Behaviour()
        try:
            request = _plain_options("127.0.0.1", self.udp_port, "UDP")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(5)
                sock.sendto(request, ("127.0.0.1", self.udp_port))
                assert sock.recv(65535).startswith(b"SIP/2.0 200")
            with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=5) as conn:
                conn.sendall(_plain_options("127.0.0.1", self.tcp_port, "TCP"))
                assert conn.recv(65535).startswith(b"SIP/2.0 200")
        finally:
            self.behaviour = saved
            self.requests.clear()
            self._seen.clear()

    # ------------------------------------------------------------------ answering
    def _decide(self, transport: str, data: bytes, source: tuple[str, int]) -> list[tuple[float, bytes]] | None:
        """What to send back, as (delay, bytes) pairs; None to stay silent."""
        rec = Received(transport, data, (str(source[0]), int(source[1])), time.monotonic())
        self.requests.append(rec)
        b = self.behaviour
        copies = self._seen[rec.call_id] = self._seen.get(rec.call_id, 0) + 1
        if copies <= b.drop_first or b.mode == "silent":
            return None
        if b.mode == "garbage":
            return [(0.0, b"\x00\x01 this is not SIP \xff\r\n\r\n")]
        if b.mode == "truncated":
            full = answer_for(data, b.code, b.reason, server=b.server, user_agent=b.user_agent)
            return [(0.0, full.replace(b"Content-Length: 0", b"Content-Length: 80") + b"partial body")]
        final = answer_for(data, b.code, b.reason, server=b.server, user_agent=b.user_agent)
        if b.mode == "wrong_call_id":
            final = final.replace(rec.call_id.encode(), b"someone-else@elsewhere")
        out: list[tuple[float, bytes]] = []
        if b.mode == "stray_first":
            out.append((0.0, final.replace(b"branch=z9hG4bK", b"branch=z9hG4bKnot-yours-")))
        if b.provisional:
            if copies > 1 + b.drop_first:
                return [(0.0, answer_for(data, 100, "Trying", server=None, user_agent=None))]
            out.append((0.0, answer_for(data, 100, "Trying", server=None, user_agent=None)))
        out.append((b.delay_secs, final))
        return out

    def on_udp(self, proto: _Udp, data: bytes, addr: tuple[str, int]) -> None:
        if proto is self._other:
            return
        plan = self._decide("udp", data, addr)
        if plan is None:
            return
        sender = self._other if self.behaviour.mode == "wrong_source" else proto
        assert sender is not None
        assert sender.transport is not None
        assert self._loop is not None
        for delay, payload in plan:
            if delay:
                self._loop.call_later(delay, sender.transport.sendto, payload, addr)
            else:
                sender.transport.sendto(payload, addr)

    def _stream(self, transport: str):  # type: ignore[no-untyped-def]
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername")
            try:
                while True:
                    try:
                        first = await reader.readexactly(1)
                        if not first.isalpha():  # not a SIP request (a TLS ClientHello...): hang up, as servers do
                            return
                        head = first + await reader.readuntil(b"\r\n\r\n")
                    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                        return
                    plan = self._decide(transport, head, peer)
                    if self.behaviour.mode == "close":
                        return
                    for delay, payload in plan or ():
                        if delay:
                            await asyncio.sleep(delay)
                        writer.write(payload)
                        await writer.drain()
                    if self.behaviour.mode in ("truncated", "garbage"):
                        return
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 2)

        return handle

    # ------------------------------------------------------------------ helpers for tests
    def send_udp_from_other(self, payload: bytes, to: tuple[str, int]) -> None:
        """Send ``payload`` to ``to`` from the responder's second socket."""
        assert self._loop is not None
        assert self._other is not None
        assert self._other.transport is not None
        self._loop.call_soon_threadsafe(self._other.transport.sendto, payload, to)

    def copies(self, call_id: str) -> list[Received]:
        return [r for r in list(self.requests) if r.call_id == call_id]


def _plain_options(host: str, port: int, transport: str) -> bytes:
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bK{secrets.token_hex(8)}\r\n"
        "From: <sip:ready@127.0.0.1>;tag=1\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: ready-{secrets.token_hex(8)}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
