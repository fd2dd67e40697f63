"""The generated dashboards as plain data, and walks over their panels and queries."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from dashboards.grafana.gen.panels import CLICKHOUSE_TYPE, PROMETHEUS_TYPE
from dashboards.grafana.gen.render import DASHBOARDS, as_dict

Panel = dict[str, Any]


@functools.cache
def dashboards() -> dict[str, dict[str, Any]]:
    """File stem -> dashboard JSON data, straight from the code."""
    return {stem: as_dict(factory()) for stem, factory in DASHBOARDS.items()}


def panels() -> Iterator[tuple[str, Panel]]:
    for stem, board in dashboards().items():
        for panel in board["panels"]:
            yield stem, panel


def targets(kind: str) -> Iterator[tuple[str, Panel, dict[str, Any]]]:
    """(dashboard stem, panel, target) for every target of a datasource type."""
    for stem, panel in panels():
        if panel.get("datasource", {}).get("type") == kind:
            for target in panel.get("targets", []):
                yield stem, panel, target


def clickhouse_targets() -> list[tuple[str, Panel, dict[str, Any]]]:
    return list(targets(CLICKHOUSE_TYPE))


def prometheus_targets() -> list[tuple[str, Panel, dict[str, Any]]]:
    return list(targets(PROMETHEUS_TYPE))


def variables(stem: str) -> list[dict[str, Any]]:
    return list(dashboards()[stem]["templating"]["list"])


def panel_id(stem: str, panel: Panel, target: dict[str, Any] | None = None) -> str:
    suffix = f"/{target['refId']}" if target else ""
    return f"{stem}:{panel['title']}{suffix}"
