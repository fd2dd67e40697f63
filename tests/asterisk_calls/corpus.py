"""The conformance corpus for the Asterisk tests: cacofonisk's AMI recordings and their expected outcomes.

Recordings are read in place from ``../shared/corpus`` (never copied). ``MANIFEST.md`` states,
per recording, cacofonisk's "upstream expected callback sequence" (``on_b_dial >
on_b_dial_end(answer) > on_up > on_hangup(completed)``); :func:`expectation` turns it into
what the stored legs, calls and transfers must show (:class:`Expected`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import orjson

from schemas.envelope import AmiEnvelope, event_id
from tests.corpus import CORPUS, corpus_file

CACOFONISK = "cacofonisk/tests/fixtures"
T0 = datetime(2024, 6, 1, 9, 0, 0, tzinfo=UTC)
STEP = timedelta(milliseconds=100)
NODE = "ast1"

# Scenario families: one recording each is enough for the pure-core golden tests.
FAMILIES = {
    "simple_answered": "simple/ab_success_a_hangup.json",
    "no_answer": "simple/ab_callgroup_no_answer.json",
    "busy": "simple/ab_reject.json",
    "cancelled": "simple/ab_a_cancel.json",
    "group": "simple/ab_callgroup.json",
    "acceptance": "mobile/acceptance_reject.json",
    "blind_transfer": "xfer_blind/xfer_blind_abbcac.json",
    "attended_transfer": "xfer_attended/xfer_abacbc.json",
    "blonde_transfer": "xfer_blonde/xfer_blonde_abacbc.json",
    "sip_pickup": "xfer_misc/sip_pickup.json",
    "star_pickup": "xfer_misc/star_pickup.json",
    "call_forwarding": "xfer_misc/call_forwarding.json",
    "queue": "queue/queue_simple.json",
    "originate": "originate/ctd-account-world.json",
}


corpus_path = corpus_file


def recording(name: str) -> list[dict[str, str]]:
    """The events of one cacofonisk recording (``simple/ab_reject.json``), in order."""
    data = orjson.loads(corpus_path(f"{CACOFONISK}/{name}").read_bytes())
    assert isinstance(data, list)
    return [{str(k): str(v) for k, v in event.items()} for event in data]


def correlation_key(fields: dict[str, str], node: str) -> str:
    """The contract's envelope key: Linkedid, else Uniqueid, else the node."""
    for name in ("Linkedid", "Uniqueid", "UniqueID", "Uniqueid1"):
        if fields.get(name):
            return fields[name]
    return node


def envelopes(events: list[dict[str, str]], *, tag: str, node: str = NODE, t0: datetime = T0) -> list[AmiEnvelope]:
    """AMI envelopes of a recording's events, 100 ms apart (the recordings have no timestamps)."""
    out = []
    for i, fields in enumerate(events):
        ts = t0 + i * STEP
        out.append(
            AmiEnvelope(
                id=event_id("ami", node, tag, str(i)),
                node=node,
                role="logic",
                ts=ts,
                received=ts,
                key=correlation_key(fields, node),
                kind="ami",
                body={"event": fields["Event"], "fields": fields, "dialect": "asterisk13"},
            )
        )
    return out


# -- MANIFEST expectations ------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What cacofonisk's callback sequence says a recording shows."""

    sequence: tuple[str, ...]
    dial_ends: tuple[str, ...] = ()  # DialStatus of the b-side dials reported, lower case
    up: bool = False
    transfers: tuple[str, ...] = ()  # blind, attended, blonde
    hangups: tuple[str, ...] = ()  # the caller's outcome, per call reported
    extra: dict[str, Any] = field(default_factory=dict)


_ROW = re.compile(r"^\|\s*\d+\s*\|\s*`(?P<path>cacofonisk/[^`]+)`.*?\|(?P<expect>[^|]*)\|\s*$")
_CALLBACK = re.compile(r"on_(?P<name>\w+?)(?:\((?P<arg>[^)]*)\))?$")


@cache
def manifest_rows() -> dict[str, str]:
    """Recording (relative to the fixtures folder) -> its MANIFEST expectation text."""
    text = corpus_path("MANIFEST.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        m = _ROW.match(line)
        if m:
            rows[m["path"].removeprefix(f"{CACOFONISK}/")] = m["expect"].strip()
    return rows


def expectation(name: str) -> Expected | None:
    """The parsed callback sequence of a recording; None when upstream states none."""
    text = manifest_rows()[name]
    marker = "upstream expected callback sequence:"
    if marker not in text:
        return None
    steps = tuple(s.strip().rstrip(".") for s in text.split(marker, 1)[1].split(">"))
    dial_ends, transfers, hangups = [], [], []
    up = False
    for step in steps:
        m = _CALLBACK.match(step)
        assert m, step
        name_, arg = m["name"], (m["arg"] or "")
        if name_ == "b_dial_end":
            dial_ends.append(arg)
        elif name_ == "up":
            up = True
        elif name_.endswith("_transfer"):
            transfers.append(name_.removesuffix("_transfer"))
        elif name_ == "hangup":
            hangups.append(arg)
    return Expected(steps, tuple(dial_ends), up, tuple(transfers), tuple(hangups))


def all_recordings() -> list[str]:
    """Every cacofonisk recording the MANIFEST lists (relative to the fixtures folder)."""
    if not (CORPUS / "MANIFEST.md").is_file():
        return list(FAMILIES.values())
    return sorted(manifest_rows())


# -- comparing what was stored with what the MANIFEST says ------------------------------------------

TRANSFER_KINDS = frozenset({"blind", "attended", "blonde"})
PICKUPS = frozenset({"xfer_misc/sip_pickup.json", "xfer_misc/star_pickup.json"})

# Where this processor reports something else than cacofonisk, on purpose.
DIVERGENT: dict[str, dict[str, set[str]]] = {
    # A blind transfer to a phone that never rang, then the transferee hung up with cause 19 (no
    # answer). cacofonisk sends its blind-transfer callback only when the target rings, and then
    # reports the hangup as 'completed' (its own "TODO: maybe another status" in handlers.py). Here
    # the transfer is recorded (Asterisk's BlindTransfer event, Result: Success) and the call ends
    # 'no-answer', as the transferee's cause says; answered_at still shows the call was answered.
    "xfer_blind/xfer_blind_a_no_answer.json": {"hangups": {"no-answer"}, "transfers": {"blind"}},
    "xfer_blind/xfer_blind_b_no_answer.json": {"hangups": {"no-answer"}, "transfers": {"blind"}},
    "xfer_blind/xfer_blind_group_no_answer.json": {"hangups": {"no-answer"}, "transfers": {"blind"}},
}


@dataclass(frozen=True)
class Observed:
    """What the processor stored for one recording, whatever it was read from (rows or the tables)."""

    calls: list[dict[str, Any]]  # state, outcome, connected_at, ended_at, started_at
    legs: list[dict[str, Any]]  # tech, dial_status, state, outcome
    kinds: set[str]


def assert_matches_manifest(name: str, seen: Observed) -> None:
    """The recording's MANIFEST expectation (see :class:`Expected`) holds for what was stored."""
    assert seen.calls
    assert seen.legs
    assert all(leg["state"] == "hungup" for leg in seen.legs), [leg["state"] for leg in seen.legs]
    assert all(leg["outcome"] for leg in seen.legs)
    assert all(call["state"] in ("ended", "merged") for call in seen.calls)
    for call in seen.calls:
        if call["state"] == "ended":
            assert call["ended_at"] is not None
            assert call["started_at"] <= call["ended_at"]
    assert ("pickup" in seen.kinds) == (name in PICKUPS)
    expected = expectation(name)
    if expected is None:
        return
    statuses = sorted(str(leg["dial_status"]).lower() for leg in seen.legs if leg["tech"] != "Local")
    for status in set(expected.dial_ends):
        assert statuses.count(status) >= expected.dial_ends.count(status), (status, statuses)
    assert any(call["connected_at"] is not None for call in seen.calls) == expected.up
    divergent = DIVERGENT.get(name, {})
    assert seen.kinds & TRANSFER_KINDS == divergent.get("transfers", set(expected.transfers))
    ended = {call["outcome"] for call in seen.calls if call["state"] == "ended" and call["outcome"] != "transferred"}
    assert ended == divergent.get("hangups", set(expected.hangups))
