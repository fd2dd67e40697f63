"""Host name lookups for the prober, bounded in time and in threads.

Names are resolved to A/AAAA records with the system resolver (``getaddrinfo``; no SRV
or NAPTR, RFC 3263 is not followed: the port is the URI's or the transport's default).
IP literals skip the lookup. Each lookup runs in a daemon thread of its own, at most
``_PARALLEL`` at a time, and the caller waits at most ``timeout_secs``: a resolver that
hangs costs a thread until it returns, never a stuck probe and never a stuck shutdown
(``asyncio``'s default executor is joined when the loop closes, daemon threads are not).
Concurrent lookups of one name share one thread; answers are reused for ``cache_secs``.
Failures are not cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass

__all__ = ["Address", "DnsError", "Resolver"]

_PARALLEL = 16
_CACHE_MAX = 100_000

Address = tuple[int, str]  # (address family, IP text)


class DnsError(Exception):
    """A name that did not resolve in time; the message says why."""


@dataclass(slots=True)
class _Cached:
    expires: float
    addresses: list[Address]


def literal(host: str) -> Address | None:
    """``(family, ip)`` when ``host`` is an IP literal, else None."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), ip.compressed


class Resolver:
    def __init__(self, timeout_secs: float, cache_secs: float) -> None:
        self.timeout_secs = timeout_secs
        self.cache_secs = cache_secs
        self._cache: dict[str, _Cached] = {}
        self._pending: dict[str, asyncio.Future[list[Address]]] = {}
        self._slots = asyncio.Semaphore(_PARALLEL)
        self._tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        """Stop waiting for lookups still running (their threads end on their own)."""
        for task in list(self._tasks):
            task.cancel()

    async def resolve(self, host: str) -> Address:
        """The first address of ``host`` (the resolver's order); :class:`DnsError` when there is none in time."""
        found = literal(host)
        if found is not None:
            return found
        key = host.lower()
        cached = self._cache.get(key)
        if cached is not None and cached.expires > time.monotonic():
            return cached.addresses[0]
        try:
            async with asyncio.timeout(self.timeout_secs):
                future = self._pending.get(key)
                if future is None:
                    future = self._pending[key] = asyncio.get_running_loop().create_future()
                    task = asyncio.create_task(self._lookup(key, future), name="dns")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                addresses = await asyncio.shield(future)
        except TimeoutError:
            raise DnsError(f"no answer for {host} within {self.timeout_secs:g} s") from None
        return addresses[0]

    async def _lookup(self, host: str, future: asyncio.Future[list[Address]]) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with self._slots:
                done = loop.create_future()
                thread = threading.Thread(target=_getaddrinfo, args=(loop, host, done), daemon=True, name="dns")
                thread.start()
                addresses = await done
        except asyncio.CancelledError:
            future.cancel()
            raise
        except DnsError as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: waiters that timed out never read it
            return
        finally:
            self._pending.pop(host, None)
        if self.cache_secs > 0:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[host] = _Cached(time.monotonic() + self.cache_secs, addresses)
        if not future.done():
            future.set_result(addresses)


def _getaddrinfo(loop: asyncio.AbstractEventLoop, host: str, done: asyncio.Future[list[Address]]) -> None:
    """In a daemon thread: resolve, then hand the outcome to the loop (if it still runs)."""
    result: list[Address] | BaseException
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_DGRAM)
        result = [(int(family), str(addr[0])) for family, _, _, _, addr in infos if family in _FAMILIES]
        if not result:
            result = DnsError(f"no IPv4 or IPv6 address for {host}")
    except (OSError, UnicodeError) as exc:
        result = DnsError(f"{host}: {getattr(exc, 'strerror', None) or exc}")

    def deliver() -> None:
        if done.done():
            return
        if isinstance(result, BaseException):
            done.set_exception(result)
        else:
            done.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop closed while the lookup ran
        loop.call_soon_threadsafe(deliver)


_FAMILIES = (socket.AF_INET, socket.AF_INET6)
