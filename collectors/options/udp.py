"""OPTIONS over UDP: one shared socket per address family, transactions matched by branch.

- One non-blocking socket per family (IPv4, IPv6), bound once to ``bind`` on an OS-given
  port and read by ``loop.add_reader``, which drains every queued datagram per wake-up.
  10,000 targets need two file descriptors, not 10,000.
- Each probe is a client transaction keyed by its Via branch. Retransmissions follow
  RFC 3261 timer E: T1, then doubling up to T2; after a provisional answer every T2
  (section 17.1.2.2). RTT runs from the first send to the first final answer (the
  receive time is taken when the datagram is read, before parsing).
- An answer completes its transaction when its top Via branch, Call-ID and CSeq method
  (OPTIONS) match and it comes from the address and port the request was sent to.
  Everything else is ignored and counted by reason (:data:`STRAY_REASONS`): ``garbage``
  (not a SIP answer), ``request`` (a SIP request), ``oversized``, ``unknown_branch``,
  ``late`` (the transaction already ended: a retransmitted or delayed answer),
  ``mismatch`` (branch known, Call-ID or method not), ``wrong_source``.
  A transaction whose peer sent unparseable bytes and never a usable answer ends as
  ``malformed`` rather than ``timeout``.
- "Refused" on UDP: the sockets set ``IP_RECVERR`` / ``IPV6_RECVERR`` (Linux), so ICMP
  port, host and network unreachable errors for any destination are queued on the shared
  socket's error queue. They are read with ``MSG_ERRQUEUE`` and matched to the transaction
  by the branch in the quoted request (by destination address when the quote is too
  short); that transaction ends at once as ``refused`` with the ICMP reason in
  ``error_detail``. Where ``IP_RECVERR`` is not available, or an ICMP error is filtered on
  the way, a dead UDP target ends as ``timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import socket
import struct
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collectors.options.config import OptionsConfig
from collectors.options.message import MAX_ANSWER_BYTES, AnswerError, Outcome, read_answer

__all__ = ["STRAY_REASONS", "UdpTransport"]

STRAY_REASONS = ("garbage", "request", "oversized", "unknown_branch", "late", "mismatch", "wrong_source")

_BUFFER_BYTES = 4 * 1024 * 1024
_RECENT_MAX = 65536  # ended transactions remembered to tell late answers from unknown ones
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
_ORIGIN_ICMP = (2, 3)  # SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6
_ICMP_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
_BRANCH = re.compile(rb";branch=([^;,\s]+)")
_LOCAL_CACHE_MAX = 100_000
_READ_BATCH = 512  # datagrams read per wake-up before other callbacks get their turn

Remote = tuple[str, int]


@dataclass(eq=False, slots=True)
class _Tx:
    branch: str
    call_id: str
    remote: Remote
    data: bytes
    future: asyncio.Future[None]
    interval: float
    outcome: Outcome = field(default_factory=Outcome)
    handle: asyncio.TimerHandle | None = None


class _Endpoint:
    """One bound socket of one address family and the transactions sent through it."""

    def __init__(self, transport: UdpTransport, family: int, host: str) -> None:
        self.transport = transport
        self.family = family
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, opt, _BUFFER_BYTES)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            self.recverr = _enable_recverr(sock, family)
            sock.bind((host, 0))
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.host = host
        self.port: int = sock.getsockname()[1]
        self.wildcard = host in ("0.0.0.0", "::")
        self.local_ips: dict[str, str] = {}
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(sock.fileno(), self._readable)
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def local_for(self, ip: str) -> tuple[str, int]:
        """The (address, port) the peer sees us at: the Via sent-by of a request to ``ip``."""
        if not self.wildcard:
            return self.host, self.port
        local = self.local_ips.get(ip)
        if local is None:
            try:  # the kernel's route choice, without sending anything
                with socket.socket(self.family, socket.SOCK_DGRAM) as probe:
                    probe.connect((ip, 9))
                    local = str(probe.getsockname()[0])
            except OSError:
                local = "127.0.0.1" if self.family == socket.AF_INET else "::1"
            if len(self.local_ips) >= _LOCAL_CACHE_MAX:
                self.local_ips.clear()
            self.local_ips[ip] = local
        return local, self.port

    # ------------------------------------------------------------------ sending
    def send(self, tx: _Tx) -> str | None:
        """Transmit once; return an error detail when the kernel refused this destination."""
        for _ in range(3):
            try:
                self.sock.sendto(tx.data, tx.remote)
            except BlockingIOError:
                self.transport.on_error("udp_send_blocked")
                return None  # the next retransmission tries again
            except OSError as exc:
                # With IP_RECVERR, an ICMP error for *another* destination is reported by
                # the next call on the socket: read the error queue; if it held something,
                # the error was not ours and the send is tried again.
                if self.recverr and exc.errno in _ICMP_ERRNOS:
                    drained = self.drain_errors()
                    if drained or exc.errno == errno.ECONNREFUSED:  # sendto never refuses by itself
                        continue
                self.transport.on_error("udp_send")
                return f"send failed: {exc.strerror or exc}"
            tx.outcome.attempts += 1
            return None
        return None

    # ------------------------------------------------------------------ receiving
    def _readable(self) -> None:
        sock = self.sock
        got = 0
        for _ in range(_READ_BATCH):  # then yield; the level-triggered reader is called again
            try:
                data, addr = sock.recvfrom(MAX_ANSWER_BYTES + 1)
            except BlockingIOError:
                break
            except OSError as exc:
                if self.closed:
                    return
                if not (self.recverr and exc.errno in _ICMP_ERRNOS):
                    self.transport.on_error("udp_recv")
                    break
                self.drain_errors()
                continue
            got += 1
            self.transport.datagram(data, addr, time.monotonic())
        if not got and self.recverr and not self.closed:
            self.drain_errors()  # woken for the error queue alone (EPOLLERR)

    def drain_errors(self) -> int:
        """Read the ICMP errors queued on the socket; fail the transactions they name. Returns how many."""
        n = 0
        while True:
            try:
                data, ancdata, _flags, addr = self.sock.recvmsg(2048, 1024, _MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                return n
            except OSError:
                return n
            n += 1
            for level, kind, cdata in ancdata:
                if (level, kind) not in ((socket.IPPROTO_IP, _IP_RECVERR), (socket.IPPROTO_IPV6, _IPV6_RECVERR)):
                    continue
                if len(cdata) < 8:
                    continue
                ee_errno, origin = struct.unpack_from("=IB", cdata)
                if origin in _ORIGIN_ICMP:
                    self.transport.icmp_error(data, (str(addr[0]), int(addr[1])), ee_errno)


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _enable_recverr(sock: socket.socket, family: int) -> bool:
    if not sys.platform.startswith("linux"):  # the option numbers below are Linux's
        return False
    level, option = (
        (socket.IPPROTO_IPV6, _IPV6_RECVERR) if family == socket.AF_INET6 else (socket.IPPROTO_IP, _IP_RECVERR)
    )
    try:
        sock.setsockopt(level, option, 1)
    except OSError:
        return False
    return True


class UdpTransport:
    """Client transactions over the shared sockets. Not thread-safe: one event loop."""

    def __init__(
        self,
        config: OptionsConfig,
        on_stray: Callable[[str], None],
        on_error: Callable[[str], None],
        on_retransmit: Callable[[], None],
    ) -> None:
        self.t1 = config.t1_ms / 1000
        self.t2 = config.t2_ms / 1000
        self.bind = config.bind
        self.on_stray = on_stray
        self.on_error = on_error
        self.on_retransmit = on_retransmit
        self._endpoints: dict[int, _Endpoint] = {}
        self._tx: dict[str, _Tx] = {}
        self._by_remote: dict[Remote, set[_Tx]] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()

    # ------------------------------------------------------------------ lifecycle
    def endpoint(self, family: int) -> _Endpoint:
        ep = self._endpoints.get(family)
        if ep is None or ep.closed:
            bind_family = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
            host = self.bind if bind_family == family else ("::" if family == socket.AF_INET6 else "0.0.0.0")
            ep = self._endpoints[family] = _Endpoint(self, family, host)
        return ep

    @property
    def ports(self) -> dict[int, int]:
        """Local port per open family (for logs and the banner)."""
        return {family: ep.port for family, ep in self._endpoints.items() if not ep.closed}

    @property
    def inflight(self) -> int:
        return len(self._tx)

    def healthy(self) -> bool:
        return all(not ep.closed for ep in self._endpoints.values())

    def close(self) -> None:
        for tx in list(self._tx.values()):
            if not tx.future.done():
                tx.future.cancel()
        for ep in self._endpoints.values():
            ep.close()

    # ------------------------------------------------------------------ a transaction
    async def transact(
        self,
        family: int,
        remote: Remote,
        build: Callable[[tuple[str, int]], bytes],
        branch: str,
        call_id: str,
        *,
        timeout_secs: float,
    ) -> Outcome:
        """Send the request ``build(local address)`` to ``remote`` and await the end of the transaction.

        Returns when a final answer arrived, an ICMP/send error ended it, or ``timeout_secs``
        passed since the first send (the outcome then has no answer). Retransmissions stop
        when this returns; cancelling it ends the transaction too.
        """
        ep = self.endpoint(family)
        loop = ep.loop
        tx = _Tx(branch, call_id, remote, build(ep.local_for(remote[0])), loop.create_future(), self.t1)
        self._tx[branch] = tx
        self._by_remote.setdefault(remote, set()).add(tx)
        try:
            tx.outcome.first_send_us = time.time_ns() // 1000
            tx.outcome.first_send = time.monotonic()
            detail = ep.send(tx)
            if detail is not None:
                tx.outcome.refused = detail
                return tx.outcome
            tx.handle = loop.call_later(tx.interval, self._retransmit, ep, tx)
            deadline = loop.call_later(timeout_secs, _expire, tx.future)
            try:
                await tx.future
            finally:
                deadline.cancel()
            return tx.outcome
        finally:
            if tx.handle is not None:
                tx.handle.cancel()
            if self._tx.get(branch) is tx:
                del self._tx[branch]
            same = self._by_remote.get(remote)
            if same is not None:
                same.discard(tx)
                if not same:
                    del self._by_remote[remote]
            self._recent[branch] = None
            if len(self._recent) > _RECENT_MAX:
                self._recent.popitem(last=False)

    def _retransmit(self, ep: _Endpoint, tx: _Tx) -> None:
        if tx.future.done() or ep.closed:
            return
        detail = ep.send(tx)
        self.on_retransmit()
        if detail is not None:
            tx.outcome.refused = detail
            tx.future.set_result(None)
            return
        tx.interval = min(tx.interval * 2, self.t2)
        tx.handle = ep.loop.call_later(tx.interval, self._retransmit, ep, tx)

    # ------------------------------------------------------------------ events from the endpoints
    def datagram(self, data: bytes, addr: Any, received: float) -> None:
        try:
            answer = read_answer(data)
        except AnswerError as exc:
            self.on_stray(exc.reason)
            if exc.reason != "request":
                for same in self._by_remote.get((str(addr[0]), int(addr[1])), ()):
                    same.outcome.garbled = True
            return
        branch = answer.branch
        tx = self._tx.get(branch) if branch is not None else None
        if tx is None:
            self.on_stray("late" if branch is not None and branch in self._recent else "unknown_branch")
            return
        if (str(addr[0]), int(addr[1])) != tx.remote:
            self.on_stray("wrong_source")
            return
        if answer.call_id != tx.call_id or answer.method != "OPTIONS":
            self.on_stray("mismatch")
            return
        if tx.future.done():
            self.on_stray("late")
            return
        if answer.provisional:
            tx.interval = self.t2  # Proceeding: retransmit every T2
            return
        tx.outcome.answer = answer
        tx.outcome.received = received
        tx.future.set_result(None)

    def icmp_error(self, quoted: bytes, destination: Remote, code: int) -> None:
        detail = {
            errno.ECONNREFUSED: "ICMP port unreachable",
            errno.EHOSTUNREACH: "ICMP host unreachable",
            errno.ENETUNREACH: "ICMP network unreachable",
        }.get(code) or f"ICMP error: {os.strerror(code)}"
        found = _BRANCH.search(quoted)
        if found is not None:
            tx = self._tx.get(found.group(1).decode("ascii", "replace"))
            candidates = [tx] if tx is not None and tx.remote == destination else []
        else:
            candidates = list(self._by_remote.get(destination, ()))
        for tx in candidates:
            if not tx.future.done():
                tx.outcome.refused = detail
                tx.future.set_result(None)
