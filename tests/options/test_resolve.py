"""Host name lookups: bounded by the DNS timeout even when the resolver hangs; shared and cached."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from collectors.options.resolve import DnsError, Resolver


class FakeResolver:
    """Stands in for the system resolver: counts lookups; ``hang`` blocks them until released."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.hang = False
        self.release = threading.Event()

    def __call__(self, host: str, *args: Any, **kwargs: Any) -> list[Any]:
        self.calls.append(host)
        if self.hang:
            self.release.wait(30)
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("192.0.2.7", 0))]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeResolver]:
    resolver = FakeResolver()
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    yield resolver
    resolver.release.set()


async def test_a_hanging_resolver_costs_the_timeout_not_more(fake: FakeResolver) -> None:
    fake.hang = True
    resolver = Resolver(timeout_secs=0.3, cache_secs=60)
    started = time.monotonic()
    with pytest.raises(DnsError, match=r"within 0\.3 s"):
        await resolver.resolve("sbc.carrier.example")
    assert time.monotonic() - started < 1.0
    resolver.close()


async def test_lookups_are_shared_and_cached(fake: FakeResolver) -> None:
    resolver = Resolver(timeout_secs=2, cache_secs=60)
    results = await asyncio.gather(*(resolver.resolve("sbc.carrier.example") for _ in range(10)))
    assert set(results) == {(socket.AF_INET, "192.0.2.7")}
    assert await resolver.resolve("SBC.carrier.example") == (socket.AF_INET, "192.0.2.7")
    assert fake.calls == ["sbc.carrier.example"]
    uncached = Resolver(timeout_secs=2, cache_secs=0)
    await uncached.resolve("sbc.carrier.example")
    await uncached.resolve("sbc.carrier.example")
    assert len(fake.calls) == 3


async def test_failures_are_dns_errors_and_not_cached(fake: FakeResolver) -> None:
    resolver = Resolver(timeout_secs=2, cache_secs=60)
    for _ in range(2):
        with pytest.raises(DnsError, match=r"carrier\.invalid"):
            await resolver.resolve("carrier.invalid")
    assert fake.calls == ["carrier.invalid", "carrier.invalid"]


async def test_ip_literals_skip_the_resolver(fake: FakeResolver) -> None:
    resolver = Resolver(timeout_secs=2, cache_secs=60)
    assert await resolver.resolve("10.1.2.3") == (socket.AF_INET, "10.1.2.3")
    assert await resolver.resolve("2001:DB8::1") == (socket.AF_INET6, "2001:db8::1")
    assert fake.calls == []
