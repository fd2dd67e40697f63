"""The collectors a process runs: one place the runtime asks, one place a new collector is added."""

from __future__ import annotations

import asyncio
from typing import Protocol

from callscope.bus.base import Producer
from callscope.settings import Settings
from callscope.telemetry import Telemetry


class Collector(Protocol):
    """A collector's I/O shell (STYLE.md): reads its source, calls its pure core, publishes, counts."""

    name: str
    ready: asyncio.Event

    async def run(self, stop: asyncio.Event) -> None:
        """Collect until ``stop`` is set; flush what was read to the bus before returning."""
        ...

    def healthcheck(self) -> bool: ...

    def describe(self) -> str:
        """One line for the start-up banner, e.g. where it listens (valid once ``ready`` is set)."""
        ...


def build_collectors(settings: Settings, producer: Producer, telemetry: Telemetry) -> list[Collector]:
    """Every collector this configuration enables."""
    out: list[Collector] = []
    hep = settings.collectors.hep
    if hep.enabled and (hep.udp or hep.tcp):
        from collectors.hep.collector import HepCollector

        out.append(HepCollector(hep, settings, producer, telemetry))
    options = settings.collectors.options
    if options.enabled and options.targets:
        from collectors.options.collector import OptionsCollector

        out.append(OptionsCollector(options, settings, producer, telemetry))
    ami = settings.collectors.ami
    if ami.enabled and ami.connections:
        from collectors.ami.collector import AmiCollector

        out.append(AmiCollector(ami, settings, producer, telemetry))
    if settings.collectors.cdr.enabled:
        from collectors.cdr.collector import CdrCollector

        out.append(CdrCollector(settings.collectors.cdr, settings, producer, telemetry))
    if settings.collectors.cel.enabled:
        from collectors.cel.collector import CelCollector

        out.append(CelCollector(settings.collectors.cel, settings, producer, telemetry))
    if settings.collectors.queue_log.enabled:
        from collectors.queue_log.collector import QueueLogCollector

        out.append(QueueLogCollector(settings.collectors.queue_log, settings, producer, telemetry))
    return out
