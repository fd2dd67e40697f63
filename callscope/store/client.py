"""The store: ClickHouse through clickhouse-connect, embedded (chDB) or a server.

:meth:`Store.open` reads ``StoreConfig.dsn``:

- ``chdb://DIR`` (``DIR`` relative to the working directory, or ``chdb:///abs/dir``):
  the engine runs in this process. ``DIR`` is created and locked first
  (:mod:`callscope.store.lock`), so a second process on the same directory fails
  with :class:`StartupError` instead of corrupting it. The directory is handed to
  clickhouse-connect as ``path`` rather than as the DSN, because its DSN parser
  reads ``chdb://./data`` as host ``.``. One process can use one directory: a
  second directory while the first is open is refused by chDB, reported here as
  a :class:`StartupError`.
  The engine starts with its caches bounded by ``StoreConfig.embedded_cache_bytes``
  (:func:`engine_options`).
- ``http(s)://user:pass@host:port``: a ClickHouse server. Connection failures
  are retried a few times with capped exponential backoff, then raised as
  :class:`StoreError`.

The database ``StoreConfig.database`` is created if missing (``ON CLUSTER``
when ``StoreConfig.cluster`` is set) and made the client's database, and every
insert names it explicitly.

Insert settings (pinned here, sent with every insert, whatever the engine's or
server's defaults are; chDB's default is ``async_insert=1``):

- ``async_insert=0`` and ``wait_for_async_insert=1``: an insert returns only when
  its rows are written into parts. Processors commit bus offsets after the store
  acknowledged a batch, so the acknowledgement must mean "stored", not "queued
  in a server buffer that a crash may lose". We batch ourselves (BatchSink), so
  server-side buffering buys nothing.
- ``insert_deduplicate=1`` and, when the caller passes one,
  ``insert_deduplication_token``: a retried batch with the same token is
  dropped by the table (the raw tables keep ``non_replicated_deduplication_window``
  > 0; replicated tables deduplicate by default).
- ``deduplicate_blocks_in_dependent_materialized_views=1``: a deduplicated retry
  does not count twice in materialized rollups.
- ``optimize_on_insert=0``: no ReplacingMergeTree collapse inside each inserted
  block (ids within one batch are distinct; replays collapse at merge and under
  FINAL anyway), which makes inserts cheaper.

LowCardinality columns are sent as their plain type (the engine converts them),
so the dictionary encoding runs in the engine, not in Python under the GIL:
the column types of a table are read once and cached.

With ``chdb://`` an insert that carries a deduplication token takes a faster
path than clickhouse-connect's (which serialises Native in Python and ingests
it through a temporary file): the rows become a pyarrow table (the conversion
runs in C) that the engine reads in place with
``INSERT INTO t (...) SELECT ... FROM Python(table)`` on a chDB connection of its
own, with the same settings plus ``deduplicate_insert_select='force_enable'``
(the token stands for the block hash, which an ``INSERT SELECT`` does not use)
and ``max_threads=1`` (one stream: the blocks, and so their per-block tokens,
are the same on a retry). Inserts without a token, columns of types without a
mapping here (:func:`arrow_types`), and values pyarrow refuses (e.g. ``1`` for a
Bool) go through clickhouse-connect as before, as does everything over HTTP.
- with a cluster, ``distributed_foreground_insert=1``: an insert into a
  Distributed table returns after the shards have the rows.

Query results come back with timezone-aware UTC datetimes (``tz_mode="aware"``).
Every engine or connection failure is raised as :class:`StoreError` (transient,
retried by callers that can) carrying the server's message.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from callscope.settings import StoreConfig
from callscope.store.arrow import to_arrow
from callscope.store.lock import DirLock
from callscope.telemetry import get_logger
from schemas.errors import ConfigError, StartupError, StoreError

CHDB_SCHEME = "chdb://"

INSERT_SETTINGS: dict[str, Any] = {
    "async_insert": 0,
    "wait_for_async_insert": 1,
    "insert_deduplicate": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    "optimize_on_insert": 0,
}
CLUSTER_INSERT_SETTINGS: dict[str, Any] = {"distributed_foreground_insert": 1}
#: Added on the chDB fast path (an ``INSERT ... SELECT FROM Python(table)``), see the module.
FAST_INSERT_SETTINGS: dict[str, Any] = {"deduplicate_insert_select": "force_enable", "max_threads": 1}


@functools.cache
def arrow_types() -> dict[str, Any]:
    """ClickHouse wire type (LowCardinality unwrapped) -> pyarrow type, for the chDB fast path.

    DateTime64 columns take integer ticks or datetimes (naive = UTC), like clickhouse-connect.
    pyarrow comes with chdb; it is imported on first use (an HTTP store never needs it).
    """
    import pyarrow as pa  # type: ignore[import-untyped]

    binary = pa.binary()  # takes str and bytes; the engine reads it as String
    scalar: dict[str, Any] = {
        "String": binary,
        "Bool": pa.bool_(),
        "UInt8": pa.uint8(),
        "UInt16": pa.uint16(),
        "UInt32": pa.uint32(),
        "UInt64": pa.uint64(),
        "Int8": pa.int8(),
        "Int16": pa.int16(),
        "Int32": pa.int32(),
        "Int64": pa.int64(),
        "Float32": pa.float32(),
        "Float64": pa.float64(),
        "DateTime": pa.timestamp("s", tz="UTC"),
        "DateTime('UTC')": pa.timestamp("s", tz="UTC"),
    }
    for precision, unit in ((0, "s"), (3, "ms"), (6, "us"), (9, "ns")):
        scalar[f"DateTime64({precision})"] = pa.timestamp(unit, tz="UTC")
        scalar[f"DateTime64({precision}, 'UTC')"] = pa.timestamp(unit, tz="UTC")
    types = dict(scalar)
    for name, arrow in scalar.items():
        types[f"Nullable({name})"] = arrow
        types[f"Array({name})"] = pa.list_(arrow)
    return types


FailInjector = Callable[[], None]


def chdb_dir(dsn: str) -> Path | None:
    """The data directory of a ``chdb://`` DSN, or None for another scheme."""
    if not dsn.startswith(CHDB_SCHEME):
        return None
    location = dsn[len(CHDB_SCHEME) :].partition("?")[0]
    if not location:
        raise ConfigError([("store.dsn", "chdb:// needs a data directory, e.g. chdb://./data/chdb")])
    return Path(location)


def quote_identifier(name: str) -> str:
    """Backquote an identifier for ClickHouse SQL."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


class Store:
    """A connection to the store, bound to one database. Thread-safe for one writer and readers."""

    def __init__(
        self, client: Any, config: StoreConfig, lock: DirLock | None = None, engine: Any | None = None
    ) -> None:
        self._client = client
        #: A chDB connection of its own for the fast insert path (None over HTTP).
        self._engine = engine
        self._engine_lock = threading.Lock()
        self.config = config
        self.database = config.database
        self.embedded = lock is not None
        self._lock = lock
        self._insert_settings = dict(INSERT_SETTINGS)
        if config.cluster:
            self._insert_settings.update(CLUSTER_INSERT_SETTINGS)
        self._closed = False
        self._wire_types: dict[str, dict[str, str]] = {}
        self._arrow_schemas: dict[tuple[str, tuple[str, ...]], Any] = {}
        #: Use the chDB fast path when it applies (switch off to compare or to rule it out).
        self.fast_insert = engine is not None
        #: Test hook: called before every insert; raise StoreError to make writes fail.
        self.fail_injector: FailInjector | None = None

    @classmethod
    def open(cls, config: StoreConfig, *, connect_attempts: int = 5) -> Store:
        """Connect (locking the directory for ``chdb://``) and create and select the database."""
        directory = chdb_dir(config.dsn)
        lock: DirLock | None = None
        engine: Any | None = None
        if directory is not None:
            lock = DirLock.acquire(directory)
            options = engine_options(config)
            try:
                client = _open_chdb(directory, options)
                try:
                    engine = _open_engine(directory, options)
                except BaseException:
                    client.close()
                    raise
            except BaseException:
                lock.release()
                raise
        else:
            client = _open_http(config, connect_attempts)
        store = cls(client, config, lock, engine)
        try:
            on_cluster = f" ON CLUSTER {quote_identifier(config.cluster)}" if config.cluster else ""
            store.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(config.database)}{on_cluster}")
            client.database = config.database
        except BaseException:
            store.close()
            raise
        return store

    # -- queries -----------------------------------------------------------------------------

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """Run a statement that returns no rows (DDL) or a single value."""
        try:
            return self._client.command(sql, parameters=dict(parameters) if parameters else None)
        except ClickHouseError as exc:
            raise StoreError(_message(exc)) from exc

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a query; rows as dicts by column name. Bind values as ``{name:Type}``."""
        names, rows = self.query_rows(sql, parameters)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def query_rows(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """Run a query; column names and rows as tuples (cheaper than :meth:`query`)."""
        try:
            result = self._client.query(sql, parameters=dict(parameters) if parameters else None)
        except ClickHouseError as exc:
            raise StoreError(_message(exc)) from exc
        return tuple(result.column_names), [tuple(row) for row in result.result_rows]

    def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        *,
        dedup_token: str | None = None,
        column_oriented: bool = False,
    ) -> int:
        """Insert synchronously; return when the store acknowledged the rows.

        ``rows`` are row tuples, or column sequences with ``column_oriented=True``.
        A non-empty ``dedup_token`` makes a retry of the same batch a no-op.
        Blocks: call it from a worker thread in async code. Raises :class:`StoreError`.
        """
        if self.fail_injector is not None:
            self.fail_injector()
        settings = dict(self._insert_settings)
        if dedup_token:
            settings["insert_deduplication_token"] = dedup_token
        names = list(column_names)
        try:
            types = self._wire_types.get(table) or self._load_wire_types(table)
            if dedup_token and self.fast_insert and self._engine is not None:
                schema = self._arrow_schema(table, names, types)
                arrow_table = to_arrow(schema, rows, column_oriented) if schema is not None else None
                if arrow_table is not None:
                    return self._insert_arrow(table, names, arrow_table, settings)
            summary = self._client.insert(
                table,
                rows,
                column_names=names,
                database=self.database,
                settings=settings,
                column_oriented=column_oriented,
                column_type_names=[types.get(name, "") for name in names] if types.keys() >= set(names) else None,
            )
        except ClickHouseError as exc:
            raise StoreError(f"insert into {table} failed: {_message(exc)}") from exc
        written = getattr(summary, "written_rows", None)
        if isinstance(written, int) and written > 0:
            return written
        return len(rows[0]) if column_oriented and rows else len(rows)

    def _arrow_schema(self, table: str, names: list[str], types: Mapping[str, str]) -> Any | None:
        """The pyarrow schema of ``names`` in ``table``; None when a column has no mapping (cached)."""
        key = (table, tuple(names))
        if key in self._arrow_schemas:
            return self._arrow_schemas[key]
        import pyarrow as pa

        mapping = arrow_types()
        arrow = [mapping.get(types.get(name, "")) for name in names]
        schema = None
        if all(t is not None for t in arrow):
            schema = pa.schema([pa.field(name, t) for name, t in zip(names, arrow, strict=True)])
        self._arrow_schemas[key] = schema
        return schema

    def _insert_arrow(self, table: str, names: list[str], data: Any, settings: Mapping[str, Any]) -> int:
        """The chDB fast path: the engine reads the pyarrow table ``data`` in place."""
        columns = ", ".join(quote_identifier(name) for name in names)
        options = ", ".join(
            f"{key} = {_setting_literal(value)}" for key, value in {**settings, **FAST_INSERT_SETTINGS}.items()
        )
        sql = (
            f"INSERT INTO {quote_identifier(self.database)}.{quote_identifier(table)} ({columns}) "  # noqa: S608
            f"SELECT {columns} FROM Python(data) SETTINGS {options}"
        )
        with self._engine_lock:
            if self._engine is None:
                raise StoreError(f"insert into {table} failed: the store is closed")
            try:
                result = self._engine.query(sql, "TabSeparated")
            except RuntimeError as exc:  # chdb's ChdbError
                raise StoreError(f"insert into {table} failed: {_message(exc)}") from exc
        written = getattr(result, "rows_written", None)
        count = written() if callable(written) else None
        return count if isinstance(count, int) and count > 0 else int(data.num_rows)

    def _load_wire_types(self, table: str) -> dict[str, str]:
        """Column name -> type to send, LowCardinality unwrapped; cached per table."""
        _, rows = self.query_rows(
            "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {table:String}",
            {"db": self.database, "table": table},
        )
        types = {str(name): _wire_type(str(type_)) for name, type_ in rows}
        if types:
            self._wire_types[table] = types
        return types

    def forget_schema(self, table: str | None = None) -> None:
        """Drop cached column types (after DDL changed a table)."""
        if table is None:
            self._wire_types.clear()
        else:
            self._wire_types.pop(table, None)

    def ping(self) -> bool:
        """True when the engine or server answers."""
        try:
            return bool(self._client.command("SELECT 1") == 1)
        except ClickHouseError:
            return False

    def close(self) -> None:
        """Close the client and release the data directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            with self._engine_lock:
                engine, self._engine = self._engine, None
                if engine is not None:
                    engine.close()
        finally:
            try:
                self._client.close()
            finally:
                if self._lock is not None:
                    self._lock.release()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wire_type(type_name: str) -> str:
    """``LowCardinality(T)`` -> ``T`` (``T`` may be ``Nullable(...)``); other types unchanged."""
    if type_name.startswith("LowCardinality(") and type_name.endswith(")"):
        return type_name[len("LowCardinality(") : -1]
    return type_name


def _setting_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _message(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:2000] or type(exc).__name__


def engine_options(config: StoreConfig) -> dict[str, int]:
    """Server settings the embedded engine starts with (chDB reads them from its connection string).

    They bound the engine's caches, whose ClickHouse server defaults (5 GiB each) assume a
    machine of its own. chDB applies them when it starts the engine, i.e. on the first
    connection of the process to the directory; later connections do not change them.
    """
    size = config.embedded_cache_bytes
    return {"mark_cache_size": size, "index_mark_cache_size": size, "primary_index_cache_size": size}


def _open_chdb(directory: Path, options: Mapping[str, int]) -> Any:
    try:
        return clickhouse_connect.get_client(
            interface="chdb", path=str(directory.resolve()), tz_mode="aware", chdb_options=dict(options)
        )
    except ClickHouseError as exc:
        text = _message(exc)
        if "already initialized" in text:
            raise StartupError(
                f"cannot open {directory}: the embedded engine of this process already uses another data "
                f"directory (one chdb:// directory per process): {text}"
            ) from None
        raise StartupError(f"cannot open the embedded engine at {directory}: {text}") from None


def _open_engine(directory: Path, options: Mapping[str, int]) -> Any:
    """A chDB connection of the store's own, on the engine clickhouse-connect just opened."""
    from urllib.parse import urlencode

    import chdb

    try:
        return chdb.connect(f"{directory.resolve()}?{urlencode(options)}")  # type: ignore[no-untyped-call]
    except RuntimeError as exc:
        raise StartupError(f"cannot open the embedded engine at {directory}: {_message(exc)}") from None


def _open_http(config: StoreConfig, attempts: int) -> Any:
    delays = _backoff(config.retry_initial_secs, config.retry_max_secs)
    for attempt in range(1, max(attempts, 1) + 1):
        try:
            return clickhouse_connect.get_client(dsn=config.dsn, tz_mode="aware")
        except OperationalError as exc:
            if attempt >= attempts:
                raise StoreError(f"cannot connect to the store after {attempt} attempts: {_message(exc)}") from exc
            delay = next(delays)
            get_logger("store").warning(
                "store connection failed, retrying",
                attempt=attempt,
                attempts=attempts,
                delay_secs=delay,
                error=_message(exc),
            )
            time.sleep(delay)
        except ClickHouseError as exc:
            raise StoreError(f"cannot connect to the store: {_message(exc)}") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _backoff(initial: float, cap: float) -> Iterator[float]:
    delay = initial
    while True:
        yield min(delay, cap)
        delay = min(delay * 2, cap)
