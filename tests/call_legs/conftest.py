"""The shells' environment: the in-process bus over the session's migrated embedded store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from callscope.bus.memory import MemoryBus
from callscope.settings import MemoryBusConfig, ProcessorConfig, StoreConfig
from callscope.store.client import Store
from callscope.telemetry import Telemetry
from processors.call_legs.app import CorrelatingShell
from schemas.envelope import encode
from schemas.topics import ALL_TOPICS


@dataclass
class Env:
    bus: MemoryBus
    store: Store
    config: StoreConfig
    telemetry: Telemetry


@pytest.fixture
async def env(migrated_store: Store, store_config: StoreConfig) -> AsyncIterator[Env]:
    telemetry = Telemetry()
    bus = MemoryBus(MemoryBusConfig(partitions=3), telemetry)
    await bus.start()
    await bus.ensure_topics(ALL_TOPICS)
    config = store_config.model_copy(update={"batch_max_age_secs": 0.05})
    yield Env(bus, migrated_store, config, telemetry)
    await bus.stop()


@contextlib.asynccontextmanager
async def running(e: Env, cls: type[CorrelatingShell], **kw: Any) -> AsyncIterator[CorrelatingShell]:
    processor = cls(ProcessorConfig(poll_timeout_ms=20), e.config, e.bus, e.store, e.telemetry, node="t", **kw)
    stop = asyncio.Event()
    task = asyncio.create_task(processor.run(stop))
    await asyncio.wait_for(processor.ready.wait(), 10)
    try:
        yield processor
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def publish(e: Env, envs: list[Any]) -> None:
    producer = e.bus.producer()
    for m in envs:
        await producer.send(f"callscope.{m.kind}", encode(m), m.key.encode())
    await producer.flush()
    await producer.close()


async def drained(e: Env, p: CorrelatingShell) -> None:
    async with asyncio.timeout(30):
        while sum((await e.bus.lag(p.group, p.topics)).values()):
            await asyncio.sleep(0.02)
