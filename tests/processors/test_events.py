"""The events processor on the in-process bus and the embedded engine.

Bad envelopes on the bus end in ``deadletters``; store failures hold back the
offset commit and nothing is lost or stored twice once the store recovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
import pytest

from callscope.bus.envelopes import EnvelopeCache
from callscope.bus.memory import MemoryBus
from callscope.settings import MemoryBusConfig, ProcessorConfig, StoreConfig
from callscope.store.client import Store
from callscope.store.sink import FaultInjector
from callscope.telemetry import Telemetry
from processors.events.app import EventsProcessor
from processors.events.route import Rejected, Row, route
from schemas.envelope import KINDS, validate
from schemas.tables import row_for
from schemas.topics import ALL_TOPICS, DEADLETTER, deadletter_record, topic_for
from tests.samples import sample_envelope


def _env(kind: str, i: int, key: str | None = None) -> bytes:
    return orjson.dumps(sample_envelope(kind, id=f"{kind}-{i}", key=key))


def test_route_valid_envelope_to_its_table() -> None:
    out = route("callscope.sip", _env("sip", 1))
    assert isinstance(out, Row)
    assert out.table == "sip_messages"
    assert out.id == "sip-1"


@pytest.mark.parametrize(
    ("topic", "value", "reason"),
    [
        ("callscope.sip", b"{not json", "envelope"),
        ("callscope.sip", orjson.dumps({"kind": "sip"}), "envelope"),
        ("callscope.sip", _env("cdr", 1), "wrong_topic"),
    ],
)
def test_route_rejects_with_reason(topic: str, value: bytes, reason: str) -> None:
    out = route(topic, value)
    assert isinstance(out, Rejected)
    assert out.reason == reason


def test_route_keeps_unreadable_dead_letters_whole() -> None:
    out = route(DEADLETTER, b"\xff\xfe garbage")
    assert isinstance(out, Row)
    assert out.table == "deadletters"


@dataclass
class Pipeline:
    bus: MemoryBus
    store: Store
    processor: EventsProcessor
    stop: asyncio.Event
    task: asyncio.Task[None]
    telemetry: Telemetry


@pytest.fixture
async def pipeline(migrated_store: Store, store_config: StoreConfig) -> AsyncIterator[Pipeline]:
    telemetry = Telemetry()
    bus = MemoryBus(MemoryBusConfig(partitions=3), telemetry)
    await bus.start()
    await bus.ensure_topics(ALL_TOPICS)
    config = store_config.model_copy(
        update={"batch_max_age_secs": 0.05, "retry_initial_secs": 0.01, "retry_max_secs": 0.05}
    )
    processor = EventsProcessor(ProcessorConfig(poll_timeout_ms=20), config, bus, migrated_store, telemetry, node="t")
    stop = asyncio.Event()
    task = asyncio.create_task(processor.run(stop))
    await asyncio.wait_for(processor.ready.wait(), 10)
    yield Pipeline(bus, migrated_store, processor, stop, task, telemetry)
    stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 30)
    await bus.stop()


async def _drained(p: Pipeline) -> None:
    async with asyncio.timeout(30):
        while sum((await p.bus.lag(p.processor.group, ALL_TOPICS)).values()):
            await asyncio.sleep(0.02)


def _count(store: Store, sql: str) -> int:
    return int(store.query(sql)[0]["n"])


async def test_every_kind_stored_and_bad_envelopes_dead_lettered(pipeline: Pipeline) -> None:
    producer = pipeline.bus.producer()
    kinds = ("sip", "rtcp", "ami", "cdr", "cel", "queue_log", "options", "log")
    for kind in kinds:
        for i in range(25):
            await producer.send(topic_for(kind), _env(kind, i), f"k{i}".encode())
    await producer.send("callscope.sip", b"{broken", b"x")
    await producer.send("callscope.sip", _env("cdr", 99), b"x")
    await producer.send(
        DEADLETTER, deadletter_record(component="hep", reason="short", detail="2 bytes", raw=b"\x00\x01", node="n")
    )
    await producer.flush()
    await _drained(pipeline)
    # the two rejects are re-published to the dead-letter topic; wait for those too
    await _drained(pipeline)
    for table in ("sip_messages", "rtcp", "ami_events", "cdr", "cel", "queue_log", "options_probes", "logs"):
        assert _count(pipeline.store, f"SELECT count() AS n FROM {table} FINAL") == 25, table
    rows = pipeline.store.query("SELECT component, reason, source_topic FROM deadletters ORDER BY reason")
    assert [(r["component"], r["reason"]) for r in rows] == [
        ("events", "envelope"),
        ("hep", "short"),
        ("events", "wrong_topic"),
    ]
    assert (
        pipeline.telemetry.registry.get_sample_value(
            "callscope_deadletters_total", {"component": "events", "reason": "wrong_topic"}
        )
        == 1
    )
    # every source node and kind has a last-event time (what the CollectorSilent alert reads)
    registry = pipeline.telemetry.registry
    node = orjson.loads(_env("sip", 1))["node"]
    for kind in kinds:
        seen = registry.get_sample_value("callscope_source_last_event_timestamp_seconds", {"node": node, "kind": kind})
        assert seen is not None, kind
        assert abs(seen - time.time()) < 60, kind
    assert (
        registry.get_sample_value("callscope_source_last_event_timestamp_seconds", {"node": "", "kind": "deadletter"})
        is None
    )
    await producer.close()


async def test_store_outage_holds_commits_then_stores_everything_once(pipeline: Pipeline) -> None:
    faults = FaultInjector()
    pipeline.store.fail_injector = faults
    faults.fail(None)
    producer = pipeline.bus.producer()
    for i in range(400):
        await producer.send("callscope.sip", _env("sip", i, key=f"c{i % 13}"), f"c{i % 13}".encode())
    await producer.flush()
    async with asyncio.timeout(30):
        while faults.failures < 3:
            await asyncio.sleep(0.02)
    # Nothing acknowledged by the store, so nothing committed: the bus still holds it all.
    assert sum((await pipeline.bus.lag(pipeline.processor.group, ["callscope.sip"])).values()) == 400
    faults.recover()
    await _drained(pipeline)
    assert _count(pipeline.store, "SELECT count() AS n FROM sip_messages") == 400
    assert _count(pipeline.store, "SELECT uniqExact(id) AS n FROM sip_messages") == 400
    retries = pipeline.telemetry.registry.get_sample_value("callscope_sink_retries_total", {"table": "sip_messages"})
    assert retries is not None
    assert retries >= 3
    await producer.close()


async def test_redelivery_after_a_crash_is_not_stored_twice(pipeline: Pipeline) -> None:
    producer = pipeline.bus.producer()
    for i in range(100):
        await producer.send("callscope.log", _env("log", i), b"k")
    await producer.flush()
    await _drained(pipeline)
    # A processor that crashed after inserting but before committing would see these again.
    for i in range(100):
        await producer.send("callscope.log", _env("log", i), b"k")
    await producer.flush()
    await _drained(pipeline)
    assert _count(pipeline.store, "SELECT count() AS n FROM logs FINAL") == 100
    await producer.close()


@pytest.mark.parametrize("kind", KINDS)
def test_route_gives_row_for_s_row_and_the_envelope_s_id_and_node(kind: str) -> None:
    value = _env(kind, 7)
    out = route(topic_for(kind), value, EnvelopeCache())
    env = validate(orjson.loads(value))
    assert out == Row(*row_for(env), env.id, env.node)
    assert (out.table, out.id, out.node) == (row_for(env)[0], f"{kind}-7", "sbc1")
    with pytest.raises(AttributeError):
        out.table = "other"  # type: ignore[misc]
