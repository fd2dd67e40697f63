"""The trace's query savings (api/trace.py): skipping empty tables and reusing ``call_links`` rows changes the
number of queries, never the answer.

Each case loads the same trace twice on the same store: as shipped, and with :func:`api.trace.empty_tables`
made to report nothing empty (every section queries, as before the savings), and compares the response
models field by field, and which tables each run queried.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

import api.trace
from api.routes.calls import trace_model
from api.trace import Trace, load_trace
from callscope.store.client import Store
from tests.api_calls.scenario import A_LEG, B_LEG, seed_scenario
from tests.asterisk_calls.test_trace import CALLER_UID, seed_asterisk

_FROM = re.compile(r"\bFROM\s+([a-z_.]+)")


class CountingStore:
    """A store that records the tables each query reads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.tables: list[set[str]] = []

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        self.tables.append(set(_FROM.findall(sql)))
        return self.store.query(sql, parameters)


def traced(store: Store, call_id: str, *, skip: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[Trace, CountingStore]:
    counting = CountingStore(store)
    with monkeypatch.context() as patch:
        if not skip:
            patch.setattr(api.trace, "empty_tables", lambda _store: frozenset())
        trace = load_trace(counting, call_id)
    return trace, counting


def read_tables(counting: CountingStore) -> set[str]:
    return set().union(*counting.tables) - {"system.tables"}


def data_queries(counting: CountingStore) -> int:
    return sum(1 for tables in counting.tables if tables != {"system.tables"})


def test_sip_only_trace_skips_the_asterisk_side(migrated_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_scenario(migrated_store)
    for call_id in (A_LEG, B_LEG, "no-such-call@example.net"):
        fast, fast_store = traced(migrated_store, call_id, skip=True, monkeypatch=monkeypatch)
        full, full_store = traced(migrated_store, call_id, skip=False, monkeypatch=monkeypatch)
        assert trace_model(fast) == trace_model(full)
        assert fast.found == full.found
        # The scenario has legs, links, messages, media and logs, but no Asterisk side.
        assert "asterisk_legs" in fast.empty
        assert {"media_quality", "logs", "sip_messages", "call_legs"}.isdisjoint(fast.empty)
        assert not read_tables(fast_store) & {"asterisk_legs", "asterisk_calls", "asterisk_transfers"}
        # With linked calls, their Asterisk link rows are a query saved; the call's own are reused in both runs.
        assert data_queries(fast_store) == data_queries(full_store) - (1 if fast.links else 0)
    # Nothing skipped that has rows: the a-leg's trace still reads media and logs.
    fast, fast_store = traced(migrated_store, A_LEG, skip=True, monkeypatch=monkeypatch)
    assert {"media_quality", "logs", "sip_messages", "call_legs", "call_links"} <= read_tables(fast_store)
    assert fast.media_quality
    assert fast.logs


@pytest.mark.parametrize("call_id", [A_LEG, B_LEG, CALLER_UID])
def test_trace_with_an_asterisk_side_is_unchanged(
    migrated_store: Store, monkeypatch: pytest.MonkeyPatch, call_id: str
) -> None:
    seed_scenario(migrated_store)
    seed_asterisk(migrated_store)
    fast, fast_store = traced(migrated_store, call_id, skip=True, monkeypatch=monkeypatch)
    full, full_store = traced(migrated_store, call_id, skip=False, monkeypatch=monkeypatch)
    assert fast.asterisk.legs, "the scenario ties this Call-ID to ast1's channels"
    assert trace_model(fast) == trace_model(full)
    assert "asterisk_legs" not in fast.empty
    # No CEL and no queue sessions were seeded: those queries are the ones saved.
    assert {"cel", "queue_sessions"} <= fast.empty
    assert not read_tables(fast_store) & {"cel", "queue_sessions"}
    assert "cel" in read_tables(full_store)
    assert data_queries(fast_store) < data_queries(full_store)


def test_the_emptiness_lookup_stops_once_every_table_had_rows(migrated_store: Store) -> None:
    seed_scenario(migrated_store)
    seed_asterisk(migrated_store)
    counting = CountingStore(migrated_store)
    first = load_trace(counting, B_LEG)
    assert {"system.tables"} in counting.tables
    assert first.empty == {"asterisk_transfers", "cel", "queue_sessions"}  # the scenario has no transfer
    for table in first.empty:
        migrated_store.command(f"INSERT INTO {table} (id) VALUES ('filler')")
    counting.tables.clear()
    assert load_trace(counting, B_LEG).empty == frozenset()
    assert {"system.tables"} in counting.tables  # the three were not known to hold rows yet
    counting.tables.clear()
    again = load_trace(counting, B_LEG)
    assert {"system.tables"} not in counting.tables
    # The filler rows belong to no call: the answer is the same.
    assert trace_model(again) == trace_model(first)
