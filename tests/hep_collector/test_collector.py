"""HepCollector on real UDP and TCP sockets (127.0.0.1, OS-given port) with the in-process bus."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from typing import Any

import orjson
import pytest

from callscope.bus.base import Producer
from tests.hep_collector.conftest import GatedProducer, Harness, deadletter_docs, hep_packet, sip_message

RTCP_JSON = orjson.dumps({"type": 200, "ssrc": 1, "report_count": 0, "report_blocks": []})


def _udp_send(port: int, packets: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for pkt in packets:
            sock.sendto(pkt, ("127.0.0.1", port))


async def _tcp_send(port: int, segments: list[bytes], *, wait_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for seg in segments:
        writer.write(seg)
        await writer.drain()
        await asyncio.sleep(0.01)  # separate segments on the wire (not a readiness wait)
    writer.write_eof()
    rest = await asyncio.wait_for(reader.read(), 10) if wait_close else b""
    writer.close()
    await writer.wait_closed()
    return rest


def _keys(h: Harness, topic: str) -> list[bytes]:
    return [r.key or b"" for r in h.records if r.topic == topic]


@pytest.mark.parametrize("recv_batch_packets", [512, 1], ids=["recvmmsg", "recv_into"])
async def test_udp_packets_land_on_their_topics_with_their_keys(hep_harness: Any, recv_batch_packets: int) -> None:
    h: Harness = await hep_harness(recv_batch_packets=recv_batch_packets)
    assert h.collector.describe() == f"udp+tcp 127.0.0.1:{h.port} (HEP v1/v2/v3)"
    assert h.collector.healthcheck()
    packets = [hep_packet(sip_message(call_id=f"c{i}@udp")) for i in range(50)]
    packets.append(hep_packet(RTCP_JSON, payload_type=5, correlation_id="c1@udp"))
    packets.append(hep_packet(b"SYSLOG: hello", payload_type=100, correlation_id="c2@udp"))
    _udp_send(h.port, packets)
    await h.collect(52)
    topics = Counter(r.topic for r in h.records)
    assert topics == {"callscope.sip": 50, "callscope.rtcp": 1, "callscope.log": 1}
    assert sorted(_keys(h, "callscope.sip")) == sorted(f"c{i}@udp".encode() for i in range(50))
    assert _keys(h, "callscope.rtcp") == [b"c1@udp"]
    envelope = orjson.loads(next(r.value for r in h.records if r.key == b"c7@udp"))
    assert envelope["kind"] == "sip"
    assert envelope["body"]["call_id"] == "c7@udp"
    assert envelope["body"]["src"] == {"ip": "10.0.0.1", "port": 5060}
    assert h.metric("callscope_events_received_total", {"component": "hep", "kind": "sip"}) == 50


async def test_auth_key_mismatch_is_dropped_and_counted(hep_harness: Any) -> None:
    h: Harness = await hep_harness(auth_key="s3cret")
    good = [hep_packet(sip_message(call_id=f"ok{i}"), auth_key=b"s3cret") for i in range(5)]
    wrong = [hep_packet(sip_message(call_id=f"bad{i}"), auth_key=b"guess") for i in range(3)]
    missing = [hep_packet(sip_message(call_id=f"none{i}")) for i in range(2)]
    _udp_send(h.port, wrong + missing + good)
    await h.collect(5)
    await h.shutdown()
    await h.drain()
    assert sorted(_keys(h, "callscope.sip")) == sorted(f"ok{i}".encode() for i in range(5))
    assert len(h.records) == 5
    assert h.metric("callscope_events_dropped_total", {"component": "hep", "reason": "auth"}) == 5
    assert h.metric("callscope_hep_packets_total", {"transport": "udp", "result": "auth"}) == 5


async def test_with_an_auth_key_malformed_packets_are_dropped_not_deadlettered(hep_harness: Any) -> None:
    # Nothing unauthenticated reaches the bus: a packet too broken to carry a key is not stored
    # either. An authenticated packet with a payload that does not decode is dead-lettered.
    h: Harness = await hep_harness(auth_key="s3cret")
    good = [hep_packet(sip_message(call_id=f"ok{i}"), auth_key=b"s3cret") for i in range(4)]
    broken = [b"\x00\x01", b"HEP3\x00\x05", b"NOT HEP AT ALL, JUST TEXT", b"HEP3\x00\x40" + b"\x00" * 10]
    not_sip = hep_packet(b"this is not SIP", auth_key=b"s3cret")
    _udp_send(h.port, [*broken, not_sip, *good])
    await h.collect(5)
    await h.shutdown()
    await h.drain()
    assert Counter(r.topic for r in h.records) == {"callscope.sip": 4, "callscope.deadletter": 1}
    assert h.metric("callscope_events_dropped_total", {"component": "hep", "reason": "auth"}) == 4
    assert h.metric("callscope_errors_total", {"component": "hep", "error": "short"}) == 1


async def test_with_an_auth_key_a_garbage_tcp_stream_is_closed_and_dropped(hep_harness: Any) -> None:
    h: Harness = await hep_harness(auth_key="s3cret")
    good = hep_packet(sip_message(call_id="keyed"), auth_key=b"s3cret")
    rest = await _tcp_send(h.port, [good + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"])
    assert rest == b""  # the server closed the connection
    await h.collect(1)
    await _tcp_send(h.port, [hep_packet(sip_message(call_id="keyed-after"), auth_key=b"s3cret")])
    await h.collect(2)
    await h.shutdown()
    await h.drain()
    assert [r.topic for r in h.records] == ["callscope.sip", "callscope.sip"]
    assert h.metric("callscope_hep_packets_total", {"transport": "tcp", "result": "bad_stream"}) == 1
    assert h.metric("callscope_events_dropped_total", {"component": "hep", "reason": "auth"}) == 1


async def test_malformed_packets_are_deadlettered_and_good_ones_all_land(hep_harness: Any) -> None:
    h: Harness = await hep_harness()
    good = [hep_packet(sip_message(call_id=f"g{i}@mix")) for i in range(40)]
    bad = [
        b"\x00\x01",  # 2-byte datagram
        b"HEP3\x00\x05",  # declared length below the header
        b"HEP3\x00\x40" + b"\x00" * 10,  # length past the packet, no payload
        b"NOT HEP AT ALL, JUST TEXT",
        hep_packet(b"this is not SIP"),  # HEP fine, payload not SIP
        hep_packet(b"INVITE sip:x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n"),  # no Call-ID
    ]
    keepalive = hep_packet(b"", keepalive=True)
    mixed: list[bytes] = []
    for i, pkt in enumerate(good):
        mixed.append(pkt)
        if i % 7 == 0 and bad:
            mixed.append(bad.pop())
    mixed.extend(bad)
    mixed.append(keepalive)
    _udp_send(h.port, mixed)
    await h.collect(46)
    await h.shutdown()
    await h.drain()
    topics = Counter(r.topic for r in h.records)
    assert topics == {"callscope.sip": 40, "callscope.deadletter": 6}
    docs = deadletter_docs(h.records)
    assert all(d["component"] == "hep" and d["raw_b64"] for d in docs)
    reasons = Counter(d["reason"] for d in docs)
    assert sum(reasons.values()) == 6
    assert reasons["short"] == 1
    total_dl = sum(h.metric("callscope_deadletters_total", {"component": "hep", "reason": r}) for r in reasons)
    assert total_dl == 6
    assert h.metric("callscope_hep_packets_total", {"transport": "udp", "result": "keepalive"}) == 1


async def test_tcp_framing_several_per_segment_and_split_across_segments(hep_harness: Any) -> None:
    h: Harness = await hep_harness()
    pkts = [hep_packet(sip_message(call_id=f"t{i}@tcp")) for i in range(6)]
    three = pkts[0] + pkts[1] + pkts[2]  # several packets in one segment
    split = pkts[3]
    segments = [three, split[:5], split[5:40], split[40:] + pkts[4][:3], pkts[4][3:] + pkts[5]]
    await _tcp_send(h.port, segments)
    await h.collect(6)
    assert [r.key for r in h.records] == [f"t{i}@tcp".encode() for i in range(6)]  # one key each, in order
    assert h.metric("callscope_hep_packets_total", {"transport": "tcp", "result": "bad_stream"}) == 0


async def test_garbage_tcp_connection_is_counted_deadlettered_and_closed(hep_harness: Any) -> None:
    h: Harness = await hep_harness()
    good = hep_packet(sip_message(call_id="before-garbage"))
    rest = await _tcp_send(h.port, [good + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"])
    assert rest == b""  # the server closed the connection
    await h.collect(2)
    assert Counter(r.topic for r in h.records) == {"callscope.sip": 1, "callscope.deadletter": 1}
    doc = deadletter_docs(h.records)[0]
    assert doc["reason"] == "magic"
    assert orjson.loads(orjson.dumps(doc))["raw_b64"]
    assert h.metric("callscope_hep_packets_total", {"transport": "tcp", "result": "bad_stream"}) == 1
    # The listener still serves other connections.
    await _tcp_send(h.port, [hep_packet(sip_message(call_id="after-garbage"))])
    await h.collect(3)
    assert _keys(h, "callscope.sip") == [b"before-garbage", b"after-garbage"]


async def test_stop_flushes_everything_that_was_received(hep_harness: Any) -> None:
    h: Harness = await hep_harness(batch_max_messages=100_000, batch_max_age_ms=10_000)
    n = 3000
    _udp_send(h.port, [hep_packet(sip_message(call_id=f"f{i}@flush")) for i in range(n)])
    await _tcp_send(h.port, [b"".join(hep_packet(sip_message(call_id=f"ft{i}@flush")) for i in range(200))])
    await h.shutdown()  # batches are far from full and young: only the stop path publishes them
    await h.drain()
    dropped = h.metric("callscope_events_dropped_total", {"component": "hep", "reason": "queue_full"})
    assert len(_keys(h, "callscope.sip")) + dropped == n + 200
    assert dropped == 0
    assert not h.collector.healthcheck()


async def test_queue_full_drops_are_counted_never_silent(hep_harness: Any) -> None:
    gated: list[GatedProducer] = []

    def wrap(inner: Producer) -> Producer:
        gated.append(GatedProducer(inner))
        return gated[0]

    h: Harness = await hep_harness(wrap=wrap, queue_max_packets=1000, batch_max_messages=100)
    n = 5000
    _udp_send(h.port, [hep_packet(sip_message(call_id=f"q{i}")) for i in range(n)])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    # The consumer is stuck on the bus, the queue is full: every packet is either queued or counted.
    while loop.time() < deadline:
        h.collector._publish_udp_drops()
        dropped = h.metric("callscope_events_dropped_total", {"component": "hep", "reason": "queue_full"})
        if dropped + 1000 + 100 >= n:
            break
        await asyncio.sleep(0.01)
    gated[0].gate.set()
    await h.shutdown()
    await h.drain()
    delivered = len(_keys(h, "callscope.sip"))
    dropped = h.metric("callscope_events_dropped_total", {"component": "hep", "reason": "queue_full"})
    assert dropped > 0
    assert delivered + dropped == n
    assert h.metric("callscope_hep_packets_total", {"transport": "udp", "result": "queue_full"}) == dropped


async def test_udp_and_tcp_share_the_os_given_port(hep_harness: Any) -> None:
    h: Harness = await hep_harness()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(("127.0.0.1", h.port))  # TCP answers on the UDP port
    udp_only: Harness = await hep_harness(tcp=False)
    assert udp_only.collector.describe() == f"udp 127.0.0.1:{udp_only.port} (HEP v1/v2/v3)"


async def test_a_taken_port_is_a_startup_error(hep_harness: Any) -> None:
    from schemas.errors import StartupError

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=r"collectors\.hep\.listen"):
            await hep_harness(listen=f"127.0.0.1:{port}")
