"""The clock and the item list that scenarios write into, and the hops SIP is captured on."""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass

from callscope.traffic.model import Item, Node, Platform, Summary, Timing
from callscope.traffic.sip import HEP_KIND, SIP, hep


@dataclass(frozen=True)
class Hop:
    """One capture point: ``node`` saw packets between ``src`` and ``dst``."""

    node: Node
    src: tuple[str, int]
    dst: tuple[str, int]


class Builder:
    """A moving clock (``now_us``) and the items emitted and not yet taken, kept in time order.

    Scenarios emit out of order (a call's BYE before the next call's INVITE); :meth:`drain`
    hands out, in (time, emission) order, the items before a time no later scenario will emit
    before, so a plan streams without being held whole.
    """

    def __init__(self, rng: random.Random, start_us: int, platform: Platform, timing: Timing, summary: Summary) -> None:
        self.rng = rng
        self.now_us = start_us
        self.platform = platform
        self.timing = timing
        self.summary = summary
        self._heap: list[tuple[int, int, Item]] = []
        self._seq = 0
        self.uniqueid_seq = 0  # Asterisk's channel counter
        self.channel_seq = 0
        self.closed_legs: list[tuple[str, str]] = []  # (Call-ID, state) of the current call's legs
        self.queue_outcome = ""  # the current call's queue session outcome

    def tick(self, ms: float) -> None:
        self.now_us += int(ms * 1000)

    def wait(self, us: int) -> None:
        self.now_us += us

    def add(self, kind: str, data: object, at_us: int | None = None) -> None:
        self._seq += 1
        ts = self.now_us if at_us is None else at_us
        heapq.heappush(self._heap, (ts, self._seq, Item(ts, self._seq, kind, data)))
        self.summary.kinds[kind] += 1

    def sip(self, hop: Hop, payload: bytes, *, reverse: bool = False, correlation_id: str | None = None) -> None:
        """One SIP message as ``hop``'s node captured it (``reverse``: from ``dst`` to ``src``)."""
        src, dst = (hop.dst, hop.src) if reverse else (hop.src, hop.dst)
        self.hep(hop.node, src, dst, payload, SIP, correlation_id=correlation_id)

    def hep(
        self,
        node: Node,
        src: tuple[str, int],
        dst: tuple[str, int],
        payload: bytes,
        payload_type: int,
        *,
        correlation_id: str | None = None,
        at_us: int | None = None,
    ) -> None:
        ts = self.now_us if at_us is None else at_us
        packet = hep(
            ts_us=ts,
            src=src,
            dst=dst,
            capture_id=node.capture_id,
            capture_name=node.name,
            payload=payload,
            payload_type=payload_type,
            correlation_id=correlation_id,
        )
        self.add(HEP_KIND[payload_type], packet, ts)

    def drain(self, before_us: int | None = None) -> Iterator[Item]:
        """The held items timed before ``before_us`` (None: all of them), in order."""
        heap = self._heap
        while heap and (before_us is None or heap[0][0] < before_us):
            yield heapq.heappop(heap)[2]
