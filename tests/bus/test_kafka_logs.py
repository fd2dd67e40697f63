"""aiokafka's repeated log lines are throttled per kind, and say how many were held back."""

from __future__ import annotations

import logging

import pytest

from callscope.bus.kafka import KafkaBus
from callscope.bus.kafka.logs import RepeatThrottle
from callscope.settings import KafkaConfig
from callscope.telemetry import Telemetry


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_first_passes_repeats_are_held_then_summarised() -> None:
    clock = _Clock()
    throttle = RepeatThrottle(10.0, clock)
    template = "Unable connect to node with id %s: %s"
    assert throttle.filter(_record("aiokafka.conn", template, 1, "refused"))
    passed = [throttle.filter(_record("aiokafka.conn", template, 1, f"refused {i}")) for i in range(500)]
    assert not any(passed)
    # Another template, or the same text from another logger, is another kind.
    assert throttle.filter(_record("aiokafka.conn", "Unable to update metadata from %s", [1]))
    assert throttle.filter(_record("aiokafka.consumer.fetcher", template, 1, "refused"))
    clock.now += 10.0
    again = _record("aiokafka.conn", template, 1, "refused")
    assert throttle.filter(again)
    assert again.getMessage() == "Unable connect to node with id 1: refused [500 more like this in the last 10 s]"
    assert throttle.filter(_record("aiokafka.conn", template, 1, "x")) is False


def test_kafka_bus_puts_the_throttle_on_aiokafka_loggers(caplog: pytest.LogCaptureFixture) -> None:
    KafkaBus(KafkaConfig(), Telemetry())
    logger = logging.getLogger("aiokafka.conn")
    assert any(isinstance(f, RepeatThrottle) for f in logger.filters)
    with caplog.at_level(logging.ERROR, logger="aiokafka.conn"):
        for i in range(50):
            logger.error("throttle probe %s: %s", 1, i)
    assert len([r for r in caplog.records if r.msg.startswith("throttle probe")]) == 1
