"""Store: one process per data directory, pinned insert settings, errors as StoreError."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from callscope.settings import StoreConfig
from callscope.store.client import INSERT_SETTINGS, Store, chdb_dir
from callscope.store.lock import DirLock, lock_path
from schemas.errors import ConfigError, StartupError, StoreError

ROOT = Path(__file__).resolve().parents[2]

_OPEN_STORE = textwrap.dedent(
    """
    import sys
    from callscope.settings import StoreConfig
    from callscope.store.client import Store
    from schemas.errors import StartupError
    try:
        Store.open(StoreConfig(dsn="chdb://" + sys.argv[1]))
    except StartupError as exc:
        print(exc)
        sys.exit(3)
    print("opened")
    """
)

_HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from callscope.store.lock import DirLock
    lock = DirLock.acquire(sys.argv[1])
    print("locked", flush=True)
    sys.stdin.read()
    lock.release()
    """
)


def _python(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_a_second_process_on_the_same_directory_is_refused(engine_store: Store, chdb_dir: Path) -> None:
    proc = _python(_OPEN_STORE, str(chdb_dir))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert out.strip() == f"data directory {chdb_dir} is in use by another process (pid {os.getpid()})"
    assert engine_store.ping()  # and the owner is unharmed


def test_lock_is_released_with_its_holder(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    with _python(_HOLD_LOCK, str(directory), stdin=subprocess.PIPE) as holder:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == "locked"
        try:
            with pytest.raises(StartupError, match=rf"in use by another process \(pid {holder.pid}\)"):
                DirLock.acquire(directory)
        finally:
            holder.communicate("", timeout=30)
    with DirLock.acquire(directory) as lock:
        assert lock_path(directory).read_text().strip() == str(os.getpid())
    assert lock.released


def test_lock_is_shared_within_one_process(tmp_path: Path) -> None:
    first = DirLock.acquire(tmp_path)
    second = DirLock.acquire(tmp_path)
    first.release()
    first.release()  # idempotent
    probe = _python(_HOLD_LOCK, str(tmp_path), stdin=subprocess.PIPE)
    out, _ = probe.communicate("", timeout=30)
    assert probe.returncode == 1
    assert "locked" not in out
    second.release()
    probe = _python(_HOLD_LOCK, str(tmp_path), stdin=subprocess.PIPE)
    out, _ = probe.communicate("", timeout=30)
    assert out.strip() == "locked"


def test_another_directory_in_the_same_process_is_a_clear_error(engine_store: Store, tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="one chdb:// directory per process"):
        Store.open(StoreConfig(dsn=f"chdb://{tmp_path / 'other'}"))
    with DirLock.acquire(tmp_path / "other"):  # the failed open released its lock
        pass


def test_dsn_directory() -> None:
    assert chdb_dir("chdb://./data/chdb") == Path("data/chdb")
    assert chdb_dir("chdb:///var/lib/callscope") == Path("/var/lib/callscope")
    assert chdb_dir("http://localhost:8123") is None
    with pytest.raises(ConfigError, match=r"store\.dsn"):
        chdb_dir("chdb://")


def test_unreachable_server_is_a_store_error_after_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens once closed
    config = StoreConfig(dsn=f"http://127.0.0.1:{port}", retry_initial_secs=0.01, retry_max_secs=0.02)
    with pytest.raises(StoreError, match="after 3 attempts"):
        Store.open(config, connect_attempts=3)


def test_database_is_created_and_selected(store: Store, store_config: StoreConfig) -> None:
    assert store.command("SELECT currentDatabase()") == store_config.database
    assert store.query("SELECT {n:UInt8} + 1 AS n", {"n": 1}) == [{"n": 2}]
    names, rows = store.query_rows("SELECT 1 AS a, 'x' AS b")
    assert (names, rows) == (("a", "b"), [(1, "x")])


def test_insert_settings_are_pinned_synchronous(store: Store) -> None:
    assert INSERT_SETTINGS["async_insert"] == 0
    assert INSERT_SETTINGS["insert_deduplicate"] == 1
    # The engine's own default is asynchronous: what we rely on must be pinned per insert.
    assert str(store.command("SELECT value FROM system.settings WHERE name = 'async_insert'")) == "1"
    store.command("CREATE TABLE t (id String) ENGINE = MergeTree ORDER BY id")
    store.insert("t", [("a",), ("b",)], ("id",))
    rows = store.query("SELECT count() AS n FROM t")  # visible at once: acknowledged means written
    assert rows == [{"n": 2}]


def test_errors_carry_the_server_message(store: Store) -> None:
    with pytest.raises(StoreError, match=r"insert into missing failed: .*UNKNOWN_TABLE"):
        store.insert("missing", [("a",)], ("id",))
    with pytest.raises(StoreError, match="SYNTAX_ERROR"):
        store.query("SELEC 1")


def test_close_is_idempotent(store_config: StoreConfig) -> None:
    extra = Store.open(store_config)
    extra.close()
    extra.close()
    assert extra.closed


_TYPED_TABLE = """
CREATE TABLE typed (
    id String,
    lc LowCardinality(String),
    ts DateTime64(6, 'UTC'),
    at DateTime,
    flag Bool,
    port UInt16,
    big UInt64,
    delta Int64,
    ratio Float32,
    rtt Nullable(Float64),
    ended Nullable(DateTime64(6, 'UTC')),
    tags Array(String),
    raw String
) ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100
"""


def _typed_rows(prefix: str) -> list[tuple[object, ...]]:
    aware = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    naive = datetime(2024, 3, 1, 10, 0, 1)  # naive = UTC
    return [
        (f"{prefix}1", "udp", 1_709_294_400_000_001, aware, True, 5060, 2**63, -5, 0.5, 12.25, None, ["a", "b"], b"x"),
        (f"{prefix}2", "tcp", 1_709_294_401_999_999, naive, False, 65535, 0, 7, 1.5, None, aware, [], b"\xff\x00b"),
    ]


def test_fast_insert_stores_the_same_values_as_clickhouse_connect(store: Store) -> None:
    assert store.fast_insert  # chdb:// with a token takes the pyarrow path
    store.command(_TYPED_TABLE)
    names = ("id", "lc", "ts", "at", "flag", "port", "big", "delta", "ratio", "rtt", "ended", "tags", "raw")
    assert store.insert("typed", _typed_rows("f"), names, dedup_token="fast") == 2
    store.fast_insert = False
    assert store.insert("typed", _typed_rows("c"), names, dedup_token="slow") == 2
    store.fast_insert = True
    columns = ", ".join(names[1:])
    fast = store.query_rows(f"SELECT {columns}, toString(raw) FROM typed WHERE id LIKE 'f%' ORDER BY id")[1]
    slow = store.query_rows(f"SELECT {columns}, toString(raw) FROM typed WHERE id LIKE 'c%' ORDER BY id")[1]
    assert fast == slow
    ts = store.query_rows("SELECT toUnixTimestamp64Micro(ts) FROM typed WHERE id = 'f1'")[1]
    assert ts == [(1_709_294_400_000_001,)]


def test_fast_insert_deduplicates_a_retried_batch_by_token(store: Store) -> None:
    store.command(_TYPED_TABLE)
    names = ("id", "lc", "ts", "at", "flag", "port", "big", "delta", "ratio", "rtt", "ended", "tags", "raw")
    for _ in range(3):
        store.insert("typed", _typed_rows("r"), names, dedup_token="same-batch")
    columns = list(zip(*_typed_rows("r"), strict=True))
    store.insert("typed", columns, names, dedup_token="same-batch", column_oriented=True)
    assert store.query("SELECT count() AS n FROM typed") == [{"n": 2}]
    store.insert("typed", _typed_rows("r"), names, dedup_token="another-batch")
    assert store.query("SELECT count() AS n FROM typed") == [{"n": 4}]


def test_values_pyarrow_refuses_go_through_clickhouse_connect(store: Store) -> None:
    store.command("CREATE TABLE flags (id String, flag Bool, day Date) ENGINE = MergeTree ORDER BY id")
    store.insert("flags", [("a", 1, date(2024, 3, 1))], ("id", "flag", "day"), dedup_token="t1")  # Date: no mapping
    store.command("CREATE TABLE ints (id String, flag Bool) ENGINE = MergeTree ORDER BY id")
    store.insert("ints", [("a", 1), ("b", 0)], ("id", "flag"), dedup_token="t2")  # an int for a Bool
    assert store.query("SELECT id, flag FROM ints ORDER BY id") == [
        {"id": "a", "flag": True},
        {"id": "b", "flag": False},
    ]
    assert store.query("SELECT flag, day FROM flags") == [{"flag": True, "day": date(2024, 3, 1)}]


def test_fast_insert_errors_are_store_errors(store: Store) -> None:
    store.command("CREATE TABLE small (id String, port UInt16) ENGINE = MergeTree ORDER BY id")
    store.insert("small", [("a", 1)], ("id", "port"), dedup_token="t")
    store.command("DROP TABLE small SYNC")
    with pytest.raises(StoreError, match=r"insert into small failed: .*UNKNOWN_TABLE"):
        store.insert("small", [("a", 1)], ("id", "port"), dedup_token="t")  # cached types, table gone
