"""The end-of-test proof every fault test makes: every generated event stored exactly once.

The pipeline is at-least-once with stable ids (DESIGN.md, Delivery): a redelivered event may
sit in a raw table twice until ReplacingMergeTree merges it, so the proof reads the table
under ``FINAL`` — ``count == generated`` and ``count - uniqExact(id) == 0`` — and also reports
the raw row count, so a test can say how many redeliveries the fault caused.
"""

from __future__ import annotations

from dataclasses import dataclass

from callscope.store.client import Store, quote_identifier


@dataclass(frozen=True)
class Stored:
    table: str
    final_count: int  # rows under FINAL
    distinct_ids: int  # uniqExact(id) under FINAL
    raw_count: int  # rows before merging: final_count plus redeliveries not yet collapsed

    @property
    def duplicates(self) -> int:
        return self.final_count - self.distinct_ids

    @property
    def redelivered(self) -> int:
        return self.raw_count - self.final_count


def stored(store: Store, table: str, where: str = "1") -> Stored:
    """Count ``table`` under FINAL and raw; ``where`` narrows to one test's events (trusted SQL)."""
    name = quote_identifier(table)
    final = store.query(f"SELECT count() AS n, uniqExact(id) AS u FROM {name} FINAL WHERE {where}")[0]
    raw = store.query(f"SELECT count() AS n FROM {name} WHERE {where}")[0]
    return Stored(table, int(final["n"]), int(final["u"]), int(raw["n"]))


def assert_exactly_once(result: Stored, generated: int) -> None:
    """The proof: as many rows as generated events, and no id twice."""
    assert result.final_count == generated, f"{result.table}: {result.final_count} stored, {generated} generated"
    assert result.duplicates == 0, f"{result.table}: {result.duplicates} ids stored twice"
