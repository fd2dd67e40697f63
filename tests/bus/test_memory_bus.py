"""What only the in-process bus promises: bounded memory, backpressure, its own rebalance."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any

import pytest

from callscope.bus.base import Consumer, Record, TopicPartition
from callscope.bus.factory import create_bus
from callscope.bus.memory import _COMPACT_MIN, MemoryBus
from callscope.settings import BusConfig, MemoryBusConfig
from callscope.telemetry import Telemetry
from schemas.errors import BusError
from schemas.topics import partition_for

SMALL = 1024  # the smallest budget the config allows
BLOCKED_SECS = 0.2  # how long a send must stay blocked to count as blocked
Spawn = Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]


@pytest.fixture
async def small_bus() -> AsyncIterator[MemoryBus]:
    """One partition per topic and 1 KiB of room in it."""
    bus = MemoryBus(MemoryBusConfig(partitions=1, max_bytes_per_partition=SMALL), Telemetry())
    await bus.start()
    yield bus
    await bus.stop()


@pytest.fixture
async def spawn() -> AsyncIterator[Spawn]:
    """``asyncio.create_task`` whose leftovers are cancelled and awaited when the test ends, failed or not."""
    tasks: list[asyncio.Task[Any]] = []

    def start(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        tasks.append(task)
        return task

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def topic() -> str:
    return f"test.memory.{uuid.uuid4().hex[:8]}"


def next_offsets(records: Iterable[Record]) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for r in records:
        out[r.tp] = max(out.get(r.tp, 0), r.offset + 1)
    return out


async def consume_and_commit(consumer: Consumer, count: int) -> list[Record]:
    """Read and commit batch by batch until ``count`` records arrived (5 s at most)."""
    got: list[Record] = []
    async with asyncio.timeout(5):
        while len(got) < count:
            batch = await consumer.getmany(timeout_ms=1000)
            got += batch
            await consumer.commit(next_offsets(batch))
    return got


async def assert_blocked(task: asyncio.Task[None]) -> None:
    """``task`` is still waiting after BLOCKED_SECS (and is not cancelled by the check)."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), BLOCKED_SECS)
    assert not task.done()


def buffered(bus_telemetry: Telemetry) -> float | None:
    return bus_telemetry.registry.get_sample_value("callscope_bus_buffered_messages", {"bus": "memory"})


async def test_key_lands_on_its_crc32_partition() -> None:
    bus = MemoryBus(MemoryBusConfig(partitions=7), Telemetry())
    await bus.start()
    keys = [f"{i}@10.0.0.{i % 5}".encode() for i in range(50)]
    await bus.producer().send_many("t", [(k, b"v") for k in keys])
    consumer = await bus.consumer("g", ["t"])
    got = await consumer.getmany(timeout_ms=0, max_records=100)
    assert len(got) == 50
    assert all(r.partition == partition_for(r.key, 7) for r in got)
    assert len({r.partition for r in got}) > 1
    await bus.stop()


async def test_full_partition_blocks_the_producer_until_the_consumer_commits(
    small_bus: MemoryBus, topic: str, spawn: Spawn
) -> None:
    telemetry = small_bus._telemetry
    consumer = await small_bus.consumer("g", [topic])
    values = [bytes([65 + i]) * 300 for i in range(10)]  # three fit in 1 KiB

    async def send_all() -> None:
        producer = small_bus.producer()
        for value in values:
            await producer.send(topic, value)

    task = spawn(send_all())
    await assert_blocked(task)
    stats = small_bus.partition_stats(topic, 0)
    assert (stats.end_offset, stats.retained_bytes, stats.waiting_sends) == (3, 900, 1)
    assert buffered(telemetry) == 1

    got = await consume_and_commit(consumer, len(values))
    await asyncio.wait_for(task, 1)
    assert [r.value for r in got] == values
    assert [r.offset for r in got] == list(range(10))
    assert small_bus.partition_stats(topic, 0).retained_bytes == 0
    assert buffered(telemetry) == 0


async def test_send_many_waits_for_room_and_keeps_order(small_bus: MemoryBus, topic: str, spawn: Spawn) -> None:
    consumer = await small_bus.consumer("g", [topic])
    items: list[tuple[bytes | None, bytes]] = [(b"k", f"{i:03d}".encode() * 50) for i in range(40)]
    task = spawn(small_bus.producer().send_many(topic, items))
    await assert_blocked(task)
    got = await consume_and_commit(consumer, len(items))
    await asyncio.wait_for(task, 1)
    assert [(r.key, r.value) for r in got] == items


async def test_topic_nobody_reads_fills_up_until_a_group_commits(
    small_bus: MemoryBus, topic: str, spawn: Spawn
) -> None:
    producer = small_bus.producer()
    for _ in range(3):
        await asyncio.wait_for(producer.send(topic, b"x" * 300), 1)
    task = spawn(producer.send(topic, b"late" * 75))
    await assert_blocked(task)

    consumer = await small_bus.consumer("late-joiner", [topic])
    await assert_blocked(task)  # subscribing alone frees nothing
    got = await consume_and_commit(consumer, 4)
    await asyncio.wait_for(task, 1)
    assert [r.value for r in got] == [b"x" * 300] * 3 + [b"late" * 75]


async def test_cancelled_waiting_send_is_not_delivered_and_does_not_block_later_sends(
    small_bus: MemoryBus, topic: str
) -> None:
    consumer = await small_bus.consumer("g", [topic])
    producer = small_bus.producer()
    await producer.send(topic, b"a" * 1000)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(producer.send(topic, b"cancelled" * 10), BLOCKED_SECS)
    await asyncio.wait_for(producer.send(topic, b"after"), 1)  # fits: 1005 bytes of 1024
    assert small_bus.partition_stats(topic, 0).waiting_sends == 0
    got = await consumer.getmany(timeout_ms=0)
    await consumer.commit(next_offsets(got))
    assert [r.value for r in got] == [b"a" * 1000, b"after"]
    assert small_bus.partition_stats(topic, 0).retained_bytes == 0


async def test_message_larger_than_the_budget_passes_when_the_partition_is_empty(
    small_bus: MemoryBus, topic: str, spawn: Spawn
) -> None:
    consumer = await small_bus.consumer("g", [topic])
    producer = small_bus.producer()
    big = b"B" * (5 * SMALL)
    await asyncio.wait_for(producer.send(topic, big, b"key"), 1)
    assert small_bus.partition_stats(topic, 0).retained_bytes == len(big) + 3

    task = spawn(producer.send(topic, b"small", b"key"))
    await assert_blocked(task)  # the partition is over budget until the big one is committed
    got = await consume_and_commit(consumer, 2)
    await asyncio.wait_for(task, 1)
    assert [r.value for r in got] == [big, b"small"]


async def test_trimming_after_commit_keeps_memory_bounded(topic: str) -> None:
    budget = 64 * 1024
    bus = MemoryBus(MemoryBusConfig(partitions=2, max_bytes_per_partition=budget), Telemetry())
    await bus.start()
    consumer = await bus.consumer("g", [topic])
    producer = bus.producer()
    total = 30_000
    batch = [(f"k{i}".encode(), b"v" * 100) for i in range(100)]
    for _ in range(total // len(batch)):
        await asyncio.wait_for(producer.send_many(topic, batch), 5)  # would wait forever without trimming
        for p in range(2):
            assert bus.partition_stats(topic, p).retained_bytes <= budget
        records = await consumer.getmany(timeout_ms=0, max_records=10_000)
        assert len(records) == len(batch)
        await consumer.commit(next_offsets(records))

    stats = [bus.partition_stats(topic, p) for p in range(2)]
    assert sum(s.end_offset for s in stats) == total
    for s in stats:
        assert s.retained_bytes == 0
        assert s.start_offset == s.end_offset
        assert s.held_records < 2 * _COMPACT_MIN + len(batch)  # trimmed records are released, not only hidden
    await bus.stop()


async def test_trimming_waits_for_the_slowest_group(small_bus: MemoryBus, topic: str) -> None:
    fast = await small_bus.consumer("fast", [topic])
    slow = await small_bus.consumer("slow", [topic])
    await small_bus.producer().send_many(topic, [(None, b"m" * 100) for _ in range(6)])

    await fast.commit(next_offsets(await fast.getmany(timeout_ms=0)))
    assert small_bus.partition_stats(topic, 0).retained_bytes == 600
    slow_records = await slow.getmany(timeout_ms=0)
    await slow.commit(next_offsets(slow_records[:2]))
    stats = small_bus.partition_stats(topic, 0)
    assert (stats.start_offset, stats.retained_bytes) == (2, 400)
    assert await small_bus.lag("slow", [topic]) == {TopicPartition(topic, 0): 4}
    assert await small_bus.lag("fast", [topic]) == {TopicPartition(topic, 0): 0}


async def test_restart_resumes_at_the_committed_offset_while_another_group_holds_the_log(topic: str) -> None:
    bus = MemoryBus(MemoryBusConfig(partitions=1), Telemetry())
    await bus.start()
    await bus.consumer("holder", [topic])  # never commits: nothing is trimmed
    await bus.producer().send_many(topic, [(None, b"%d" % i) for i in range(10)])
    first = await bus.consumer("g", [topic])
    assert len(await first.getmany(timeout_ms=0)) == 10
    await first.commit({TopicPartition(topic, 0): 4})
    await first.close()

    restarted = await bus.consumer("g", [topic])
    again = await restarted.getmany(timeout_ms=0)
    assert [r.offset for r in again] == list(range(4, 10))
    assert bus.partition_stats(topic, 0).start_offset == 0
    await bus.stop()


async def test_deleting_a_gone_group_releases_what_it_held(small_bus: MemoryBus, topic: str, spawn: Spawn) -> None:
    live = await small_bus.consumer("live", [topic])
    gone = await small_bus.consumer("gone", [topic])
    producer = small_bus.producer()
    await producer.send(topic, b"x" * 1000)
    await live.commit(next_offsets(await live.getmany(timeout_ms=0)))
    task = spawn(producer.send(topic, b"y" * 100))
    await assert_blocked(task)  # "gone" never committed

    with pytest.raises(BusError):
        await small_bus.delete_group("gone")  # it still has a member
    await gone.close()
    await small_bus.delete_group("gone")
    await asyncio.wait_for(task, 1)
    assert [r.value for r in await live.getmany(timeout_ms=0)] == [b"y" * 100]


async def test_members_joining_and_leaving_rebalance_and_redeliver_uncommitted(topic: str) -> None:
    bus = MemoryBus(MemoryBusConfig(partitions=4), Telemetry())
    await bus.start()
    everything = frozenset(TopicPartition(topic, p) for p in range(4))
    keys: dict[int, bytes] = {}
    i = 0
    while len(keys) < 4:  # one key per partition
        keys.setdefault(partition_for(f"k{i}".encode(), 4), f"k{i}".encode())
        i += 1
    await bus.producer().send_many(topic, [(keys[p], f"p{p}".encode()) for p in range(4)])

    first = await bus.consumer("g", [topic])
    assert first.assignment() == everything
    read_alone = await first.getmany(timeout_ms=0)
    assert len(read_alone) == 4
    await first.commit({TopicPartition(topic, 0): 1})  # only partition 0 is processed

    second = await bus.consumer("g", [topic])
    a, b = first.assignment(), second.assignment()
    assert not a & b
    assert a | b == everything
    assert len(a) == len(b) == 2
    assert await first.getmany(timeout_ms=0) == []  # kept partitions keep their position
    moved = await second.getmany(timeout_ms=0)
    expected = {tp for tp in b if tp.partition != 0}
    assert {r.tp for r in moved} == expected  # uncommitted records of moved partitions come again

    with pytest.raises(BusError):
        await first.commit({next(iter(b)): 1})  # not first's partition any more

    await second.close()
    assert first.assignment() == everything
    back = await first.getmany(timeout_ms=0)
    assert {r.tp for r in back} == expected  # second never committed: redelivered to first
    await first.close()
    await bus.stop()


async def test_waiting_getmany_wakes_when_a_message_arrives(topic: str, spawn: Spawn) -> None:
    bus = MemoryBus(MemoryBusConfig(partitions=2), Telemetry())
    await bus.start()
    consumer = await bus.consumer("g", [topic])
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await consumer.getmany(timeout_ms=100) == []
    assert loop.time() - started >= 0.09

    waiting = spawn(consumer.getmany(timeout_ms=10_000))
    await asyncio.sleep(0)
    started = loop.time()
    await bus.producer().send(topic, b"hello", b"key")
    got = await asyncio.wait_for(waiting, 2)
    assert [r.value for r in got] == [b"hello"]
    assert loop.time() - started < 1
    await bus.stop()


async def test_busy_producer_lets_consumers_run(topic: str, spawn: Spawn) -> None:
    bus = MemoryBus(MemoryBusConfig(partitions=1), Telemetry())
    await bus.start()
    consumer = await bus.consumer("g", [topic])
    sent = 0
    seen_at: list[int] = []

    async def consume() -> None:
        await consumer.getmany(timeout_ms=5000)
        seen_at.append(sent)

    task = spawn(consume())
    producer = bus.producer()
    for i in range(5000):
        await producer.send(topic, b"%d" % i)
        sent += 1
    await asyncio.wait_for(task, 1)
    assert len(seen_at) == 1
    assert seen_at[0] < 5000
    await bus.stop()


async def test_commit_checks_offsets(small_bus: MemoryBus, topic: str) -> None:
    consumer = await small_bus.consumer("g", [topic])
    await small_bus.producer().send(topic, b"one")
    with pytest.raises(ValueError, match="outside"):
        await consumer.commit({TopicPartition(topic, 0): 2})
    with pytest.raises(BusError):
        await consumer.commit({TopicPartition("elsewhere", 0): 0})
    await consumer.commit({TopicPartition(topic, 0): 1})
    assert await small_bus.lag("g", [topic]) == {TopicPartition(topic, 0): 0}


async def test_stop_fails_waiting_sends_and_closes_consumers(topic: str, spawn: Spawn) -> None:
    bus = MemoryBus(MemoryBusConfig(partitions=1, max_bytes_per_partition=SMALL), Telemetry())
    await bus.start()
    assert await bus.ping()
    consumer = await bus.consumer("g", [topic])
    producer = bus.producer()
    await producer.send(topic, b"x" * SMALL)
    blocked = spawn(producer.send(topic, b"y"))
    assert len(await consumer.getmany(timeout_ms=0)) == 1  # read, not committed: no room
    waiting = spawn(consumer.getmany(timeout_ms=10_000))
    await assert_blocked(blocked)

    await bus.stop()
    assert not await bus.ping()
    with pytest.raises(BusError):
        await blocked
    with pytest.raises(BusError):
        await waiting
    with pytest.raises(BusError):
        await producer.send(topic, b"z")
    with pytest.raises(BusError):
        bus.producer()


async def test_lag_of_a_group_that_never_committed_counts_everything_retained(topic: str) -> None:
    telemetry = Telemetry()
    bus = MemoryBus(MemoryBusConfig(partitions=2), telemetry)
    await bus.start()
    await bus.producer().send_many(topic, [(f"{i}".encode(), b"v") for i in range(10)])
    lag = await bus.lag("nobody", [topic, "no.such.topic"])
    assert set(lag) == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
    assert sum(lag.values()) == 10
    assert telemetry.registry.get_sample_value("callscope_bus_lag_messages", {"group": "nobody", "topic": topic}) == 10
    with pytest.raises(BusError):
        await bus.partitions_for("no.such.topic")
    await bus.stop()


async def test_factory_builds_the_memory_bus_by_default() -> None:
    bus = create_bus(BusConfig(memory=MemoryBusConfig(partitions=5)), Telemetry())
    assert isinstance(bus, MemoryBus)
    await bus.start()
    await bus.ensure_topics(["t"])
    assert await bus.partitions_for("t") == 5
    await bus.stop()
