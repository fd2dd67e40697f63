"""The health shell on the in-process bus and the embedded engine: rows, metrics, restart, delivery, passive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from callscope.bus.memory import MemoryBus
from callscope.settings import MemoryBusConfig, NodeConfig, ProcessorConfig, StoreConfig, TopologyConfig
from callscope.store.client import Store
from callscope.store.sink import FaultInjector
from callscope.telemetry import Telemetry
from collectors.options.config import OptionsConfig, OptionsTarget
from processors.events.app import EventsProcessor
from processors.health.app import HealthProcessor
from processors.health.config import HealthConfig
from schemas.envelope import encode
from schemas.tables import COLUMNS
from schemas.topics import ALL_TOPICS
from tests.health.gen import at, options_env, sip_options

OPTIONS = OptionsConfig(
    interval_secs=30,
    timeout_secs=5,
    targets=(
        OptionsTarget(name="carrier-a", uri="sip:192.0.2.10:5060"),
        OptionsTarget(name="carrier-b", uri="sip:192.0.2.11:5060"),
    ),
)
TOPOLOGY = TopologyConfig(nodes=(NodeConfig(name="kam1", role="registrar", address="10.0.0.2:5060"),))


@dataclass
class Env:
    bus: MemoryBus
    store: Store
    config: StoreConfig
    telemetry: Telemetry
    now: list[datetime] = field(default_factory=lambda: [at(100)])

    def wall(self) -> datetime:
        return self.now[0]

    def sample(self, name: str, **labels: str) -> float | None:
        return self.telemetry.registry.get_sample_value(name, labels)


@pytest.fixture
async def env(migrated_store: Store, store_config: StoreConfig) -> AsyncIterator[Env]:
    telemetry = Telemetry()
    bus = MemoryBus(MemoryBusConfig(partitions=3), telemetry)
    await bus.start()
    await bus.ensure_topics(ALL_TOPICS)
    config = store_config.model_copy(update={"batch_max_age_secs": 0.05})
    yield Env(bus, migrated_store, config, telemetry)
    await bus.stop()


@contextlib.asynccontextmanager
async def running(e: Env, *, telemetry: Telemetry | None = None, **health: Any) -> AsyncIterator[HealthProcessor]:
    processor = HealthProcessor(
        ProcessorConfig(poll_timeout_ms=20),
        e.config,
        e.bus,
        e.store,
        telemetry or e.telemetry,
        node="t",
        health=HealthConfig(**health),
        options=OPTIONS,
        topology=TOPOLOGY,
        wall=e.wall,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(processor.run(stop))
    await asyncio.wait_for(processor.ready.wait(), 10)
    try:
        yield processor
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@contextlib.asynccontextmanager
async def events_processor(e: Env) -> AsyncIterator[EventsProcessor]:
    processor = EventsProcessor(ProcessorConfig(poll_timeout_ms=20), e.config, e.bus, e.store, e.telemetry, node="t")
    stop = asyncio.Event()
    task = asyncio.create_task(processor.run(stop))
    await asyncio.wait_for(processor.ready.wait(), 10)
    try:
        yield processor
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def publish(e: Env, envs: list[Any]) -> None:
    producer = e.bus.producer()
    for m in envs:
        await producer.send(f"callscope.{m.kind}", encode(m), m.key.encode())
    await producer.flush()
    await producer.close()


async def drained(e: Env, p: HealthProcessor) -> None:
    async with asyncio.timeout(30):
        while sum((await e.bus.lag(p.group, p.topics)).values()):
            await asyncio.sleep(0.02)


async def until(check: Callable[[], bool | Awaitable[bool]], what: str, secs: float = 30) -> None:
    async with asyncio.timeout(secs):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)


def transitions(store: Store, **where: str) -> list[tuple[str, str, str, str, str]]:
    cond = " AND ".join(f"{k} = {{{k}:String}}" for k in where) or "1"
    sql = (
        "SELECT scope, node, target, from_state, to_state FROM health_transitions FINAL "
        f"WHERE {cond} ORDER BY at, scope"
    )
    return [(r["scope"], r["node"], r["target"], r["from_state"], r["to_state"]) for r in store.query(sql, where)]


def count(store: Store, table: str) -> int:
    return int(store.query(f"SELECT count() AS n FROM {table} FINAL")[0]["n"])


def test_transition_columns_match_the_migrated_table(migrated_store: Store) -> None:
    rows = migrated_store.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = 'health_transitions'"
        " AND default_kind = '' ORDER BY position",
        {"db": migrated_store.database},
    )
    assert tuple(r["name"] for r in rows) == COLUMNS["health_transitions"]


async def test_results_become_stored_transitions_and_metrics(env: Env) -> None:
    env.now[0] = at(90.5)
    async with running(env) as p:
        await publish(
            env,
            [
                options_env(0),
                options_env(30, error="timeout"),
                options_env(60, error="refused"),
                options_env(90, error="timeout"),
                options_env(0, target="carrier-b", rtt=4.0),
                options_env(0, target="carrier-b", node="sbc2", rtt=900.0),
            ],
        )
        await drained(env, p)
        await until(lambda: count(env.store, "health_transitions") == 8, "rows stored")
        assert env.sample("callscope_options_up", node="sbc1", target="carrier-a", kind="trunk") == 0
        assert env.sample("callscope_options_up", node="sbc1", target="carrier-b", kind="trunk") == 1
        assert env.sample("callscope_options_probes_total", node="sbc1", target="carrier-a", result="timeout") == 2
        assert env.sample("callscope_options_probes_total", node="sbc1", target="carrier-a", result="refused") == 1
        assert env.sample("callscope_options_probes_total", node="sbc1", target="carrier-a", result="ok") == 1
        rtt = {"node": "sbc2", "target": "carrier-b", "kind": "trunk"}
        assert env.sample("callscope_options_rtt_seconds_count", **rtt) == 1
        assert env.sample("callscope_options_rtt_seconds_sum", **rtt) == pytest.approx(0.9)
        assert env.sample("callscope_options_rtt_seconds_bucket", **rtt, le="0.5") == 0
        assert env.sample("callscope_options_rtt_seconds_bucket", **rtt, le="1.0") == 1
        states = {
            s: env.sample("callscope_target_state", target="carrier-a", kind="trunk", state=s)
            for s in ("up", "degraded", "partial", "down", "unknown")
        }
        assert states == {"up": 0, "degraded": 0, "partial": 0, "down": 1, "unknown": 0}
        assert env.sample("callscope_target_state", target="carrier-b", kind="trunk", state="degraded") == 1
        assert env.sample("callscope_target_flapping", target="carrier-a", kind="trunk") == 0
        labels = {"target": "carrier-a", "kind": "trunk"}
        assert env.sample("callscope_health_transitions_total", **labels, scope="node", to="down") == 1
        assert env.sample("callscope_health_transitions_total", **labels, scope="target", to="down") == 1

        # Staleness runs on the shell's clock: 95 s after the last result the series goes.
        env.now[0] = at(90 + 96)
        await until(
            lambda: env.sample("callscope_options_up", node="sbc1", target="carrier-a", kind="trunk") is None,
            "up series removed",
        )
        assert env.sample("callscope_target_state", target="carrier-a", kind="trunk", state="unknown") == 1
        await until(lambda: count(env.store, "health_transitions") == 8 + 5, "stale rows stored")
    assert transitions(env.store, target="carrier-a") == [
        ("node", "sbc1", "carrier-a", "unknown", "up"),
        ("target", "", "carrier-a", "unknown", "up"),
        ("node", "sbc1", "carrier-a", "up", "down"),
        ("target", "", "carrier-a", "up", "down"),
        ("node", "sbc1", "carrier-a", "down", "unknown"),
        ("target", "", "carrier-a", "down", "unknown"),
    ]
    row = env.store.query(
        "SELECT reason, error, status, rtt_ms, at FROM health_transitions FINAL"
        " WHERE target = 'carrier-a' AND scope = 'node' AND to_state = 'down'"
    )[0]
    assert row == {
        "reason": "3 consecutive failures (refused x1, timeout x2)",
        "error": "timeout",
        "status": 0,
        "rtt_ms": None,
        "at": at(90),
    }


async def test_restart_reloads_state_without_spurious_transitions(env: Env) -> None:
    first = [
        e for t in (0, 30, 60) for e in (options_env(t, node="sbc1", error="timeout"), options_env(t, node="sbc2"))
    ]
    async with running(env) as p, events_processor(env):  # the last probes are read back from options_probes
        await publish(env, first)
        await drained(env, p)
        await until(lambda: count(env.store, "health_transitions") == 4, "first rows")
        await until(lambda: count(env.store, "options_probes") == 6, "probes stored")
    assert transitions(env.store, scope="target") == [
        ("target", "", "carrier-a", "unknown", "up"),
        ("target", "", "carrier-a", "up", "partial"),
    ]

    fresh = Telemetry()
    async with running(env, telemetry=fresh) as p:
        # Before any new result: the metrics say what the store says.
        assert fresh.registry.get_sample_value(
            "callscope_target_state", {"target": "carrier-a", "kind": "trunk", "state": "partial"}
        )
        up = {"target": "carrier-a", "kind": "trunk"}
        assert fresh.registry.get_sample_value("callscope_options_up", {"node": "sbc1", **up}) == 0
        assert fresh.registry.get_sample_value("callscope_options_up", {"node": "sbc2", **up}) == 1
        # The same situation goes on: nothing to write.
        await publish(env, [options_env(90, node="sbc1", error="timeout"), options_env(90, node="sbc2")])
        await drained(env, p)
        assert count(env.store, "health_transitions") == 4
        assert (
            fresh.registry.get_sample_value("callscope_health_transitions_total", {**up, "scope": "node", "to": "down"})
            is None
        )
        # sbc1 answers again: after two answers it is up, and so is the target.
        await publish(env, [options_env(120, node="sbc1"), options_env(150, node="sbc1")])
        await drained(env, p)
        await until(lambda: count(env.store, "health_transitions") == 6, "recovery rows")
    assert transitions(env.store, scope="target")[-1] == ("target", "", "carrier-a", "partial", "up")


async def test_offsets_are_committed_only_after_the_rows_are_stored(env: Env) -> None:
    faults = FaultInjector()
    env.store.fail_injector = faults
    faults.fail(None)
    async with running(env) as p:
        await publish(env, [options_env(t, error="timeout") for t in (0, 30, 60)])
        await until(lambda: faults.failures >= 2, "inserts failing")
        # The metrics follow at once; the offsets wait for the store.
        assert env.sample("callscope_target_state", target="carrier-a", kind="trunk", state="down") == 1
        assert sum((await env.bus.lag(p.group, ["callscope.options"])).values()) == 3
        faults.recover()
        await drained(env, p)
    assert count(env.store, "health_transitions") == 2
    assert env.store.query("SELECT uniqExact(id) AS n FROM health_transitions")[0]["n"] == 2


async def test_passive_options_reach_the_state_machine_and_options_probes(env: Env) -> None:
    async with running(env) as p, events_processor(env):
        await publish(env, [sip_options(99), sip_options(99.02, status=200, server="carrier")])
        labels = {"node": "kam1", "target": "carrier-a"}
        await until(lambda: env.sample("callscope_options_up", **labels, kind="trunk") == 1, "passive result applied")
        assert env.sample("callscope_options_probes_total", **labels, result="ok") == 1
        await until(lambda: count(env.store, "options_probes") == 1, "passive probe stored")
        stored = env.store.query("SELECT node, target, passive, status, rtt_ms, error FROM options_probes")[0]
        assert stored == {
            "node": "kam1",
            "target": "carrier-a",
            "passive": True,
            "status": 200,
            "rtt_ms": pytest.approx(20.0),
            "error": "",
        }
        await until(lambda: count(env.store, "health_transitions") == 2, "transitions stored")
        assert env.store.query("SELECT countIf(passive) AS n FROM health_transitions FINAL")[0]["n"] == 2

        # A request nobody answers: a timeout when Timer F runs out on the shell's clock.
        await publish(env, [sip_options(100, call_id="ping-2@10.0.0.2", branch="z9hG4bK-ping2")])
        await drained(env, p)
        env.now[0] = at(100 + 33)
        await until(
            lambda: env.sample("callscope_options_probes_total", **labels, result="timeout") == 1, "passive timeout"
        )
        # A ping to an address no target has: host:port, kind other.
        await publish(
            env,
            [
                sip_options(130, call_id="p3", target=("198.51.100.7", 5060)),
                sip_options(130.01, call_id="p3", status=200, target=("198.51.100.7", 5060)),
            ],
        )
        await until(
            lambda: env.sample("callscope_options_up", node="kam1", target="198.51.100.7:5060", kind="other") == 1,
            "other target",
        )


async def test_passive_targets_over_the_bound_are_dropped_and_counted(env: Env) -> None:
    async with running(env, max_passive_targets=1) as p:
        await publish(
            env,
            [
                sip_options(99, call_id="p1", target=("198.51.100.1", 5060)),
                sip_options(99, call_id="p2", target=("198.51.100.2", 5060)),
                sip_options(99, call_id="p3", target=("198.51.100.3", 5060)),
                sip_options(99, call_id="p4", status=200, target=("198.51.100.4", 5060)),
            ],
        )
        await drained(env, p)
        await until(lambda: env.sample("callscope_options_passive_targets_dropped_total") == 2, "dropped")
        # the answer is held for its request until the second expiry round
        await until(
            lambda: (
                env.sample("callscope_events_dropped_total", component="health", reason="passive_unmatched_answer") == 1
            ),
            "unmatched answer",
        )


async def test_passive_can_be_switched_off(env: Env) -> None:
    async with running(env, passive=False) as p:
        assert p.topics == ("callscope.options",)
