"""File collectors and replay formats into the raw tables of the embedded store (chDB)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from callscope.formats import FORMATS, detect
from callscope.replay import replay_embedded, resolve_formats
from callscope.settings import ProcessorConfig, StoreConfig, load_settings
from callscope.store.client import Store
from callscope.telemetry import Telemetry
from collectors.cdr.collector import CdrCollector
from collectors.cel.collector import CelCollector
from collectors.queue_log.collector import QueueLogCollector
from processors.events.app import EventsProcessor
from schemas.topics import ALL_TOPICS
from tests.files import BUGGY_CSV, CEL1_CSV, GOOD_CSV, MASTER_CSV, corpus_file, wazo_rows
from tests.files.conftest import Bench, settings_for
from tests.files.tailing import line

FAST = {"poll_interval_secs": 0.02, "checkpoint_interval_secs": 0, "timezone": "UTC", "node": "pbx1"}


def _one(store: Store, sql: str) -> dict[str, object]:
    rows = store.query(sql)
    assert len(rows) == 1
    return rows[0]


async def _drained(bench: Bench, group: str) -> None:
    async with asyncio.timeout(60):
        while sum((await bench.bus.lag(group, ALL_TOPICS)).values()):
            await asyncio.sleep(0.05)


async def test_collectors_to_raw_tables(
    bench: Bench, migrated_store: Store, store_config: StoreConfig, tmp_path: Path
) -> None:
    cdr, cel, qlog = tmp_path / "Master.csv", tmp_path / "cel.csv", tmp_path / "queue_log"
    cdr.write_bytes(corpus_file(MASTER_CSV).read_bytes())
    cel.write_bytes(corpus_file(CEL1_CSV).read_bytes())
    qlog.write_bytes(b"".join(line(i) + b"\n" for i in range(40)))
    settings = settings_for(
        tmp_path / "data",
        cdr={"enabled": True, "path": str(cdr), **FAST},
        cel={"enabled": True, "path": str(cel), **FAST},
        queue_log={"enabled": True, "path": str(qlog), **FAST},
    )
    config = store_config.model_copy(update={"batch_max_age_secs": 0.05})
    processor = EventsProcessor(
        ProcessorConfig(poll_timeout_ms=20), config, bench.bus, migrated_store, bench.telemetry, node="t"
    )
    stop = asyncio.Event()
    task = asyncio.create_task(processor.run(stop))
    await asyncio.wait_for(processor.ready.wait(), 10)
    try:
        c = settings.collectors
        await bench.start(lambda p, t: CdrCollector(c.cdr, settings, p, t))
        await bench.start(lambda p, t: CelCollector(c.cel, settings, p, t))
        await bench.start(lambda p, t: QueueLogCollector(c.queue_log, settings, p, t))
        await bench.until_metric("callscope_tail_lines_total", {"component": "queue_log", "result": "published"}, 40)
        await bench.until_metric("callscope_tail_lines_total", {"component": "cel", "result": "published"}, 16)
        await bench.until_metric("callscope_tail_lines_total", {"component": "cdr", "result": "published"}, 2)
        await _drained(bench, processor.group)
        assert _one(migrated_store, "SELECT count() AS n, sum(duration) AS d, any(node) AS node FROM cdr FINAL") == {
            "n": 2,
            "d": 14,
            "node": "pbx1",
        }
        rows = migrated_store.query("SELECT uniqueid, disposition, toString(ts) AS ts FROM cdr FINAL ORDER BY ts")
        assert [(r["uniqueid"], r["disposition"]) for r in rows] == [
            ("1270167992.0", "ANSWERED"),
            ("1270168442.0", "ANSWERED"),
        ]
        assert rows[0]["ts"].startswith("2010-04-02 00:26:32")
        events = migrated_store.query("SELECT eventtype, count() AS n FROM cel FINAL GROUP BY eventtype")
        assert {r["eventtype"]: r["n"] for r in events}["HANGUP"] == 3
        assert _one(migrated_store, "SELECT uniq(linkedid) AS n FROM cel FINAL") == {"n": 1}
        q = _one(migrated_store, "SELECT count() AS n, uniq(callid) AS calls, any(event) AS e FROM queue_log FINAL")
        assert q == {"n": 40, "calls": 40, "e": "ENTERQUEUE"}
        # A second reading of the same lines (checkpoints lost) is stored once: ids are per line.
        for run in list(bench.running):
            await run.shutdown()
        for f in (tmp_path / "data" / "checkpoints").iterdir():
            f.unlink()
        await bench.start(lambda p, t: QueueLogCollector(c.queue_log, settings, p, t))
        await bench.until_metric("callscope_tail_lines_total", {"component": "queue_log", "result": "published"}, 80)
        await _drained(bench, processor.group)
        assert _one(migrated_store, "SELECT count() AS n FROM queue_log FINAL") == {"n": 40}
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


async def test_replay_each_format_into_the_embedded_pipeline(
    store: Store, store_config: StoreConfig, tmp_path: Path
) -> None:
    qlog_db = tmp_path / "queue_log.db.txt"  # the Wazo table rows, as psql prints them
    qlog_db.write_text("\n".join(wazo_rows()) + "\n")
    qlog_file = tmp_path / "queue_log"
    qlog_file.write_bytes(b"".join(line(i) + b"\n" for i in range(30)))
    files = [
        corpus_file(MASTER_CSV),
        corpus_file(GOOD_CSV),
        corpus_file(BUGGY_CSV),
        corpus_file(CEL1_CSV),
        qlog_db,
        qlog_file,
    ]
    assert [detect(f) for f in files] == [FORMATS[n] for n in ("cdr", "cdr", "cdr", "cel", "queue_log", "queue_log")]
    settings = load_settings(
        None,
        {
            "node": "pbx1",
            "data_dir": str(tmp_path / "data"),
            "api": {"listen": "127.0.0.1:0"},
            "topology": {"nodes": [{"name": "pbx1", "role": "logic"}]},
            "store": {"dsn": store_config.dsn, "database": store_config.database, "batch_max_age_secs": 0.05},
        },
    )
    resolved = resolve_formats(files, None)
    result = await replay_embedded(resolved, settings, Telemetry(node="pbx1"), show_progress=False)
    assert (result.files, result.accepted, result.deadlettered) == (6, 2 + 5 + 16 + 12 + 30, 1)
    again = await replay_embedded(resolved, settings, Telemetry(node="pbx1"), show_progress=False)
    assert again.accepted == result.accepted
    counts = {
        table: _one(store, f"SELECT count() AS n FROM {table} FINAL")["n"] for table in ("cdr", "cel", "queue_log")
    }
    # good.csv's five rows are five events (they differ in billsec or disposition); replayed twice, stored once.
    assert counts == {"cdr": 7, "cel": 16, "queue_log": 42}
    dead = store.query("SELECT component, reason FROM deadletters")
    assert {(r["component"], r["reason"]) for r in dead} == {("replay", "csv")}
    wazo = _one(store, "SELECT count() AS n FROM queue_log FINAL WHERE event = 'CONNECT' AND data2 = '1341401601.27'")
    assert wazo == {"n": 1}
    roles = store.query("SELECT DISTINCT node, role FROM cel")
    assert roles == [{"node": "pbx1", "role": "logic"}]
