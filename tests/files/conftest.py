"""Fixtures for the file collectors: a collector on the in-process bus, a consumer of its topics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from callscope.bus.base import Consumer, Producer, Record
from callscope.bus.memory import MemoryBus
from callscope.settings import MemoryBusConfig, Settings, load_settings
from callscope.telemetry import Telemetry
from collectors.tail.collector import TailCollector
from schemas.errors import BusError
from schemas.topics import ALL_TOPICS


def settings_for(data_dir: Path, **collectors: Any) -> Settings:
    return load_settings(
        None,
        {
            "node": "collector1",
            "data_dir": str(data_dir),
            "topology": {"nodes": [{"name": "pbx1", "role": "logic"}]},
            "collectors": collectors,
        },
    )


class RefusingProducer(Producer):
    """A producer the test can make refuse: ``send_many`` (or only ``flush``) raises BusError."""

    def __init__(self, inner: Producer) -> None:
        self.inner = inner
        self.refuse_send = False
        self.refuse_flush = False
        self.refused = 0

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        await self.send_many(topic, [(key, value)])

    async def send_many(self, topic: str, items: Sequence[tuple[bytes | None, bytes]]) -> None:
        if self.refuse_send:
            self.refused += 1
            raise BusError("bus refused (test)")
        await self.inner.send_many(topic, items)

    async def flush(self) -> None:
        if self.refuse_flush:
            self.refused += 1
            raise BusError("flush failed (test)")
        await self.inner.flush()

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class Running:
    collector: TailCollector
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


@dataclass
class Bench:
    """An in-process bus, a consumer of every topic, and collectors started on it."""

    bus: MemoryBus
    consumer: Consumer
    telemetry: Telemetry
    records: list[Record] = field(default_factory=list)
    running: list[Running] = field(default_factory=list)

    async def start(self, make: Callable[[Producer, Telemetry], TailCollector], wrap: Any = None) -> Running:
        producer = self.bus.producer()
        collector = make(wrap(producer) if wrap else producer, self.telemetry)
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        waiter = asyncio.create_task(collector.ready.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            waiter.cancel()
            task.result()
        run = Running(collector, stop, task)
        self.running.append(run)
        return run

    async def collect(self, n: int, within: float = 30.0) -> list[Record]:
        """Read until ``n`` records arrived in all (a deadline, not a sleep)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self.records) < n:
            if loop.time() > deadline:
                raise AssertionError(f"{len(self.records)} of {n} records within {within}s")
            for run in self.running:
                if run.task.done():
                    run.task.result()
            self.records.extend(await self.consumer.getmany(timeout_ms=50, max_records=100_000))
        return self.records

    async def drain(self) -> list[Record]:
        while True:
            got = await self.consumer.getmany(timeout_ms=100, max_records=100_000)
            if not got:
                return self.records
            self.records.extend(got)

    def topic(self, topic: str) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.records if r.topic == topic]

    def metric(self, name: str, labels: dict[str, str]) -> float:
        return self.telemetry.registry.get_sample_value(name, labels) or 0.0

    async def until_metric(self, name: str, labels: dict[str, str], at_least: float, within: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.metric(name, labels) < at_least:
            if loop.time() > deadline:
                raise AssertionError(f"{name}{labels} = {self.metric(name, labels)} < {at_least}")
            await asyncio.sleep(0.02)


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    telemetry = Telemetry()
    bus = MemoryBus(MemoryBusConfig(partitions=3), telemetry)
    await bus.start()
    await bus.ensure_topics(ALL_TOPICS)
    consumer = await bus.consumer("test", ALL_TOPICS)
    b = Bench(bus, consumer, telemetry)
    yield b
    for run in b.running:
        if not run.task.done():
            await run.shutdown()
    await consumer.close()
    await bus.stop()
