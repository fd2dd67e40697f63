"""Proof on real recordings, the whole path: each cacofonisk AMI recording is played by a TCP server that speaks
the AMI wire protocol (tests/ami/server.py) to the real panoramisk client inside the AMI collector, whose
envelopes go over the in-process bus to the asterisk_calls processor and into the embedded ClickHouse engine.
What the tables then hold is compared with the outcome MANIFEST.md states for the recording (as the pure-core
tests do on the same recordings, tests/asterisk_calls/test_scenarios.py).

The recordings carry no timestamps, so the events are stamped when the collector reads them: durations are
milliseconds here, what is compared is who talked to whom, how each call ended and which transfers happened.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from callscope.store.client import Store
from collectors.ami.collector import AmiCollector
from processors.asterisk_calls.app import AsteriskCallsProcessor
from processors.asterisk_calls.config import AsteriskCallsConfig
from tests.ami.harness import harness_settings
from tests.ami.server import AmiServer, load_recording
from tests.asterisk_calls.corpus import CACOFONISK, Observed, all_recordings, assert_matches_manifest, corpus_path
from tests.call_legs.conftest import Env, drained, running

pytestmark = pytest.mark.slow  # about 15 s here: 50 recordings over real sockets

NODE = "ast1"
FAST = AsteriskCallsConfig(expire_interval_secs=0.05)


@contextlib.asynccontextmanager
async def collecting(env: Env, ami: AmiServer) -> AsyncIterator[AmiCollector]:
    """The AMI collector (real panoramisk) connected to ``ami``, publishing on the test's bus."""
    settings = harness_settings(ami, NODE)
    collector = AmiCollector(settings.collectors.ami, settings, env.bus.producer(), env.telemetry)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    try:
        await ami.wait_logged_in()
        yield collector
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def wire_order(events: list[dict[str, str]]) -> list[dict[str, str]]:
    """``Event`` first, as Asterisk writes it: the JSON recordings keep their keys sorted alphabetically,
    and a block that does not start with ``Event:`` is not an event on the wire."""
    return [{"Event": e["Event"], **{k: v for k, v in e.items() if k != "Event"}} for e in events]


def stored(store: Store, uniqueids: list[str]) -> Observed:
    legs = store.query(
        "SELECT uniqueid, tech, dial_status, state, outcome, linkedids FROM asterisk_legs FINAL"
        " WHERE uniqueid IN {ids:Array(String)}",
        {"ids": uniqueids},
    )
    linkedids = sorted({lid for leg in legs for lid in leg["linkedids"]})
    calls = store.query(
        "SELECT linkedid, state, outcome, started_at, connected_at, ended_at FROM asterisk_calls FINAL"
        " WHERE linkedid IN {ids:Array(String)}",
        {"ids": linkedids},
    )
    kinds = store.query(
        "SELECT DISTINCT kind FROM asterisk_transfers FINAL WHERE linkedid IN {ids:Array(String)}", {"ids": linkedids}
    )
    return Observed(calls=calls, legs=legs, kinds={r["kind"] for r in kinds})


def settled(seen: Observed, channels: int) -> bool:
    return (
        len(seen.legs) == channels
        and all(leg["state"] == "hungup" for leg in seen.legs)
        and bool(seen.calls)
        and all(call["state"] != "live" for call in seen.calls)
    )


async def test_every_cacofonisk_recording_through_panoramisk(env: Env) -> None:
    names = all_recordings()
    failures: dict[str, str] = {}
    async with (
        AmiServer() as ami,
        collecting(env, ami),
        running(env, AsteriskCallsProcessor, asterisk=FAST) as processor,
    ):
        for name in names:
            events = wire_order(load_recording(corpus_path(f"{CACOFONISK}/{name}")))
            uniqueids = sorted({e["Uniqueid"] for e in events if e.get("Event") == "Newchannel"})
            await ami.replay(events)
            seen = stored(env.store, uniqueids)
            async with asyncio.timeout(30):
                while not settled(seen, len(uniqueids)):
                    await asyncio.sleep(0.05)
                    seen = stored(env.store, uniqueids)
            await drained(env, processor)  # committed: every table of the batch is written
            seen = stored(env.store, uniqueids)
            try:
                assert_matches_manifest(name, seen)
            except AssertionError as exc:
                failures[name] = f"{exc!r} in {seen}"
    assert not failures, (sorted(failures), failures)
    problems = env.telemetry.registry.get_sample_value(
        "callscope_errors_total", {"component": "asterisk_calls", "error": "late_event"}
    )
    assert problems is None
    assert len(names) >= 50


async def test_connection_lost_mid_call(env: Env) -> None:
    """The AMI connection drops while a call is up, and the callee's phone hangs up while nobody listens.

    The collector reconnects, resynchronises (CoreShowChannels lists the channels still up) and emits
    gap markers; the processor flags the call's channels incomplete, closes the one the resync no longer
    lists as 'lost', and the rest of the call (sent after the reconnect) still closes it.
    """
    events = wire_order(load_recording(corpus_path(f"{CACOFONISK}/simple/ab_success_a_hangup.json")))
    up = next(i for i, e in enumerate(events) if e["Event"] == "BridgeLeave")  # the call is up by then
    gone = "195176c06ab8-1529936170.50"  # the callee's SIP channel
    uniqueids = sorted({e["Uniqueid"] for e in events if e.get("Event") == "Newchannel"})
    config = AsteriskCallsConfig(expire_interval_secs=0.05, resync_timeout_secs=0.5)
    async with (
        AmiServer() as ami,
        collecting(env, ami),
        running(env, AsteriskCallsProcessor, asterisk=config) as processor,
    ):
        await ami.replay(events[:up])
        async with asyncio.timeout(30):
            while len(stored(env.store, uniqueids).legs) < len(uniqueids):
                await asyncio.sleep(0.05)
        ami.drop()
        ami.channels.pop(gone)  # it hangs up while the collector is away: no event will say so
        await ami.wait_logged_in(count=2)
        await ami.wait_action("CoreShowChannels", count=2)
        await ami.replay([e for e in events[up:] if e.get("Uniqueid") != gone])
        seen = stored(env.store, uniqueids)
        async with asyncio.timeout(30):
            while not (
                all(leg["state"] in ("hungup", "lost") for leg in seen.legs)
                and any(leg["state"] == "lost" for leg in seen.legs)
                and all(call["state"] == "ended" for call in seen.calls)
            ):
                await asyncio.sleep(0.05)
                seen = stored(env.store, uniqueids)
        await drained(env, processor)
    legs = {r["uniqueid"]: r for r in env.store.query("SELECT * FROM asterisk_legs FINAL")}
    assert legs[gone]["state"] == "lost"
    assert {u: r["state"] for u, r in legs.items() if u != gone} == dict.fromkeys(set(uniqueids) - {gone}, "hungup")
    assert {u: bool(r["incomplete"]) for u, r in legs.items()} == dict.fromkeys(uniqueids, True)
    (call,) = env.store.query("SELECT * FROM asterisk_calls FINAL")
    assert (call["state"], call["outcome"], call["incomplete"]) == ("ended", "completed", True)
