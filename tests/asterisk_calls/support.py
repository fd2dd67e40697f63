"""Feeding the asterisk_calls core and reading what it wrote: the newest row per leg, call, transfer and link.

Golden files (``golden/<scenario>.json``) hold what the core writes for a recording, reviewed
once; ``CALLSCOPE_UPDATE_GOLDEN=1 pytest tests/asterisk_calls`` rewrites them after a reviewed
change, otherwise a difference fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from processors.asterisk_calls.correlator import AsteriskCorrelator, Output
from processors.asterisk_calls.rows import CallRow, LegRow, TransferRow
from processors.call_legs.correlator import LinkRow
from schemas.envelope import Envelope

GOLDEN = Path(__file__).resolve().parent / "golden"
_VOLATILE = frozenset({"id", "version", "updated_at", "checkpoint"})


@dataclass
class Final:
    """The newest version of every row the core wrote, and how many versions it wrote."""

    legs: dict[str, LegRow] = field(default_factory=dict)
    calls: dict[str, CallRow] = field(default_factory=dict)
    transfers: dict[str, TransferRow] = field(default_factory=dict)
    links: dict[str, LinkRow] = field(default_factory=dict)
    versions: int = 0

    def add(self, rows: Iterable[Output]) -> None:
        for row in rows:
            self.versions += 1
            if isinstance(row, LegRow):
                _newest(self.legs, row.uniqueid, row)
            elif isinstance(row, CallRow):
                _newest(self.calls, row.linkedid, row)
            elif isinstance(row, TransferRow):
                _newest(self.transfers, row.transfer_id, row)
            else:
                self.links[row.id] = row

    def call(self) -> CallRow:
        assert len(self.calls) == 1, sorted(self.calls)
        return next(iter(self.calls.values()))


def _newest(store: dict[str, Any], key: str, row: Any) -> None:
    old = store.get(key)
    assert old is None or row.version > old.version, (key, row.version)
    store[key] = row


def feed(envs: Iterable[Envelope], correlator: AsteriskCorrelator | None = None) -> tuple[AsteriskCorrelator, Final]:
    core = correlator if correlator is not None else AsteriskCorrelator()
    final = Final()
    for env in envs:
        final.add(core.feed(env))
    return core, final


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def content(row: Any) -> dict[str, Any]:
    """A row's columns without its version bookkeeping, JSON-ready."""
    return {f.name: _jsonable(getattr(row, f.name)) for f in fields(row) if f.name not in _VOLATILE}


def document(final: Final) -> dict[str, Any]:
    return {
        "calls": {k: content(v) for k, v in sorted(final.calls.items())},
        "legs": {k: content(v) for k, v in sorted(final.legs.items())},
        "transfers": {k: content(v) for k, v in sorted(final.transfers.items())},
        "links": sorted({(r.call_id, r.via, r.value) for r in final.links.values()}),
    }


def check_golden(name: str, doc: dict[str, Any]) -> None:
    """Compare ``doc`` with ``golden/<name>.json`` (rewrite it when CALLSCOPE_UPDATE_GOLDEN=1)."""
    path = GOLDEN / f"{name}.json"
    text = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    if os.environ.get("CALLSCOPE_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.is_file(), f"no golden file {path}: review the output and run with CALLSCOPE_UPDATE_GOLDEN=1"
    expected = orjson.loads(path.read_bytes())
    got = orjson.loads(text)
    for section in ("calls", "legs", "transfers"):
        assert set(got[section]) == set(expected[section]), section
        for key, row in got[section].items():
            assert row == expected[section][key], (section, key)
    assert got["links"] == expected["links"]
