"""The CEL collector: follows the cel_custom CSV and publishes one ``cel`` envelope per event.

The shell is the shared file collector (:mod:`collectors.tail.collector`); this module picks
the parser (:mod:`collectors.cel.parse`) with the configured mapping.
"""

from __future__ import annotations

from callscope.bus.base import Producer
from callscope.settings import Settings
from callscope.telemetry import Telemetry
from collectors.cel.config import CelConfig
from collectors.cel.parse import CelParser
from collectors.tail.collector import TailCollector


class CelCollector(TailCollector):
    name = "cel"

    def __init__(self, config: CelConfig, settings: Settings, producer: Producer, telemetry: Telemetry) -> None:
        self.description = f"cel_custom, {len(config.columns)} columns"
        super().__init__(config, CelParser(config.columns, config.timezone), settings, producer, telemetry)
