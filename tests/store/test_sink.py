"""BatchSink: bounded batches, retries, and idempotent replays against the real engine."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from callscope.store.client import Store
from callscope.store.sink import BatchSink, FaultInjector, SinkStoppedError, batch_token
from callscope.telemetry import Telemetry
from schemas.errors import StoreError
from schemas.tables import COLUMNS, row_from_dict
from tests.samples import sample_envelope

TABLE = "sip_messages"


def _rows(n: int, prefix: str = "e") -> list[tuple[Any, ...]]:
    rows = []
    for i in range(n):
        doc = sample_envelope("sip", id=f"{prefix}{i:05d}", key=f"call-{i}@test")
        doc["body"]["call_id"] = f"call-{i}@test"
        rows.append(row_from_dict("sip", doc)[1])
    return rows


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _sink(store: Store, telemetry: Telemetry, **kwargs: Any) -> BatchSink:
    options: dict[str, Any] = {
        "max_rows": 1000,
        "max_bytes": 1 << 30,
        "max_age_secs": 60.0,
        "retry_initial_secs": 0.01,
        "retry_max_secs": 0.04,
    }
    options.update(kwargs)
    return BatchSink(store, TABLE, COLUMNS[TABLE], telemetry=telemetry, **options)


def _counts(store: Store) -> dict[str, int]:
    row = store.query(f"SELECT count() AS n, uniqExact(id) AS ids FROM {TABLE}")[0]
    return {"rows": row["n"], "ids": row["ids"]}


def _metric(telemetry: Telemetry, name: str, **labels: str) -> float:
    return telemetry.registry.get_sample_value(name, labels) or 0.0


async def test_due_by_rows(migrated_store: Store, telemetry: Telemetry) -> None:
    sink = _sink(migrated_store, telemetry, max_rows=3)
    rows = _rows(3)
    sink.add(rows[0], 10)
    sink.add(rows[1], 10)
    assert not sink.due()
    sink.add(rows[2], 10)
    assert sink.due()
    assert await sink.flush() == 3
    assert sink.pending_rows == 0
    assert not sink.due()
    assert _counts(migrated_store) == {"rows": 3, "ids": 3}
    assert _metric(telemetry, "callscope_sink_batch_rows_sum", table=TABLE) == 3
    assert _metric(telemetry, "callscope_sink_insert_seconds_count", table=TABLE) == 1


async def test_due_by_bytes(migrated_store: Store, telemetry: Telemetry) -> None:
    sink = _sink(migrated_store, telemetry, max_bytes=1000)
    rows = _rows(2)
    sink.add(rows[0], 600)
    assert not sink.due()
    sink.add(rows[1], 600)
    assert sink.due()
    assert sink.pending_bytes == 1200
    assert await sink.flush() == 2
    assert sink.pending_bytes == 0


async def test_due_by_age_with_a_stepped_clock(migrated_store: Store, telemetry: Telemetry) -> None:
    clock = Clock()
    sink = _sink(migrated_store, telemetry, max_age_secs=1.0, clock=clock)
    assert not sink.due()
    assert sink.next_due_in() is None
    sink.add(_rows(1)[0], 10)
    clock.now += 0.5
    assert not sink.due()
    assert sink.next_due_in() == pytest.approx(0.5)
    clock.now += 0.5
    assert sink.due()
    assert sink.next_due_in() == 0.0
    assert await sink.flush() == 1
    assert await sink.flush() == 0  # nothing queued: no insert
    assert _metric(telemetry, "callscope_sink_insert_seconds_count", table=TABLE) == 1


async def test_failing_inserts_are_retried_then_succeed(migrated_store: Store, telemetry: Telemetry) -> None:
    faults = FaultInjector()
    faults.fail(3)
    sink = _sink(migrated_store, telemetry, fail_injector=faults)
    for row in _rows(50):
        sink.add(row, 100)
    assert await sink.flush() == 50
    assert faults.failures == 3
    assert _counts(migrated_store) == {"rows": 50, "ids": 50}
    assert _metric(telemetry, "callscope_sink_retries_total", table=TABLE) == 3
    assert _metric(telemetry, "callscope_errors_total", component="sink", error="StoreError") == 3
    assert _metric(telemetry, "callscope_sink_batch_rows_count", table=TABLE) == 1


class AckLostStore(Store):
    """Writes the rows, then fails as if the acknowledgement was lost on the way back."""

    lose_acks = 0

    def insert(self, *args: Any, **kwargs: Any) -> int:
        written = super().insert(*args, **kwargs)
        if self.lose_acks:
            self.lose_acks -= 1
            raise StoreError("connection reset after the insert")
        return written


async def test_a_retry_after_a_lost_acknowledgement_writes_nothing_twice(
    migrated_store: Store, telemetry: Telemetry
) -> None:
    store = AckLostStore(migrated_store._client, migrated_store.config)
    store.lose_acks = 2
    sink = _sink(store, telemetry)
    for row in _rows(40):
        sink.add(row, 100)
    assert await sink.flush() == 40
    # Three inserts of the same batch reached the table; the token kept one (no FINAL needed).
    assert _counts(migrated_store) == {"rows": 40, "ids": 40}


async def test_stop_interrupts_retries_and_keeps_the_batch(migrated_store: Store, telemetry: Telemetry) -> None:
    faults = FaultInjector()
    faults.fail()  # until recovered
    failed_once = threading.Event()

    def inject() -> None:
        try:
            faults()
        finally:
            failed_once.set()

    stop = asyncio.Event()
    sink = _sink(migrated_store, telemetry, fail_injector=inject, stop=stop, retry_initial_secs=30, retry_max_secs=30)
    for row in _rows(20):
        sink.add(row, 100)
    flushing = asyncio.create_task(sink.flush())
    assert await asyncio.to_thread(failed_once.wait, 10)
    stop.set()
    with pytest.raises(SinkStoppedError, match="20 rows unacknowledged"):
        await asyncio.wait_for(flushing, timeout=5)
    assert sink.pending_rows == 20
    assert sink.due()
    assert _counts(migrated_store)["rows"] == 0

    faults.recover()
    sink.add(_rows(1, prefix="late")[0], 100)
    assert await sink.flush() == 21  # the kept batch first, then what came since
    assert _counts(migrated_store) == {"rows": 21, "ids": 21}


async def test_close_refuses_new_rows(migrated_store: Store, telemetry: Telemetry) -> None:
    sink = _sink(migrated_store, telemetry)
    await sink.close()
    assert sink.closed
    with pytest.raises(SinkStoppedError):
        sink.add(_rows(1)[0], 1)


async def test_rows_added_during_a_flush_wait_for_the_next(migrated_store: Store, telemetry: Telemetry) -> None:
    sink = _sink(migrated_store, telemetry)
    rows = _rows(30)
    for row in rows[:20]:
        sink.add(row, 1)
    flushing = asyncio.create_task(sink.flush())
    await asyncio.sleep(0)  # the flush took its batch
    assert sink.flushing
    assert sink.queued_rows == 0
    for row in rows[20:]:
        sink.add(row, 1)
    assert await flushing == 20
    assert sink.queued_rows == 10
    assert await sink.flush() == 10
    assert _counts(migrated_store) == {"rows": 30, "ids": 30}


def test_replaying_the_same_batch_keeps_one_copy(migrated_store: Store) -> None:
    rows = _rows(100)
    token = batch_token(TABLE, [r[0] for r in rows])
    migrated_store.insert(TABLE, rows, COLUMNS[TABLE], dedup_token=token)
    migrated_store.insert(TABLE, rows, COLUMNS[TABLE], dedup_token=token)
    assert _counts(migrated_store) == {"rows": 100, "ids": 100}


def test_the_same_ids_in_another_batch_collapse_under_final(migrated_store: Store) -> None:
    rows = _rows(100)
    migrated_store.insert(TABLE, rows, COLUMNS[TABLE], dedup_token=batch_token(TABLE, [r[0] for r in rows]))
    rebatched = rows[50:] + _rows(10, prefix="new")
    migrated_store.insert(TABLE, rebatched, COLUMNS[TABLE], dedup_token=batch_token(TABLE, [r[0] for r in rebatched]))
    assert _counts(migrated_store) == {"rows": 160, "ids": 110}
    final = migrated_store.query(f"SELECT count() AS n, uniqExact(id) AS ids FROM {TABLE} FINAL")
    assert final == [{"n": 110, "ids": 110}]


def test_batch_token_depends_on_ids_and_table() -> None:
    assert batch_token("t", ["a", "b"]) == batch_token("t", ["a", "b"])
    assert batch_token("t", ["a", "b"]) != batch_token("t", ["b", "a"])
    assert batch_token("t", ["a", "b"]) != batch_token("u", ["a", "b"])
    assert batch_token("t", ["ab"]) != batch_token("t", ["a", "b"])


def test_sink_needs_an_id_column(migrated_store: Store, telemetry: Telemetry) -> None:
    with pytest.raises(ValueError, match="must include id"):
        BatchSink(migrated_store, "t", ("x",), max_rows=1, max_bytes=1, max_age_secs=1, telemetry=telemetry)
