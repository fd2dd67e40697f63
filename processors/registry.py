"""The processors a process runs: one place the runtime asks, one place a new processor is added."""

from __future__ import annotations

import asyncio
from typing import Protocol

from callscope.bus.base import Bus
from callscope.settings import Settings
from callscope.store.client import Store
from callscope.telemetry import Telemetry


class Processor(Protocol):
    """A processor's I/O shell: consumes the bus, writes the store, commits after the store acknowledged."""

    name: str
    group: str
    ready: asyncio.Event

    async def run(self, stop: asyncio.Event) -> None: ...


def build_processors(settings: Settings, bus: Bus, store: Store, telemetry: Telemetry) -> list[Processor]:
    """Every processor this configuration runs, in start order."""
    from processors.asterisk_calls.app import AsteriskCallsProcessor
    from processors.call_legs.app import CallLegsProcessor
    from processors.call_legs.trunks import trunk_ips
    from processors.events.app import EventsProcessor
    from processors.health.app import HealthProcessor
    from processors.media_quality.app import MediaQualityProcessor
    from processors.queue_sessions.app import QueueSessionsProcessor
    from processors.registrations.app import RegistrationsProcessor

    store_config = settings.resolved_store()
    out: list[Processor] = [
        EventsProcessor(settings.processors, store_config, bus, store, telemetry, node=settings.node),
        CallLegsProcessor(
            settings.processors,
            store_config,
            bus,
            store,
            telemetry,
            node=settings.node,
            legs=settings.processors.call_legs,
            trunks=trunk_ips(settings.collectors.options),
        ),
        RegistrationsProcessor(settings.processors, store_config, bus, store, telemetry, node=settings.node),
        AsteriskCallsProcessor(
            settings.processors,
            store_config,
            bus,
            store,
            telemetry,
            node=settings.node,
            asterisk=settings.processors.asterisk_calls,
        ),
        MediaQualityProcessor(settings.processors, store_config, bus, store, telemetry, node=settings.node),
        HealthProcessor(
            settings.processors,
            store_config,
            bus,
            store,
            telemetry,
            node=settings.node,
            health=settings.processors.health,
            options=settings.collectors.options,
            topology=settings.topology,
        ),
        QueueSessionsProcessor(
            settings.processors,
            store_config,
            bus,
            store,
            telemetry,
            node=settings.node,
            queues=settings.processors.queue_sessions,
        ),
    ]
    return out
