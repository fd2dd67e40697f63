"""A HEP flood with every kind of malformed packet mixed in: every good packet lands, every bad one is counted.

The embedded pipeline runs in the test's process with a HEP auth key (tests/faults/embedded.py);
the flood comes from a process of its own (tests/faults/flood_sender.py): UDP as fast as the
collector's receive thread takes it (the sender watches the socket's receive queue, so the
kernel never drops), one HEP3 stream over TCP carrying a share of the good packets and the bad
ones whose framing is intact, a few TCP connections that do not speak HEP3 at all, and a few
that end inside a packet after some whole ones.

The proof: sip_messages, rtcp and logs hold every good packet exactly once; the deadletters
table holds every dead-lettered packet once (authenticated packets whose payload does not
decode), and its count per reason equals what was injected per reason, as does
``callscope_deadletters_total``; wrong and missing auth keys, packets the HEP decoder refuses
(no key can be read from them) and the streams that are not HEP3 are counted as dropped
(``reason="auth"``, the decode errors in ``callscope_errors_total``), as
``collectors.hep.auth_key`` documents, and stored nowhere;
the kernel dropped nothing and the collector's queue overflowed never; /healthz answered
throughout.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from callscope.demo import generate
from callscope.settings import StoreConfig
from collectors.hep.decode import decode, encode_hep3
from tests.faults.counts import assert_exactly_once, stored
from tests.faults.embedded import embedded, settings_for
from tests.faults.flood_sender import udp_socket_stats, write_records
from tests.faults.malformed import bad_packets, expected, garbage_stream, make

pytestmark = pytest.mark.slow

AUTH_KEY = "flood-test-key-7"
CALLS = 1600  # ~25k good packets
BAD_PER_KIND = 40  # 18 kinds: 720 bad packets
GARBAGE_STREAMS = 5  # TCP connections that do not speak HEP3: closed, counted (with the auth key: not stored)
CUT_STREAMS = 5  # TCP connections that end inside a packet, after a few whole ones
TCP_SHARE = 0.2  # of the good packets, sent in the TCP stream
REPO = Path(__file__).resolve().parents[2]


def _with_key(packets: list[bytes], key: bytes) -> list[bytes]:
    """The demo's packets as an agent configured with ``key`` sends them (chunk 0x000e)."""
    return [encode_hep3(replace(decode(p), auth_key=key, raw=b"")) for p in packets]


async def test_flood_with_malformed_packets_keeps_every_good_one_and_counts_every_bad_one(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    started = time.monotonic()
    key = AUTH_KEY.encode()
    traffic = generate(CALLS, seed=23, start_us=time.time_ns() // 1000)
    good = _with_key(traffic.packets, key)
    assert len(set(good)) == len(good)
    bads = bad_packets(BAD_PER_KIND, key)
    dead_want, dropped_want, unread_want = expected(bads, GARBAGE_STREAMS, auth_key=True)

    # Split and mix: a share of the good packets and the framed bad ones (every other) over TCP,
    # everything else over UDP, bad packets at random places among the good ones; then TCP
    # connections of their own: garbage, and a few good packets followed by a cut one.
    rng = random.Random(5)
    udp: list[bytes] = []
    tcp: list[bytes] = []
    for pkt in good:
        (tcp if rng.random() < TCP_SHARE else udp).append(pkt)
    streams = [garbage_stream(i) for i in range(GARBAGE_STREAMS)]
    in_streams = 0
    for i in range(CUT_STREAMS):
        whole = [tcp.pop() for _ in range(3)]
        streams.append(b"".join(whole) + make("truncated_hep", 1_000_000 + i, key))
        in_streams += len(whole) + 1
    # A packet cut inside its payload chunk: the decoder refuses it ("chunk"), no key can be read.
    dropped_want["auth"] += CUT_STREAMS
    unread_want["chunk"] += CUT_STREAMS
    for i, bad in enumerate(bads):
        target = tcp if bad.expect.framed and i % 2 else udp
        target.insert(rng.randrange(len(target) + 1), bad.data)
    files = [tmp_path / "udp.bin", tmp_path / "tcp.bin", tmp_path / "streams.bin"]
    for path, records in zip(files, (udp, tcp, streams), strict=True):
        write_records(path, records)

    settings = settings_for(tmp_path, store_config, collectors={"hep": {"auth_key": AUTH_KEY}})
    async with embedded(settings) as env:
        sender = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.faults.flood_sender",
            str(env.hep_port),
            *map(str, files),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO,  # where ``-m tests.faults.flood_sender`` resolves
        )
        flood_started = time.monotonic()
        health: list[int] = []
        communicate = asyncio.create_task(sender.communicate())
        while not communicate.done():  # the API keeps answering while the flood is on
            health.append(await env.healthz())
            await asyncio.wait([communicate], timeout=0.5)
        out, err = communicate.result()
        assert sender.returncode == 0, err.decode()[-2000:]
        figures = orjson.loads(out)

        _, kernel_drops = udp_socket_stats(env.hep_port)
        assert kernel_drops == 0, f"the kernel dropped {kernel_drops} datagrams ({figures})"
        await env.drained(len(udp) + len(tcp) + in_streams + GARBAGE_STREAMS, 100)
        drained_secs = time.monotonic() - flood_started

        store = env.store
        # Every good packet, exactly once.
        assert_exactly_once(stored(store, "sip_messages"), traffic.kinds["sip"])
        assert_exactly_once(stored(store, "rtcp"), traffic.kinds["rtcp"])
        assert_exactly_once(stored(store, "logs"), traffic.kinds["log"])
        # Every dead-lettered one, once, under the reason it was injected for.
        assert_exactly_once(stored(store, "deadletters", "component = 'hep'"), sum(dead_want.values()))
        rows = store.query("SELECT reason, count() AS n FROM deadletters FINAL WHERE component = 'hep' GROUP BY reason")
        assert Counter({r["reason"]: int(r["n"]) for r in rows}) == dead_want
        assert stored(store, "deadletters", "component != 'hep'").raw_count == 0  # no envelope was refused
        # ... and counted by reason in the metrics; auth failures counted as dropped, stored nowhere.
        assert env.by_label("callscope_deadletters_total", "reason", component="hep") == dead_want
        assert env.by_label("callscope_events_dropped_total", "reason", component="hep") == dropped_want
        assert env.metric("callscope_hep_packets_total", transport="tcp", result="bad_stream") == GARBAGE_STREAMS
        invalid = sum(env.metric("callscope_hep_packets_total", transport=t, result="invalid") for t in ("udp", "tcp"))
        assert invalid == sum(dead_want.values())
        errors = env.by_label("callscope_errors_total", "error", component="hep")
        want_errors = unread_want + dead_want  # the dropped ones' decode errors, and the dead letters'
        assert {r: errors.get(r, 0.0) for r in want_errors} == want_errors
        flood_ids = store.query("SELECT count() AS n FROM sip_messages WHERE call_id LIKE 'flood-%'")
        assert flood_ids[0]["n"] == 0  # no bad or unauthenticated SIP slipped into the events

        # The process kept running and answering.
        assert not env.task.done()
        assert health
        assert set(health) == {200}
        assert await env.healthz() == 200

    udp_rate = figures["udp_sent"] / figures["udp_secs"]
    tcp_rate = figures["tcp_sent"] / figures["tcp_secs"]
    total = len(udp) + len(tcp) + in_streams
    print(
        f"\nHEP flood: {total} packets ({len(good)} good, {len(bads)} bad in {len({b.kind for b in bads})} kinds,"
        f" {GARBAGE_STREAMS} garbage and {CUT_STREAMS} cut TCP streams);"
        f" UDP {figures['udp_sent']} at {udp_rate:,.0f} pkt/s"
        f" (throttled {figures['udp_throttled']} times, receive queue peak {figures['udp_max_rx_queue']} B"
        f" of {figures['udp_limit']} B allowed), TCP {figures['tcp_sent']} at {tcp_rate:,.0f} pkt/s;"
        f" stored and drained {total / drained_secs:,.0f} pkt/s end to end ({drained_secs:.1f} s);"
        f" test took {time.monotonic() - started:.1f} s"
    )
