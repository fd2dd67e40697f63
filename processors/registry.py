"""The processors a process runs: one place the runtime asks, one place a new processor is added."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from callscope.bus.base import Bus
from callscope.settings import PROCESSOR_NAMES, Settings
from callscope.store.client import Store
from callscope.telemetry import Telemetry


class Processor(Protocol):
    """A processor's I/O shell: consumes the bus, writes the store, commits after the store acknowledged."""

    name: str
    group: str
    ready: asyncio.Event

    async def run(self, stop: asyncio.Event) -> None: ...


def build_processors(settings: Settings, bus: Bus, store: Store, telemetry: Telemetry) -> list[Processor]:
    """The processors this configuration runs (``processors.enabled``), in start order."""
    from processors.asterisk_calls.app import AsteriskCallsProcessor
    from processors.call_legs.app import CallLegsProcessor
    from processors.call_legs.trunks import trunk_ips
    from processors.events.app import EventsProcessor
    from processors.health.app import HealthProcessor
    from processors.media_quality.app import MediaQualityProcessor
    from processors.queue_sessions.app import QueueSessionsProcessor
    from processors.registrations.app import RegistrationsProcessor

    config = settings.processors
    store_config = settings.resolved_store()
    shared = (config, store_config, bus, store, telemetry)
    node = settings.node
    builders: dict[str, Callable[[], Processor]] = {
        "events": lambda: EventsProcessor(*shared, node=node),
        "call_legs": lambda: CallLegsProcessor(
            *shared, node=node, legs=config.call_legs, trunks=trunk_ips(settings.collectors.options)
        ),
        "registrations": lambda: RegistrationsProcessor(*shared, node=node),
        "asterisk_calls": lambda: AsteriskCallsProcessor(*shared, node=node, asterisk=config.asterisk_calls),
        "media_quality": lambda: MediaQualityProcessor(*shared, node=node),
        "health": lambda: HealthProcessor(
            *shared,
            node=node,
            health=config.health,
            options=settings.collectors.options,
            topology=settings.topology,
        ),
        "queue_sessions": lambda: QueueSessionsProcessor(*shared, node=node, queues=config.queue_sessions),
    }
    assert tuple(builders) == PROCESSOR_NAMES, "a processor added here is named in settings.PROCESSOR_NAMES"
    return [builders[name]() for name in PROCESSOR_NAMES if name in config.enabled]
