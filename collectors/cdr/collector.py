"""The CDR collector: follows Master.csv (cdr_csv or cdr_custom) and publishes one ``cdr`` envelope per record.

The shell is the shared file collector (:mod:`collectors.tail.collector`: tailing,
checkpoints, delivery); this module picks the parser (:mod:`collectors.cdr.parse`).
"""

from __future__ import annotations

from callscope.bus.base import Producer
from callscope.settings import Settings
from callscope.telemetry import Telemetry
from collectors.cdr.config import CdrConfig
from collectors.cdr.parse import CdrParser
from collectors.tail.collector import TailCollector


class CdrCollector(TailCollector):
    name = "cdr"

    def __init__(self, config: CdrConfig, settings: Settings, producer: Producer, telemetry: Telemetry) -> None:
        self.description = f"cdr_custom, {len(config.columns)} columns" if config.columns else "cdr_csv"
        super().__init__(config, CdrParser(config.columns, config.timezone), settings, producer, telemetry)
