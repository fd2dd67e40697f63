"""The Kafka producer: a bounded buffer delivered in batches by a background task (see the package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from callscope.bus.base import Producer
from schemas.errors import BusError

if TYPE_CHECKING:
    from callscope.bus.kafka.bus import KafkaBus

from callscope.bus.kafka.clients import started
from callscope.bus.kafka.limits import COMPONENT, MAX_MESSAGE_BYTES, PARTITION_CACHE_MAX_KEYS, ROUND_MAX_MESSAGES
from callscope.bus.kafka.partition import partition_for


def _compact(value: bytes) -> bytes:
    """An exact-size copy of ``value``, for a message that may wait in the buffer.

    orjson (which encodes every envelope) returns bytes that keep the capacity of its
    output buffer: 4 KiB at the least, 8 KiB for a ~1.4 KiB SIP envelope, against the
    ~1.4 KiB they hold. A backlog of 100,000 such messages (``buffer_max_messages``) pinned
    ~800 MiB; the copy (~0.2 us) makes a buffered message cost its length. The caller's
    object is freed as soon as the caller lets it go.
    """
    return memoryview(value).tobytes()


@dataclass(slots=True)
class _Message:
    seq: int
    topic: str
    key: bytes | None
    value: bytes
    timestamp_ms: int


class KafkaProducer(Producer):
    """Buffered, retrying producer; see the module docstring for its delivery guarantee."""

    def __init__(self, bus: KafkaBus) -> None:
        self._bus = bus
        self._config = bus.config
        self._log = bus.log.bind(client="producer")
        self._queue: deque[_Message] = deque()  # accepted, not yet handed to aiokafka
        self._buffered = 0  # accepted and not yet acknowledged by Kafka (queued + in flight)
        self._seq = itertools.count()
        self._space = asyncio.Event()
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._task: asyncio.Task[None] | None = None
        self._kafka: AIOKafkaProducer | None = None
        self._closed = False
        self._partitioner = DefaultPartitioner()
        self._partition_cache: dict[tuple[str, bytes | None], int] = {}  # a call's messages share its key
        self._partition_counts: dict[str, int] = {}  # this round's view of the metadata
        self._cached_counts: dict[str, int] = {}  # the counts _partition_cache was filled with
        self._inflight: dict[asyncio.Future[Any], list[_Message]] = {}
        self._failed: list[_Message] = []
        self._failed_error: BaseException | None = None
        self._fatal: BaseException | None = None  # a bug in the delivery task; never a Kafka outage
        self._full_since = 0.0  # monotonic time send_many first waited for room in this episode; 0: not full

    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def aiokafka_producer(self) -> AIOKafkaProducer | None:
        """The current aiokafka producer (rebuilt after a delivery failure), for inspection."""
        return self._kafka

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        size = len(value) + (len(key) if key is not None else 0)
        if (
            self._closed
            or self._fatal
            or self._buffered >= self._config.buffer_max_messages
            or size > MAX_MESSAGE_BYTES
        ):
            await self.send_many(topic, ((key, value),))  # the slow path waits or raises
            return
        # Fast path (the hot one): room in the buffer, nothing to check further.
        self._queue.append(_Message(next(self._seq), topic, key, _compact(value), int(time.time() * 1000)))
        self._buffered += 1
        if self._empty.is_set():
            self._empty.clear()
        if not self._wake.is_set():
            self._wake.set()
        if self._task is None:
            self._ensure_task()

    async def send_many(self, topic: str, items: Sequence[tuple[bytes | None, bytes]]) -> None:
        self._check_usable()
        for key, value in items:  # refuse the call whole, before accepting any of it
            size = len(value) + (len(key) if key else 0)
            if size > MAX_MESSAGE_BYTES:
                raise BusError(f"message of {size} bytes for {topic} exceeds {MAX_MESSAGE_BYTES} bytes")
        limit = self._config.buffer_max_messages
        now_ms = int(time.time() * 1000)
        for key, value in items:
            while self._buffered >= limit:  # backpressure: wait for acknowledgements
                self._space.clear()
                self._wake.set()
                self._ensure_task()
                self._bus.update_buffered_gauge()
                if not self._full_since:
                    self._full_since = time.monotonic()
                    self._log.warning(
                        "kafka producer buffer full, senders wait", buffered=self._buffered, buffer_max_messages=limit
                    )
                await self._space.wait()
                self._check_usable()
            self._queue.append(_Message(next(self._seq), topic, key, _compact(value), now_ms))
            self._buffered += 1
            self._empty.clear()
        if self._full_since:
            self._log.info(
                "kafka producer buffer has room again", waited_secs=round(time.monotonic() - self._full_since, 3)
            )
            self._full_since = 0.0
        # One gauge update per call: while Kafka is away the delivery task sits in aiokafka's
        # send_batch and would not refresh it, so the backlog would not show where it builds up.
        self._bus.update_buffered_gauge()
        self._wake.set()
        self._ensure_task()

    async def flush(self) -> None:
        self._ensure_task()
        await self._empty.wait()
        self._check_usable(closed_ok=True)

    def _check_usable(self, *, closed_ok: bool = False) -> None:
        if self._fatal is not None:
            raise BusError(f"kafka producer stopped: {type(self._fatal).__name__}: {self._fatal}")
        if self._closed and not closed_ok:
            raise BusError("producer is closed")

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self.flush()
        except asyncio.CancelledError:
            self._count_dropped("closed")
            raise
        finally:
            self._closed = True
            self._space.set()
            await self._shutdown()
            self._bus._forget(self)
            self._bus.update_buffered_gauge()

    def _count_dropped(self, reason: str) -> None:
        if self._buffered:
            self._bus.telemetry.events_dropped.labels(component=COMPONENT, reason=reason).inc(self._buffered)
            self._log.error("kafka producer closed with undelivered messages", dropped=self._buffered)

    async def _shutdown(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop_kafka()

    async def _drop_kafka(self) -> None:
        kafka, self._kafka = self._kafka, None
        if kafka is not None:
            with contextlib.suppress(KafkaError, OSError):
                await kafka.stop()

    def _ensure_task(self) -> None:
        if self._task is None and not self._closed and self._fatal is None:
            self._task = asyncio.get_running_loop().create_task(self._deliver(), name="kafka-producer")
            self._task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        self._fatal = task.exception()
        self._log.error("kafka producer delivery task failed", exc_info=self._fatal)
        self._bus.telemetry.errors.labels(component=COMPONENT, error=type(self._fatal).__name__).inc()
        self._space.set()  # wake the waiting senders and flushers: they raise BusError
        self._empty.set()

    async def _connect(self) -> AIOKafkaProducer:
        c = self._config

        async def connect() -> AIOKafkaProducer:
            kafka = AIOKafkaProducer(
                **self._bus.client_kwargs(),
                enable_idempotence=True,
                acks="all",
                compression_type=None if c.compression == "none" else c.compression,
                linger_ms=c.linger_ms,
                max_batch_size=c.max_batch_bytes,
                max_request_size=max(c.max_batch_bytes, 1024 * 1024),
            )
            return await started(kafka)

        return await self._bus.connect_with_retry("producer", connect, timeout_secs=0)

    async def _deliver(self) -> None:
        """Background task: move the buffer onto Kafka round after round; retry what failed.

        Rounds are pipelined: a round is submitted while earlier ones are still awaiting
        their acknowledgement (aiokafka keeps one queued batch per partition, so
        ``send_batch`` itself paces us). After a failure, every batch in flight is let
        settle, the failed messages go back to the head of the buffer in their original
        order, the aiokafka producer is dropped and delivery resumes after a backoff.
        """
        delay = self._config.connect_backoff_initial_secs
        while True:
            if self._failed_error is None and not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._failed_error is None:
                if self._kafka is None:
                    self._kafka = await self._connect()
                messages = [self._queue.popleft() for _ in range(min(len(self._queue), ROUND_MAX_MESSAGES))]
                try:
                    await self._dispatch(self._kafka, messages)
                except Exception as exc:  # raised before submitting anything: the whole round is retried
                    self._failed.extend(messages)
                    self._failed_error = self._failed_error or exc
                if self._failed_error is None:
                    delay = self._config.connect_backoff_initial_secs
                self._bus.update_buffered_gauge()
                continue
            if self._inflight:
                await asyncio.wait(list(self._inflight))
            error, self._failed_error = self._failed_error, None
            failed = sorted(self._failed, key=lambda m: m.seq)
            self._failed.clear()
            self._queue.extendleft(reversed(failed))
            self._bus.telemetry.errors.labels(component=COMPONENT, error=type(error).__name__).inc()
            self._log.warning(
                "kafka delivery failed, retrying",
                error=f"{type(error).__name__}: {error}",
                requeued=len(failed),
                buffered=self._buffered,
                next_delay_secs=round(delay, 3),
            )
            await self._drop_kafka()  # a fresh producer id: failed sequence numbers cannot wedge it
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._config.connect_backoff_max_secs)

    def _batch_done(self, future: asyncio.Future[Any]) -> None:
        batch = self._inflight.pop(future)
        if future.cancelled():
            error: BaseException | None = asyncio.CancelledError()
        else:
            error = future.exception()
        if error is None:
            self._acknowledged(len(batch))
            return
        self._failed.extend(batch)
        self._failed_error = self._failed_error or error
        self._wake.set()

    def _acknowledged(self, count: int) -> None:
        self._buffered -= count
        self._space.set()
        if self._buffered == 0:
            self._empty.set()
        self._bus.update_buffered_gauge()

    async def _partition(self, kafka: AIOKafkaProducer, topic: str, key: bytes | None) -> int:
        partitions = self._partition_counts.get(topic)
        if partitions is None:
            partitions = len(await kafka.partitions_for(topic))
            if (
                self._cached_counts.get(topic, partitions) != partitions
                or len(self._partition_cache) > PARTITION_CACHE_MAX_KEYS
            ):
                self._partition_cache.clear()
                self._cached_counts.clear()
            self._partition_counts[topic] = self._cached_counts[topic] = partitions
        if key is None:
            available = list(kafka.client.cluster.available_partitions_for_topic(topic) or ())
            return int(self._partitioner(None, list(range(partitions)), available))
        cached = self._partition_cache.get((topic, key))
        if cached is None:
            cached = self._partition_cache[(topic, key)] = partition_for(key, partitions)
        return cached

    async def _dispatch(self, kafka: AIOKafkaProducer, messages: list[_Message]) -> None:
        """Pack ``messages`` into batches per partition and submit them.

        Batches go out in waves, one per partition and wave: aiokafka sends one request per
        broker at a time, with every batch queued by then, and ``send_batch`` waits while the
        partition already has one queued. Submitting a partition's batches back to back would
        stall on its second batch with the other partitions not queued yet (requests of one or
        two batches); one batch of every partition first fills each request.

        Raises only before anything was submitted; later failures are recorded per batch.
        """
        self._partition_counts.clear()  # refreshed once per round from the producer's metadata
        groups: dict[tuple[str, int], list[_Message]] = {}
        counted, cache = self._partition_counts, self._partition_cache
        for message in messages:
            topic = message.topic
            # A key seen before, on a topic whose partition count this round has checked: no await.
            partition = cache.get((topic, message.key)) if topic in counted else None
            if partition is None:
                partition = await self._partition(kafka, topic, message.key)
            group = groups.get((topic, partition))
            if group is None:
                group = groups[topic, partition] = []
            group.append(message)
        # (topic, partition, its messages, index of the first one not yet submitted)
        wave = [(topic, partition, group, 0) for (topic, partition), group in groups.items()]
        while wave:
            following: list[tuple[str, int, list[_Message], int]] = []
            for topic, partition, group, start in wave:
                if self._failed_error is not None:  # stop submitting; the rest goes back to the buffer
                    self._failed.extend(group[start:])
                    continue
                end = start
                try:
                    builder = kafka.create_batch()
                    while end < len(group):
                        m = group[end]
                        if builder.append(timestamp=m.timestamp_ms, key=m.key, value=m.value) is None:
                            break
                        end += 1
                    end = max(end, start + 1)  # builders always take a first record, however large
                    future: asyncio.Future[Any] = await kafka.send_batch(builder, topic, partition=partition)
                except Exception as exc:
                    self._failed.extend(group[start:])
                    self._failed_error = self._failed_error or exc
                    continue
                self._inflight[future] = group[start:end]
                future.add_done_callback(self._batch_done)
                if end < len(group):
                    following.append((topic, partition, group, end))
            wave = following
