"""The embedded bus: Kafka's topic/partition/key/offset/group semantics inside one process.

What it keeps from Kafka (and what the contract suite in tests/bus checks):

- A topic has N partitions; a message goes to ``schemas.topics.partition_for(key, N)``
  (crc32), so one key stays on one partition and order is kept per partition.
  Each partition is an append-only log whose offsets start at 0 and never move.
- Consumer groups: each group has committed offsets per partition. The live members of
  a group share the partitions of the topics they subscribe to (round robin over the
  sorted partitions); the group is rebalanced at once when a member joins or closes, and
  a member reads only its assigned partitions. A member given a partition starts at the
  group's committed offset, or at the earliest retained offset when the group never
  committed there; so what a closed member read but did not commit is read again.
- ``lag`` is end offset minus committed offset (minus the earliest retained offset when
  the group never committed).

Memory is bounded per partition: a partition holds at most ``max_bytes_per_partition``
bytes (key plus value) of messages that are not yet committed by every group that
subscribed to its topic. Messages committed by all of them are trimmed, and their memory is
released in batches of a few hundred records per partition. A topic that no
group has subscribed to keeps everything until a group subscribes and commits, so a
topic nobody reads fills up. A group that once subscribed keeps pinning retention with
its committed offsets after its members are gone (as Kafka keeps a group's offsets);
:meth:`MemoryBus.delete_group` forgets it.

Backpressure: ``send`` on a full partition waits (first come, first served per
partition) until commits free room; it never drops and never raises for lack of room.
A single message larger than the whole budget is accepted when its partition holds
nothing, so it cannot wait forever. ``bus.stop()`` fails the sends still waiting with
:class:`BusError`. A send cancelled while waiting is not delivered.

Speed: a send that finds room appends without suspending; producers yield to the event
loop every ``_YIELD_EVERY`` messages so one busy producer cannot starve the consumers.
``getmany`` returns slices of the logs; a waiting consumer is woken by an
:class:`asyncio.Event` set on append or rebalance.

Not thread-safe: every call must come from the one event loop that runs the bus.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from callscope.bus.base import Bus, Consumer, Producer, Record, TopicPartition
from callscope.settings import MemoryBusConfig
from callscope.telemetry import Telemetry
from schemas.errors import BusError
from schemas.topics import partition_for

# Trimmed records a log may keep in its list before the list is compacted (compaction also waits
# until they are at least half the list, so its cost stays linear in the records appended). Small,
# because a trimmed record still holds its value: at 4096 the soak (bench/soak.py) saw ~35k dead
# records (~50 MiB of message bytes) scattered over the heap, which kept its pages resident.
_COMPACT_MIN = 256
_YIELD_EVERY = 256  # messages a producer appends without suspending before it yields to the loop


@dataclass(frozen=True, slots=True)
class PartitionStats:
    """What one partition holds (for tests, metrics and debugging)."""

    start_offset: int  # earliest retained offset
    end_offset: int  # offset the next message gets
    retained_bytes: int  # key + value bytes of the retained messages
    held_records: int  # records still in memory, trimmed ones not yet compacted included
    waiting_sends: int  # sends waiting for room


class _Pending:
    __slots__ = ("fut", "key", "size", "timestamp_ms", "value")

    def __init__(self, fut: asyncio.Future[None], key: bytes | None, value: bytes, size: int, ts: int) -> None:
        self.fut = fut
        self.key = key
        self.value = value
        self.size = size
        self.timestamp_ms = ts


class _Partition:
    __slots__ = (
        "cum",
        "head",
        "index",
        "max_bytes",
        "pending",
        "readers",
        "records",
        "retained",
        "start",
        "topic",
        "total",
        "tp",
    )

    def __init__(self, topic: str, index: int, max_bytes: int) -> None:
        self.topic = topic
        self.index = index
        self.tp = TopicPartition(topic, index)
        self.max_bytes = max_bytes
        self.records: list[Record] = []
        self.cum: list[int] = []  # cum[i]: bytes appended before records[i]
        self.start = 0  # offset of records[0]
        self.head = 0  # index in records of the earliest retained record
        self.total = 0  # bytes ever appended
        self.retained = 0  # bytes of records[head:]
        self.pending: deque[_Pending] = deque()
        self.readers: set[asyncio.Event] = set()

    @property
    def end(self) -> int:
        return self.start + len(self.records)

    @property
    def log_start(self) -> int:
        return self.start + self.head

    def append(self, key: bytes | None, value: bytes, size: int, ts: int) -> None:
        records = self.records
        records.append(Record(self.topic, self.index, self.start + len(records), key, value, ts))
        self.cum.append(self.total)
        self.total += size
        self.retained += size
        if self.readers:
            for event in self.readers:
                event.set()
            self.readers.clear()

    def _bytes_before(self, index: int) -> int:
        return self.cum[index] if index < len(self.cum) else self.total

    def trim(self, offset: int) -> None:
        """Forget the records before ``offset``, then let waiting sends in."""
        head = min(offset, self.end) - self.start
        if head > self.head:
            self.retained -= self._bytes_before(head) - self._bytes_before(self.head)
            self.head = head
            if head >= _COMPACT_MIN and head * 2 >= len(self.records):
                del self.records[:head]
                del self.cum[:head]
                self.start += head
                self.head = 0
        self.drain()

    def drain(self) -> None:
        """Append waiting sends in arrival order while they fit."""
        pending = self.pending
        while pending:
            item = pending[0]
            if item.fut.done():  # its sender was cancelled
                pending.popleft()
                continue
            if self.retained and self.retained + item.size > self.max_bytes:
                return
            pending.popleft()
            self.append(item.key, item.value, item.size, item.timestamp_ms)
            item.fut.set_result(None)

    def fail_pending(self, exc: BusError) -> None:
        while self.pending:
            item = self.pending.popleft()
            if not item.fut.done():
                item.fut.set_exception(exc)


class _Topic:
    __slots__ = ("groups", "name", "partitions")

    def __init__(self, name: str, partitions: int, max_bytes: int) -> None:
        self.name = name
        self.partitions = [_Partition(name, i, max_bytes) for i in range(partitions)]
        self.groups: set[str] = set()  # groups that subscribed: they decide what is trimmed


class _Group:
    __slots__ = ("committed", "members", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: list[_MemoryConsumer] = []  # in join order
        self.committed: dict[TopicPartition, int] = {}


class _MemoryProducer(Producer):
    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus
        self._closed = False
        self._unyielded = 0

    def _check(self) -> None:
        if self._closed:
            raise BusError("producer is closed")
        self._bus._check_running()

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self._check()
        parts = self._bus._topic(topic).partitions
        part = parts[partition_for(key, len(parts))]
        size = len(value) + (len(key) if key else 0)
        ts = time.time_ns() // 1_000_000
        if not part.pending and (not part.retained or part.retained + size <= part.max_bytes):
            part.append(key, value, size, ts)
            await self._maybe_yield(1)
        else:
            await self._bus._send_when_room(part, key, value, size, ts)

    async def send_many(self, topic: str, items: Sequence[tuple[bytes | None, bytes]]) -> None:
        self._check()
        parts = self._bus._topic(topic).partitions
        count = len(parts)
        ts = time.time_ns() // 1_000_000
        for key, value in items:
            part = parts[partition_for(key, count)] if count > 1 else parts[0]
            size = len(value) + (len(key) if key else 0)
            if not part.pending and (not part.retained or part.retained + size <= part.max_bytes):
                part.append(key, value, size, ts)
            else:
                await self._bus._send_when_room(part, key, value, size, ts)
                ts = time.time_ns() // 1_000_000
        await self._maybe_yield(len(items))

    async def _maybe_yield(self, appended: int) -> None:
        self._unyielded += appended
        if self._unyielded >= _YIELD_EVERY:
            self._unyielded = 0
            await asyncio.sleep(0)

    async def flush(self) -> None:
        """Nothing to do: ``send`` returns once the message is in the log."""
        self._check()

    async def close(self) -> None:
        self._closed = True


class _MemoryConsumer(Consumer):
    def __init__(self, bus: MemoryBus, group: _Group, topics: tuple[str, ...]) -> None:
        self._bus = bus
        self._group = group
        self.topics = topics
        self._parts: list[_Partition] = []
        self._assignment: frozenset[TopicPartition] = frozenset()
        self._positions: dict[TopicPartition, int] = {}
        self._wake = asyncio.Event()
        self._turn = 0
        self._closed = False

    def _assign(self, parts: list[_Partition]) -> None:
        """Called by the bus on every rebalance of the group."""
        positions: dict[TopicPartition, int] = {}
        for part in parts:
            pos = self._positions.get(part.tp)
            if pos is None:
                pos = self._group.committed.get(part.tp, part.log_start)
            positions[part.tp] = pos
        self._positions = positions
        self._parts = parts
        self._assignment = frozenset(positions)
        self._wake.set()

    def _check(self) -> None:
        if self._closed:
            raise BusError("consumer is closed")

    def _poll(self, max_records: int) -> list[Record]:
        parts = self._parts
        count = len(parts)
        out: list[Record] = []
        if not count:
            return out
        positions = self._positions
        first = self._turn % count  # start at another partition each time: no partition starves
        self._turn = first + 1
        for i in range(count):
            part = parts[(first + i) % count]
            pos = max(positions[part.tp], part.log_start)
            take = min(part.end - pos, max_records - len(out))
            if take <= 0:
                continue
            low = pos - part.start
            out += part.records[low : low + take]
            positions[part.tp] = pos + take
            if len(out) >= max_records:
                break
        return out

    async def getmany(self, timeout_ms: int = 200, max_records: int = 1000) -> list[Record]:
        self._check()
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        records = self._poll(max_records)
        if records or timeout_ms <= 0:
            return records
        deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
        wake = self._wake
        while not records:
            wake.clear()
            parts = self._parts
            for part in parts:
                part.readers.add(wake)
            try:
                async with asyncio.timeout_at(deadline):
                    await wake.wait()
            except TimeoutError:
                self._check()
                return self._poll(max_records)
            finally:
                for part in parts:
                    part.readers.discard(wake)
            self._check()
            records = self._poll(max_records)
        return records

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._check()
        parts: list[tuple[_Partition, int]] = []
        for tp, offset in offsets.items():
            if tp not in self._assignment:
                raise BusError(f"cannot commit {tp.topic}[{tp.partition}]: not assigned to this member (rebalanced)")
            part = self._bus._topics[tp.topic].partitions[tp.partition]
            if not 0 <= offset <= part.end:
                raise ValueError(f"offset {offset} outside 0..{part.end} for {tp.topic}[{tp.partition}]")
            parts.append((part, offset))
        for part, offset in parts:
            self._group.committed[part.tp] = offset
            self._bus._trim(part)

    def assignment(self) -> frozenset[TopicPartition]:
        return self._assignment

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bus._leave(self)
            self._wake.set()


class MemoryBus(Bus):
    """The in-process bus; see the module docstring for its semantics and limits."""

    name = "memory"

    def __init__(self, config: MemoryBusConfig, telemetry: Telemetry) -> None:
        self._config = config
        self._telemetry = telemetry
        self._topics: dict[str, _Topic] = {}
        self._groups: dict[str, _Group] = {}
        self._running = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        self._telemetry.component_up.labels("bus").set(1)

    async def stop(self) -> None:
        """Close every consumer and fail the sends still waiting for room. The logs are kept."""
        if not self._running:
            return
        self._running = False
        self._telemetry.component_up.labels("bus").set(0)
        for group in self._groups.values():
            for member in group.members:
                member._closed = True
                member._wake.set()
            group.members.clear()
        stopped = BusError("memory bus stopped")
        for topic in self._topics.values():
            for part in topic.partitions:
                part.fail_pending(stopped)

    def _check_running(self) -> None:
        if not self._running:
            raise BusError("memory bus is not running")

    async def ping(self) -> bool:
        return self._running

    # -- topics ----------------------------------------------------------------------------

    def _topic(self, name: str, partitions: int | None = None) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            count = partitions if partitions is not None else self._config.partitions
            if count < 1:
                raise ValueError("partitions must be at least 1")
            topic = self._topics[name] = _Topic(name, count, self._config.max_bytes_per_partition)
        return topic

    async def ensure_topics(self, topics: Sequence[str], partitions: int | None = None) -> None:
        """Create the missing topics; sending to or subscribing to a missing topic creates it too."""
        self._check_running()
        for name in topics:
            self._topic(name, partitions)

    async def partitions_for(self, topic: str) -> int:
        self._check_running()
        found = self._topics.get(topic)
        if found is None:
            raise BusError(f"unknown topic {topic!r}")
        return len(found.partitions)

    def partition_stats(self, topic: str, partition: int) -> PartitionStats:
        part = self._topics[topic].partitions[partition]
        return PartitionStats(part.log_start, part.end, part.retained, len(part.records), len(part.pending))

    # -- producing -------------------------------------------------------------------------

    def producer(self) -> Producer:
        self._check_running()
        return _MemoryProducer(self)

    async def _send_when_room(self, part: _Partition, key: bytes | None, value: bytes, size: int, ts: int) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        part.pending.append(_Pending(fut, key, value, size, ts))
        part.drain()  # there may be room already (only cancelled sends were waiting)
        if fut.done():
            return
        gauge = self._telemetry.bus_buffered.labels("memory")
        gauge.inc()
        try:
            await fut
        finally:
            gauge.dec()

    # -- groups ----------------------------------------------------------------------------

    async def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        self._check_running()
        names = tuple(dict.fromkeys(topics))
        if not names:
            raise ValueError("a consumer needs at least one topic")
        for name in names:
            self._topic(name).groups.add(group)
        state = self._groups.get(group)
        if state is None:
            state = self._groups[group] = _Group(group)
        member = _MemoryConsumer(self, state, names)
        state.members.append(member)
        self._rebalance(state)
        return member

    def _leave(self, member: _MemoryConsumer) -> None:
        group = member._group
        if member in group.members:
            group.members.remove(member)
            self._rebalance(group)

    def _rebalance(self, group: _Group) -> None:
        """Deal every subscribed partition round robin over the live members subscribed to its topic."""
        plan: dict[_MemoryConsumer, list[_Partition]] = {m: [] for m in group.members}
        turn = 0
        for name in sorted({t for m in group.members for t in m.topics}):
            subscribers = [m for m in group.members if name in m.topics]
            for part in self._topics[name].partitions:
                plan[subscribers[turn % len(subscribers)]].append(part)
                turn += 1
        for member, parts in plan.items():
            member._assign(parts)

    def _trim(self, part: _Partition) -> None:
        """Trim ``part`` to the lowest offset every subscribed group committed."""
        low: int | None = None
        for name in self._topics[part.topic].groups:
            committed = self._groups[name].committed.get(part.tp)
            if committed is None:
                return  # a group that never committed here still needs everything
            low = committed if low is None else min(low, committed)
        if low is not None:
            part.trim(low)

    async def delete_group(self, group: str) -> None:
        """Forget a group without members and its offsets, so it no longer holds messages back."""
        state = self._groups.get(group)
        if state is None:
            return
        if state.members:
            raise BusError(f"group {group!r} still has {len(state.members)} member(s)")
        del self._groups[group]
        for topic in self._topics.values():
            if group in topic.groups:
                topic.groups.discard(group)
                for part in topic.partitions:
                    self._trim(part)

    async def lag(self, group: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
        state = self._groups.get(group)
        committed = state.committed if state is not None else {}
        out: dict[TopicPartition, int] = {}
        for name in topics:
            topic = self._topics.get(name)
            if topic is None:
                continue
            total = 0
            for part in topic.partitions:
                lag = max(0, part.end - committed.get(part.tp, part.log_start))
                out[part.tp] = lag
                total += lag
            self._telemetry.bus_lag.labels(group, name).set(total)
        return out
