"""BatchSink: bounded insert batches for one table.

Delivery guarantee: **at-least-once**. :meth:`BatchSink.flush` returns only
after the store acknowledged the batch (synchronous inserts, see
:mod:`callscope.store.client`); until then it retries. The caller commits its
bus offsets only after ``flush`` returned, so a crash before that replays the
events. Duplicates from replays and retries are removed by stable ids:

- a retried batch is sent with the same ``insert_deduplication_token`` (a hash of
  the batch's row ids), so the table drops it if the first attempt was in fact
  written;
- a replayed event in a different batch keeps its id, and the raw tables'
  ReplacingMergeTree collapses it at merge time and under ``FINAL``.

Batches are bounded by rows, bytes and age (:meth:`due`); the caller owns the
clock (inject ``clock`` in tests) and decides when to call :meth:`flush`
(:meth:`next_due_in` says how long until the age bound).

On :class:`StoreError` the batch is retried with capped exponential backoff
(``retry_initial_secs`` doubling up to ``retry_max_secs``), counted in
``callscope_sink_retries_total`` and ``callscope_errors_total`` and logged once
per retry, until it succeeds or the sink is closed (:meth:`close` or the
``stop`` event). Stopping interrupts retries, not a first attempt, so a final
flush at shutdown still writes. A stopped flush raises :class:`SinkStoppedError`
and keeps the unacknowledged batch pending (a later flush retries it with the
same token), so nothing is reported as written that was not.
Other exceptions (a row that does not fit its column: a bug) propagate at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from callscope.settings import StoreConfig
from callscope.store.client import Store
from callscope.telemetry import Telemetry
from schemas.errors import CallscopeError, StoreError

COMPONENT = "sink"


class SinkStoppedError(CallscopeError):
    """The sink was closed while a batch was not yet acknowledged; it stays pending."""


class FaultInjector:
    """Make inserts fail on demand (fault tests): pass it as ``fail_injector`` or set ``Store.fail_injector``.

    ``fail(times)`` fails the next ``times`` inserts (``None``: until :meth:`recover`).
    """

    def __init__(self) -> None:
        self._remaining: int | None = 0
        self.failures = 0

    def fail(self, times: int | None = None) -> None:
        self._remaining = times

    def recover(self) -> None:
        self._remaining = 0

    @property
    def failing(self) -> bool:
        return self._remaining is None or self._remaining > 0

    def __call__(self) -> None:
        if self._remaining is None or self._remaining > 0:
            if self._remaining is not None:
                self._remaining -= 1
            self.failures += 1
            raise StoreError("injected store failure")


def batch_token(table: str, ids: Sequence[str]) -> str:
    """The deduplication token of a batch: a hash of its table and row ids, in order."""
    digest = hashlib.blake2b(table.encode(), digest_size=16)
    digest.update(b"\x00".join(i.encode() for i in ids))
    return f"{table}:{len(ids)}:{digest.hexdigest()}"


class _Batch:
    __slots__ = ("attempts", "rows", "token")

    def __init__(self, rows: list[tuple[Any, ...]], token: str) -> None:
        self.rows = rows
        self.token = token
        self.attempts = 0


class BatchSink:
    """Collects rows for one table and inserts them in bounded batches (at-least-once; see the module)."""

    def __init__(
        self,
        store: Store,
        table: str,
        columns: Sequence[str],
        *,
        max_rows: int,
        max_bytes: int,
        max_age_secs: float,
        telemetry: Telemetry,
        clock: Callable[[], float] = time.monotonic,
        retry_initial_secs: float = 0.2,
        retry_max_secs: float = 10.0,
        stop: asyncio.Event | None = None,
        fail_injector: Callable[[], None] | None = None,
    ) -> None:
        if "id" not in columns:
            raise ValueError(f"columns of {table} must include id (the deduplication token is built from it)")
        if max_rows < 1 or max_bytes < 1 or max_age_secs <= 0:
            raise ValueError("max_rows, max_bytes and max_age_secs must be positive")
        self.store = store
        self.table = table
        self.columns = tuple(columns)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.max_age_secs = max_age_secs
        self.retry_initial_secs = retry_initial_secs
        self.retry_max_secs = retry_max_secs
        self.fail_injector = fail_injector
        self._telemetry = telemetry
        self._clock = clock
        self._id_index = self.columns.index("id")
        self._rows: list[tuple[Any, ...]] = []
        self._bytes = 0
        self._first_at: float | None = None
        self._inflight: _Batch | None = None
        self._flush_lock = asyncio.Lock()
        self._stop = stop
        self._closed_event = asyncio.Event()
        self.rows_written = 0
        self._batch_rows = telemetry.sink_batch_rows.labels(table=table)
        self._insert_seconds = telemetry.sink_insert_seconds.labels(table=table)
        self._retries = telemetry.sink_retries.labels(table=table)
        self._errors = telemetry.errors.labels(component=COMPONENT, error="StoreError")

    @classmethod
    def for_table(
        cls,
        store: Store,
        table: str,
        config: StoreConfig,
        telemetry: Telemetry,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> BatchSink:
        """A sink on ``table`` (its columns from ``schemas.tables``) bounded and retried as ``config`` says."""
        from schemas.tables import COLUMNS

        return cls(
            store,
            table,
            COLUMNS[table],
            max_rows=config.batch_max_rows,
            max_bytes=config.batch_max_bytes,
            max_age_secs=config.batch_max_age_secs,
            telemetry=telemetry,
            clock=clock,
            retry_initial_secs=config.retry_initial_secs,
            retry_max_secs=config.retry_max_secs,
        )

    # -- collecting --------------------------------------------------------------------------

    def add(self, row: tuple[Any, ...], size_bytes: int) -> None:
        """Queue one row (values in ``columns`` order); ``size_bytes`` counts toward ``max_bytes``."""
        if self._closed_event.is_set():
            raise SinkStoppedError(f"sink for {self.table} is closed")
        if not self._rows:
            self._first_at = self._clock()
        self._rows.append(row)
        self._bytes += size_bytes

    @property
    def pending_rows(self) -> int:
        """Rows not yet acknowledged: queued plus a batch being (re)tried."""
        return len(self._rows) + (len(self._inflight.rows) if self._inflight else 0)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    @property
    def queued_rows(self) -> int:
        """Rows added since the last batch was taken (not counting a batch being written)."""
        return len(self._rows)

    @property
    def flushing(self) -> bool:
        """True while a flush is in progress."""
        return self._flush_lock.locked()

    def due(self) -> bool:
        """True when the queued rows reach ``max_rows`` or ``max_bytes`` or the oldest is ``max_age_secs`` old,
        or an unacknowledged batch from a stopped flush waits."""
        if self._inflight is not None and not self.flushing:
            return True
        if not self._rows:
            return False
        if len(self._rows) >= self.max_rows or self._bytes >= self.max_bytes:
            return True
        return self._first_at is not None and self._clock() - self._first_at >= self.max_age_secs

    def next_due_in(self) -> float | None:
        """Seconds until the age bound makes the sink due (0 if due now), None when empty."""
        if self._inflight is not None and not self.flushing:
            return 0.0
        if not self._rows or self._first_at is None:
            return None
        if self.due():
            return 0.0
        return max(0.0, self.max_age_secs - (self._clock() - self._first_at))

    # -- writing -----------------------------------------------------------------------------

    async def flush(self) -> int:
        """Insert what is queued; return the rows written (0 if nothing was queued).

        The queued rows become one batch when the flush starts; rows added while
        it runs wait for the next flush (so a caller may keep adding, or run the
        flush as a task to overlap the insert with its own work; flushes are
        serialised). A batch left unacknowledged by a stopped flush is written
        first, with its original token. Retries on StoreError until the store
        acknowledges, or raises :class:`SinkStoppedError` if the sink is stopped first.
        """
        async with self._flush_lock:
            written = 0
            if self._inflight is not None:
                written += await self._write(self._inflight)
                self._inflight = None
            self._take()
            if self._inflight is not None:
                written += await self._write(self._inflight)
                self._inflight = None
            return written

    def _take(self) -> None:
        if not self._rows:
            return
        rows = self._rows
        idx = self._id_index
        self._inflight = _Batch(rows, batch_token(self.table, [row[idx] for row in rows]))
        self._rows = []
        self._bytes = 0
        self._first_at = None

    async def _write(self, batch: _Batch) -> int:
        log = None
        while True:
            started = time.perf_counter()
            try:
                written = await asyncio.to_thread(self._insert, batch)
            except StoreError as exc:
                batch.attempts += 1
                self._retries.inc()
                self._errors.inc()
                if self.closed:
                    raise SinkStoppedError(
                        f"sink for {self.table} stopped with {len(batch.rows)} rows unacknowledged: {exc}"
                    ) from exc
                delay = min(self.retry_max_secs, self.retry_initial_secs * 2 ** (batch.attempts - 1))
                log = log or self._telemetry.logger(COMPONENT, table=self.table)
                log.warning(
                    "insert failed, retrying",
                    rows=len(batch.rows),
                    attempt=batch.attempts,
                    delay_secs=round(delay, 3),
                    error=str(exc)[:500],
                )
                await self._sleep(delay)
                continue
            self._insert_seconds.observe(time.perf_counter() - started)
            self._batch_rows.observe(len(batch.rows))
            self.rows_written += written
            return written

    def _insert(self, batch: _Batch) -> int:
        if self.fail_injector is not None:
            self.fail_injector()
        # Row tuples as they are: the chDB fast path turns them into columns in C (pyarrow), and
        # clickhouse-connect pivots them itself.
        self.store.insert(self.table, batch.rows, self.columns, dedup_token=batch.token)
        return len(batch.rows)

    async def _sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds, or less if the sink is closed or stopped meanwhile."""
        waits = {asyncio.ensure_future(self._closed_event.wait())}
        if self._stop is not None:
            waits.add(asyncio.ensure_future(self._stop.wait()))
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def close(self) -> None:
        """Stop retrying (a flush waiting to retry raises :class:`SinkStoppedError`) and refuse later adds.

        Pending rows are not written: flush first for a clean shutdown.
        """
        self._closed_event.set()

    @property
    def closed(self) -> bool:
        """True after :meth:`close` or once the ``stop`` event is set."""
        return self._closed_event.is_set() or (self._stop is not None and self._stop.is_set())
