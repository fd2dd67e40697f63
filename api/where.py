"""The WHERE clause of a filtered query and its bound parameters, built one optional filter at a time."""

from __future__ import annotations

from typing import Any


class Where:
    """AND-ed conditions with their parameters; a filter whose value is ``None`` is left out.

    ``Where("queue = {queue:String}", queue=q, limit=100)`` starts with conditions that always
    apply; ``add("node = {node:String}", node=node)`` adds one only when ``node`` is given.
    Values are always bound parameters, never text in the SQL.
    """

    def __init__(self, *conditions: str, **params: Any) -> None:
        self.conditions = list(conditions)
        self.params: dict[str, Any] = dict(params)

    def add(self, condition: str, **params: Any) -> None:
        if any(value is None for value in params.values()):
            return
        self.conditions.append(condition)
        self.params.update(params)

    @property
    def sql(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "1"
