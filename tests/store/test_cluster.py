"""The cluster variant of the DDL: generated from the migrations and parsed by the engine (no cluster here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from callscope.settings import StoreConfig
from callscope.store.client import Store
from callscope.store.cluster import ClusterDDLError, render_cluster_ddl
from schemas.errors import StoreError
from schemas.tables import COLUMNS


@pytest.fixture(scope="module")
def ddl() -> list[str]:
    return render_cluster_ddl("voip_main", StoreConfig(database="callscope", ttl_days=14))


def test_every_statement_parses(engine_store: Store, ddl: list[str]) -> None:
    for sql in ddl:
        formatted = engine_store.query("SELECT formatQuery({q:String}) AS f", {"q": sql})[0]["f"]
        assert "ON CLUSTER voip_main" in formatted


def test_the_parse_check_is_real(engine_store: Store) -> None:
    with pytest.raises(StoreError, match="SYNTAX_ERROR"):
        engine_store.query("SELECT formatQuery({q:String})", {"q": "CREATE TABLE x ON CLUSTER 'c' (a String ENGINE"})


def test_each_table_is_replicated_locally_and_distributed(ddl: list[str]) -> None:
    for table in (*COLUMNS, "schema_migrations"):
        local = [s for s in ddl if re.search(rf"`callscope`\.{table}_local ON CLUSTER 'voip_main'\n", s)]
        assert len(local) == 1, table
        assert "Replicated" in local[0]
        assert f"'/clickhouse/tables/{{shard}}/callscope/{table}_local', '{{replica}}'" in local[0]
        assert "non_replicated_deduplication_window" not in local[0]
        dist = [s for s in ddl if s.startswith(f"CREATE TABLE IF NOT EXISTS `callscope`.{table} ON CLUSTER")]
        assert len(dist) == 1, table
        assert f"AS `callscope`.{table}_local" in dist[0]
        assert f"Distributed('voip_main', 'callscope', '{table}_local', " in dist[0]
    assert "INTERVAL 14 DAY" in next(s for s in ddl if "sip_messages_local" in s)


def test_sharding_keeps_a_call_on_one_shard(ddl: list[str]) -> None:
    def shard_key(table: str) -> str:
        stmt = next(s for s in ddl if f"'{table}_local', " in s)
        return stmt.rsplit(", ", 1)[1].rstrip(")")

    assert shard_key("sip_messages") == "cityHash64(key"  # the correlation key: the Call-ID for SIP
    assert shard_key("queue_log") == "cityHash64(key"
    assert shard_key("deadletters") == "cityHash64(id"
    assert shard_key("schema_migrations") == "cityHash64(name"


def test_alter_goes_to_both_tables(tmp_path: Path) -> None:
    (tmp_path / "0001_t.sql").write_text(
        "CREATE TABLE IF NOT EXISTS {database}.t {on_cluster} (id String, key String) "
        "ENGINE = ReplacingMergeTree ORDER BY id;\n"
        "ALTER TABLE {database}.t {on_cluster} ADD COLUMN x String;\n"
    )
    ddl = render_cluster_ddl("c", StoreConfig(database="db"), directory=tmp_path)
    assert ddl[-2] == "ALTER TABLE `db`.t_local ON CLUSTER 'c' ADD COLUMN x String"
    assert ddl[-1] == "ALTER TABLE `db`.t ON CLUSTER 'c' ADD COLUMN x String"
    assert "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/t_local', '{replica}')" in ddl[-4]


def test_replicated_engines_in_migrations_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_t.sql").write_text(
        "CREATE TABLE {database}.t {on_cluster} (id String) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY id;"
    )
    with pytest.raises(ClusterDDLError, match="write the plain engine"):
        render_cluster_ddl("c", directory=tmp_path)
