"""Run the real AMI collector (real panoramisk) against :class:`tests.ami.server.AmiServer`.

    async with AmiServer() as ami:
        harness = await start_collector(ami, node="ast-1")
        try:
            await ami.wait_logged_in()
            await ami.replay(load_recording(path))
            envs = await harness.wait_for(lambda envs: sum(e.body.event == "Hangup" for e in envs) >= 4)
        finally:
            await harness.close()

Envelopes are read back from the in-process bus (``callscope.ami``) and decoded with
:func:`schemas.envelope.decode`, so a test sees exactly what a processor would.
``connection`` overrides any :class:`collectors.ami.config.AmiConnection` option
(``ping_interval_secs=0.2``, ``secret="wrong"``, ``events={"deny": ["VarSet"]}``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from callscope.bus.base import Consumer, Record
from callscope.bus.memory import MemoryBus
from callscope.settings import MemoryBusConfig, Settings, load_settings
from callscope.telemetry import Telemetry
from collectors.ami.collector import AmiCollector
from collectors.ami.config import AmiConfig
from schemas.envelope import AmiEnvelope, decode
from schemas.topics import ALL_TOPICS, DEADLETTER
from tests.ami.server import AmiServer

__all__ = ["AmiHarness", "start_collector"]


@dataclass
class AmiHarness:
    collector: AmiCollector
    bus: MemoryBus
    consumer: Consumer
    telemetry: Telemetry
    stop: asyncio.Event
    task: asyncio.Task[None]
    records: list[Record] = field(default_factory=list)

    def envelopes(self, event: str | None = None) -> list[AmiEnvelope]:
        """The ``ami`` envelopes read so far (of one event name when given), in bus order."""
        out = []
        for rec in self.records:
            if rec.topic == "callscope.ami":
                env = decode(rec.value)
                assert isinstance(env, AmiEnvelope)
                if event is None or env.body.event == event:
                    out.append(env)
        return out

    def deadletters(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.records if r.topic == DEADLETTER]

    async def poll(self) -> None:
        self.records.extend(await self.consumer.getmany(timeout_ms=50, max_records=10_000))
        if self.task.done():
            self.task.result()  # the collector failed: say why

    async def wait_for(self, predicate: Callable[[list[AmiEnvelope]], bool], within: float = 15.0) -> list[AmiEnvelope]:
        """Read the bus until ``predicate(envelopes)`` holds (deadline ``within`` seconds)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            envs = self.envelopes()
            if predicate(envs):
                return envs
            if loop.time() > deadline:
                raise AssertionError(f"condition not met within {within}s; {len(envs)} AMI envelopes read")
            await self.poll()

    async def wait_metric(self, name: str, labels: dict[str, str], at_least: float, within: float = 15.0) -> float:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            value = self.metric(name, labels)
            if value >= at_least:
                return value
            if loop.time() > deadline:
                raise AssertionError(f"{name}{labels} = {value}, wanted >= {at_least} within {within}s")
            await self.poll()

    def metric(self, name: str, labels: dict[str, str]) -> float:
        return self.telemetry.registry.get_sample_value(name, labels) or 0.0

    async def close(self) -> None:
        if not self.task.done():
            self.stop.set()
            await asyncio.wait_for(self.task, 30)
        while True:  # what the collector flushed at stop
            got = await self.consumer.getmany(timeout_ms=50, max_records=10_000)
            if not got:
                break
            self.records.extend(got)
        await self.consumer.close()
        await self.bus.stop()


def harness_settings(server: AmiServer, node: str = "ast-1", **connection: Any) -> Settings:
    """Settings with one AMI connection to ``server`` (the topology names ``node`` a logic node)."""
    conn = {
        "node": node,
        "port": server.port,
        "username": server.username,
        "secret": server.secret,
        "ping_interval_secs": 5.0,
        "ping_timeout_secs": 2.0,
        "reconnect_backoff_initial_secs": 0.05,
        "reconnect_backoff_max_secs": 0.5,
        **connection,
    }
    return load_settings(
        None,
        {
            "node": "collector-1",
            "topology": {"nodes": [{"name": node, "role": "logic", "address": server.host}]},
            "collectors": {"ami": {"connections": [conn], "batch_max_age_ms": 5}},
        },
    )


async def start_collector(
    server: AmiServer, node: str = "ast-1", *, settings: Settings | None = None, **connection: Any
) -> AmiHarness:
    """An :class:`AmiCollector` publishing to a fresh in-process bus, connected (or connecting) to ``server``."""
    settings = settings or harness_settings(server, node, **connection)
    telemetry = Telemetry(node=settings.node)
    bus = MemoryBus(MemoryBusConfig(), telemetry)
    await bus.start()
    await bus.ensure_topics(ALL_TOPICS)
    consumer = await bus.consumer("ami-test", ALL_TOPICS)
    config: AmiConfig = settings.collectors.ami
    collector = AmiCollector(config, settings, bus.producer(), telemetry)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    ready = asyncio.create_task(collector.ready.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()
    return AmiHarness(collector, bus, consumer, telemetry, stop, task)
