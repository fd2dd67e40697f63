"""The cdr, cel and queue_log collectors end to end on the in-process bus, with real files."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from callscope.bus.base import Producer
from callscope.telemetry import Telemetry
from collectors.cdr.collector import CdrCollector
from collectors.cel.collector import CelCollector
from collectors.queue_log.collector import QueueLogCollector
from collectors.registry import build_collectors
from collectors.tail.collector import TailCollector
from schemas.envelope import decode
from tests.files import BUGGY_CSV, CEL1_CSV, GOOD_CSV, corpus_file
from tests.files.conftest import Bench, RefusingProducer, settings_for
from tests.files.tailing import line

FAST = {"poll_interval_secs": 0.02, "checkpoint_interval_secs": 0, "retry_initial_secs": 0.02, "timezone": "UTC"}


def _queue_log(tmp_path: Path, **options: Any) -> Any:
    path = tmp_path / "queue_log"

    def make(producer: Producer, telemetry: Telemetry) -> TailCollector:
        settings = settings_for(
            tmp_path / "data", queue_log={"enabled": True, "path": str(path), "node": "pbx1", **FAST, **options}
        )
        return QueueLogCollector(settings.collectors.queue_log, settings, producer, telemetry)

    return path, make


def _append(path: Path, lines: list[bytes]) -> None:
    with path.open("ab") as fh:
        fh.write(b"".join(x + b"\n" for x in lines))


def _checkpoint_offset(tmp_path: Path, component: str) -> int:
    """The committed offset of the current file in the collector's checkpoint (0 when none was written)."""
    files = list((tmp_path / "data" / "checkpoints").glob(f"{component}-*.json"))
    assert len(files) <= 1
    if not files:
        return 0
    doc = orjson.loads(files[0].read_bytes())
    return int(doc["files"][0]["offset"]) if doc["files"] else 0


async def test_queue_log_lines_become_envelopes_on_the_bus(bench: Bench, tmp_path: Path) -> None:
    path, make = _queue_log(tmp_path)
    _append(path, [line(i) for i in range(100)])
    run = await bench.start(make)
    assert run.collector.describe() == f"{path} (queue_log, node pbx1)"
    assert run.collector.healthcheck()
    await bench.collect(100)
    _append(path, [line(i) for i in range(100, 150)])
    await bench.collect(150)
    envelopes = [decode(r.value) for r in bench.records]
    assert {e.kind for e in envelopes} == {"queue_log"}
    assert {(e.node, e.role) for e in envelopes} == {("pbx1", "logic")}  # the Asterisk node, not the collector's
    assert [r.key for r in bench.records if r.key is not None] == [e.key.encode() for e in envelopes]
    assert sorted(e.body.callid for e in envelopes) == sorted(f"call-{i:07d}" for i in range(150))  # type: ignore[union-attr]
    assert bench.metric("callscope_events_received_total", {"component": "queue_log", "kind": "queue_log"}) == 150
    assert bench.metric("callscope_tail_lines_total", {"component": "queue_log", "result": "published"}) == 150
    assert _checkpoint_offset(tmp_path, "queue_log") == path.stat().st_size
    size = path.stat().st_size
    await bench.until_metric("callscope_tail_offset_bytes", {"component": "queue_log"}, size)
    assert bench.metric("callscope_tail_lag_bytes", {"component": "queue_log"}) == 0
    await run.shutdown()
    assert not run.collector.healthcheck()


async def test_malformed_cdr_rows_are_dead_lettered_with_reason(bench: Bench, tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    path.write_bytes(corpus_file(GOOD_CSV).read_bytes() + corpus_file(BUGGY_CSV).read_bytes())

    def make(producer: Producer, telemetry: Telemetry) -> TailCollector:
        settings = settings_for(tmp_path / "data", cdr={"enabled": True, "path": str(path), **FAST})
        return CdrCollector(settings.collectors.cdr, settings, producer, telemetry)

    run = await bench.start(make)
    await bench.collect(6)
    cdrs = bench.topic("callscope.cdr")
    assert [c["body"]["disposition"] for c in cdrs] == ["ANSWERED", "ANSWERED", "FAILED", "NO ANSWER", "BUSY"]
    assert {c["node"] for c in cdrs} == {"collector1"}  # no node configured: this process's
    dead = bench.topic("callscope.deadletter")
    assert [(d["component"], d["reason"]) for d in dead] == [("cdr", "csv")]
    assert bench.metric("callscope_deadletters_total", {"component": "cdr", "reason": "csv"}) == 1
    assert bench.metric("callscope_tail_lines_total", {"component": "cdr", "result": "deadlettered"}) == 1
    assert run.collector.healthcheck()  # kept going
    assert _checkpoint_offset(tmp_path, "cdr") == path.stat().st_size
    await run.shutdown()


async def test_checkpoint_not_advanced_while_the_bus_refuses(bench: Bench, tmp_path: Path) -> None:
    path, make = _queue_log(tmp_path)
    _append(path, [line(i) for i in range(20)])
    refusing: list[RefusingProducer] = []

    def wrap(producer: Producer) -> Producer:
        p = RefusingProducer(producer)
        p.refuse_send = True
        refusing.append(p)
        return p

    run = await bench.start(make, wrap=wrap)
    await bench.until_metric("callscope_errors_total", {"component": "queue_log", "error": "bus"}, 3)
    assert refusing[0].refused >= 3  # retried with backoff, never committed
    assert _checkpoint_offset(tmp_path, "queue_log") == 0
    await run.shutdown()  # stopped while the bus still refuses
    assert _checkpoint_offset(tmp_path, "queue_log") == 0
    await bench.drain()
    assert bench.records == []
    # A new collector on a working bus reads the same lines again, once.
    run2 = await bench.start(make)
    await bench.collect(20)
    await run2.shutdown()
    await bench.drain()
    assert Counter(decode(r.value).body.callid for r in bench.records) == {  # type: ignore[union-attr]
        f"call-{i:07d}": 1 for i in range(20)
    }
    assert _checkpoint_offset(tmp_path, "queue_log") == path.stat().st_size


async def test_flush_failure_redelivers_with_the_same_ids(bench: Bench, tmp_path: Path) -> None:
    path, make = _queue_log(tmp_path)
    refusing: list[RefusingProducer] = []

    def wrap(producer: Producer) -> Producer:
        p = RefusingProducer(producer)
        p.refuse_flush = True
        refusing.append(p)
        return p

    run = await bench.start(make, wrap=wrap)
    # Started before the file exists: reported once (a bounded label), then followed when it appears.
    assert bench.metric("callscope_tail_file_events_total", {"component": "queue_log", "event": "missing"}) == 1
    assert bench.metric("callscope_errors_total", {"component": "queue_log", "error": "missing"}) == 1
    _append(path, [line(i) for i in range(10)])
    await bench.until_metric("callscope_errors_total", {"component": "queue_log", "error": "bus"}, 2)
    assert _checkpoint_offset(tmp_path, "queue_log") == 0
    refusing[0].refuse_flush = False
    await bench.until_metric("callscope_tail_lines_total", {"component": "queue_log", "result": "published"}, 10)
    await run.shutdown()
    await bench.drain()
    # The sends before each failed flush reached the bus: at-least-once. Every copy of a line has
    # the same id, time, key and body (only ``received`` differs), so the store keeps one row per line.
    by_id: dict[str, set[bytes]] = {}
    for r in bench.records:
        doc = orjson.loads(r.value)
        del doc["received"]
        by_id.setdefault(doc["id"], set()).add(orjson.dumps(doc))
    assert len(by_id) == 10
    assert all(len(v) == 1 for v in by_id.values())
    assert len(bench.records) >= 20
    assert _checkpoint_offset(tmp_path, "queue_log") == path.stat().st_size


async def test_rotation_and_restart_through_the_collector(bench: Bench, tmp_path: Path) -> None:
    path, make = _queue_log(tmp_path, rotated_linger_secs=0.1)
    _append(path, [line(i) for i in range(50)])
    run = await bench.start(make)
    await bench.collect(50)
    _append(path, [line(i) for i in range(50, 60)])
    os.rename(path, tmp_path / "queue_log.1")
    _append(path, [line(i) for i in range(60, 80)])
    await bench.collect(80)
    await bench.until_metric("callscope_tail_file_events_total", {"component": "queue_log", "event": "rotated"}, 1)
    await run.shutdown()
    _append(path, [line(i) for i in range(80, 90)])  # written while stopped
    run2 = await bench.start(make)
    await bench.collect(90)
    await run2.shutdown()
    await bench.drain()
    got = Counter(decode(r.value).body.callid for r in bench.records)  # type: ignore[union-attr]
    assert got == {f"call-{i:07d}": 1 for i in range(90)}


async def test_cel_collector_and_the_registry(bench: Bench, tmp_path: Path) -> None:
    path = tmp_path / "cel.csv"
    path.write_bytes(corpus_file(CEL1_CSV).read_bytes())
    settings = settings_for(
        tmp_path / "data",
        cel={"enabled": True, "path": str(path), "node": "pbx1", **FAST},
        hep={"enabled": False},
    )
    collectors = build_collectors(settings, bench.bus.producer(), bench.telemetry)
    assert [c.name for c in collectors] == ["cel"]
    assert isinstance(collectors[0], CelCollector)

    def make(producer: Producer, telemetry: Telemetry) -> TailCollector:
        return CelCollector(settings.collectors.cel, settings, producer, telemetry)

    run = await bench.start(make)
    await bench.collect(16)
    cels = bench.topic("callscope.cel")
    assert Counter(c["body"]["eventtype"] for c in cels)["HANGUP"] == 3
    assert {r.key for r in bench.records} == {b"1335310195.0"}  # one call, one partition
    await run.shutdown()
