"""Migrations: applied in order, once, and guarded against edits after the fact."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from callscope.settings import StoreConfig
from callscope.store.client import Store
from callscope.store.migrations import (
    MIGRATIONS_DIR,
    applied_migrations,
    apply_migrations,
    load_migrations,
    render_ddl,
    split_statements,
    substitute,
)
from schemas.errors import StartupError
from schemas.tables import COLUMNS


def _tables(store: Store) -> set[str]:
    rows = store.query("SELECT name FROM system.tables WHERE database = {db:String}", {"db": store.database})
    return {r["name"] for r in rows}


def test_apply_creates_every_table_and_records_it(store: Store, store_config: StoreConfig) -> None:
    names = [m.name for m in load_migrations()]
    assert names == sorted(names)
    assert names[:2] == ["0001_raw_events.sql", "0002_deadletters.sql"]

    assert apply_migrations(store, store_config) == names
    assert _tables(store) == {*COLUMNS, "schema_migrations", "registrations_current", "queue_sla_15m_mv"}
    assert set(applied_migrations(store)) == set(names)


def test_second_run_applies_nothing(store: Store, store_config: StoreConfig) -> None:
    apply_migrations(store, store_config)
    assert apply_migrations(store, store_config) == []
    assert store.query("SELECT count() AS n FROM schema_migrations") == [{"n": len(load_migrations())}]


def test_a_new_migration_is_applied_alone(store: Store, store_config: StoreConfig, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    apply_migrations(store, store_config, directory=directory)
    (directory / "0099_extra.sql").write_text(
        "-- a later change\nALTER TABLE {database}.logs {on_cluster} ADD COLUMN IF NOT EXISTS source String;\n"
    )
    assert apply_migrations(store, store_config, directory=directory) == ["0099_extra.sql"]
    assert store.query(
        "SELECT count() AS n FROM system.columns WHERE database = {db:String} AND table = 'logs' AND name = 'source'",
        {"db": store.database},
    ) == [{"n": 1}]


def test_a_changed_applied_migration_is_an_error_naming_the_file(
    store: Store, store_config: StoreConfig, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    apply_migrations(store, store_config, directory=directory)
    edited = directory / "0002_deadletters.sql"
    edited.write_text(edited.read_text() + "\n-- edited after it was applied\n")
    with pytest.raises(StartupError, match=r"0002_deadletters\.sql changed after it was applied"):
        apply_migrations(store, store_config, directory=directory)


def test_badly_named_or_duplicate_numbers_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1_first.sql").write_text("SELECT 1;")
    with pytest.raises(StartupError, match="NNNN_lowercase_name"):
        load_migrations(tmp_path)
    (tmp_path / "1_first.sql").unlink()
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 2;")
    with pytest.raises(StartupError, match="share the number 0001"):
        load_migrations(tmp_path)


def test_split_statements_respects_quotes_comments_and_directives() -> None:
    text = """
    -- header; with a semicolon
    -- shard_by: cityHash64(id)
    CREATE TABLE {database}.a {on_cluster} (s String DEFAULT ';') ENGINE = MergeTree ORDER BY s;  -- trailing; comment
    INSERT INTO t VALUES ('it\\'s; fine');
    """
    statements = split_statements(text)
    assert [s.shard_by for s in statements] == ["cityHash64(id)", None]
    assert statements[0].sql.startswith("CREATE TABLE {database}.a {on_cluster} (s String DEFAULT ';')")
    assert statements[1].sql == "INSERT INTO t VALUES ('it\\'s; fine')"  # full-line comments dropped


def test_placeholders() -> None:
    sql = "CREATE TABLE {database}.x {on_cluster} (ts DateTime) ENGINE = MergeTree TTL ts + INTERVAL {ttl_days} DAY"
    assert substitute(sql, database="db", ttl_days=7) == (
        "CREATE TABLE `db`.x (ts DateTime) ENGINE = MergeTree TTL ts + INTERVAL 7 DAY"
    )
    assert "ON CLUSTER 'main'" in substitute(sql, database="db", ttl_days=7, cluster="main")
    # ClickHouse macros and query parameters are not placeholders
    assert substitute("'{shard}' {x:String} FROM {database}.t{local}", database="d", ttl_days=1) == (
        "'{shard}' {x:String} FROM `d`.t"
    )


def test_embedded_ddl_parses(engine_store: Store) -> None:
    for sql in render_ddl(StoreConfig(database="callscope")):
        engine_store.query("SELECT formatQuery({q:String}) AS f", {"q": sql})
