"""The WHERE builder the list endpoints share."""

from __future__ import annotations

from api.where import Where


def test_filters_without_a_value_are_left_out() -> None:
    where = Where(limit=10)
    assert where.sql == "1"
    where.add("node = {node:String}", node=None)
    where.add("ts >= {since:DateTime64(6, 'UTC')}", since="2026-01-01")
    assert where.sql == "ts >= {since:DateTime64(6, 'UTC')}"
    assert where.params == {"limit": 10, "since": "2026-01-01"}


def test_a_filter_needs_every_value_and_starting_conditions_always_apply() -> None:
    where = Where("queue = {queue:String}", queue="sales")
    where.add("(a, b) < ({a:String}, {b:String})", a="x", b=None)
    where.add("answered = {answered:Bool}", answered=False)
    assert where.sql == "queue = {queue:String} AND answered = {answered:Bool}"
    assert where.params == {"queue": "sales", "answered": False}
