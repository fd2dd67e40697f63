"""Kafka-specific behaviour of :class:`callscope.bus.kafka.KafkaBus` and its faults.

Runs against the session's real broker (tests/kafka/broker.py). Every test uses its own
topics and groups; waits poll a condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import pytest
import structlog
from aiokafka.partitioner import murmur2

from callscope.bus.base import Record, TopicPartition
from callscope.bus.kafka import KafkaBus, KafkaConsumer, KafkaProducer
from callscope.settings import KafkaConfig
from callscope.telemetry import Telemetry, configure_logging
from schemas.errors import BusError
from tests.kafka.broker import KafkaBroker, free_port

pytestmark = pytest.mark.kafka

DEADLINE_SECS = 30.0


def unique(kind: str) -> str:
    return f"test.kafka.{kind}.{uuid.uuid4().hex[:10]}"


def make_bus(bootstrap: str, telemetry: Telemetry | None = None, **overrides: Any) -> KafkaBus:
    settings: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "partitions": 4,
        "linger_ms": 1,
        "connect_timeout_secs": 30,
    }
    settings.update(overrides)
    return KafkaBus(KafkaConfig(**settings), telemetry or Telemetry())


@pytest.fixture
async def kafka_bus(kafka_bootstrap: str) -> AsyncIterator[KafkaBus]:
    bus = make_bus(kafka_bootstrap)
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str, within: float = DEADLINE_SECS) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def read(consumer: KafkaConsumer, count: int, within: float = DEADLINE_SECS) -> list[Record]:
    """Read until ``count`` records arrived (or the deadline), then check nothing more comes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    out: list[Record] = []
    while len(out) < count and loop.time() < deadline:
        out += await consumer.getmany(timeout_ms=200, max_records=10_000)
    out += await consumer.getmany(timeout_ms=300)
    return out


async def produce(producer: KafkaProducer, topic: str, items: Sequence[tuple[bytes | None, bytes]]) -> None:
    await producer.send_many(topic, items)
    await producer.flush()


# -- configuration and topics -------------------------------------------------------------------


async def test_producer_is_idempotent_with_acks_all(kafka_bus: KafkaBus) -> None:
    topic = unique("idem")
    await kafka_bus.ensure_topics([topic])
    producer = kafka_bus.producer()
    await produce(producer, topic, [(b"k", b"v")])

    kafka = producer.aiokafka_producer
    assert kafka is not None
    assert kafka._sender._acks == -1  # acks=all
    assert kafka._txn_manager is not None  # idempotence on ...
    assert kafka._txn_manager.has_pid()
    assert kafka._txn_manager.producer_id >= 0


async def test_oversized_message_refused_whole_and_empty_send_is_noop(kafka_bus: KafkaBus) -> None:
    producer = kafka_bus.producer()
    with pytest.raises(BusError, match="exceeds"):
        await producer.send_many(unique("big"), [(b"k", b"small"), (b"k", b"x" * 1_100_000)])
    assert producer.buffered == 0  # nothing of the refused call was accepted
    await producer.send_many(unique("none"), [])
    await asyncio.wait_for(producer.flush(), timeout=1.0)
    await producer.close()
    with pytest.raises(BusError, match="closed"):
        await producer.send(unique("late"), b"v")


async def test_topics_created_with_configured_partitions(kafka_bus: KafkaBus) -> None:
    default_a, default_b, two = unique("a"), unique("b"), unique("two")
    await kafka_bus.ensure_topics([default_a, default_b])
    await kafka_bus.ensure_topics([two], partitions=2)
    await kafka_bus.ensure_topics([default_a, two])  # already there: no error, no change

    assert await kafka_bus.partitions_for(default_a) == 4
    assert await kafka_bus.partitions_for(default_b) == 4
    assert await kafka_bus.partitions_for(two) == 2
    with pytest.raises(BusError, match="does not exist"):
        await kafka_bus.partitions_for(unique("missing"))
    assert await kafka_bus.ping()


async def test_same_key_same_partition_in_order(kafka_bus: KafkaBus) -> None:
    topic, group = unique("keys"), unique("g")
    await kafka_bus.ensure_topics([topic])
    keys = [f"call-{i}@10.0.0.{i}".encode() for i in range(20)]
    items: list[tuple[bytes | None, bytes]] = [(keys[i % 20], f"{i % 20}:{i // 20}".encode()) for i in range(400)]
    await produce(kafka_bus.producer(), topic, items)

    consumer = await kafka_bus.consumer(group, [topic])
    records = await read(consumer, len(items))
    assert len(records) == len(items)
    partitions: dict[bytes, set[int]] = defaultdict(set)
    sequence: dict[bytes, list[int]] = defaultdict(list)
    for r in records:
        assert r.key is not None
        partitions[r.key].add(r.partition)
        sequence[r.key].append(int(r.value.split(b":")[1]))
    for key in keys:
        # one partition per key, the one Kafka's own clients pick (murmur2), order kept
        assert partitions[key] == {(murmur2(key) & 0x7FFFFFFF) % 4}
        assert sequence[key] == list(range(20))
    assert len({p for ps in partitions.values() for p in ps}) > 1  # keys do spread


# -- consumer groups ------------------------------------------------------------------------------


async def test_manual_commit_and_redelivery_after_restart(kafka_bus: KafkaBus) -> None:
    topic, group = unique("commit"), unique("g")
    await kafka_bus.ensure_topics([topic])
    items: list[tuple[bytes | None, bytes]] = [(f"k{i % 7}".encode(), f"m{i}".encode()) for i in range(120)]
    await produce(kafka_bus.producer(), topic, items)

    first = await kafka_bus.consumer(group, [topic])
    records = await read(first, len(items))
    assert sorted(r.value for r in records) == sorted(v for _, v in items)
    # Process (commit) only the first half of each partition.
    by_partition: dict[TopicPartition, list[Record]] = defaultdict(list)
    for r in records:
        by_partition[r.tp].append(r)
    committed = {tp: rs[len(rs) // 2 - 1].offset + 1 for tp, rs in by_partition.items()}
    await first.commit(committed)
    uncommitted = {r.value for tp, rs in by_partition.items() for r in rs if r.offset >= committed[tp]}
    assert 0 < len(uncommitted) < len(items)
    assert sum((await kafka_bus.lag(group, [topic])).values()) == len(uncommitted)
    await first.close()  # leaves the group without committing the rest

    second = await kafka_bus.consumer(group, [topic])
    again = await read(second, len(uncommitted))
    assert sorted(r.value for r in again) == sorted(uncommitted)  # exactly the uncommitted ones, once
    await second.commit({tp: rs[-1].offset + 1 for tp, rs in by_partition.items()})
    assert sum((await kafka_bus.lag(group, [topic])).values()) == 0


async def test_rebalance_between_two_consumers(kafka_bus: KafkaBus) -> None:
    topic, group = unique("rebalance"), unique("g")
    await kafka_bus.ensure_topics([topic])
    everything = frozenset(TopicPartition(topic, p) for p in range(4))
    items: list[tuple[bytes | None, bytes]] = [(f"k{i}".encode(), f"first-{i}".encode()) for i in range(100)]
    await produce(kafka_bus.producer(), topic, items)

    one = await kafka_bus.consumer(group, [topic])
    assert one.assignment() == everything
    first = await read(one, len(items))
    await one.commit({r.tp: r.offset + 1 for r in first})
    assert set(one.positions) == everything  # local state for all four partitions

    two = await kafka_bus.consumer(group, [topic])

    async def split() -> bool:
        await one.getmany(timeout_ms=50)
        a, b = one.assignment(), two.assignment()
        return bool(a) and bool(b) and not a & b and a | b == everything

    await wait_for(split, "both members to own partitions")
    assert set(one.positions) <= one.assignment()  # state of revoked partitions dropped

    more: list[tuple[bytes | None, bytes]] = [(f"k{i}".encode(), f"second-{i}".encode()) for i in range(100)]
    await produce(kafka_bus.producer(), topic, more)
    got_one: list[Record] = []
    got_two: list[Record] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECS
    while len(got_one) + len(got_two) < len(more) and loop.time() < deadline:
        a, b = await asyncio.gather(one.getmany(timeout_ms=200), two.getmany(timeout_ms=200))
        got_one += a
        got_two += b
    assert got_one
    assert got_two
    assert {r.tp for r in got_one} <= one.assignment()
    assert {r.tp for r in got_two} <= two.assignment()
    assert sorted(r.value for r in got_one + got_two) == sorted(v for _, v in more)


# -- faults ---------------------------------------------------------------------------------------


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The process's structlog output as rendered JSON lines, restored afterwards."""
    saved = structlog.get_config()
    stream = io.StringIO()
    configure_logging(level="info", fmt="json", stream=stream)
    try:
        yield stream
    finally:
        structlog.configure(**saved)


async def test_unreachable_at_start_retries_with_growing_delay_then_gives_up(json_log: io.StringIO) -> None:
    port = free_port()  # nothing listens there
    bus = make_bus(
        f"127.0.0.1:{port}",
        connect_backoff_initial_secs=0.05,
        connect_backoff_max_secs=0.4,
        connect_timeout_secs=2.0,
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BusError, match="unreachable"):
        await bus.start()
    assert loop.time() - started < 5.0
    assert not await bus.ping()

    output = json_log.getvalue()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    retries = [line for line in lines if line["event"] == "kafka unreachable, retrying"]
    delays = [line["next_delay_secs"] for line in retries]
    assert len(retries) >= 4, output
    assert all(line["level"] == "warning" and line["bootstrap"] == f"127.0.0.1:{port}" for line in retries)
    assert [line["attempt"] for line in retries] == list(range(1, len(retries) + 1))
    assert delays[:4] == [0.05, 0.1, 0.2, 0.4]  # doubling ...
    assert max(delays) == 0.4  # ... capped
    assert "Traceback" not in output
    assert not any("exception" in line or "exc_info" in line for line in lines)


def buffered(telemetry: Telemetry) -> float | None:
    return telemetry.registry.get_sample_value("callscope_bus_buffered_messages", {"bus": "kafka"})


def dropped(telemetry: Telemetry) -> float:
    return telemetry.registry.get_sample_value("callscope_events_dropped_total", {"component": "bus.kafka"}) or 0.0


async def test_broker_down_mid_run_buffers_blocks_and_delivers_everything(kafka_broker: KafkaBroker) -> None:
    telemetry = Telemetry()
    bus = make_bus(
        kafka_broker.bootstrap,
        telemetry,
        partitions=2,
        buffer_max_messages=40,
        request_timeout_ms=3000,
        connect_backoff_initial_secs=0.1,
        connect_backoff_max_secs=1.0,
    )
    await bus.start()
    topic, group = unique("outage"), unique("g")
    try:
        await bus.ensure_topics([topic])
        producer = bus.producer()
        before = [(f"call-{i % 5}".encode(), f"before-{i}".encode()) for i in range(30)]
        await produce(producer, topic, before)

        await asyncio.to_thread(kafka_broker.stop)
        assert not await bus.ping()
        during = [(f"call-{i % 5}".encode(), f"during-{i}".encode()) for i in range(40)]
        for key, value in during:  # accepted into the buffer although Kafka is away
            await asyncio.wait_for(producer.send(topic, value, key), timeout=1.0)
        with pytest.raises(TimeoutError):  # buffer full: the 41st send waits (backpressure)
            await asyncio.wait_for(producer.send(topic, b"refused", b"call-0"), timeout=0.5)
        assert buffered(telemetry) == 40

        await asyncio.to_thread(kafka_broker.restart)
        await asyncio.wait_for(producer.flush(), timeout=60)
        assert buffered(telemetry) == 0
        assert await bus.ping()

        consumer = await bus.consumer(group, [topic])
        records = await read(consumer, len(before) + len(during))
        values = [r.value for r in records]
        # Exactly once each: nothing was in flight when the broker stopped, and a batch
        # that failed while it was away was never written, so its retry duplicates nothing.
        assert sorted(values) == sorted(v for _, v in before + during)
        assert dropped(telemetry) == 0
    finally:
        await bus.stop()
