"""All dashboards, rendered as deterministic JSON (sorted keys, stable uids and panel ids)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.grafana.gen.calls import call_quality, call_trace, trunks
from dashboards.grafana.gen.noc import noc_wallboard
from dashboards.grafana.gen.operations import nodes, queues, registrations

#: Where the committed JSON lives (the provisioning provider points here).
OUTPUT_DIR = Path(__file__).resolve().parent.parent

#: File stem -> dashboard factory. The stem is the uid without the ``callscope-`` prefix.
DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "noc": noc_wallboard,
    "trunks": trunks,
    "queues": queues,
    "call-quality": call_quality,
    "registrations": registrations,
    "nodes": nodes,
    "call-trace": call_trace,
}


def as_dict(builder: dashboard.Dashboard) -> dict[str, Any]:
    """The dashboard model as plain JSON data, panel ids numbered in layout order."""
    data: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    for number, panel in enumerate(data.get("panels", []), start=1):
        panel["id"] = number
    for variable in data.get("templating", {}).get("list", []):
        variable.pop("id", None)  # the SDK's placeholder, the same for every variable
    return data


def render(builder: dashboard.Dashboard) -> str:
    return json.dumps(as_dict(builder), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"{stem}.json": render(factory()) for stem, factory in DASHBOARDS.items()}


def write(directory: Path = OUTPUT_DIR) -> list[str]:
    """Write every dashboard; the names of the files that changed."""
    changed = []
    for name, content in rendered().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            changed.append(name)
    return changed


def stale(directory: Path = OUTPUT_DIR) -> list[str]:
    """Names of the committed files that differ from the code (missing ones included)."""
    out = []
    for name, content in rendered().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            out.append(name)
    expected = set(rendered())
    out += sorted(p.name for p in directory.glob("*.json") if p.name not in expected)
    return out
