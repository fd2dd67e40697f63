"""The bus interface: topics, partitions chosen by key, consumer groups, committed offsets.

Two implementations honour it and one contract test suite runs against both
(tests/bus/test_contract.py): :mod:`callscope.bus.memory` (embedded, in-process)
and :mod:`callscope.bus.kafka` (Apache Kafka through aiokafka).

Semantics every implementation keeps:

- ``Producer.send`` returns once the bus has accepted the message (buffered).
  When the bus is full it waits (backpressure); it never drops silently.
  ``Producer.flush`` returns once every accepted message is durable on the bus.
- A key always maps to the same partition of a topic; order is kept per partition.
- Consumers in one group share a topic's partitions; each partition is read by
  one member at a time. ``Consumer.commit`` records the *next* offset to read.
  A consumer that restarts in the same group resumes at the committed offset,
  so everything not committed is delivered again (at-least-once).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Record:
    """One message read from the bus."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    # Not data: the envelope the value decodes to, kept by the first processor of the process that
    # decoded it for the others reading this same record (callscope.bus.envelopes).
    envelope: object = field(default=None, init=False, repr=False, compare=False)

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


class Producer(abc.ABC):
    @abc.abstractmethod
    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Hand one message to the bus; waits while the bus is full."""

    async def send_many(self, topic: str, items: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Hand several (key, value) messages to the bus, in order."""
        for key, value in items:
            await self.send(topic, value, key)

    @abc.abstractmethod
    async def flush(self) -> None:
        """Wait until every accepted message is stored by the bus."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and release resources."""


class Consumer(abc.ABC):
    #: Whether the processors may keep a record's decoded envelope on the record (``Record.envelope``,
    #: see :mod:`callscope.bus.envelopes`): true where the groups of a process read the same record
    #: objects, each in its own order, and drop them once read (the shared Kafka fetch). False for
    #: the in-process bus, whose groups read its partitions in the same order (the value cache
    #: serves them) and which keeps records until every group committed them: their envelopes
    #: would stay as long (+220 MiB peak RSS in bench/e2e_hep.py); false where no other group
    #: reads the same objects (a Kafka consumer per group).
    carries_envelopes: bool = False

    @abc.abstractmethod
    async def getmany(self, timeout_ms: int = 200, max_records: int = 1000) -> list[Record]:
        """Up to ``max_records`` records from the assigned partitions; empty after ``timeout_ms``."""

    @abc.abstractmethod
    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the next offset to read, per partition (``last processed offset + 1``)."""

    @abc.abstractmethod
    def assignment(self) -> frozenset[TopicPartition]:
        """Partitions this member currently reads."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Leave the group without committing."""


class Bus(abc.ABC):
    """Factory for producers and consumers on one bus."""

    name: str

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect (Kafka: retry with capped backoff until reachable)."""

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def ensure_topics(self, topics: Sequence[str], partitions: int | None = None) -> None:
        """Create the topics that do not exist yet, with the configured partition count."""

    @abc.abstractmethod
    async def partitions_for(self, topic: str) -> int: ...

    @abc.abstractmethod
    def producer(self) -> Producer: ...

    @abc.abstractmethod
    async def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        """A started consumer that joined ``group`` and subscribed to ``topics``."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the bus answers (readiness)."""

    @abc.abstractmethod
    async def lag(self, group: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
        """Messages not yet committed by ``group``, per partition."""
