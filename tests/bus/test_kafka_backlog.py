"""The Kafka producer's backlog shows while Kafka is away: the gauge, one warning when senders wait, counted loss.

No broker: the bootstrap address is a port nothing listens on, so the delivery task keeps
retrying its connection and every accepted message stays in the buffer.
"""

from __future__ import annotations

import asyncio
import io
import json
import tracemalloc
from collections.abc import Iterator

import orjson
import pytest
import structlog

from callscope.bus.kafka import KafkaBus
from callscope.settings import KafkaConfig
from callscope.telemetry import Telemetry, configure_logging
from tests.kafka.broker import free_port

TOPIC = "callscope.sip"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    saved = structlog.get_config()
    stream = io.StringIO()
    configure_logging(level="info", fmt="json", stream=stream)
    try:
        yield stream
    finally:
        structlog.configure(**saved)


def _gauge(telemetry: Telemetry) -> float | None:
    return telemetry.registry.get_sample_value("callscope_bus_buffered_messages", {"bus": "kafka"})


async def test_backlog_gauge_warning_and_counted_loss_while_kafka_is_away(json_log: io.StringIO) -> None:
    telemetry = Telemetry()
    config = KafkaConfig(
        bootstrap_servers=f"127.0.0.1:{free_port()}",
        buffer_max_messages=10,
        connect_backoff_initial_secs=0.05,
        connect_backoff_max_secs=0.2,
    )
    bus = KafkaBus(config, telemetry)
    producer = bus.producer()
    await producer.send_many(TOPIC, [(b"k", b"v%d" % i) for i in range(6)])
    # The delivery task never gets a connection, yet the gauge shows what is held.
    assert _gauge(telemetry) == 6

    waiting = asyncio.create_task(producer.send_many(TOPIC, [(b"k", b"w%d" % i) for i in range(10)]))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while "kafka producer buffer full" not in json_log.getvalue():
        assert loop.time() < deadline, json_log.getvalue()[-2000:]
        await asyncio.sleep(0.02)
    assert not waiting.done()  # backpressure: the sender waits for room
    assert _gauge(telemetry) == 10
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    with pytest.raises(TimeoutError):  # close waits for Kafka; cancelled, it counts what it held
        await asyncio.wait_for(producer.close(), timeout=0.5)
    dropped = telemetry.registry.get_sample_value(
        "callscope_events_dropped_total", {"component": "bus.kafka", "reason": "closed"}
    )
    assert dropped == 10
    lines = [json.loads(line) for line in json_log.getvalue().splitlines() if line.startswith("{")]
    full = [line for line in lines if line["event"] == "kafka producer buffer full, senders wait"]
    assert len(full) == 1  # one line per episode, not one per waiting message
    assert full[0]["level"] == "warning"
    assert full[0]["buffer_max_messages"] == 10
    assert any(line["event"] == "kafka producer closed with undelivered messages" for line in lines)


async def test_buffered_messages_cost_their_length_not_the_encoders_buffer() -> None:
    """orjson's output keeps its buffer's capacity (8 KiB for a 1.3 KiB document); the buffer holds exact copies.

    Traced by tracemalloc, which sees the capacity the encoder allocated: a backlog of
    ``buffer_max_messages`` envelopes would otherwise pin six times what it holds.
    """
    telemetry = Telemetry()
    config = KafkaConfig(bootstrap_servers=f"127.0.0.1:{free_port()}", connect_backoff_initial_secs=5)
    producer = KafkaBus(config, telemetry).producer()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        values = [orjson.dumps({"i": i, "raw": "x" * 1300}) for i in range(2000)]
        length = sum(map(len, values))
        encoded = tracemalloc.get_traced_memory()[0] - before
        await producer.send_many(TOPIC, [(b"k", v) for v in values[:1000]])
        for value in values[1000:]:
            await producer.send(TOPIC, value, b"k")  # the fast path
        del values, value
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert producer.buffered == 2000
    assert encoded > 3 * length  # what orjson hands out (seen: 16 KiB each under tracemalloc)
    assert held < 1.5 * length, (held, length)  # the copies and their messages (seen: ~1.2x)
    with pytest.raises(TimeoutError):  # nothing to deliver to: closing waits, cancelled it counts the loss
        await asyncio.wait_for(producer.close(), timeout=0.2)
