"""OptionsCollector on the in-process bus against real responders: envelopes, schedule, bounds, stop."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from callscope.settings import load_settings
from collectors.options.collector import OptionsCollector
from collectors.options.config import OptionsConfig
from collectors.registry import build_collectors
from schemas.envelope import OptionsEnvelope, validate
from schemas.errors import ConfigError, StartupError
from tests.options.conftest import FAST, BusKit, closed_port, settings_with
from tests.options.responder import Behaviour, SipResponder

Started = tuple[OptionsCollector, asyncio.Event, asyncio.Task[None]]
_RUNNING: list[Started] = []


async def _start(kit: BusKit, options: OptionsConfig) -> Started:
    collector = OptionsCollector(options, settings_with(options), kit.bus.producer(), kit.telemetry)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    waiter = asyncio.create_task(collector.ready.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    _RUNNING.append((collector, stop, task))
    return collector, stop, task


@pytest.fixture(autouse=True)
async def _stop_collectors(bus_kit: BusKit) -> AsyncIterator[None]:
    """Collectors a failed test left running are stopped before the bus goes away."""
    yield
    while _RUNNING:
        _, stop, task = _RUNNING.pop()
        stop.set()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)


def _metric(kit: BusKit, name: str, labels: dict[str, str] | None = None) -> float:
    return kit.telemetry.registry.get_sample_value(name, labels or {}) or 0.0


async def test_results_are_published_as_options_envelopes(
    bus_kit: BusKit, make_responder: Callable[..., SipResponder]
) -> None:
    ok, not_found = make_responder(), make_responder()
    not_found.behaviour = Behaviour(code=404, reason="Not Found")
    options = OptionsConfig.model_validate(
        {
            **FAST,
            "interval_secs": 0.5,
            "jitter": 0,
            "targets": [
                {"name": "carrier-a", "uri": f"sip:127.0.0.1:{ok.udp_port}"},
                {"name": "pbx-1", "uri": f"127.0.0.1:{ok.tcp_port}", "transport": "tcp", "kind": "node"},
                {"name": "desk-42", "uri": f"sip:42@127.0.0.1:{not_found.udp_port}", "kind": "subscriber"},
                {"name": "desk-43", "uri": f"sip:43@127.0.0.1:{not_found.udp_port}", "expect_codes": [200, 404]},
                {"name": "gone", "uri": f"sip:127.0.0.1:{closed_port()};transport=tcp"},
            ],
        }
    )
    collector, stop, task = await _start(bus_kit, options)
    assert collector.describe() == "5 targets (2 tcp, 3 udp), every 0.5s, max 1000 in flight"
    assert collector.healthcheck()
    assert _metric(bus_kit, "callscope_component_up", {"component": "options"}) == 1
    await bus_kit.collect(10)  # two rounds
    stop.set()
    await asyncio.wait_for(task, 10)
    await bus_kit.drain()
    assert not collector.healthcheck()
    assert _metric(bus_kit, "callscope_component_up", {"component": "options"}) == 0
    by_target: dict[str, list[OptionsEnvelope]] = defaultdict(list)
    for record in bus_kit.records:
        assert record.topic == "callscope.options"
        env = validate(orjson.loads(record.value))
        assert isinstance(env, OptionsEnvelope)
        assert record.key == env.key.encode() == env.body.target.encode()
        assert (env.node, env.role) == ("vantage-1", "sbc")
        assert env.ts <= env.received
        by_target[env.body.target].append(env)
    assert set(by_target) == {"carrier-a", "pbx-1", "desk-42", "desk-43", "gone"}
    assert all(len(envs) >= 2 for envs in by_target.values())
    last = {name: envs[-1].body for name, envs in by_target.items()}
    assert (last["carrier-a"].error, last["carrier-a"].status, last["carrier-a"].transport) == (None, 200, "udp")
    assert last["carrier-a"].server == "test-responder/1.0"
    assert last["carrier-a"].rtt_ms is not None
    assert (last["pbx-1"].error, last["pbx-1"].target_kind, last["pbx-1"].transport) == (None, "node", "tcp")
    assert (last["desk-42"].error, last["desk-42"].status, last["desk-42"].target_kind) == (
        "unexpected_code",
        404,
        "subscriber",
    )
    assert (last["desk-43"].error, last["desk-43"].status) == (None, 404)
    assert (last["gone"].error, last["gone"].status, last["gone"].rtt_ms) == ("refused", None, None)
    # one probe per target per interval: successive probes of a target are 0.5 s apart
    gaps = [(b.ts - a.ts).total_seconds() for a, b in zip(by_target["carrier-a"], by_target["carrier-a"][1:])]
    assert all(0.3 < g < 0.7 for g in gaps)
    sent = _metric(bus_kit, "callscope_events_sent_total", {"component": "options", "kind": "options"})
    assert sent == len(bus_kit.records)
    assert _metric(bus_kit, "callscope_last_event_timestamp_seconds", {"component": "options"}) > time.time() - 60


async def test_jitter_spreads_first_probes_by_the_name_hash(bus_kit: BusKit, responder: SipResponder) -> None:
    targets = [{"name": f"t{i}", "uri": f"sip:t{i}@127.0.0.1:{responder.udp_port}"} for i in range(20)]
    options = OptionsConfig.model_validate({**FAST, "interval_secs": 4.0, "jitter": 0.5, "targets": targets})
    collector, stop, task = await _start(bus_kit, options)
    await bus_kit.collect(20, within=10)
    stop.set()
    await asyncio.wait_for(task, 10)
    first: dict[str, float] = {}
    for rec in responder.requests:
        user = rec.request_line.split("sip:", 1)[1].split("@", 1)[0]
        first.setdefault(user, rec.at)
    assert len(first) == 20
    offsets = dict(zip((f"t{i}" for i in range(20)), collector.offsets, strict=True))
    assert max(offsets.values()) - min(offsets.values()) > 1.0  # spread over the 2 s window
    base = min(first.values()) - min(offsets.values())
    for name, at in first.items():
        assert abs((at - base) - offsets[name]) < 0.2, name


async def test_concurrency_is_bounded_and_busy_targets_skip_their_slot(
    bus_kit: BusKit, responder: SipResponder
) -> None:
    responder.behaviour = Behaviour(mode="silent")
    targets = [{"name": f"s{i}", "uri": f"sip:s{i}@127.0.0.1:{responder.udp_port}"} for i in range(3)]
    options = OptionsConfig.model_validate(
        {**FAST, "interval_secs": 0.3, "timeout_secs": 0.3, "jitter": 0, "max_concurrency": 1, "targets": targets}
    )
    _, stop, task = await _start(bus_kit, options)
    await bus_kit.collect(6, within=10)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert _metric(bus_kit, "callscope_options_skipped_total") > 0
    spans = sorted((min(c.at for c in copies), max(c.at for c in copies)) for copies in _by_call_id(responder).values())
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end  # one transaction at a time
    assert _metric(bus_kit, "callscope_options_inflight") == 0


def _by_call_id(responder: SipResponder) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for rec in responder.requests:
        out[rec.call_id].append(rec)
    return out


async def test_stop_cancels_probes_in_flight_and_flushes_what_was_produced(
    bus_kit: BusKit, make_responder: Callable[..., SipResponder]
) -> None:
    fast, mute = make_responder(), make_responder()
    mute.behaviour = Behaviour(mode="silent")
    options = OptionsConfig.model_validate(
        {
            **FAST,
            "interval_secs": 60,
            "timeout_secs": 30,
            "jitter": 0,
            "targets": [
                {"name": "answers", "uri": f"sip:127.0.0.1:{fast.udp_port}"},
                {"name": "silent", "uri": f"sip:127.0.0.1:{mute.udp_port}"},
            ],
        }
    )
    _, stop, task = await _start(bus_kit, options)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (not fast.requests or not mute.requests) and loop.time() < deadline:
        await asyncio.sleep(0.01)
    assert _metric(bus_kit, "callscope_options_inflight") >= 1
    deadline = loop.time() + 10
    while _metric(bus_kit, "callscope_events_received_total", {"component": "options", "kind": "options"}) < 1:
        assert loop.time() < deadline
        await asyncio.sleep(0.01)
    stopped_at = loop.time()
    stop.set()
    await asyncio.wait_for(task, 10)
    assert loop.time() - stopped_at < 1.0  # not the 30 s timeout
    await bus_kit.drain()
    assert [orjson.loads(r.value)["body"]["target"] for r in bus_kit.records] == ["answers"]
    assert _metric(bus_kit, "callscope_options_inflight") == 0


async def test_unusable_bind_address_fails_the_start(bus_kit: BusKit) -> None:
    options = OptionsConfig.model_validate(
        {"bind": "192.0.2.1", "targets": [{"name": "a", "uri": "sip:127.0.0.1:5060"}]}
    )
    with pytest.raises(StartupError, match=r"collectors\.options\.bind"):
        await _start(bus_kit, options)


async def test_unreadable_ca_file_fails_the_start(bus_kit: BusKit, tmp_path: Path) -> None:
    options = OptionsConfig.model_validate(
        {"tls_ca_file": str(tmp_path / "missing.pem"), "targets": [{"name": "a", "uri": "sips:127.0.0.1"}]}
    )
    with pytest.raises(ConfigError, match=r"collectors\.options\.tls_ca_file"):
        await _start(bus_kit, options)


async def test_registry_builds_the_collector_only_with_targets(bus_kit: BusKit) -> None:
    producer = bus_kit.bus.producer()
    none = load_settings(None, {})
    assert [c.name for c in build_collectors(none, producer, bus_kit.telemetry) if c.name == "options"] == []
    some = load_settings(None, {"collectors": {"options": {"targets": [{"name": "a", "uri": "sip:192.0.2.1"}]}}})
    assert [c.name for c in build_collectors(some, producer, bus_kit.telemetry)].count("options") == 1
    off = load_settings(
        None, {"collectors": {"options": {"enabled": False, "targets": [{"name": "a", "uri": "sip:192.0.2.1"}]}}}
    )
    assert [c.name for c in build_collectors(off, producer, bus_kit.telemetry)].count("options") == 0
