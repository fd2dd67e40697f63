"""One Kafka fetch per process, fanned out to the process's consumer groups.

Five processors of the processor role read the SIP topic, each in its own consumer group. Fetching
per group had every SIP record fetched, decompressed and unpacked five times (5-6 us per record and
group on a 2-core machine, about a fifth of the role's CPU). :class:`SharedFetch` is one group-less
aiokafka consumer that is assigned the union of the partitions the process's members own and hands
each fetched batch to every member reading that partition (:class:`Inbox`). The members
(:mod:`callscope.bus.kafka.member`) stay in their groups for heartbeats, rebalances and commits but
keep their own partitions paused, so they never fetch.

Per partition the reader fetches from the lowest offset any member still needs: a member that
attaches behind (its group's committed offset is older, e.g. after a restart) moves the reader back,
and members already past a record skip it. Each member's undelivered records of a partition are
bounded: while any member holds more than ``shared_fetch_buffer_bytes`` of a partition the reader
pauses that partition, and resumes it once every member is below half of that. The slowest group of
the process sets the pace, as it does on the in-process bus.

Used from one event loop: no locks. Record objects are shared by the members (they are frozen).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTP
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from callscope.bus.base import Record
from callscope.bus.kafka.clients import started
from callscope.bus.kafka.consumer import records_of
from callscope.bus.kafka.limits import COMPONENT
from schemas.errors import BusError

if TYPE_CHECKING:
    from callscope.bus.kafka.bus import KafkaBus

# How long the reader's poll waits for fetched data before it looks at its assignment again.
_POLL_TIMEOUT_MS = 1000


def _value_bytes(records: list[Record]) -> int:
    return sum(len(r.value) for r in records)


def _offset(record: Record) -> int:
    return record.offset


class Feed:
    """One member's records of one partition: fetched, not yet handed out by the member's ``getmany``."""

    __slots__ = ("batches", "bytes", "next_offset", "records")

    def __init__(self, next_offset: int) -> None:
        self.next_offset = next_offset  # the offset this member needs next from the reader
        self.batches: deque[tuple[list[Record], int]] = deque()  # (records, their value bytes), in order
        self.records = 0
        self.bytes = 0

    def offer(self, batch: list[Record], size: int) -> bool:
        """Keep the records of ``batch`` at or after ``next_offset``; False when none are new to this member."""
        if batch[-1].offset < self.next_offset:
            return False
        if batch[0].offset < self.next_offset:  # the reader went back for a member behind this one
            batch = batch[bisect.bisect_left(batch, self.next_offset, key=_offset) :]
            size = _value_bytes(batch)
        self.batches.append((batch, size))
        self.records += len(batch)
        self.bytes += size
        self.next_offset = batch[-1].offset + 1
        return True

    def take(self, limit: int) -> list[Record]:
        """Up to ``limit`` records from the head, in offset order (whole batches when they fit)."""
        out: list[Record] = []
        while self.batches and len(out) < limit:
            batch, size = self.batches.popleft()
            room = limit - len(out)
            if len(batch) > room:
                rest = batch[room:]
                rest_size = _value_bytes(rest)
                self.batches.appendleft((rest, rest_size))
                batch, size = batch[:room], size - rest_size
            out += batch
            self.records -= len(batch)
            self.bytes -= size
        return out


class Inbox:
    """What the shared reader delivered to one member, per partition; the member's ``getmany`` reads it."""

    def __init__(self, shared: SharedFetch) -> None:
        self._shared = shared
        self.feeds: dict[KafkaTP, Feed] = {}
        # Partitions with records waiting, in the order they are served: a partition that still has
        # records after a getmany goes to the back, so a busy partition cannot starve the others.
        self._ready: dict[KafkaTP, Feed] = {}
        self._arrived = asyncio.Event()
        self._error: BaseException | None = None
        self.delivered = 0  # records handed out by get()

    def put(self, tp: KafkaTP, batch: list[Record], size: int) -> Feed | None:
        """A fetched batch of ``tp`` from the reader; the member's feed, or None when it does not read ``tp``."""
        feed = self.feeds.get(tp)
        if feed is not None and feed.offer(batch, size):
            self._ready.setdefault(tp, feed)
            self._arrived.set()
        return feed

    def fail(self, error: BaseException) -> None:
        """The reader's fetch failed: the member's next ``get`` raises it, as its own fetch would have."""
        self._error = error
        self._arrived.set()

    def drop(self, tp: KafkaTP) -> None:
        """Forget ``tp`` and its undelivered records (revoked from the member)."""
        self.feeds.pop(tp, None)
        self._ready.pop(tp, None)

    async def get(self, timeout_ms: int, max_records: int) -> tuple[list[Record], dict[KafkaTP, int]]:
        """Up to ``max_records`` records and the next offset of each partition they came from.

        Waits up to ``timeout_ms`` for the first record."""
        if not self._ready and self._error is None:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_ms / 1000):
                    while not self._ready and self._error is None:
                        await self._arrived.wait()
                        self._arrived.clear()
        if self._error is not None:
            error, self._error = self._error, None
            raise BusError(f"kafka fetch failed: {type(error).__name__}: {error}") from error
        if self._shared.crashed is not None:
            raise BusError(f"kafka shared fetch stopped: {self._shared.crashed!r}") from self._shared.crashed
        records: list[Record] = []
        next_offsets: dict[KafkaTP, int] = {}
        for tp in list(self._ready):
            if len(records) >= max_records:
                break
            feed = self._ready.pop(tp)
            taken = feed.take(max_records - len(records))
            records += taken
            next_offsets[tp] = taken[-1].offset + 1
            if feed.records:
                self._ready[tp] = feed
            self._shared.drained(tp)
        self.delivered += len(records)
        return records, next_offsets


class SharedFetch:
    """The process's group-less reader of the partitions its members own (see the module)."""

    def __init__(self, bus: KafkaBus) -> None:
        self._bus = bus
        self._limit_bytes = bus.config.shared_fetch_buffer_bytes
        self.log = bus.log.bind(client="shared_fetch")
        self._kafka: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._readers: dict[KafkaTP, set[Inbox]] = {}  # who reads each assigned partition
        self._next: dict[KafkaTP, int] = {}  # the offset the reader fetches next, per partition
        self._paused: set[KafkaTP] = set()
        self._assigned = asyncio.Event()  # set while the reader has partitions to fetch
        self.fetched = 0  # records the reader fetched (each member's share is counted in its Inbox)
        self.crashed: BaseException | None = None  # what ended the fetch loop, if not stop()

    async def start(self) -> None:
        async def connect() -> AIOKafkaConsumer:
            kafka = AIOKafkaConsumer(
                **self._bus.client_kwargs(),
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",  # a member's offset no longer on the broker: the oldest there is
                fetch_min_bytes=self._bus.config.fetch_min_bytes,
                fetch_max_wait_ms=self._bus.config.fetch_max_wait_ms,
            )
            return await started(kafka)

        self._kafka = await self._bus.connect_with_retry("shared_fetch", connect)
        self._task = asyncio.create_task(self._run(self._kafka), name="kafka-shared-fetch")
        self._task.add_done_callback(self._ended)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():  # a crashed loop was reported by _ended already
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        kafka, self._kafka = self._kafka, None
        if kafka is not None:
            await kafka.stop()

    def inbox(self) -> Inbox:
        return Inbox(self)

    def paused(self) -> frozenset[KafkaTP]:
        """Partitions the reader holds back because a member's buffer of them is full."""
        return frozenset(self._paused)

    # -- membership -------------------------------------------------------------------------

    def attach(self, inbox: Inbox, offsets: Mapping[KafkaTP, int]) -> None:
        """Deliver the records of each partition in ``offsets`` to ``inbox``, from that offset on."""
        kafka = self._require()
        new = False
        for tp, offset in offsets.items():
            inbox.drop(tp)
            inbox.feeds[tp] = Feed(offset)
            readers = self._readers.setdefault(tp, set())
            new = new or not readers
            readers.add(inbox)
            if tp not in self._next or offset < self._next[tp]:
                self._next[tp] = offset
                if not new:
                    kafka.seek(tp, offset)
        if new:
            self._reassign(kafka)

    def detach(self, inbox: Inbox, tps: list[KafkaTP]) -> None:
        """Stop delivering ``tps`` to ``inbox``; drop what it had not handed out yet."""
        gone = False
        for tp in tps:
            inbox.drop(tp)
            readers = self._readers.get(tp)
            if readers is None or inbox not in readers:
                continue
            readers.discard(inbox)
            if not readers:
                del self._readers[tp], self._next[tp]
                self._paused.discard(tp)
                gone = True
            else:
                self._skip_ahead(tp)
                self.drained(tp)
        if gone:
            self._reassign(self._require())

    def _skip_ahead(self, tp: KafkaTP) -> None:
        """After the slowest reader of ``tp`` left, fetch from what the remaining ones need."""
        needed = min(inbox.feeds[tp].next_offset for inbox in self._readers[tp])
        if needed > self._next[tp]:
            self._next[tp] = needed
            self._require().seek(tp, needed)

    def _reassign(self, kafka: AIOKafkaConsumer) -> None:
        """Assign the partitions someone reads. aiokafka's ``assign`` starts every partition afresh
        (no position, not paused), so positions and pauses are put back."""
        kafka.assign(sorted(self._readers))
        for tp in self._readers:
            kafka.seek(tp, self._next[tp])
        if self._paused:
            kafka.pause(*self._paused)
        if self._readers:
            self._assigned.set()
        else:
            self._assigned.clear()

    # -- fetching ---------------------------------------------------------------------------

    async def _run(self, kafka: AIOKafkaConsumer) -> None:
        while True:
            await self._assigned.wait()
            try:
                fetched = await kafka.getmany(timeout_ms=_POLL_TIMEOUT_MS)
            except KafkaError as exc:
                self._fail(exc)
                await asyncio.sleep(self._bus.config.connect_backoff_initial_secs)
                continue
            # Handed out without awaiting: the batches match the positions the reader has right now.
            for tp, batch in fetched.items():
                if batch and tp in self._readers:
                    self._deliver(kafka, tp, batch)

    def _deliver(self, kafka: AIOKafkaConsumer, tp: KafkaTP, batch: list[ConsumerRecord[bytes, bytes]]) -> None:
        records = records_of(tp.topic, tp.partition, batch)
        self.fetched += len(records)
        if records[0].offset < self._next[tp]:
            self._reset_past_end(kafka, tp, records)
        self._next[tp] = records[-1].offset + 1
        size = _value_bytes(records)
        full = False
        for inbox in self._readers[tp]:
            feed = inbox.put(tp, records, size)
            full = full or (feed is not None and feed.bytes > self._limit_bytes)
        if full and tp not in self._paused:
            self._paused.add(tp)
            kafka.pause(tp)

    def _reset_past_end(self, kafka: AIOKafkaConsumer, tp: KafkaTP, records: list[Record]) -> None:
        """The batch starts below where the reader asked for (seeks set ``_next`` first): the broker
        found the reader's offset out of range and aiokafka reset it to the oldest offset
        (``auto_offset_reset="earliest"``), e.g. the topic was deleted and recreated or truncated.
        Members that need an offset past the partition's end would drop every record from here on
        and wait forever; as their own consumers would on the per-group path, they read from the
        oldest offset, which this batch starts with. Members within range keep their offsets.

        Not caught: a member past the end while another member keeps the reader's position in range
        (the reader's fetch is never out of range). Comparing members with the highwater alone would
        be wrong: a new leader's highwater can lag the offsets groups already committed."""
        end = kafka.highwater(tp)
        if end is None:
            end = records[-1].offset + 1
        for inbox in self._readers[tp]:
            feed = inbox.feeds.get(tp)
            if feed is not None and feed.next_offset > end:
                self.log.warning(
                    "kafka offset out of range, reading from the oldest offset",
                    partition=f"{tp.topic}:{tp.partition}",
                    offset=feed.next_offset,
                    reset_to=records[0].offset,
                )
                feed.next_offset = records[0].offset

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The fetch loop ended without stop(): every member's polls raise, instead of waiting for nothing."""
        error = None if task.cancelled() else task.exception()
        if error is None:
            return
        self.crashed = error
        self.log.error("kafka shared fetch crashed", error=repr(error))
        for inbox in {inbox for readers in self._readers.values() for inbox in readers}:
            inbox.fail(error)

    def drained(self, tp: KafkaTP) -> None:
        """A member took records of ``tp``: resume fetching it once every member's buffer is below half the limit."""
        if tp not in self._paused:
            return
        if all(inbox.feeds[tp].bytes <= self._limit_bytes // 2 for inbox in self._readers[tp]):
            self._paused.discard(tp)
            self._require().resume(tp)

    def _fail(self, error: KafkaError) -> None:
        self._bus.telemetry.errors.labels(component=COMPONENT, error=type(error).__name__).inc()
        self.log.warning("kafka shared fetch failed", error=f"{type(error).__name__}: {error}")
        for inbox in {inbox for readers in self._readers.values() for inbox in readers}:
            inbox.fail(error)

    def _require(self) -> AIOKafkaConsumer:
        if self._kafka is None:
            raise BusError("shared fetch is stopped")
        return self._kafka
