"""The AMI peer drops the connection and goes silent while calls stream; every event it delivered is stored once.

A real ``callscope`` pipeline runs in-process (:class:`callscope.runtime.Runtime`, role
``all``: the AMI collector on panoramisk, the in-process bus, the processors, chDB) against
:class:`tests.ami.server.AmiServer`. Rounds of generated call lifecycles (Newchannel,
DialBegin, Newstate, DialEnd, BridgeCreate/Enter/Leave/Destroy, Hangup, all with their
Linkedid; answered, busy and unanswered calls) are sent, each round ended by a fault:
``drop()`` (the socket aborted), ``drop(mid_block=...)`` (half an event, then the close) or
``go_silent()`` (the socket stays open and nothing more comes: the collector's Ping deadline
must notice). Asterisk keeps no backlog, so events are sent only while a session is logged
in, and each round waits until the collector has read what was sent before the fault.

Some calls straddle a fault: their first events before it, the rest after the reconnect
(they end, marked ``incomplete``); others hang up while nobody listens (the server forgets
their channels, so the resync's CoreShowChannels does not list them: docs/asterisk.md says
their legs close as ``lost``).

At the end: every event delivered to a live session is in ``ami_events`` exactly once, the
half-sent block is not; one node-keyed ``CallscopeGap`` marker per reconnect, plus one per
call live at that reconnect; ``asterisk_calls`` has every call ended with the outcome its
events say, and only the calls alive during a gap are ``incomplete``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from callscope.runtime import Runtime
from callscope.settings import StoreConfig, load_settings
from callscope.store.client import Store
from callscope.telemetry import Telemetry
from tests.ami.server import AmiServer
from tests.faults.counts import assert_exactly_once, stored

pytestmark = pytest.mark.slow

NODE = "ast-1"
CALLS_PER_ROUND = 150
STRADDLE_CONTINUE = 3  # calls per round whose second half comes after the reconnect
STRADDLE_VANISH = 2  # calls per round that hang up while the connection is down
FAULTS = ("drop", "drop_mid_block", "silent", "drop", "silent", "drop_mid_block")
PING_INTERVAL, PING_TIMEOUT = 0.3, 0.6
GENERATED = (
    "Newchannel",
    "Newstate",
    "DialBegin",
    "DialEnd",
    "BridgeCreate",
    "BridgeEnter",
    "BridgeLeave",
    "BridgeDestroy",
    "Hangup",
)
#: What asterisk_calls names a call whose caller hung up with this cause (docs/asterisk.md's table).
OUTCOMES = {"answered": "completed", "busy": "busy", "noanswer": "no-answer"}
_STATES = {"Down": "0", "Ring": "4", "Ringing": "5", "Up": "6"}


# ---------------------------------------------------------------------------- generated calls
@dataclass
class Chan:
    name: str
    uniqueid: str
    linkedid: str
    num: str
    exten: str
    state: str = "Down"

    def fields(self, prefix: str = "") -> dict[str, str]:
        return {
            f"{prefix}Channel": self.name,
            f"{prefix}ChannelState": _STATES[self.state],
            f"{prefix}ChannelStateDesc": self.state,
            f"{prefix}CallerIDNum": self.num,
            f"{prefix}CallerIDName": "<unknown>",
            f"{prefix}ConnectedLineNum": "<unknown>",
            f"{prefix}ConnectedLineName": "<unknown>",
            f"{prefix}Language": "en",
            f"{prefix}AccountCode": "",
            f"{prefix}Context": "from-internal",
            f"{prefix}Exten": self.exten,
            f"{prefix}Priority": "1",
            f"{prefix}Uniqueid": self.uniqueid,
            f"{prefix}Linkedid": self.linkedid,
        }


Step = Callable[[], dict[str, str]]  # builds one event when it is sent (its Timestamp is the send time)


@dataclass
class Call:
    """One call between two channels, as a list of event builders; ``split`` is where it can be cut."""

    linkedid: str
    kind: str  # answered, busy, noanswer
    caller: Chan
    callee: Chan
    steps: list[Step]
    split: int  # events before this are sent before a fault (both channels then live)


def _event(name: str, chan: Chan | None, **extra: str) -> dict[str, str]:
    fields = {"Event": name, "Privilege": "call,all", "Timestamp": f"{time.time():.6f}"}
    if chan is not None:
        fields.update(chan.fields())
    fields.update(extra)
    return fields


def make_call(n: int, kind: str, rng: random.Random) -> Call:
    base = 1_764_150_000 + n
    a_num, b_num = str(1000 + n % 300), str(2000 + n % 200)
    a = Chan(f"PJSIP/{a_num}-{2 * n:08x}", f"{base}.{2 * n}", f"{base}.{2 * n}", a_num, b_num)
    b = Chan(f"PJSIP/{b_num}-{2 * n + 1:08x}", f"{base}.{2 * n + 1}", a.linkedid, b_num, "s")
    bridge = f"{rng.getrandbits(64):016x}-{n:08x}"

    def state(chan: Chan, new: str) -> Step:
        def build() -> dict[str, str]:
            chan.state = new
            return _event("Newstate", chan)

        return build

    def bridge_event(name: str, chan: Chan | None, count: int) -> Step:
        return lambda: _event(
            name, chan, BridgeUniqueid=bridge, BridgeType="basic", BridgeTechnology="simple_bridge",
            BridgeCreator="<unknown>", BridgeName="<unknown>", BridgeNumChannels=str(count),
        )  # fmt: skip

    def hangup(chan: Chan, cause: int, text: str) -> Step:
        return lambda: _event("Hangup", chan, Cause=str(cause), **{"Cause-txt": text})

    a.state = "Ring"
    steps: list[Step] = [
        lambda: _event("Newchannel", a),
        lambda: _event("Newchannel", b),
        lambda: _event("DialBegin", a, **b.fields("Dest"), DialString=f"PJSIP/{b_num}"),
        state(b, "Ringing"),
    ]
    if kind == "answered":
        steps += [
            lambda: _event("DialEnd", a, **b.fields("Dest"), DialStatus="ANSWER"),
            state(b, "Up"),
            state(a, "Up"),
            bridge_event("BridgeCreate", None, 0),
            bridge_event("BridgeEnter", a, 1),
            bridge_event("BridgeEnter", b, 2),
        ]
        split = len(steps)
        steps += [
            bridge_event("BridgeLeave", b, 1),
            bridge_event("BridgeLeave", a, 0),
            bridge_event("BridgeDestroy", None, 0),
            hangup(b, 16, "Normal Clearing"),
            hangup(a, 16, "Normal Clearing"),
        ]
    else:
        status, cause, text = ("BUSY", 17, "User busy") if kind == "busy" else ("NOANSWER", 19, "No answer")
        split = len(steps)
        steps += [
            lambda: _event("DialEnd", a, **b.fields("Dest"), DialStatus=status),
            hangup(b, cause, text),
            hangup(a, cause, text),
        ]
    return Call(a.linkedid, kind, a, b, steps, split)


# ---------------------------------------------------------------------------- the run
@dataclass
class Tally:
    delivered: int = 0  # events sent to a logged-in session (and read by the collector before any fault)
    per_call_gaps: int = 0  # CallscopeGap markers expected besides the node's
    incomplete: set[str] = field(default_factory=set)  # linkedids alive during a gap
    vanished: set[str] = field(default_factory=set)  # uniqueids that hung up while nobody listened
    calls: dict[str, Call] = field(default_factory=dict)


def _metric(telemetry: Telemetry, name: str, **labels: str) -> float:
    return telemetry.registry.get_sample_value(name, labels) or 0.0


async def _until(check: Callable[[], Any], within: float, what: Callable[[], str] | str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await asyncio.to_thread(check):
        if loop.time() > deadline:
            raise AssertionError(f"{what() if callable(what) else what}: not within {within}s")
        await asyncio.sleep(0.1)


async def test_ami_drops_and_silences_lose_and_double_nothing(
    store: Store, store_config: StoreConfig, tmp_path: Path
) -> None:
    rng = random.Random(7)
    async with AmiServer() as ami:
        settings = load_settings(
            None,
            {
                "node": "collector1",
                "data_dir": str(tmp_path / "data"),
                "topology": {"nodes": [{"name": NODE, "role": "logic", "address": "127.0.0.1"}]},
                "api": {"listen": "127.0.0.1:0"},
                "store": {"dsn": store_config.dsn, "database": store_config.database, "batch_max_age_secs": 0.2},
                "processors": {
                    "poll_timeout_ms": 50,
                    "asterisk_calls": {"resync_timeout_secs": 2.0, "expire_interval_secs": 0.2},
                },
                "collectors": {
                    "hep": {"enabled": False},
                    "ami": {
                        "batch_max_age_ms": 5,
                        "connections": [
                            {
                                "node": NODE,
                                "port": ami.port,
                                "username": ami.username,
                                "secret": ami.secret,
                                "ping_interval_secs": PING_INTERVAL,
                                "ping_timeout_secs": PING_TIMEOUT,
                                "reconnect_backoff_initial_secs": 0.05,
                                "reconnect_backoff_max_secs": 0.3,
                            }
                        ],
                    },
                },
            },
        )
        telemetry = Telemetry(node="collector1")
        runtime = Runtime(settings, telemetry)
        runtime.open_resources()
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        ready = asyncio.create_task(runtime.ready.wait())
        await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        tally = Tally()
        began = time.monotonic()
        silences: list[float] = []  # seconds from go_silent to the next login
        try:
            logins = 1
            pending: list[Call] = []  # straddlers whose second half is due after the reconnect
            n = 0
            for fault in (*FAULTS, None):
                await ami.wait_logged_in(count=logins, within=30)
                await ami.wait_action("QueueStatus", count=logins, within=30)  # resync done
                published = _metric(telemetry, "callscope_ami_events_total", node=NODE, result="published")
                sent = 0

                async def send(step: Step) -> None:
                    nonlocal sent
                    to = await ami.send(step())
                    assert to == 1, f"{to} live sessions: events must go to exactly one logged-in session"
                    sent += 1

                for call in pending:  # the rest of the calls cut by the last fault
                    for step in call.steps[call.split :]:
                        await send(step)
                pending = []
                calls = []
                for _ in range(CALLS_PER_ROUND):
                    call = make_call(n, rng.choice(("answered", "answered", "busy", "noanswer")), rng)
                    n += 1
                    tally.calls[call.linkedid] = call
                    calls.append(call)
                # Interleaved like a busy node: each call's events in order, calls mixed.
                cursors = {c.linkedid: 0 for c in calls}
                while cursors:
                    linkedid = rng.choice(list(cursors))
                    call = tally.calls[linkedid]
                    await send(call.steps[cursors[linkedid]])
                    cursors[linkedid] += 1
                    if cursors[linkedid] == len(call.steps):
                        del cursors[linkedid]
                if fault is not None:
                    straddle = [make_call(n + i, "answered", rng) for i in range(STRADDLE_CONTINUE + STRADDLE_VANISH)]
                    n += len(straddle)
                    for call in straddle:
                        tally.calls[call.linkedid] = call
                        for step in call.steps[: call.split]:
                            await send(step)
                # Whatever was sent must have been read before the socket is cut (abort discards buffers).
                target = published + sent

                def read_all(target: float = target) -> bool:
                    return _metric(telemetry, "callscope_ami_events_total", node=NODE, result="published") >= target

                await _until(
                    read_all,
                    30,
                    f"collector read {sent} events of round {logins}",
                )
                tally.delivered += sent
                if fault is None:
                    break
                continuing, vanishing = straddle[:STRADDLE_CONTINUE], straddle[STRADDLE_CONTINUE:]
                for call in vanishing:  # hang up while nobody listens: the resync will not list them
                    for chan in (call.caller, call.callee):
                        ami.channels.pop(chan.uniqueid)
                        tally.vanished.add(chan.uniqueid)
                live = {chan["Linkedid"] for chan in ami.channels.values()}
                assert live == {c.linkedid for c in continuing}
                tally.per_call_gaps += len(live)
                tally.incomplete |= {c.linkedid for c in straddle}
                pending = continuing
                if fault == "drop":
                    ami.drop()
                elif fault == "drop_mid_block":
                    ami.drop(mid_block=_event("Hangup", continuing[0].caller, Cause="16", CallscopeHalf="1"))
                else:
                    silent_at = time.monotonic()
                    ami.go_silent()
                    await ami.wait_logged_in(count=logins + 1, within=30)
                    silences.append(ami.login_times[-1] - silent_at)
                logins += 1
            elapsed = time.monotonic() - began

            # Everything delivered stored exactly once; the half block is not an event.
            where = "event IN (" + ", ".join(f"'{e}'" for e in GENERATED) + ")"

            def all_stored() -> bool:
                return stored(store, "ami_events", where).final_count >= tally.delivered

            await _until(
                all_stored,
                60,
                lambda: f"ami_events: {stored(store, 'ami_events', where)} of {tally.delivered} delivered",
            )
            expected_calls = len(tally.calls)

            def calls_settled() -> bool:
                rows = store.query("SELECT count() AS n FROM asterisk_calls FINAL WHERE state = 'ended'")
                legs = store.query(
                    "SELECT count() AS n FROM asterisk_legs FINAL"
                    " WHERE state = 'lost' AND uniqueid IN {u:Array(String)}",
                    {"u": sorted(tally.vanished)},
                )
                return int(rows[0]["n"]) >= expected_calls and int(legs[0]["n"]) >= len(tally.vanished)

            await _until(
                calls_settled,
                60,
                lambda: (
                    "asterisk_calls by state: "
                    + str(store.query("SELECT state, count() AS n FROM asterisk_calls FINAL GROUP BY state"))
                ),
            )
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 60)
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    reconnects = len(FAULTS)
    result = stored(store, "ami_events", where)
    assert_exactly_once(result, tally.delivered)
    half = store.query("SELECT count() AS n FROM ami_events WHERE position(body, 'CallscopeHalf') > 0")
    assert half[0]["n"] == 0, "the half-sent block was stored as an event"
    # One node marker per reconnect, one per call live at it.
    gaps = store.query("SELECT key, count() AS n FROM ami_events FINAL WHERE event = 'CallscopeGap' GROUP BY key")
    by_key = {r["key"]: int(r["n"]) for r in gaps}
    assert by_key.pop(NODE) == reconnects
    assert sum(by_key.values()) == tally.per_call_gaps
    assert _metric(telemetry, "callscope_ami_gaps_total", node=NODE) == reconnects
    reasons = {
        r: _metric(telemetry, "callscope_ami_reconnects_total", node=NODE, reason=r)
        for r in ("connection_lost", "ping_timeout")
    }
    assert reasons == {
        "connection_lost": FAULTS.count("drop") + FAULTS.count("drop_mid_block"),
        "ping_timeout": FAULTS.count("silent"),
    }
    # Calls: every one ended; the outcome its events say; incomplete exactly when alive during a gap.
    rows = store.query("SELECT linkedid, state, outcome, incomplete FROM asterisk_calls FINAL")
    got = {r["linkedid"]: r for r in rows}
    assert set(got) == set(tally.calls)
    wrong = []
    for linkedid, call in tally.calls.items():
        row = got[linkedid]
        vanished = call.caller.uniqueid in tally.vanished
        expected = {
            "state": "ended",
            "incomplete": linkedid in tally.incomplete,
            **({} if vanished else {"outcome": OUTCOMES[call.kind]}),
        }
        if {k: row[k] for k in expected} != expected:
            wrong.append((linkedid, call.kind, vanished, row))
    assert not wrong, f"{len(wrong)} calls wrong, e.g. {wrong[:3]}"
    legs = store.query(
        "SELECT uniqueid, state FROM asterisk_legs FINAL WHERE uniqueid IN {u:Array(String)}",
        {"u": sorted(tally.vanished)},
    )
    assert {r["uniqueid"]: r["state"] for r in legs} == dict.fromkeys(tally.vanished, "lost")
    kinds = Counter(c.kind for c in tally.calls.values())
    print(
        f"\nAMI faults: {len(tally.calls)} calls ({dict(kinds)}), {tally.delivered} events delivered in "
        f"{elapsed:.1f}s ({tally.delivered / elapsed:.0f}/s), {reconnects} reconnects ({dict(Counter(FAULTS))}), "
        f"silence noticed after {[round(s, 2) for s in silences]}s, redelivered {result.redelivered}, "
        f"gap markers {reconnects} + {tally.per_call_gaps}"
    )
    for noticed in silences:  # ping interval + timeout, plus the backoff and a new login, with slack for load
        assert noticed < PING_INTERVAL + PING_TIMEOUT + 5
