"""Store fixtures: one embedded engine for the whole session, one database per test.

chDB runs one engine per process on one data directory, so the session opens a
single directory (``chdb_dir``) and keeps a Store on it (``engine_store``) for the
session. Tests are isolated by database: ``store`` opens another Store on the
same directory bound to a fresh database, and drops it afterwards. Any other
test in this process that needs the engine must use ``chdb_dir`` too.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from callscope.settings import StoreConfig
from callscope.store.client import Store
from callscope.store.migrations import apply_migrations
from callscope.telemetry import Telemetry

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb") / "data"


@pytest.fixture(scope="session")
def engine_store(chdb_dir: Path) -> Iterator[Store]:
    """Keeps the session's engine (and its directory lock) open."""
    store = Store.open(StoreConfig(dsn=f"chdb://{chdb_dir}", database="callscope_session"))
    yield store
    store.close()


@pytest.fixture
def store_config(chdb_dir: Path, engine_store: Store) -> StoreConfig:
    return StoreConfig(dsn=f"chdb://{chdb_dir}", database=f"t{next(_numbers)}")


@pytest.fixture
def store(store_config: StoreConfig) -> Iterator[Store]:
    """A Store bound to a database of its own, dropped after the test."""
    store = Store.open(store_config)
    yield store
    store.command(f"DROP DATABASE IF EXISTS {store_config.database} SYNC")
    store.close()


@pytest.fixture
def migrated_store(store: Store, store_config: StoreConfig) -> Store:
    apply_migrations(store, store_config)
    return store


@pytest.fixture
def telemetry() -> Telemetry:
    return Telemetry(node="test")
