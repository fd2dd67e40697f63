"""The whole embedded pipeline (memory bus, chDB, every processor, HEP collector, API) in the test's process.

Fault tests that inject into the store need the pipeline's own :class:`Store` object, so
they run :class:`callscope.runtime.Runtime` on the test's event loop instead of as a
subprocess. The store is the session's engine (tests/conftest.py) bound to a database of
the test's own; the HEP collector and the API listen on OS-given ports on 127.0.0.1 and
are probed for readiness (the runtime's ``ready`` event is set once every component is).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from callscope.runtime import Runtime
from callscope.settings import Settings, StoreConfig
from callscope.store.client import Store, quote_identifier
from callscope.telemetry import Telemetry


@dataclass
class Embedded:
    runtime: Runtime
    settings: Settings
    telemetry: Telemetry
    store: Store
    hep_port: int
    api_url: str
    task: asyncio.Task[None]

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the pipeline's registry (0 when the series does not exist yet)."""
        return self.telemetry.registry.get_sample_value(name, labels) or 0.0

    def metric_sum(self, name: str, **labels: str) -> float:
        """The sum of every series of ``name`` whose labels include ``labels``."""
        total = 0.0
        for family in self.telemetry.registry.collect():
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def by_label(self, name: str, label: str, **labels: str) -> dict[str, float]:
        """Non-zero samples of ``name`` (restricted to ``labels``) by the value of ``label``."""
        out: dict[str, float] = {}
        for family in self.telemetry.registry.collect():
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()) and sample.value:
                    key = sample.labels.get(label, "")
                    out[key] = out.get(key, 0.0) + sample.value
        return out

    def hep_accounted(self) -> int:
        """HEP packets (and TCP streams) the collector has dealt with: turned into an event or counted otherwise.

        Good packets count in ``callscope_events_received_total{component="hep"}``; the others in
        ``callscope_hep_packets_total`` by transport and result (invalid, auth, keepalive,
        queue_full, bad_stream: one per TCP connection closed for not speaking HEP3).
        """
        total = self.metric_sum("callscope_events_received_total", component="hep")
        for transport in ("udp", "tcp"):
            for result in ("invalid", "auth", "keepalive", "queue_full", "bad_stream"):
                total += self.metric("callscope_hep_packets_total", transport=transport, result=result)
        return int(total)

    def groups(self) -> set[str]:
        """The processors' consumer groups (every one reports its lag from the start)."""
        out: set[str] = set()
        for family in self.telemetry.registry.collect():
            for sample in family.samples:
                if sample.name == "callscope_bus_lag_messages":
                    out.add(sample.labels["group"])
        return out

    async def lag(self) -> int:
        """Messages on the bus not yet committed, summed over every processor group."""
        from schemas.topics import ALL_TOPICS

        bus = self.runtime.bus
        assert bus is not None
        total = 0
        for group in self.groups():
            total += sum((await bus.lag(group, ALL_TOPICS)).values())
        return total

    async def drained(self, accounted: int, timeout_secs: float) -> None:
        """Wait until the collector dealt with ``accounted`` packets and every group committed everything."""
        try:
            async with asyncio.timeout(timeout_secs):
                while self.hep_accounted() < accounted or await self.lag():
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(
                f"not drained in {timeout_secs} s: collector accounted for {self.hep_accounted()} of {accounted}"
                f" packets, bus lag {await self.lag()}"
            ) from None

    async def healthz(self) -> int:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(f"{self.api_url}/healthz")).status_code


def settings_for(tmp_path: Path, store_config: StoreConfig, **overrides: Any) -> Settings:
    """Embedded settings on OS-given ports: the test's database, no API auth (loopback), HEP only.

    ``overrides`` are merged into the settings document (nested dicts), e.g.
    ``collectors={"hep": {"auth_key": "k"}}`` or ``store={"retry_max_secs": 1}``.
    """
    doc: dict[str, Any] = {
        "node": "faults",
        "data_dir": str(tmp_path / "data"),
        "store": store_config.model_dump(),
        "api": {"listen": "127.0.0.1:0", "auth": {"enabled": False}},
        "collectors": {"hep": {"listen": "127.0.0.1:0"}},
        "processors": {"poll_timeout_ms": 50, "lag_report_secs": 1.0},
    }
    _merge(doc, overrides)
    return Settings.model_validate(doc)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


@contextlib.asynccontextmanager
async def embedded(settings: Settings) -> AsyncIterator[Embedded]:
    """Start the runtime (migrations, bus, processors, collectors, API); on exit stop it and drop the database."""
    telemetry = Telemetry(node=settings.node)
    runtime = Runtime(settings, telemetry, role="all")
    await asyncio.to_thread(runtime.open_resources)
    assert runtime.store is not None
    store = runtime.store
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop), name="runtime")
    ready = asyncio.create_task(runtime.ready.wait())
    await asyncio.wait([ready, task], timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        stop.set()
        if task.done():
            task.result()
        raise AssertionError("the embedded runtime did not become ready in 120 s")
    port = int(runtime.started.endpoints["hep"].rsplit(":", 1)[1].split()[0])
    api_url = runtime.started.api_url
    assert api_url is not None
    env = Embedded(runtime, settings, telemetry, store, port, api_url, task)
    assert await env.healthz() == 200
    try:
        yield env
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 60)
        finally:
            await asyncio.to_thread(_drop_database, settings.resolved_store())


def _drop_database(config: StoreConfig) -> None:
    """Drop the test's database (the runtime closed its store; the session's engine stays open)."""
    with Store.open(config) as store:
        store.command(f"DROP DATABASE IF EXISTS {quote_identifier(config.database)} SYNC")
