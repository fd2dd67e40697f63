"""Every ClickHouse panel's SQL, expanded as the plugin expands it, runs on the embedded engine.

The store is migrated and seeded (tests/dashboards/seed.py); each query must run, return rows and
return the columns its panel type needs: a time series a ``time`` DateTime column first, then at
most one string (the series name) and numbers; a stat numbers; a table anything, with the Call-ID
column the link is set on; a bar gauge a name and numbers. Run once with every variable on All
and once with one value each.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from callscope.store import Store
from dashboards.grafana.gen.macros import QueryContext, Variable, expand
from dashboards.grafana.gen.panels import VARIABLE_SQL
from tests.dashboards import seed
from tests.dashboards.model import clickhouse_targets, panel_id, variables

_NUMERIC = re.compile(r"^(Nullable\()?(U?Int\d+|Float\d+|Decimal.*|Bool)\)?$")
_TIME = re.compile(r"^(Nullable\()?DateTime(64)?(\(.*\))?\)?$")
_STRING = re.compile(r"^(Nullable\()?(LowCardinality\()?String\)?\)?$")


def _seeded(store: Store) -> None:
    for statement in seed.SEED_SQL:
        store.command(statement)


def _describe(store: Store, sql: str) -> list[tuple[str, str]]:
    names, rows = store.query_rows(f"DESCRIBE TABLE ({sql})")
    index = {name: i for i, name in enumerate(names)}
    return [(str(row[index["name"]]), str(row[index["type"]])) for row in rows]


def _columns_problem(panel: dict[str, Any], columns: list[tuple[str, str]]) -> str | None:
    kind = panel["type"]
    types = [t for _, t in columns]
    if kind == "timeseries" or (kind == "stat" and columns and columns[0][0] == "time"):
        if not columns or columns[0][0] != "time" or not _TIME.match(types[0]):
            return f"a time series needs a DateTime column `time` first, got {columns}"
        rest = types[1:]
        strings = [t for t in rest if _STRING.match(t)]
        numbers = [t for t in rest if _NUMERIC.match(t)]
        if len(strings) > 1 or (strings and not _STRING.match(rest[0])) or not numbers:
            return f"a time series needs [series name,] numbers after `time`, got {columns}"
        if len(strings) + len(numbers) != len(rest):
            return f"a time series has columns that are neither a name nor a number: {columns}"
    elif kind == "stat":
        if not columns or not all(_NUMERIC.match(t) for t in types):
            return f"a stat needs numeric columns, got {columns}"
    elif kind == "bargauge":
        strings = [t for t in types if _STRING.match(t)]
        numbers = [t for t in types if _NUMERIC.match(t)]
        if len(strings) > 1 or not numbers or len(strings) + len(numbers) != len(types):
            return f"a bar gauge needs [a name,] numbers, got {columns}"
    elif kind == "table":
        if not columns:
            return "a table query returns no columns"
        link = _call_id_link_column(panel)
        if link is not None and link not in {name for name, _ in columns}:
            return f"the Call-ID link is set on `{link}`, which the query does not return"
    return None


def _call_id_link_column(panel: dict[str, Any]) -> str | None:
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        if any(prop["id"] == "links" for prop in override["properties"]):
            return str(override["matcher"]["options"])
    return None


def _context(stem: str, *, one: bool) -> QueryContext:
    now = datetime.now(UTC)
    picks = {"node": seed.NODE, "trunk": seed.TRUNK, "queue": seed.QUEUE}
    options = {"node": ("sbc-1", "sbc-2", "pbx-1"), "trunk": (seed.TRUNK,), "queue": (seed.QUEUE, "sales")}
    found: list[Variable] = []
    for var in variables(stem):
        name = var["name"]
        if name in picks:
            found.append(Variable(name, options[name], (picks[name],) if one else None))
        elif name == "call_id":
            found.append(Variable(name, (seed.CALL_ID,), (seed.CALL_ID,)))
    return QueryContext(now - timedelta(hours=6), now + timedelta(minutes=5), 60_000, tuple(found))


def _run_all(store: Store, *, one: bool) -> tuple[list[str], int]:
    problems: list[str] = []
    checked = 0
    for stem, panel, target in clickhouse_targets():
        where = panel_id(stem, panel, target)
        sql = expand(target["rawSql"], _context(stem, one=one))
        try:
            columns = _describe(store, sql)
            rows = store.query_rows(sql)[1]
        except Exception as exc:  # a failing query is reported with its panel, not as the first crash
            problems.append(f"{where}: {exc}")
            continue
        checked += 1
        if (problem := _columns_problem(panel, columns)) is not None:
            problems.append(f"{where}: {problem}")
        if not rows and not one:  # one value selected may rightly filter everything out
            problems.append(f"{where}: no rows from the seeded data")
    return problems, checked


def test_every_clickhouse_panel_runs_with_all_selected(migrated_store: Store) -> None:
    _seeded(migrated_store)
    problems, checked = _run_all(migrated_store, one=False)
    assert problems == []
    assert checked == len(clickhouse_targets()) > 30


def test_every_clickhouse_panel_runs_with_one_value_selected(migrated_store: Store) -> None:
    _seeded(migrated_store)
    problems, checked = _run_all(migrated_store, one=True)
    assert problems == []
    assert checked == len(clickhouse_targets())


def test_the_filters_filter(migrated_store: Store) -> None:
    """One node selected: the worst-quality table shows only that node's calls."""
    _seeded(migrated_store)
    [(stem, _, target)] = [t for t in clickhouse_targets() if t[1]["title"] == "Worst call quality"]
    all_rows = migrated_store.query(expand(target["rawSql"], _context(stem, one=False)))
    one_rows = migrated_store.query(expand(target["rawSql"], _context(stem, one=True)))
    assert {r["call_id"] for r in all_rows} == {seed.CALL_ID, "call-3@example.org"}
    assert all_rows[0]["call_id"] == "call-3@example.org"  # the worst first
    assert {r["seen_by"] for r in one_rows} == {seed.NODE}


def test_wallboard_figures_match_the_seed(migrated_store: Store) -> None:
    _seeded(migrated_store)
    by_title = {p["title"]: t for s, p, t in clickhouse_targets() if s == "noc"}
    ctx = _context("noc", one=False)
    assert migrated_store.query(expand(by_title["Active calls"]["rawSql"], ctx)) == [{"active_calls": 1}]
    assert migrated_store.query(expand(by_title["ACD"]["rawSql"], ctx)) == [{"acd": 118.0}]
    levels = {
        r["queue"]: r["service_level"]
        for r in migrated_store.query(expand(by_title["Queue service level now"]["rawSql"], ctx))
    }
    # support: 2 offered, 1 answered after 10 s (within 20 s); sales: 1 offered, answered after 40 s.
    assert levels == {"support": 0.5, "sales": 0.0}


def test_variable_queries_list_the_seeded_values(migrated_store: Store) -> None:
    _seeded(migrated_store)
    got = {name: [r[0] for r in migrated_store.query_rows(sql)[1]] for name, sql in VARIABLE_SQL.items()}
    assert got == {"node": ["pbx-1", "sbc-1", "sbc-2"], "trunk": [seed.TRUNK], "queue": ["sales", seed.QUEUE]}
