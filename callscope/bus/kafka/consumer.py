"""The Kafka consumer: manual commits, a rebalance listener that forgets revoked partitions.

:class:`KafkaConsumer` fetches for its own group (``bus.kafka.shared_fetch: false``). With shared
fetch (the default) the process's groups read through one fetch instead:
:mod:`callscope.bus.kafka.shared_fetch` and :class:`callscope.bus.kafka.member.SharedFetchConsumer`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTP
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from callscope.bus.base import Consumer, Record, TopicPartition
from callscope.bus.kafka.clients import started
from callscope.bus.kafka.limits import HEARTBEAT_INTERVAL_MS
from schemas.errors import BusError

if TYPE_CHECKING:
    from callscope.bus.kafka.bus import KafkaBus


_new_record = object.__new__
_slot = vars(Record)  # the member descriptors of Record's slots
_set_topic = _slot["topic"].__set__
_set_partition = _slot["partition"].__set__
_set_offset = _slot["offset"].__set__
_set_key = _slot["key"].__set__
_set_value = _slot["value"].__set__
_set_timestamp = _slot["timestamp_ms"].__set__
_set_envelope = _slot["envelope"].__set__


def records_of(topic: str, partition: int, batch: list[ConsumerRecord[bytes, bytes]]) -> list[Record]:
    """``batch`` (one partition's records, in order) as :class:`Record` values.

    Every record the process fetches passes here (once per group without shared fetch):
    the slots are filled directly, which takes half the time of the frozen dataclass's
    ``__init__`` (its ``object.__setattr__`` per field); the values are the same.
    """
    out: list[Record] = []
    append = out.append
    for r in batch:
        rec = _new_record(Record)
        _set_topic(rec, topic)
        _set_partition(rec, partition)
        _set_offset(rec, r.offset)
        _set_key(rec, r.key)
        _set_value(rec, r.value or b"")
        _set_timestamp(rec, r.timestamp)
        _set_envelope(rec, None)
        append(rec)
    return out


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hands aiokafka's rebalance callbacks to the member, with the aiokafka consumer they concern
    (the first assignment arrives while ``start`` still waits, before the member holds it)."""

    def __init__(self, owner: KafkaConsumer, kafka: AIOKafkaConsumer) -> None:
        self._owner = owner
        self._kafka = kafka

    def on_partitions_revoked(self, revoked: set[KafkaTP]) -> None:
        self._owner.forget_partitions(revoked)

    def on_partitions_assigned(self, assigned: set[KafkaTP]) -> None:
        self._owner.partitions_assigned(self._kafka, assigned)


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
                fetch_min_bytes=self._bus.config.fetch_min_bytes,
                fetch_max_wait_ms=self._bus.config.fetch_max_wait_ms,
            )
            kafka.subscribe(list(self.topics), listener=_Rebalance(self, kafka))
            return await started(kafka)  # subscribed first, so this waits for the group's assignment

        self._kafka = await self._bus.connect_with_retry("consumer", connect)

    def partitions_assigned(self, kafka: AIOKafkaConsumer, assigned: set[KafkaTP]) -> None:
        """Called by aiokafka after a rebalance, before it fetches anything of ``assigned``."""
        self.log.info("kafka partitions assigned", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))

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
            if batch:
                records += records_of(tp.topic, tp.partition, batch)
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
