"""The queue_log collector: follows Asterisk's queue_log and publishes one ``queue_log`` envelope per line.

The shell is the shared file collector (:mod:`collectors.tail.collector`); this module picks
the parser (:mod:`collectors.queue_log.parse`).
"""

from __future__ import annotations

from callscope.bus.base import Producer
from callscope.settings import Settings
from callscope.telemetry import Telemetry
from collectors.queue_log.config import QueueLogConfig
from collectors.queue_log.parse import QueueLogParser
from collectors.tail.collector import TailCollector


class QueueLogCollector(TailCollector):
    name = "queue_log"
    description = "queue_log"

    def __init__(self, config: QueueLogConfig, settings: Settings, producer: Producer, telemetry: Telemetry) -> None:
        super().__init__(config, QueueLogParser(config.timezone), settings, producer, telemetry)
