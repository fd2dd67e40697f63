"""UDP drops on a full queue show while they happen: counted and logged while the bus takes nothing."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from structlog.testing import capture_logs

from callscope.bus.base import Producer
from tests.hep_collector.conftest import GatedProducer, Harness, hep_packet, sip_message

DROPPED = {"component": "hep", "reason": "queue_full"}


async def test_drops_are_counted_and_logged_while_the_bus_is_stuck(hep_harness: Any) -> None:
    gated: list[GatedProducer] = []

    def wrap(inner: Producer) -> Producer:
        gated.append(GatedProducer(inner))
        return gated[0]

    n, queue_max, batch_max = 5000, 1000, 100
    with capture_logs() as logs:
        h: Harness = await hep_harness(wrap=wrap, queue_max_packets=queue_max, batch_max_messages=batch_max)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(n):
                sock.sendto(hep_packet(sip_message(call_id=f"d{i}")), ("127.0.0.1", h.port))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        # The consumer is stuck in send_many; nobody but the collector's own reporter counts.
        while h.metric("callscope_events_dropped_total", DROPPED) + queue_max + batch_max < n:
            assert loop.time() < deadline, "drops not counted while the consumer waits for the bus"
            await asyncio.sleep(0.05)
        dropped_while_stuck = h.metric("callscope_events_dropped_total", DROPPED)
        gated[0].gate.set()
        await h.shutdown()
        await h.drain()
    warnings = [e for e in logs if e["event"] == "hep queue full, udp packets dropped"]
    assert warnings
    assert all(e["log_level"] == "warning" and e["queue_max_packets"] == queue_max for e in warnings)
    dropped = h.metric("callscope_events_dropped_total", DROPPED)
    assert dropped == dropped_while_stuck  # nothing more once the bus took the queue
    assert sum(e["dropped"] for e in warnings) == dropped  # every counted drop was also logged
    delivered = sum(1 for r in h.records if r.topic == "callscope.sip")
    assert delivered + dropped == n
