"""Fixtures for the HEP collector: a collector on OS-given ports with the in-process bus, the corpus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from callscope.bus.base import Consumer, Producer, Record
from callscope.bus.memory import MemoryBus
from callscope.settings import MemoryBusConfig, Settings, load_settings
from callscope.telemetry import Telemetry
from collectors.hep.config import HepConfig
from collectors.hep.decode import HepPacket, encode_hep3
from schemas.topics import ALL_TOPICS

if TYPE_CHECKING:
    from collectors.hep.collector import HepCollector


def sip_message(method: str = "INVITE", call_id: str = "call-1@test", cseq: int = 1, extra: str = "") -> bytes:
    lines = [
        f"{method} sip:bob@10.0.0.2 SIP/2.0",
        "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds",
        "Max-Forwards: 70",
        "From: Alice <sip:alice@10.0.0.1>;tag=1928301774",
        "To: Bob <sip:bob@10.0.0.2>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:alice@10.0.0.1:5060>",
    ]
    if extra:
        lines.append(extra)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def hep_packet(
    payload: bytes,
    *,
    payload_type: int = 1,
    auth_key: bytes | None = None,
    correlation_id: str | None = None,
    capture_id: int | None = 7,
    keepalive: bool = False,
    ts_sec: int = 1_700_000_000,
) -> bytes:
    return encode_hep3(
        HepPacket(
            version=3,
            family=2,
            protocol=17,
            src_ip="10.0.0.1",
            src_port=5060,
            dst_ip="10.0.0.2",
            dst_port=5060,
            ts_sec=ts_sec,
            ts_usec=123456,
            payload_type=payload_type,
            payload=payload,
            capture_id=capture_id,
            auth_key=auth_key,
            correlation_id=correlation_id,
            keepalive=keepalive,
        )
    )


@dataclass
class Harness:
    """A running HepCollector publishing to a MemoryBus, and a consumer of every topic."""

    collector: HepCollector
    bus: MemoryBus
    consumer: Consumer
    telemetry: Telemetry
    stop: asyncio.Event
    task: asyncio.Task[None]
    records: list[Record] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.collector.address is not None
        return self.collector.address[1]

    async def collect(self, n: int, within: float = 20.0) -> list[Record]:
        """Read until ``n`` records arrived in all (deadline, not a sleep)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self.records) < n and loop.time() < deadline:
            self.records.extend(await self.consumer.getmany(timeout_ms=100, max_records=10_000))
        return self.records

    async def drain(self) -> list[Record]:
        """Everything left after the collector stopped."""
        while True:
            got = await self.consumer.getmany(timeout_ms=50, max_records=10_000)
            if not got:
                return self.records
            self.records.extend(got)

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)

    def by_topic(self) -> dict[str, list[Record]]:
        out: dict[str, list[Record]] = {}
        for rec in self.records:
            out.setdefault(rec.topic, []).append(rec)
        return out

    def metric(self, name: str, labels: dict[str, str]) -> float:
        value = self.telemetry.registry.get_sample_value(name, labels)
        return value or 0.0


class GatedProducer(Producer):
    """Holds every send_many until ``gate`` is set (to fill the collector's queue on purpose)."""

    def __init__(self, inner: Producer) -> None:
        self.inner = inner
        self.gate = asyncio.Event()

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        await self.gate.wait()
        await self.inner.send(topic, value, key)

    async def send_many(self, topic: str, items: Sequence[tuple[bytes | None, bytes]]) -> None:
        await self.gate.wait()
        await self.inner.send_many(topic, items)

    async def flush(self) -> None:
        await self.inner.flush()

    async def close(self) -> None:
        await self.inner.close()


def deadletter_docs(records: list[Record]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records if r.topic == "callscope.deadletter"]


@pytest.fixture
async def hep_harness() -> AsyncIterator[Callable[..., Any]]:
    """``await make(**hep_config_overrides)`` starts a collector on 127.0.0.1:0 (UDP and TCP)."""
    made: list[Harness] = []

    from collectors.hep.collector import HepCollector

    async def make(
        settings: Settings | None = None, wrap: Callable[[Producer], Producer] | None = None, **overrides: Any
    ) -> Harness:
        telemetry = Telemetry()
        bus = MemoryBus(MemoryBusConfig(), telemetry)
        await bus.start()
        await bus.ensure_topics(ALL_TOPICS)
        consumer = await bus.consumer("test", ALL_TOPICS)
        config = HepConfig(**{"listen": "127.0.0.1:0", **overrides})
        settings = settings or load_settings(None, {"node": "collector1"})
        producer = bus.producer()
        collector = HepCollector(config, settings, wrap(producer) if wrap else producer, telemetry)
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        waiter = asyncio.create_task(collector.ready.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            waiter.cancel()
            task.result()
        harness = Harness(collector, bus, consumer, telemetry, stop, task)
        made.append(harness)
        return harness

    yield make
    for h in made:
        if not h.task.done():
            h.stop.set()
            await asyncio.wait_for(h.task, 30)
        await h.consumer.close()
        await h.bus.stop()
