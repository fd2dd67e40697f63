"""The bus contract (callscope/bus/base.py), run against every implementation.

Each test uses its own topics and groups (the Kafka broker is shared by the session)
and waits with deadlines, never fixed sleeps: a Kafka group needs a moment to join and
rebalance, the in-process bus none.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from callscope.bus.base import Bus, Consumer, Record, TopicPartition
from tests.bus.conftest import PARTITIONS

DEADLINE_SECS = 20.0  # how long a test waits for records before it gives up
QUIET_MS = 300  # how long "nothing more arrives" is watched


def _now() -> float:
    return asyncio.get_running_loop().time()


async def read(consumer: Consumer, count: int, within: float = DEADLINE_SECS) -> list[Record]:
    """Read until ``count`` records arrived or ``within`` seconds passed."""
    deadline = _now() + within
    out: list[Record] = []
    while len(out) < count and _now() < deadline:
        out += await consumer.getmany(timeout_ms=200, max_records=count - len(out))
    return out


async def read_group(consumers: Sequence[Consumer], count: int) -> list[list[Record]]:
    """Read with every member of a group at once until the group has ``count`` records."""
    deadline = _now() + DEADLINE_SECS
    got: list[list[Record]] = [[] for _ in consumers]
    while sum(map(len, got)) < count and _now() < deadline:
        batches = await asyncio.gather(*(c.getmany(timeout_ms=200) for c in consumers))
        for index, batch in enumerate(batches):
            got[index] += batch
    return got


async def nothing_more(consumers: Iterable[Consumer]) -> list[Record]:
    """Whatever still arrives within ``QUIET_MS``: a test expects none."""
    batches = await asyncio.gather(*(c.getmany(timeout_ms=QUIET_MS) for c in consumers))
    return [r for batch in batches for r in batch]


def next_offsets(records: Iterable[Record]) -> dict[TopicPartition, int]:
    """What to commit after processing ``records``: last offset + 1 per partition."""
    out: dict[TopicPartition, int] = {}
    for r in records:
        out[r.tp] = max(out.get(r.tp, 0), r.offset + 1)
    return out


def messages(count: int, keys: int = 12) -> list[tuple[bytes | None, bytes]]:
    """``count`` (key, value) pairs spread over ``keys`` keys; values are unique."""
    return [(f"call-{i % keys}".encode(), f"value-{i}".encode()) for i in range(count)]


async def produce(bus: Bus, topic: str, items: Sequence[tuple[bytes | None, bytes]]) -> None:
    producer = bus.producer()
    try:
        for key, value in items:
            await producer.send(topic, value, key)
        await producer.flush()
    finally:
        await producer.close()


async def test_produced_messages_are_consumed_with_same_key_and_value(bus: Bus, topic: str, group: str) -> None:
    await bus.ensure_topics([topic])
    sent = [*messages(20), (None, b"no key"), (b"empty", b""), (b"\x00\xff", bytes(range(256)))]
    await produce(bus, topic, sent)

    consumer = await bus.consumer(group, [topic])
    try:
        got = await read(consumer, len(sent))
        assert Counter((r.key, r.value) for r in got) == Counter(sent)
        assert all(r.topic == topic and r.timestamp_ms > 0 for r in got)
        assert {r.tp for r in got} <= consumer.assignment()
        assert await nothing_more([consumer]) == []
    finally:
        await consumer.close()


async def test_key_keeps_its_partition_and_order_is_kept_per_partition(bus: Bus, topic: str, group: str) -> None:
    await bus.ensure_topics([topic])
    keys = [f"callid-{k}@pbx".encode() for k in range(6)]
    sent = [(keys[i % len(keys)], f"{i}".encode()) for i in range(180)]
    await bus.producer().send_many(topic, sent)

    consumer = await bus.consumer(group, [topic])
    try:
        got = await read(consumer, len(sent))
    finally:
        await consumer.close()
    assert len(got) == len(sent)
    partitions_of_key: dict[bytes | None, set[int]] = defaultdict(set)
    values_of_key: dict[bytes | None, list[int]] = defaultdict(list)
    offsets_of_partition: dict[int, list[int]] = defaultdict(list)
    for r in got:
        partitions_of_key[r.key].add(r.partition)
        values_of_key[r.key].append(int(r.value))
        offsets_of_partition[r.partition].append(r.offset)
    assert all(len(parts) == 1 for parts in partitions_of_key.values()), partitions_of_key
    for key in keys:
        assert values_of_key[key] == [int(v) for k, v in sent if k == key]
    for offsets in offsets_of_partition.values():
        assert offsets == sorted(offsets)
        assert len(set(offsets)) == len(offsets)


async def test_ensure_topics_gives_the_configured_partition_count(bus: Bus, topic: str) -> None:
    other = f"{topic}.five"
    await bus.ensure_topics([topic])
    await bus.ensure_topics([other], partitions=5)
    assert await bus.partitions_for(topic) == PARTITIONS
    assert await bus.partitions_for(other) == 5
    await bus.ensure_topics([topic, other], partitions=2)  # existing topics are left as they are
    assert await bus.partitions_for(topic) == PARTITIONS
    assert await bus.partitions_for(other) == 5


async def test_two_groups_each_see_every_message(bus: Bus, topic: str, group: str) -> None:
    await bus.ensure_topics([topic])
    sent = messages(50)
    await produce(bus, topic, sent)

    first = await bus.consumer(f"{group}-a", [topic])
    second = await bus.consumer(f"{group}-b", [topic])
    try:
        got_first, got_second = await asyncio.gather(read(first, len(sent)), read(second, len(sent)))
        assert sorted(r.value for r in got_first) == sorted(v for _, v in sent)
        assert sorted(r.value for r in got_second) == sorted(v for _, v in sent)
        assert await nothing_more([first, second]) == []
    finally:
        await first.close()
        await second.close()


async def test_two_consumers_in_one_group_split_the_partitions(bus: Bus, topic: str, group: str) -> None:
    await bus.ensure_topics([topic])
    everything = frozenset(TopicPartition(topic, p) for p in range(PARTITIONS))
    first = await bus.consumer(group, [topic])
    second = await bus.consumer(group, [topic])
    try:
        deadline = _now() + DEADLINE_SECS
        while _now() < deadline:  # a Kafka group settles after the second member joined
            a, b = first.assignment(), second.assignment()
            if a and b and not a & b and a | b == everything:
                break
            assert await nothing_more([first, second]) == []
        a, b = first.assignment(), second.assignment()
        assert a, (a, b)
        assert b, (a, b)
        assert not a & b
        assert a | b == everything

        sent = messages(90, keys=30)
        await produce(bus, topic, sent)
        got_first, got_second = await read_group([first, second], len(sent))
        got_first += await nothing_more([first])
        got_second += await nothing_more([second])

        assert got_first
        assert got_second
        assert {r.tp for r in got_first} <= a
        assert {r.tp for r in got_second} <= b
        read_by_group = [(r.partition, r.offset) for r in got_first + got_second]
        assert len(read_by_group) == len(set(read_by_group)) == len(sent)
        assert sorted(r.value for r in got_first + got_second) == sorted(v for _, v in sent)
    finally:
        await first.close()
        await second.close()


async def test_restart_after_commit_resumes_after_the_committed_offset(bus: Bus, topic: str, group: str) -> None:
    await bus.ensure_topics([topic])
    sent = [(b"one-call", f"v{i}".encode()) for i in range(10)]
    await produce(bus, topic, sent)

    consumer = await bus.consumer(group, [topic])
    got = await read(consumer, len(sent))
    assert [r.value for r in got] == [v for _, v in sent]
    await consumer.commit(next_offsets(got[:4]))  # processed the first four only
    await consumer.close()

    later = [(b"one-call", b"v10")]
    await produce(bus, topic, later)
    restarted = await bus.consumer(group, [topic])
    try:
        again = await read(restarted, 7)
        assert [r.value for r in again] == [v for _, v in sent[4:] + later]
        assert again[0].offset == got[3].offset + 1
        assert await nothing_more([restarted]) == []
    finally:
        await restarted.close()


async def test_restart_without_commit_delivers_everything_again(bus: Bus, topic: str, group: str) -> None:
    await bus.ensure_topics([topic])
    sent = messages(30)
    await produce(bus, topic, sent)

    consumer = await bus.consumer(group, [topic])
    first = await read(consumer, len(sent))
    assert len(first) == len(sent)
    await consumer.close()  # leaves without committing

    restarted = await bus.consumer(group, [topic])
    try:
        second = await read(restarted, len(sent))
        assert sorted((r.partition, r.offset, r.value) for r in second) == sorted(
            (r.partition, r.offset, r.value) for r in first
        )
        assert await nothing_more([restarted]) == []
    finally:
        await restarted.close()


async def test_lag_falls_to_zero_after_commit(bus: Bus, topic: str, group: str) -> None:
    await bus.ensure_topics([topic])
    sent = messages(40)
    await produce(bus, topic, sent)

    consumer = await bus.consumer(group, [topic])
    try:
        got = await read(consumer, len(sent))
        assert len(got) == len(sent)
        before = await bus.lag(group, [topic])
        assert sum(before.values()) == len(sent)  # read is not committed

        await consumer.commit(next_offsets(got[: len(got) // 2]))
        halfway = await bus.lag(group, [topic])
        assert sum(halfway.values()) == len(sent) - len(got) // 2

        await consumer.commit(next_offsets(got))
        after = await bus.lag(group, [topic])
        assert set(after) == {TopicPartition(topic, p) for p in range(PARTITIONS)}
        assert all(lag == 0 for lag in after.values()), after
    finally:
        await consumer.close()


async def test_flush_then_consume_gives_everything(bus: Bus, topic: str, group: str) -> None:
    await bus.ensure_topics([topic])
    sent = messages(500, keys=50)
    producer = bus.producer()
    await producer.send_many(topic, sent[:250])
    for key, value in sent[250:]:
        await producer.send(topic, value, key)
    await producer.flush()

    consumer = await bus.consumer(group, [topic])
    try:
        got = await read(consumer, len(sent))
        assert sorted(r.value for r in got) == sorted(v for _, v in sent)
    finally:
        await consumer.close()
        await producer.close()
