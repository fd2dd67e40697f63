"""The cluster variant of the migrations, generated from the same SQL files.

For ``StoreConfig.cluster = "<c>"`` every ``CREATE TABLE {database}.X {on_cluster}``
with a ``*MergeTree`` engine becomes two tables, both ``ON CLUSTER '<c>'``:

- ``X_local`` with ``Replicated<Engine>('/clickhouse/tables/{shard}/<db>/X_local', '{replica}', <args>)``
  (``{shard}`` and ``{replica}`` are the servers' macros), holding the data;
- ``X`` as ``Distributed('<c>', '<db>', 'X_local', <sharding expr>)``, which
  queries and inserts use, so the application's SQL is the same in both modes.

The sharding expression is the statement's ``-- shard_by:`` directive, else
``cityHash64(key)`` (the correlation key: SIP Call-ID, Asterisk linkedid ...),
so the events of one call land on one shard.

``ALTER TABLE {database}.X {on_cluster}`` is applied to ``X_local`` and then
``X``. Other statements get the ``ON CLUSTER`` clause and ``{local}`` -> ``_local``
(see :mod:`callscope.store.migrations`).

``callscope`` prints the DDL with :func:`render_cluster_ddl` for operators who
apply it themselves; :func:`callscope.store.migrations.apply_migrations` runs
the same statements when a cluster is configured.
"""

from __future__ import annotations

import re
from pathlib import Path

from callscope.settings import StoreConfig
from callscope.store.migrations import Statement, quote_literal, render_ddl, substitute

DEFAULT_SHARD_BY = "cityHash64(key)"
LOCAL_SUFFIX = "_local"

_CREATE = re.compile(
    r"^(?P<head>CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?)\{database\}\.(?P<name>\w+)\s+\{on_cluster\}", re.I
)
_ALTER = re.compile(r"^(?P<head>ALTER\s+TABLE\s+)\{database\}\.(?P<name>\w+)\s+\{on_cluster\}", re.I)
_ENGINE = re.compile(r"ENGINE\s*=\s*(?P<engine>\w*MergeTree)\s*(?:\((?P<args>[^()]*)\))?", re.I)

_NON_REPLICATED = (
    re.compile(r"non_replicated_deduplication_window\s*=\s*\d+\s*,\s*", re.I),  # first of several
    re.compile(r"\s*,\s*non_replicated_deduplication_window\s*=\s*\d+", re.I),  # after another
    re.compile(r"\s*SETTINGS\s+non_replicated_deduplication_window\s*=\s*\d+", re.I),  # the only one
)


class ClusterDDLError(ValueError):
    """A migration statement that has no cluster form."""


def cluster_statements(statements: list[Statement], *, cluster: str, database: str, ttl_days: int) -> list[str]:
    """The cluster form of statement templates (see the module docstring)."""
    out: list[str] = []
    for statement in statements:
        out.extend(_cluster_statement(statement, cluster=cluster, database=database, ttl_days=ttl_days))
    return out


def _cluster_statement(statement: Statement, *, cluster: str, database: str, ttl_days: int) -> list[str]:
    sql = statement.sql

    def render(text: str) -> str:
        return substitute(text, database=database, ttl_days=ttl_days, cluster=cluster)

    create = _CREATE.match(sql)
    if create:
        name = create["name"]
        local = name + LOCAL_SUFFIX
        engine = _ENGINE.search(sql)
        if engine is None:
            raise ClusterDDLError(f"CREATE TABLE {name}: only *MergeTree tables have a cluster form")
        if engine["engine"].lower().startswith("replicated"):
            raise ClusterDDLError(f"CREATE TABLE {name}: write the plain engine; the cluster form adds Replicated")
        path = quote_literal(f"/clickhouse/tables/{{shard}}/{database}/{local}")
        args = (engine["args"] or "").strip()
        replicated = f"ENGINE = Replicated{engine['engine']}({path}, '{{replica}}'{', ' + args if args else ''})"
        # Replicated tables deduplicate by replicated_deduplication_window; drop the non-replicated knob.
        tail = sql[engine.end() :]
        for pattern in _NON_REPLICATED:
            tail = pattern.sub("", tail)
        local_sql = (
            f"{create['head']}{{database}}.{local} {{on_cluster}}"
            + sql[create.end() : engine.start()]
            + replicated
            + tail
        )
        shard_by = statement.shard_by or DEFAULT_SHARD_BY
        distributed = (
            f"{create['head']}{{database}}.{name} {{on_cluster}} AS {{database}}.{local}\n"
            f"ENGINE = Distributed({quote_literal(cluster)}, {quote_literal(database)}, "
            f"{quote_literal(local)}, {shard_by})"
        )
        return [render(local_sql), render(distributed)]
    alter = _ALTER.match(sql)
    if alter:
        rest = sql[alter.end() :]
        name = alter["name"]
        return [render(f"{alter['head']}{{database}}.{name}{LOCAL_SUFFIX} {{on_cluster}}{rest}"), render(sql)]
    return [render(sql)]


def render_cluster_ddl(cluster: str, config: StoreConfig | None = None, *, directory: Path | None = None) -> list[str]:
    """Every statement for ``cluster``: the ``schema_migrations`` table first, then each migration's.

    ``config`` gives the database and TTL (defaults: ``StoreConfig()``); its own ``cluster`` is ignored.
    """
    if not cluster:
        raise ClusterDDLError("a cluster name is required")
    base = config or StoreConfig()
    return render_ddl(base.model_copy(update={"cluster": cluster}), directory)
