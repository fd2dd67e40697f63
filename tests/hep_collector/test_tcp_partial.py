"""A TCP connection that ends inside a HEP3 packet: the packets before it land, the partial one is dead-lettered."""

from __future__ import annotations

import asyncio
import base64
import socket
import struct
from typing import Any

import pytest

from tests.hep_collector.conftest import Harness, deadletter_docs, hep_packet, sip_message


async def _send_and_close(port: int, data: bytes, *, reset: bool = False) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    if reset:  # RST instead of FIN: SO_LINGER with a zero timeout
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return
    writer.write_eof()
    await asyncio.wait_for(reader.read(), 10)  # the collector closes once it took everything
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize(
    ("cut", "reason"),
    [
        (3, "short"),  # "HEP": not even a header
        (25, "chunk"),  # inside the source address chunk
        (30, "length"),  # after the source address chunk: complete chunks, no payload
        (-5, "chunk"),  # inside the payload chunk
    ],
)
async def test_connection_closed_inside_a_packet(hep_harness: Any, cut: int, reason: str) -> None:
    h: Harness = await hep_harness()
    good = [hep_packet(sip_message(call_id=f"whole-{i}@tcp")) for i in range(3)]
    partial = hep_packet(sip_message(call_id="cut@tcp"))[:cut]
    await _send_and_close(h.port, b"".join(good) + partial)
    await h.collect(4)
    assert [r.key for r in h.records if r.topic == "callscope.sip"] == [f"whole-{i}@tcp".encode() for i in range(3)]
    docs = deadletter_docs(h.records)
    assert len(docs) == 1
    assert docs[0]["reason"] == reason
    assert base64.b64decode(docs[0]["raw_b64"]) == partial  # the bytes that arrived, whole
    assert h.metric("callscope_deadletters_total", {"component": "hep", "reason": reason}) == 1
    assert h.metric("callscope_hep_packets_total", {"transport": "tcp", "result": "invalid"}) == 1
    assert h.metric("callscope_errors_total", {"component": "hep", "error": "tcp_truncated"}) == 1


async def test_connection_reset_inside_a_packet(hep_harness: Any) -> None:
    h: Harness = await hep_harness()
    good = hep_packet(sip_message(call_id="before-reset@tcp"))
    partial = hep_packet(sip_message(call_id="reset@tcp"))[:-40]
    await _send_and_close(h.port, good + partial, reset=True)
    await h.collect(2)
    assert sorted(r.topic for r in h.records) == ["callscope.deadletter", "callscope.sip"]
    assert base64.b64decode(deadletter_docs(h.records)[0]["raw_b64"]) == partial


async def test_partial_packet_held_at_stop_is_deadlettered(hep_harness: Any) -> None:
    h: Harness = await hep_harness()
    partial = hep_packet(sip_message(call_id="open@tcp"))[:50]
    _reader, writer = await asyncio.open_connection("127.0.0.1", h.port)
    writer.write(partial)
    await writer.drain()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not h.collector._conns and loop.time() < deadline:  # the connection was accepted
        await asyncio.sleep(0.01)
    await h.shutdown()  # cuts the connection that never finished its packet
    await h.drain()
    docs = deadletter_docs(h.records)
    assert [d["reason"] for d in docs] == ["chunk"]
    writer.close()
