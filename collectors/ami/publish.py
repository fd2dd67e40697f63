"""What one node's AMI connection reads, made into envelopes in the collector's outbox.

:class:`NodeEvents` holds the per-stream state the envelopes need (the session id and the
event sequence that make the ids, the dialect) and applies the event filter; it counts
every outcome (``callscope_ami_events_total{node,result}``) and dead-letters what cannot be
an envelope (``callscope_ami_parse_errors_total{node,reason}``). No I/O of its own: the
collector's publisher drains the outbox.

Receive times are kept strictly increasing per node: the events of one socket read (which
share its receive time) are stamped a microsecond apart, so a store ordering by ``ts``
(without ``Timestamp``, ``ts`` is the receive time) keeps Asterisk's order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from callscope.telemetry import Telemetry
from collectors.ami.config import EventFilter
from collectors.ami.dialect import DialectTracker
from collectors.ami.events import envelope_from_fields, gap_envelopes, mark_resync
from collectors.ami.metrics import AmiMetrics
from collectors.ami.wire import Block
from schemas.errors import DecodeError
from schemas.topics import DEADLETTER, deadletter_record, topic_for

__all__ = ["COMPONENT", "NodeEvents", "Outbox"]

COMPONENT = "ami"
TOPIC = topic_for("ami")


class Outbox(Protocol):
    """Where envelopes wait for the bus, in arrival order."""

    def put(self, topic: str, key: bytes | None, value: bytes) -> None: ...


class NodeEvents:
    """One Asterisk node's events -> envelopes in the outbox (see the module docstring)."""

    def __init__(
        self,
        *,
        node: str,
        role: str,
        event_filter: EventFilter,
        outbox: Outbox,
        metrics: AmiMetrics,
        telemetry: Telemetry,
    ) -> None:
        self.node = node
        self.role = role
        self.tracker = DialectTracker()
        self._filter = event_filter
        self._outbox = outbox
        self._metrics = metrics
        self._telemetry = telemetry
        self._session = ""
        self._seq = 0
        self._last_us = 0
        self._published = metrics.events.labels(node, "published")
        self._filtered = metrics.events.labels(node, "filtered")
        self._resynced = metrics.events.labels(node, "resync")
        self._received = telemetry.events_received.labels(COMPONENT, "ami")

    def new_connection(self) -> None:
        """A new connection: its banner will tell the dialect again."""
        self.tracker = DialectTracker()

    def new_session(self, session: str) -> None:
        """A login: ``session`` (the login time) and a fresh sequence make the ids of what follows."""
        self._session = session
        self._seq = 0

    def live(self, block: Block, received_us: int) -> None:
        """An event as it happened, unless the filter drops it."""
        name = block.name
        if name and not self._filter.passes(name):
            self._filtered.inc()
            return
        self._publish(name, block.fields, received_us, resync=False)

    def resync(self, blocks: Iterable[tuple[Block, int]]) -> None:
        """List results of the resync (with their receive times), marked ``CallscopeResync: "1"``; never filtered."""
        for block, received_us in blocks:
            self._publish(block.name, mark_resync(block.fields), received_us, resync=True)

    def gap(self, *, reason: str, since_us: int, until_us: int, channels: Iterable[Mapping[str, str]]) -> int:
        """The ``CallscopeGap`` markers of a reconnect; returns how many (1 + live call keys)."""
        markers = gap_envelopes(
            node=self.node,
            role=self.role,
            dialect=self.tracker.dialect,
            reason=reason,
            since_us=since_us,
            until_us=until_us,
            session=self._session,
            channels=channels,
        )
        for key, value in markers:
            self._outbox.put(TOPIC, key.encode(), value)
        self._metrics.gaps.labels(self.node).inc()
        return len(markers)

    def _publish(self, name: str, fields: dict[str, str], received_us: int, *, resync: bool) -> None:
        # Events of one socket read share its receive time: a microsecond apart, their order is the ts order.
        if received_us <= self._last_us:
            received_us = self._last_us + 1
        self._last_us = received_us
        self._seq += 1
        self._received.inc()
        try:
            key, value = envelope_from_fields(
                fields,
                node=self.node,
                role=self.role,
                dialect=self.tracker.label(name, fields),
                received_us=received_us,
                id_parts=(self._session, str(self._seq)),
                event=name or None,
            )
        except DecodeError as exc:
            self.deadletter(exc, "\n".join(f"{k}: {v}" for k, v in fields.items()).encode())
            return
        self._outbox.put(TOPIC, key.encode(), value)
        (self._resynced if resync else self._published).inc()

    def deadletter(self, exc: DecodeError, raw: bytes) -> None:
        """Counted with its bounded reason and sent to ``callscope.deadletter`` with the raw bytes."""
        reason = exc.reason
        self._metrics.parse_errors.labels(self.node, reason).inc()
        self._telemetry.errors.labels(COMPONENT, reason).inc()
        self._telemetry.deadletters.labels(COMPONENT, reason).inc()
        record = deadletter_record(
            component=COMPONENT, reason=reason, detail=f"{self.node}: {exc}", raw=raw, node=self.node
        )
        self._outbox.put(DEADLETTER, None, record)
