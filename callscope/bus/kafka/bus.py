"""KafkaBus: connection with capped-backoff retry, topics, producers and consumers, lag."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, codec
from aiokafka import TopicPartition as KafkaTP
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from callscope.bus.base import Bus, TopicPartition
from callscope.bus.kafka.consumer import KafkaConsumer
from callscope.bus.kafka.limits import COMPONENT, TOPIC_ALREADY_EXISTS
from callscope.bus.kafka.logs import throttle_aiokafka_logs
from callscope.bus.kafka.member import SharedFetchConsumer
from callscope.bus.kafka.producer import KafkaProducer
from callscope.bus.kafka.shared_fetch import SharedFetch
from callscope.settings import KafkaConfig
from callscope.telemetry import Telemetry
from schemas.errors import BusError, ConfigError

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
        throttle_aiokafka_logs()  # an outage would otherwise bury the log under aiokafka's retries
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._producers: list[KafkaProducer] = []
        self._consumers: list[KafkaConsumer] = []
        self.shared_fetch: SharedFetch | None = None  # started with the first consumer when config.shared_fetch
        self._shared_fetch_lock = asyncio.Lock()

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
        if self.shared_fetch is not None:
            await self.shared_fetch.stop()
            self.shared_fetch = None
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
        consumer = (
            SharedFetchConsumer(self, group, topics, await self._started_shared_fetch())
            if self.config.shared_fetch
            else KafkaConsumer(self, group, topics)
        )
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    async def _started_shared_fetch(self) -> SharedFetch:
        """The process's shared fetch, started by the first consumer (consumers may start concurrently)."""
        async with self._shared_fetch_lock:
            if self.shared_fetch is None:
                shared = SharedFetch(self)
                await shared.start()
                self.shared_fetch = shared
            return self.shared_fetch

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
