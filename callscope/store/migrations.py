"""Numbered SQL migrations: ``schemas/migrations/NNNN_name.sql``, applied in order, once.

:func:`apply_migrations` records each applied file in ``schema_migrations``
(name, checksum, applied_at). Running it again applies nothing; a file whose
checksum changed after it was applied is an error naming the file (write a new
migration instead of editing an old one).

File format: statements end with ``;``; ``--`` comments are allowed anywhere.
A full-line ``-- shard_by: EXPR`` comment before a ``CREATE TABLE`` sets the
Distributed sharding expression of that table on a cluster (default
``cityHash64(key)``: the bus's correlation key, so one call's events share a shard).

Placeholders, replaced as exact text (anything else in braces, such as the
``{shard}``/``{replica}`` macros or ``{name:Type}`` query parameters, passes through):

==================  =====================================  ==================================
placeholder         embedded engine (chDB, one server)     cluster (``StoreConfig.cluster``)
==================  =====================================  ==================================
``{database}``      the quoted database name               the same
``{on_cluster}``    nothing                                ``ON CLUSTER '<cluster>'``
``{ttl_days}``      ``StoreConfig.ttl_days``               the same
``{local}``         nothing                                ``_local`` (for materialized views
                                                           that must read/write shard tables)
==================  =====================================  ==================================

On a cluster, ``CREATE TABLE {database}.X {on_cluster} ... ENGINE = <Y>MergeTree(args)``
becomes ``X_local`` with ``Replicated<Y>MergeTree('/clickhouse/tables/{shard}/<db>/X_local',
'{replica}', args)`` plus ``X`` as a ``Distributed`` table over it, and
``ALTER TABLE {database}.X {on_cluster} ...`` is applied to both; see
:mod:`callscope.store.cluster`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import schemas
from callscope.settings import StoreConfig
from callscope.store.client import Store, quote_identifier
from callscope.telemetry import get_logger
from schemas.errors import StartupError

MIGRATIONS_DIR = Path(schemas.__file__).resolve().parent / "migrations"
MIGRATIONS_TABLE = "schema_migrations"

_NAME = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")
_DIRECTIVE = re.compile(r"^\s*--\s*shard_by:\s*(?P<expr>.+?)\s*$")

_BOOTSTRAP = f"""
-- shard_by: cityHash64(name)
CREATE TABLE IF NOT EXISTS {{database}}.{MIGRATIONS_TABLE} {{on_cluster}}
(
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY name
"""


@dataclass(frozen=True)
class Statement:
    """One SQL statement template (placeholders not yet replaced), full-line comments removed."""

    sql: str
    shard_by: str | None = None


@dataclass(frozen=True)
class Migration:
    name: str
    text: str
    checksum: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "checksum", hashlib.sha256(self.text.encode()).hexdigest())

    def statements(self) -> list[Statement]:
        return split_statements(self.text)


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files of ``directory`` (default ``schemas/migrations``), in order."""
    root = directory or MIGRATIONS_DIR
    migrations: list[Migration] = []
    numbers: dict[str, str] = {}
    for path in sorted(root.glob("*.sql")):
        if not _NAME.match(path.name):
            raise StartupError(f"migration file {path} must be named NNNN_lowercase_name.sql")
        number = path.name[:4]
        if number in numbers:
            raise StartupError(f"migrations {numbers[number]} and {path.name} share the number {number}")
        numbers[number] = path.name
        migrations.append(Migration(path.name, path.read_text(encoding="utf-8")))
    return migrations


def split_statements(text: str) -> list[Statement]:
    """Split SQL text at ``;`` outside quotes and comments; collect ``-- shard_by:`` directives."""
    statements: list[Statement] = []
    current: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote is not None:
            current.append(ch)
            if ch == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'`\"":
            quote = ch
            current.append(ch)
        elif text.startswith("--", i):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            current.append(text[i:end])
            i = end - 1
        elif ch == ";":
            _finish(current, statements)
            current = []
        else:
            current.append(ch)
        i += 1
    _finish(current, statements)
    return statements


def _finish(chars: list[str], out: list[Statement]) -> None:
    shard_by: str | None = None
    lines: list[str] = []
    for line in "".join(chars).splitlines():
        directive = _DIRECTIVE.match(line)
        if directive:
            shard_by = directive["expr"]
        elif not line.lstrip().startswith("--"):
            lines.append(line.rstrip())
    sql = "\n".join(lines).strip()
    if sql:
        out.append(Statement(sql, shard_by))


def on_cluster_clause(cluster: str | None) -> str:
    if not cluster:
        return ""
    return "ON CLUSTER " + quote_literal(cluster)


def quote_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def substitute(sql: str, *, database: str, ttl_days: int, cluster: str | None = None) -> str:
    """Replace the placeholders of one statement template (see the module docstring)."""
    if not cluster:
        sql = sql.replace(" {on_cluster}", "")
    values = {
        "{database}": quote_identifier(database),
        "{on_cluster}": on_cluster_clause(cluster),
        "{ttl_days}": str(int(ttl_days)),
        "{local}": "_local" if cluster else "",
    }
    for token, value in values.items():
        sql = sql.replace(token, value)
    return sql


def render_statements(statements: list[Statement], config: StoreConfig) -> list[str]:
    """The SQL to run for ``statements``: embedded form, or the cluster form when ``config.cluster`` is set."""
    if config.cluster:
        from callscope.store.cluster import cluster_statements

        return cluster_statements(
            statements, cluster=config.cluster, database=config.database, ttl_days=config.ttl_days
        )
    return [substitute(s.sql, database=config.database, ttl_days=config.ttl_days) for s in statements]


def render_ddl(config: StoreConfig, directory: Path | None = None) -> list[str]:
    """Every statement of every migration (bootstrap table first), as :func:`apply_migrations` would run them."""
    statements = split_statements(_BOOTSTRAP)
    for migration in load_migrations(directory):
        statements.extend(migration.statements())
    return render_statements(statements, config)


def applied_migrations(store: Store) -> dict[str, str]:
    """Name -> checksum of the migrations recorded in ``schema_migrations``."""
    table = f"{quote_identifier(store.database)}.{MIGRATIONS_TABLE}"
    rows = store.query(f"SELECT name, argMax(checksum, applied_at) AS checksum FROM {table} GROUP BY name")  # noqa: S608 (quoted identifiers only)
    return {str(row["name"]): str(row["checksum"]) for row in rows}


def apply_migrations(store: Store, config: StoreConfig, *, directory: Path | None = None) -> list[str]:
    """Apply the migrations not yet recorded, in order; return their names.

    Raises :class:`StartupError` when an applied migration's file changed, and
    :class:`schemas.errors.StoreError` when a statement fails (the migration is
    then not recorded; its statements use IF NOT EXISTS, so a rerun resumes).
    """
    log = get_logger("store", database=config.database)
    migrations = load_migrations(directory)
    for sql in render_statements(split_statements(_BOOTSTRAP), config):
        store.command(sql)
    done = applied_migrations(store)
    for migration in migrations:
        recorded = done.get(migration.name)
        if recorded is not None and recorded != migration.checksum:
            raise StartupError(
                f"migration {migration.name} changed after it was applied (checksum {migration.checksum[:12]}, "
                f"applied {recorded[:12]}); add a new migration instead of editing an applied one"
            )
    applied: list[str] = []
    for migration in migrations:
        if migration.name in done:
            continue
        for sql in render_statements(migration.statements(), config):
            store.command(sql)
        store.insert(
            MIGRATIONS_TABLE,
            [(migration.name, migration.checksum, datetime.now(UTC))],
            ("name", "checksum", "applied_at"),
            dedup_token=f"{migration.name}:{migration.checksum}",
        )
        log.info("migration applied", migration=migration.name)
        applied.append(migration.name)
    return applied
