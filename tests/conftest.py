"""Shared fixtures.

Kafka: one real broker per test session (tests/kafka/broker.py).

chDB: one embedded engine for the whole session, one database per test. chDB runs
one engine per process on one data directory, so the session opens a single
directory (``chdb_dir``) and keeps a Store on it (``engine_store``). Tests are
isolated by database: ``store`` opens another Store on the same directory bound to
a fresh database and drops it afterwards. Every in-process test that needs the
engine uses these fixtures; tests that need a directory of their own start a
subprocess.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from callscope.settings import StoreConfig
from callscope.store.client import Store
from callscope.store.migrations import apply_migrations
from tests.ci import unavailable
from tests.kafka.broker import KafkaBroker, KafkaBrokerError, KafkaToolMissing

KAFKA_BOOTSTRAP_ENV = "CALLSCOPE_TEST_KAFKA_BOOTSTRAP"


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """A broker this session started and owns (tests may stop and restart it)."""
    if os.environ.get(KAFKA_BOOTSTRAP_ENV):
        pytest.skip(f"{KAFKA_BOOTSTRAP_ENV} points at an external broker; this test needs one it can restart")
    broker = KafkaBroker()
    try:
        broker.start()
    except KafkaToolMissing as exc:
        broker.close()
        unavailable(f"the Kafka tests cannot run: {exc}")
    except KafkaBrokerError as exc:
        broker.close()
        pytest.fail(f"Kafka broker did not start: {exc}")
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """``host:port`` of a Kafka broker: $CALLSCOPE_TEST_KAFKA_BOOTSTRAP, else the session's own broker."""
    external = os.environ.get(KAFKA_BOOTSTRAP_ENV)
    if external:
        return external
    broker: KafkaBroker = request.getfixturevalue("kafka_broker")
    return broker.bootstrap


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
