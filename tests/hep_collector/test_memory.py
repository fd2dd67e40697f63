"""What the HEP collector's batch holds while it waits for the bus costs what it carries.

orjson returns bytes that keep its whole output buffer (8 KiB for a 1.4 KiB SIP envelope);
the collector keeps an exact-size copy instead. tracemalloc sees the capacity each line
allocated: while a batch waits at a closed gate, the memory still held by the envelope
encoder's module must be small beside the length of the envelopes waiting.
"""

from __future__ import annotations

import asyncio
import socket
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

from callscope.bus.base import Producer
from tests.hep_collector.conftest import GatedProducer, hep_packet, sip_message

PACKETS = 400
ENCODER = "collectors/hep/events.py"  # envelope_from_hep: where orjson encodes the envelope


class _Capturing(GatedProducer):
    """A gate that also keeps what the collector asked it to publish."""

    def __init__(self, inner: Producer) -> None:
        super().__init__(inner)
        self.waiting: list[Sequence[tuple[bytes | None, bytes]]] = []

    async def send_many(self, topic: str, items: Sequence[tuple[bytes | None, bytes]]) -> None:
        self.waiting.append(items)
        await super().send_many(topic, items)


async def test_a_waiting_batch_holds_exact_size_envelopes(hep_harness: Callable[..., Any]) -> None:
    gates: list[_Capturing] = []

    def wrap(producer: Producer) -> Producer:
        gates.append(_Capturing(producer))
        return gates[0]

    tracemalloc.start()
    try:
        h = await hep_harness(wrap=wrap, batch_max_messages=PACKETS, batch_max_age_ms=10_000)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(PACKETS):
                sock.sendto(hep_packet(sip_message(call_id=f"memory-{i:06d}@test")), ("127.0.0.1", h.port))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not gates[0].waiting:  # the first batch waits; later packets wait undecoded in the queue
            assert loop.time() < deadline, "the collector never handed a batch over"
            await asyncio.sleep(0.01)
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    (items,) = gates[0].waiting
    carried = sum(len(value) for _, value in items)
    encoder = sum(stat.size for stat in snapshot.statistics("filename") if stat.traceback[0].filename.endswith(ENCODER))
    gates[0].gate.set()  # let everything through before judging: nothing is lost to the test
    await h.collect(PACKETS)
    assert len(h.records) == PACKETS
    # Seen: a few KiB of the encoder's caches with the copy; 6-12 times the batch when orjson's output is kept.
    assert encoder < 8192 + 0.25 * carried, (encoder, carried, len(items))
