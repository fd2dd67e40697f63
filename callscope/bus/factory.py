"""Choose the bus from the configuration: the one place the code branches on the mode."""

from __future__ import annotations

from callscope.bus.base import Bus
from callscope.bus.memory import MemoryBus
from callscope.settings import BusConfig
from callscope.telemetry import Telemetry
from schemas.errors import ConfigError


def create_bus(config: BusConfig, telemetry: Telemetry) -> Bus:
    """The bus ``config.kind`` names, not started. Kafka's client is imported only when chosen."""
    if config.kind == "memory":
        return MemoryBus(config.memory, telemetry)
    if config.kind == "kafka":
        from callscope.bus.kafka import KafkaBus

        return KafkaBus(config.kafka, telemetry)
    raise ConfigError([("bus.kind", f"unknown bus kind {config.kind!r}")])
