"""A consumer group member that reads through the process's shared fetch (``bus.kafka.shared_fetch``).

It joins its group, heartbeats, takes part in rebalances and commits like :class:`KafkaConsumer`,
but keeps every partition it is assigned paused in its own aiokafka consumer: the records come
from :class:`callscope.bus.kafka.shared_fetch.SharedFetch`, which fetches each partition once for
all the groups of the process.

A partition it gains is attached at the member's own aiokafka position, which aiokafka sets from the
group's committed offset (or the oldest offset when the group never committed, as
``auto_offset_reset="earliest"`` does on the per-group path). A partition it loses is detached at
once, with whatever of it was not handed out yet: after the rebalance its new owner starts at the
committed offset, as it would without shared fetch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTP
from aiokafka.errors import KafkaError

from callscope.bus.base import Record, TopicPartition
from callscope.bus.kafka.consumer import KafkaConsumer
from schemas.errors import BusError

if TYPE_CHECKING:
    from callscope.bus.kafka.bus import KafkaBus
    from callscope.bus.kafka.shared_fetch import SharedFetch


class SharedFetchConsumer(KafkaConsumer):
    """A group member fed by the process's shared fetch (see the module)."""

    carries_envelopes = True  # every group of the process gets the same record objects

    def __init__(self, bus: KafkaBus, group: str, topics: Sequence[str], shared: SharedFetch) -> None:
        super().__init__(bus, group, topics)
        self._shared = shared
        self.inbox = shared.inbox()
        # Counts revocations: a position looked up across one may predate another member's commit.
        self._generation = 0

    async def start(self) -> None:
        await super().start()
        await self._attach_assigned()

    def partitions_assigned(self, kafka: AIOKafkaConsumer, assigned: set[KafkaTP]) -> None:
        # Paused before aiokafka's background fetcher has a position for them: it never fetches them.
        if assigned:
            kafka.pause(*assigned)
        super().partitions_assigned(kafka, assigned)

    def forget_partitions(self, revoked: set[KafkaTP]) -> None:
        self._generation += 1
        self._shared.detach(self.inbox, list(revoked))
        super().forget_partitions(revoked)

    async def _attach_assigned(self) -> None:
        """Have the shared fetch deliver the assigned partitions it does not deliver to this member yet."""
        kafka = self._require()
        missing = sorted(set(kafka.assignment()).difference(self.inbox.feeds))
        if not missing:
            return
        generation = self._generation
        found = await asyncio.gather(*(kafka.position(tp) for tp in missing), return_exceptions=True)
        if generation != self._generation:
            return  # rebalanced meanwhile: the next poll looks again
        failed = [tp for tp, offset in zip(missing, found, strict=True) if not isinstance(offset, int)]
        if failed:  # retried on the next poll
            self.log.warning("kafka position lookup failed", partitions=[f"{tp.topic}:{tp.partition}" for tp in failed])
        self._shared.attach(
            self.inbox, {tp: offset for tp, offset in zip(missing, found, strict=True) if isinstance(offset, int)}
        )

    async def getmany(self, timeout_ms: int = 200, max_records: int = 1000) -> list[Record]:
        kafka = self._require()
        try:
            # Returns nothing (every partition is paused), but polling keeps the member in its group
            # (aiokafka leaves after max_poll_interval_ms without a poll) and raises the group's errors.
            await kafka.getmany(timeout_ms=0)
        except KafkaError as exc:
            raise BusError(f"kafka fetch failed: {type(exc).__name__}: {exc}") from exc
        await self._attach_assigned()
        records, next_offsets = await self.inbox.get(timeout_ms, max_records)
        for tp, offset in next_offsets.items():
            self.positions[TopicPartition(tp.topic, tp.partition)] = offset
        return records

    async def close(self) -> None:
        self._shared.detach(self.inbox, list(self.inbox.feeds))
        await super().close()
