"""The repository's Prometheus rules as data: rule files, their unit-test files, the runbook.

Shared by tests/prometheus (static checks, promtool) and tests/e2e/test_health_alerts.py, which
reads a rule's ``for:`` to set its deadline instead of repeating the number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "dashboards" / "prometheus"
TESTS_DIR = RULES_DIR / "tests"
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/callscope/callscope/blob/main/docs/runbook.md"
SEVERITIES = ("page", "ticket", "info")

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.rules.yml"))


def unit_test_files() -> list[Path]:
    return sorted(TESTS_DIR.glob("*.yml"))


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a YAML mapping")
    return doc


@dataclass(frozen=True)
class Rule:
    file: Path
    group: str
    body: dict[str, Any]

    @property
    def alert(self) -> str | None:
        name = self.body.get("alert")
        return str(name) if name is not None else None

    @property
    def record(self) -> str | None:
        name = self.body.get("record")
        return str(name) if name is not None else None

    @property
    def for_secs(self) -> float:
        return parse_duration(str(self.body.get("for", "0s")))

    @property
    def labels(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.body.get("labels") or {}).items()}

    @property
    def annotations(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.body.get("annotations") or {}).items()}


def rules(files: list[Path] | None = None) -> list[Rule]:
    out: list[Rule] = []
    for path in files if files is not None else rule_files():
        for group in load(path).get("groups", []):
            out.extend(Rule(path, str(group["name"]), dict(body)) for body in group.get("rules", []))
    return out


def alerts() -> dict[str, Rule]:
    """Every alerting rule by name (names are unique across the files; a test checks it)."""
    return {r.alert: r for r in rules() if r.alert is not None}


def parse_duration(text: str) -> float:
    """A Prometheus duration (``1m``, ``1h30m``, ``500ms``) in seconds."""
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNIT_SECS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return total


def runbook_anchors() -> list[str]:
    """Anchors of the runbook's second-level sections, as GitHub renders them (lower case)."""
    anchors = []
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("## "):
            title = line[3:].strip().lower()
            anchors.append(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return anchors


def metric_names(expr: str) -> set[str]:
    """``callscope_*`` metric families an expression reads (histogram suffixes folded away;
    recorded series such as ``trunk:callscope_trunk_asr:ratio_rate30m`` are not metrics)."""
    names = set(re.findall(r"(?<![\w:])callscope_[a-z0-9_]+\b(?!:)", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
