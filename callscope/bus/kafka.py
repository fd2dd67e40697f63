"""Apache Kafka bus through aiokafka.

Delivery guarantee of the producer: at-least-once. ``send`` puts the message in a
bounded in-process buffer (``buffer_max_messages``) and returns; a background task
packs the buffer into record batches per partition (Kafka's murmur2 key partitioner)
and hands them to an idempotent aiokafka producer (``acks=all``). A batch the broker
did not acknowledge goes back to the head of the buffer, the producer is rebuilt (a new
producer id, so stale sequence numbers cannot wedge it) and delivery resumes after a
capped exponential backoff: while Kafka is away the buffer fills, then ``send`` waits.
Nothing is dropped on purpose; messages still buffered when ``close`` is cancelled are
counted in ``callscope_events_dropped_total{component="bus.kafka"}``.

Order is kept per partition, except that a batch retried after a partial failure may
land after a later batch of the same partition that succeeded; consumers deduplicate
by envelope id anyway (DESIGN.md, Delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, codec
from aiokafka import TopicPartition as KafkaTP
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import IllegalStateError, KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import OffsetAndMetadata

from callscope.bus.base import Bus, Consumer, Producer, Record, TopicPartition
from callscope.settings import KafkaConfig
from callscope.telemetry import Telemetry
from schemas.errors import BusError, ConfigError

COMPONENT = "bus.kafka"
ROUND_MAX_MESSAGES = 20_000  # messages packed per delivery round
MAX_MESSAGE_BYTES = 1_000_000  # below the broker's default message.max.bytes (1 MiB + 12)
TOPIC_ALREADY_EXISTS = 36
HEARTBEAT_INTERVAL_MS = 1000
T = TypeVar("T")


class KafkaBus(Bus):
    """Topics, keyed partitions and consumer groups on an Apache Kafka cluster."""

    name = "kafka"

    def __init__(self, config: KafkaConfig, telemetry: Telemetry) -> None:
        if config.compression in ("snappy", "lz4", "zstd") and not codec.has_lz4():
            raise ConfigError([("bus.kafka.compression", f"{config.compression} needs the cramjam package installed")])
        self.config = config
        self.telemetry = telemetry
        self.log = telemetry.logger(COMPONENT, bootstrap=config.bootstrap_servers)
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._producers: list[KafkaProducer] = []
        self._consumers: list[KafkaConsumer] = []

    # -- connection -------------------------------------------------------------------------

    def client_kwargs(self) -> dict[str, Any]:
        """Connection settings shared by every aiokafka client of this bus."""
        c = self.config
        kwargs: dict[str, Any] = {
            "bootstrap_servers": c.bootstrap_servers,
            "client_id": c.client_id,
            "request_timeout_ms": c.request_timeout_ms,
            "security_protocol": c.security_protocol,
        }
        if c.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_context"] = ssl.create_default_context()
        if c.sasl_mechanism is not None:
            kwargs.update(
                sasl_mechanism=c.sasl_mechanism,
                sasl_plain_username=c.sasl_username,
                sasl_plain_password=c.sasl_password,
            )
        return kwargs

    async def connect_with_retry(
        self,
        what: str,
        connect: Callable[[], Awaitable[T]],
        timeout_secs: float | None = None,
    ) -> T:
        """Call ``connect`` until it succeeds, sleeping a capped exponential backoff between tries.

        One warning line per failed attempt, without a traceback. Raises :class:`BusError`
        once ``timeout_secs`` (default ``connect_timeout_secs``; 0 means forever) would pass.
        """
        c = self.config
        timeout = c.connect_timeout_secs if timeout_secs is None else timeout_secs
        started = time.monotonic()
        delay = c.connect_backoff_initial_secs
        for attempt in itertools.count(1):
            try:
                return await connect()
            except (KafkaError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                self.telemetry.errors.labels(component=COMPONENT, error=type(exc).__name__).inc()
            elapsed = time.monotonic() - started
            if timeout > 0 and elapsed + delay > timeout:
                raise BusError(
                    f"kafka at {c.bootstrap_servers} unreachable for {what}: gave up after {attempt} attempts "
                    f"in {elapsed:.1f} s (connect_timeout_secs={timeout:g}); last error {error}"
                )
            self.log.warning(
                "kafka unreachable, retrying",
                client=what,
                attempt=attempt,
                next_delay_secs=round(delay, 3),
                error=error,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, c.connect_backoff_max_secs)
        raise AssertionError("unreachable")  # pragma: no cover

    async def start(self) -> None:
        if self._admin is not None:
            return

        async def connect() -> AIOKafkaAdminClient:
            admin = AIOKafkaAdminClient(**self.client_kwargs())
            try:
                await admin.start()
            except BaseException:
                await admin.close()
                raise
            return admin

        self._admin = await self.connect_with_retry("admin", connect)
        self.telemetry.component_up.labels(component=COMPONENT).set(1)
        self.log.info("kafka connected")

    async def stop(self) -> None:
        """Flush and close every producer (waits while Kafka is away; cancelling counts the rest
        as dropped), then close consumers and admin connections."""
        for producer in list(self._producers):
            await producer.close()
        for consumer in list(self._consumers):
            await consumer.close()
        if self._offsets is not None:
            await self._offsets.stop()
            self._offsets = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
        self.telemetry.component_up.labels(component=COMPONENT).set(0)

    def _require_admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            raise BusError("KafkaBus.start() was not called")
        return self._admin

    # -- topics -----------------------------------------------------------------------------

    async def _topic_partitions(self, topics: Sequence[str]) -> dict[str, list[int]]:
        """Partitions that have a leader, per existing topic."""
        described = await self._require_admin().describe_topics(list(topics))
        found: dict[str, list[int]] = {}
        for topic in described:
            if topic["error_code"] == 0:
                found[topic["topic"]] = sorted(p["partition"] for p in topic["partitions"] if p["leader"] >= 0)
        return found

    async def ensure_topics(self, topics: Sequence[str], partitions: int | None = None) -> None:
        admin = self._require_admin()
        count = partitions or self.config.partitions
        try:
            existing = await self._topic_partitions(topics)
            missing = [t for t in dict.fromkeys(topics) if t not in existing]
            if missing:
                new = [
                    NewTopic(t, num_partitions=count, replication_factor=self.config.replication_factor)
                    for t in missing
                ]
                response = await admin.create_topics(new)
                for topic_error in response.topic_errors:
                    name, code = topic_error[0], topic_error[1]
                    if code not in (0, TOPIC_ALREADY_EXISTS):
                        raise BusError(f"creating topic {name!r} failed: kafka error code {code}")
                self.log.info("kafka topics created", topics=missing, partitions=count)
            # Creation is asynchronous: wait until every partition has a leader.
            async with asyncio.timeout(self.config.request_timeout_ms / 1000):
                while True:
                    ready = await self._topic_partitions(topics)
                    if all(t in ready and ready[t] for t in topics):
                        break
                    await asyncio.sleep(0.1)
        except (KafkaError, TimeoutError) as exc:
            raise BusError(f"ensure_topics {list(topics)} failed: {type(exc).__name__}: {exc}") from exc

    async def partitions_for(self, topic: str) -> int:
        try:
            described = await self._require_admin().describe_topics([topic])
        except KafkaError as exc:
            raise BusError(f"describing topic {topic!r} failed: {exc}") from exc
        for entry in described:
            if entry["topic"] == topic and entry["error_code"] == 0:
                return len(entry["partitions"])
        raise BusError(f"topic {topic!r} does not exist")

    # -- producers and consumers ------------------------------------------------------------

    def producer(self) -> KafkaProducer:
        producer = KafkaProducer(self)
        self._producers.append(producer)
        return producer

    async def consumer(self, group: str, topics: Sequence[str]) -> KafkaConsumer:
        consumer = KafkaConsumer(self, group, topics)
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    def _forget(self, client: KafkaProducer | KafkaConsumer) -> None:
        if isinstance(client, KafkaProducer):
            with contextlib.suppress(ValueError):
                self._producers.remove(client)
        else:
            with contextlib.suppress(ValueError):
                self._consumers.remove(client)

    def update_buffered_gauge(self) -> None:
        self.telemetry.bus_buffered.labels(bus=self.name).set(sum(p.buffered for p in self._producers))

    # -- health -----------------------------------------------------------------------------

    async def ping(self) -> bool:
        if self._admin is None:
            return False
        try:
            async with asyncio.timeout(min(5.0, self.config.request_timeout_ms / 1000)):
                cluster = await self._admin.describe_cluster()
        except (KafkaError, OSError, TimeoutError):
            return False
        return bool(cluster.get("brokers"))

    async def lag(self, group: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
        admin = self._require_admin()
        try:
            if self._offsets is None:
                offsets = AIOKafkaConsumer(**self.client_kwargs(), enable_auto_commit=False)
                await offsets.start()
                self._offsets = offsets
            found = await self._topic_partitions(topics)
            tps = [KafkaTP(topic, p) for topic, parts in found.items() for p in parts]
            if not tps:
                return {}
            ends = await self._offsets.end_offsets(tps)
            starts = await self._offsets.beginning_offsets(tps)
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        except KafkaError as exc:
            raise BusError(f"lag of group {group!r} failed: {type(exc).__name__}: {exc}") from exc
        result: dict[TopicPartition, int] = {}
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
            result[TopicPartition(tp.topic, tp.partition)] = max(0, ends[tp] - done)
        for topic in {tp.topic for tp in result}:
            total = sum(v for tp, v in result.items() if tp.topic == topic)
            self.telemetry.bus_lag.labels(group=group, topic=topic).set(total)
        return result


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
        self._partition_cache: dict[tuple[str, bytes], int] = {}
        self._partition_counts: dict[str, int] = {}  # this round's view of the metadata
        self._cached_counts: dict[str, int] = {}  # the counts _partition_cache was filled with
        self._inflight: dict[asyncio.Future[Any], list[_Message]] = {}
        self._failed: list[_Message] = []
        self._failed_error: BaseException | None = None
        self._fatal: BaseException | None = None  # a bug in the delivery task; never a Kafka outage

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
        self._queue.append(_Message(next(self._seq), topic, key, value, int(time.time() * 1000)))
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
                await self._space.wait()
                self._check_usable()
            self._queue.append(_Message(next(self._seq), topic, key, value, now_ms))
            self._buffered += 1
            self._empty.clear()
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
            try:
                await kafka.start()
            except BaseException:
                await kafka.stop()
                raise
            return kafka

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
            if self._cached_counts.get(topic, partitions) != partitions or len(self._partition_cache) > 100_000:
                self._partition_cache.clear()
                self._cached_counts.clear()
            self._partition_counts[topic] = self._cached_counts[topic] = partitions
        if key is None:
            available = list(kafka.client.cluster.available_partitions_for_topic(topic) or ())
            return int(self._partitioner(None, list(range(partitions)), available))
        cached = self._partition_cache.get((topic, key))
        if cached is None:
            cached = int(self._partitioner(key, list(range(partitions)), []))
            self._partition_cache[(topic, key)] = cached
        return cached

    async def _dispatch(self, kafka: AIOKafkaProducer, messages: list[_Message]) -> None:
        """Pack ``messages`` into batches per partition and submit them.

        Raises only before anything was submitted; later failures are recorded per batch.
        """
        self._partition_counts.clear()  # refreshed once per round from the producer's metadata
        groups: dict[tuple[str, int], list[_Message]] = {}
        for message in messages:
            partition = await self._partition(kafka, message.topic, message.key)
            groups.setdefault((message.topic, partition), []).append(message)
        for (topic, partition), group in groups.items():
            start = 0
            while start < len(group):
                if self._failed_error is not None:  # stop submitting; the rest goes back to the buffer
                    self._failed.extend(group[start:])
                    break
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
                    break
                self._inflight[future] = group[start:end]
                future.add_done_callback(self._batch_done)
                start = end


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: KafkaConsumer) -> None:
        self._owner = owner

    def on_partitions_revoked(self, revoked: set[KafkaTP]) -> None:
        self._owner.forget_partitions(revoked)

    def on_partitions_assigned(self, assigned: set[KafkaTP]) -> None:
        self._owner.log.info(
            "kafka partitions assigned", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned)
        )


class KafkaConsumer(Consumer):
    """A member of a consumer group with manual commits (``enable_auto_commit=False``)."""

    def __init__(self, bus: KafkaBus, group: str, topics: Sequence[str]) -> None:
        self._bus = bus
        self.group = group
        self.topics = tuple(topics)
        self.log = bus.log.bind(client="consumer", group=group)
        self._kafka: AIOKafkaConsumer | None = None
        # Local per-partition state: next offset after the last record handed out.
        # Dropped for partitions revoked by a rebalance (another member owns them now).
        self.positions: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        async def connect() -> AIOKafkaConsumer:
            kafka = AIOKafkaConsumer(
                **self._bus.client_kwargs(),
                group_id=self.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            )
            kafka.subscribe(list(self.topics), listener=_Rebalance(self))
            try:
                await kafka.start()  # subscribed first, so this waits for the group's assignment
            except BaseException:
                await kafka.stop()
                raise
            return kafka

        self._kafka = await self._bus.connect_with_retry("consumer", connect)

    def forget_partitions(self, revoked: set[KafkaTP]) -> None:
        for tp in revoked:
            self.positions.pop(TopicPartition(tp.topic, tp.partition), None)
        if revoked:
            self.log.info("kafka partitions revoked", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in revoked))

    def _require(self) -> AIOKafkaConsumer:
        if self._kafka is None:
            raise BusError("consumer is closed")
        return self._kafka

    async def getmany(self, timeout_ms: int = 200, max_records: int = 1000) -> list[Record]:
        kafka = self._require()
        try:
            fetched = await kafka.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            raise BusError(f"kafka fetch failed: {type(exc).__name__}: {exc}") from exc
        records: list[Record] = []
        for tp, batch in sorted(fetched.items()):
            records.extend(Record(r.topic, r.partition, r.offset, r.key, r.value or b"", r.timestamp) for r in batch)
            if batch:
                self.positions[TopicPartition(tp.topic, tp.partition)] = batch[-1].offset + 1
        return records

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        kafka = self._require()
        request = {KafkaTP(tp.topic, tp.partition): OffsetAndMetadata(offset, "") for tp, offset in offsets.items()}
        try:
            await kafka.commit(request)
        except IllegalStateError as exc:
            raise BusError(f"commit refused, partition not assigned to this member: {exc}") from exc
        except KafkaError as exc:
            raise BusError(f"kafka commit failed: {type(exc).__name__}: {exc}") from exc

    def assignment(self) -> frozenset[TopicPartition]:
        if self._kafka is None:
            return frozenset()
        return frozenset(TopicPartition(tp.topic, tp.partition) for tp in self._kafka.assignment())

    async def close(self) -> None:
        kafka, self._kafka = self._kafka, None
        if kafka is not None:
            await kafka.stop()
        self.positions.clear()
        self._bus._forget(self)
