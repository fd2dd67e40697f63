"""The groups of a process reading through one shared fetch (``bus.kafka.shared_fetch``), on the real broker.

Each test asserts what every group receives (which records, in which order, from which offset)
and, where it is the point, what the shared reader fetched. Waits poll with deadlines.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

import pytest
from aiokafka import TopicPartition as KafkaTP
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from callscope.bus.base import Record, TopicPartition
from callscope.bus.kafka import KafkaBus, KafkaConsumer
from callscope.bus.kafka.member import SharedFetchConsumer
from callscope.bus.kafka.shared_fetch import SharedFetch
from schemas.errors import BusError
from tests.bus.test_kafka_bus import DEADLINE_SECS, make_bus, produce, unique, wait_for

pytestmark = pytest.mark.kafka

QUIET_MS = 500  # how long "nothing more arrives" is watched


@pytest.fixture
async def shared_bus(kafka_bootstrap: str) -> AsyncIterator[KafkaBus]:
    bus = make_bus(kafka_bootstrap, shared_fetch=True)
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


def reader(bus: KafkaBus) -> SharedFetch:
    assert bus.shared_fetch is not None
    return bus.shared_fetch


def member(consumer: KafkaConsumer) -> SharedFetchConsumer:
    assert isinstance(consumer, SharedFetchConsumer)
    return consumer


async def read(consumers: Sequence[KafkaConsumer], count: int) -> list[list[Record]]:
    """Poll every consumer at once until together they have ``count`` records, then watch for more."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECS
    got: list[list[Record]] = [[] for _ in consumers]
    while sum(map(len, got)) < count and loop.time() < deadline:
        batches = await asyncio.gather(*(c.getmany(timeout_ms=200, max_records=10_000) for c in consumers))
        for index, batch in enumerate(batches):
            got[index] += batch
    extra = await asyncio.gather(*(c.getmany(timeout_ms=QUIET_MS) for c in consumers))
    for index, batch in enumerate(extra):
        got[index] += batch
    return got


def by_partition(records: Sequence[Record]) -> dict[TopicPartition, list[int]]:
    out: dict[TopicPartition, list[int]] = defaultdict(list)
    for r in records:
        out[r.tp].append(r.offset)
    return dict(out)


def offsets_from(start: dict[TopicPartition, int], end: dict[TopicPartition, int]) -> dict[TopicPartition, list[int]]:
    """Every offset from ``start`` (0 when absent) up to ``end``, per partition with any."""
    out = {tp: list(range(start.get(tp, 0), stop)) for tp, stop in end.items()}
    return {tp: offsets for tp, offsets in out.items() if offsets}


def ends(records: Sequence[Record]) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for r in records:
        out[r.tp] = max(out.get(r.tp, 0), r.offset + 1)
    return out


def items(count: int, tag: str, keys: int = 13) -> list[tuple[bytes | None, bytes]]:
    return [(f"call-{i % keys}".encode(), f"{tag}-{i}".encode()) for i in range(count)]


async def test_five_groups_get_every_record_in_order_from_one_fetch(shared_bus: KafkaBus) -> None:
    topic = unique("five")
    await shared_bus.ensure_topics([topic])
    groups = [await shared_bus.consumer(unique(f"g{i}"), [topic]) for i in range(5)]
    sent = items(600, "m")
    await produce(shared_bus.producer(), topic, sent)

    got = await asyncio.gather(*(read([c], len(sent)) for c in groups))
    everything = offsets_from({}, ends(got[0][0]))
    for (records,) in got:
        assert by_partition(records) == everything  # every offset once, in order, per partition
        assert sorted(r.value for r in records) == sorted(v for _, v in sent)
    assert sum(map(len, everything.values())) == len(sent)
    assert reader(shared_bus).fetched == len(sent)  # fetched once for the five groups
    # The same record objects for every group: what a record's decoded envelope rides on
    # (callscope.bus.envelopes), one decode per record for all the processors of the process.
    first = {(r.partition, r.offset): r for r in got[0][0]}
    assert all(first[r.partition, r.offset] is r for (records,) in got[1:] for r in records)
    assert all(c.carries_envelopes for c in groups)
    assert [member(c).inbox.delivered for c in groups] == [len(sent)] * 5


async def test_groups_start_at_their_own_committed_offsets(shared_bus: KafkaBus, kafka_bootstrap: str) -> None:
    topic = unique("offsets")
    await shared_bus.ensure_topics([topic])
    first = items(120, "first")
    await produce(shared_bus.producer(), topic, first)
    committed: dict[str, dict[TopicPartition, int]] = {}
    per_group = make_bus(kafka_bootstrap, shared_fetch=False)  # another process commits for two groups
    await per_group.start()
    try:
        for name, share in (("behind", 4), ("ahead", 2)):
            group = unique(name)
            consumer = await per_group.consumer(group, [topic])
            (records,) = await read([consumer], len(first))
            offsets = {tp: stop // share for tp, stop in ends(records).items()}
            await consumer.commit(offsets)
            await consumer.close()
            committed[group] = offsets
    finally:
        await per_group.stop()
    fresh = unique("fresh")
    committed[fresh] = {}

    consumers = {group: await shared_bus.consumer(group, [topic]) for group in committed}
    more = items(60, "more")
    await produce(shared_bus.producer(), topic, more)
    got = await asyncio.gather(*(read([c], 180) for c in consumers.values()))
    end = ends([r for (records,) in got for r in records])
    assert sum(end.values()) == len(first) + len(more)
    for (group, start), (records,) in zip(committed.items(), got, strict=True):
        assert by_partition(records) == offsets_from(start, end), group


async def test_restarted_group_resumes_from_its_commit_and_the_others_see_nothing_twice(
    shared_bus: KafkaBus,
) -> None:
    topic = unique("restart")
    await shared_bus.ensure_topics([topic], partitions=2)
    steady_group, restarting_group = unique("steady"), unique("restarting")
    steady = await shared_bus.consumer(steady_group, [topic])
    restarting = await shared_bus.consumer(restarting_group, [topic])
    first = items(80, "first")
    await produce(shared_bus.producer(), topic, first)
    got_steady, got_restarting = await read([steady, restarting], 2 * len(first))
    commit = {tp: stop // 4 for tp, stop in ends(got_restarting).items()}
    await restarting.commit(commit)
    await restarting.close()

    later = items(40, "later")
    await produce(shared_bus.producer(), topic, later)
    (more_steady,) = await read([steady], len(later))
    restarted = await shared_bus.consumer(restarting_group, [topic])
    again, none = await read([restarted, steady], len(first) + len(later) - sum(commit.values()))

    end = ends(got_steady + more_steady)
    assert by_partition(got_steady + more_steady) == offsets_from({}, end)
    assert none == []  # the reader went back for the restarted group; the steady one skipped those
    assert by_partition(again) == offsets_from(commit, end)


async def test_member_of_another_process_joins_and_the_group_splits_at_the_commit_point(
    kafka_bootstrap: str,
) -> None:
    topic, group, other_group = unique("split"), unique("g"), unique("other")
    everything = frozenset(TopicPartition(topic, p) for p in range(4))
    one_process = make_bus(kafka_bootstrap, shared_fetch=True)
    second_process = make_bus(kafka_bootstrap, shared_fetch=True)
    await one_process.start()
    await second_process.start()
    try:
        await one_process.ensure_topics([topic])
        one = await one_process.consumer(group, [topic])
        other = await one_process.consumer(other_group, [topic])  # another group of the first process
        first = items(100, "first")
        await produce(one_process.producer(), topic, first)
        got_one, got_other = await read([one, other], 2 * len(first))
        commit = {tp: stop // 2 for tp, stop in ends(got_one).items()}  # half of each partition processed
        await one.commit(commit)

        two = await second_process.consumer(group, [topic])

        async def split() -> bool:
            got_other.extend(await other.getmany(timeout_ms=50))
            a, b = one.assignment(), two.assignment()
            return bool(a) and bool(b) and not a & b and a | b == everything

        await wait_for(split, "both members to own partitions")
        more = items(100, "more")
        await produce(one_process.producer(), topic, more)
        after_one, after_two, after_other = await read([one, two, other], 2 * len(more) + len(first) // 2)

        end = ends(got_other + after_other)
        assert sum(end.values()) == len(first) + len(more)
        # After the rebalance each member reads its partitions from the group's commit, and only those.
        assert by_partition(after_one) == {
            tp: o for tp, o in offsets_from(commit, end).items() if tp in one.assignment()
        }
        assert by_partition(after_two) == {
            tp: o for tp, o in offsets_from(commit, end).items() if tp in two.assignment()
        }
        assert set(member(one).positions) <= one.assignment()
        # The first process's other group read through the same fetch: everything, once, in order.
        assert by_partition(got_other + after_other) == offsets_from({}, end)
    finally:
        await second_process.stop()
        await one_process.stop()


async def test_slow_group_pauses_the_shared_fetch_and_bounds_its_buffer(kafka_bootstrap: str) -> None:
    limit = 20_000
    bus = make_bus(kafka_bootstrap, shared_fetch=True, shared_fetch_buffer_bytes=limit, max_batch_bytes=16_384)
    await bus.start()
    try:
        topic = unique("slow")
        await bus.ensure_topics([topic], partitions=1)
        tp = TopicPartition(topic, 0)
        fast = await bus.consumer(unique("fast"), [topic])
        slow = await bus.consumer(unique("slow"), [topic])
        sent = [(b"k", os.urandom(1000)) for _ in range(3000)]  # 3 MB, incompressible
        await produce(bus.producer(), topic, sent)

        got_fast: list[Record] = []

        async def fast_stalled() -> bool:
            got_fast.extend(await fast.getmany(timeout_ms=100))
            return bool(reader(bus).paused())

        await wait_for(fast_stalled, "the shared fetch to pause for the slow group")
        got_fast += await fast.getmany(timeout_ms=QUIET_MS)
        held = member(slow).inbox.feeds
        assert len(held) == 1
        (feed,) = held.values()
        # Bounded: the limit plus the one fetch (max_partition_fetch_bytes, 1 MiB) that crossed it.
        assert limit < feed.bytes <= limit + 1024 * 1024
        assert len(got_fast) < len(sent)  # the fast group waits for the slow one

        got_slow, more_fast = await read([slow, fast], 2 * len(sent) - len(got_fast))
        for records in (got_fast + more_fast, got_slow):
            assert [r.offset for r in records] == list(range(len(sent)))
            assert [r.value for r in records] == [v for _, v in sent]
        assert not reader(bus).paused()
        assert {r.tp for r in got_slow} == {tp}
    finally:
        await bus.stop()


async def test_groups_with_different_topics_get_only_theirs(shared_bus: KafkaBus) -> None:
    sip, rtcp = unique("sip"), unique("rtcp")
    await shared_bus.ensure_topics([sip, rtcp])
    only_sip = await shared_bus.consumer(unique("a"), [sip])
    both = await shared_bus.consumer(unique("b"), [sip, rtcp])
    only_rtcp = await shared_bus.consumer(unique("c"), [rtcp])
    sip_items, rtcp_items = items(90, "sip"), items(50, "rtcp")
    await produce(shared_bus.producer(), sip, sip_items)
    await produce(shared_bus.producer(), rtcp, rtcp_items)

    got_sip, got_both, got_rtcp = await read([only_sip, both, only_rtcp], 2 * (len(sip_items) + len(rtcp_items)))
    assert sorted(r.value for r in got_sip) == sorted(v for _, v in sip_items)
    assert sorted(r.value for r in got_rtcp) == sorted(v for _, v in rtcp_items)
    assert sorted(r.value for r in got_both) == sorted(v for _, v in sip_items + rtcp_items)
    assert {r.topic for r in got_sip} == {sip}
    assert {r.topic for r in got_rtcp} == {rtcp}
    assert reader(shared_bus).fetched == len(sip_items) + len(rtcp_items)  # the union, fetched once


async def first_error(consumer: KafkaConsumer) -> BusError:
    """Poll until a poll raises (records fetched before the loop broke may come first)."""
    for _ in range(100):
        try:
            await consumer.getmany(timeout_ms=200)
        except BusError as exc:
            return exc
    raise AssertionError("no poll raised within 20 s")


async def test_members_raise_when_the_shared_fetch_dies(shared_bus: KafkaBus, monkeypatch: pytest.MonkeyPatch) -> None:
    topic = unique("dies")
    await shared_bus.ensure_topics([topic])
    consumer = await shared_bus.consumer(unique("g"), [topic])
    kafka = reader(shared_bus)._kafka
    assert kafka is not None

    async def broken(**_: object) -> None:
        raise RuntimeError("bug in the fetch loop")

    monkeypatch.setattr(kafka, "getmany", broken)
    await produce(shared_bus.producer(), topic, items(10, "m"))
    assert "bug in the fetch loop" in str(await first_error(consumer))
    with pytest.raises(BusError, match="bug in the fetch loop"):  # every poll after, not only the first
        await consumer.getmany(timeout_ms=200)


async def recreate(bootstrap: str, topic: str) -> None:
    """Delete ``topic`` and create it again with one partition: the deletion completes in the
    background, so the creation is retried until the broker takes it (within the deadline)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_SECS
        while True:
            response = await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
            code = response.topic_errors[0][1]
            if code == 0:
                return
            if loop.time() > deadline:
                raise AssertionError(f"recreating {topic!r}: still kafka error code {code} after {DEADLINE_SECS:g} s")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def committed_offset(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=[KafkaTP(tp.topic, tp.partition)])
    finally:
        await admin.close()
    meta = offsets.get(KafkaTP(tp.topic, tp.partition))
    return meta.offset if meta is not None and meta.offset >= 0 else None


@pytest.mark.parametrize("shared_fetch", [False, True], ids=["per-group", "shared"])
@pytest.mark.parametrize("commit_again", [False, True], ids=["commit-dropped", "committed-past-end"])
async def test_group_reads_a_recreated_topic_from_the_start(
    kafka_bootstrap: str, shared_fetch: bool, commit_again: bool
) -> None:
    """A group that committed offset 10 of a topic that is deleted and recreated with 3 records
    gets exactly those 3. The broker drops a deleted topic's committed offsets (Kafka 4.0), so
    ``committed-past-end`` has a member of the group in another process, still at 10 from before,
    commit 10 again: then the group's commit is past the log end and the fetch at 10 is out of range
    (``auto_offset_reset="earliest"``: from the oldest offset). Shared and per-group alike."""
    topic, group = unique("recreated"), unique("g")
    tp = TopicPartition(topic, 0)
    bus = make_bus(kafka_bootstrap, shared_fetch=shared_fetch)
    other = make_bus(kafka_bootstrap, shared_fetch=False)
    await bus.start()
    await other.start()
    try:
        await bus.ensure_topics([topic], partitions=1)
        await produce(bus.producer(), topic, items(10, "old"))
        consumer = await bus.consumer(group, [topic])
        (old,) = await read([consumer], 10)
        assert [r.offset for r in old] == list(range(10))
        await consumer.commit({tp: 10})
        await consumer.close()
        assert await committed_offset(kafka_bootstrap, group, tp) == 10

        await recreate(kafka_bootstrap, topic)
        await bus.ensure_topics([topic], partitions=1)  # waits for the new partition's leader
        if commit_again:
            stale = await other.consumer(group, [topic])
            await stale.commit({tp: 10})
            await stale.close()
        assert await committed_offset(kafka_bootstrap, group, tp) == (10 if commit_again else None)
        new = items(3, "new")
        await produce(bus.producer(), topic, new)

        consumer = await bus.consumer(group, [topic])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        got: list[Record] = []
        while len(got) < len(new) and loop.time() < deadline:
            got += await consumer.getmany(timeout_ms=200)
        got += await consumer.getmany(timeout_ms=QUIET_MS)
        assert [(r.offset, r.value) for r in got] == [(i, v) for i, (_, v) in enumerate(new)]
        await consumer.close()
    finally:
        await other.stop()
        await bus.stop()
