"""Rows of ``asterisk_legs``, ``asterisk_calls`` and ``asterisk_transfers`` from the in-flight state.

Each builder returns None when the entity's content did not change since its last row
(a fingerprint of the content), else a new row with a higher ``version``
(``max(previous + 1, microseconds of updated_at)``): ReplacingMergeTree keeps the newest.
Column order is ``schemas.tables.COLUMNS[...]``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from processors.asterisk_calls.bridges import overlap
from processors.asterisk_calls.causes import cause_text, outcome
from processors.asterisk_calls.fields import local_pair, tech
from processors.asterisk_calls.records import CallRow, LegRow, TransferRow
from processors.asterisk_calls.state import (
    CALL_ENDED,
    CALL_LIVE,
    CALL_MERGED,
    Call,
    Leg,
    NodeState,
    Transfer,
    checkpoint,
)
from schemas.tables import from_micros

TRANSFERRED = "transferred"
_TRANSFERS = frozenset({"blind", "attended", "blonde"})


dt = from_micros  # microseconds since the epoch -> aware UTC datetime


def _opt(us: int | None) -> datetime | None:
    return None if us is None else dt(us)


def _secs(start: int | None, end: int | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0, end - start) / 1e6


def _fingerprint(content: tuple[Any, ...]) -> str:
    return hashlib.blake2b(repr(content).encode(), digest_size=12).hexdigest()


# -- legs --------------------------------------------------------------------------------------


def direction(leg: Leg) -> str:
    """``out`` for a channel Asterisk dialed (or the ``;1`` half of a Local pair), else ``in``."""
    if leg.dialed_by:
        return "out"
    pair = local_pair(leg.channel)
    if pair is not None:
        return "out" if pair[1] == "1" else "in"
    return "in"


def _dial_target(dial_string: str) -> str:
    """The number a dial string reaches: ``PJSIP/200@trunk`` -> ``200``, ``1500/x/1.2.3.4!!201`` -> ``1500``."""
    head, sep, rest = dial_string.partition("/")
    text = rest if sep and head.isalpha() else dial_string
    return text.split("/", 1)[0].split("@", 1)[0].split("!", 1)[0]


def callee(leg: Leg) -> str:
    """Who this channel's call is for: the extension dialed (inbound), the party reached (outbound)."""
    if direction(leg) == "in":
        return leg.exten or leg.connected_num
    return leg.caller_num or _dial_target(leg.dial_string) or leg.exten


def leg_outcome(leg: Leg) -> str:
    if leg.ended_ts is None:
        return ""
    return outcome(leg.cause, leg.answered_ts is not None, leg.dial_status)


def bridge_facts(node: NodeState, leg: Leg) -> tuple[list[str], int | None, int | None]:
    """(direct peers, first moment bridged with another channel, total time so) from the bridge spans."""
    end = leg.end_time()
    stop = end if end is not None else leg.last_ts
    peers: list[str] = []
    first: int | None = None
    total: int | None = None
    for bridge_id, spans in leg.spans.items():
        others = []
        for uid in node.bridges.get(bridge_id, ()):
            other = node.legs.get(uid)
            if other is None or other is leg:
                continue
            theirs = other.spans.get(bridge_id, [])
            if overlap(spans, [theirs], stop)[0] is not None and uid not in peers:
                peers.append(uid)
            others.append(theirs)
        start, shared = overlap(spans, others, stop)
        if start is not None:
            first = start if first is None else min(first, start)
            total = (total or 0) + shared
    return peers, first, total


def _names(node: NodeState, uniqueids: list[str]) -> tuple[str, ...]:
    out = []
    for uid in uniqueids:
        leg = node.legs.get(uid)
        out.append(leg.channel if leg is not None and leg.channel else uid)
    return tuple(out)


def leg_row(node: NodeState, leg: Leg) -> LegRow | None:
    end = leg.end_time()
    peers, bridged_at, bridged = bridge_facts(node, leg)
    content = (
        leg.linkedid,
        tuple(sorted(leg.linkedids, key=lambda lid: (leg.first_seen.get(lid, leg.created), lid))),
        leg.channel,
        tech(leg.channel),
        direction(leg),
        leg.caller_num,
        leg.caller_name,
        leg.connected_num,
        leg.connected_name,
        callee(leg),
        leg.context,
        leg.exten,
        leg.dialed_by,
        leg.dial_string,
        leg.dial_status,
        leg.forwarded_to,
        dt(leg.started()),
        _opt(leg.ringing_ts),
        _opt(leg.answered_ts),
        _opt(bridged_at),
        _opt(end),
        _secs(leg.answered_ts, leg.ended_ts),
        None if bridged is None else bridged / 1e6,
        leg.cause,
        cause_text(leg.cause, leg.cause_text),
        leg_outcome(leg),
        leg.state(),
        tuple(sorted(_names(node, peers))),
        _names(node, sorted(leg.connected_to, key=lambda uid: (leg.connected_to[uid], uid))),
        leg.sip_call_id,
        leg.incomplete or leg.start_ts is None,
        tuple(leg.sources),
    )
    fingerprint = _fingerprint(content)
    if fingerprint == leg.fingerprint:
        return None
    leg.fingerprint = fingerprint
    updated = max(leg.last_ts, end or 0)
    leg.version = max(leg.version + 1, updated)
    leg_id = f"{leg.node}/{leg.uniqueid}"
    return LegRow(
        f"{leg_id}@{leg.version}", leg_id, leg.node, leg.uniqueid, *content, dt(leg.created), leg.version, dt(updated)
    )


# -- calls -------------------------------------------------------------------------------------


def members(node: NodeState, call: Call) -> list[Leg]:
    """The call's channels that hold its linkedid now."""
    out = []
    for uid in call.legs:
        leg = node.legs.get(uid)
        if leg is not None and leg.linkedid == call.linkedid:
            out.append(leg)
    return out


def caller_leg(node: NodeState, call: Call) -> Leg | None:
    """The party the call is for: the transferee after a transfer, else the channel that started it."""
    for uid in (call.caller, call.linkedid):
        leg = node.legs.get(uid) if uid else None
        if leg is not None and uid in call.legs:
            return leg
    legs = [node.legs[u] for u in call.legs if u in node.legs]
    real = [leg for leg in legs if not leg.local] or legs
    return min(real, key=lambda leg: (leg.started(), leg.uniqueid)) if real else None


def _transfers(node: NodeState, call: Call) -> list[Transfer]:
    return [node.transfers[k] for k in call.transfers if k in node.transfers]


def connected_at(node: NodeState, call: Call) -> int | None:
    """First moment two non-Local channels were connected while one of them held the call's linkedid."""
    best: int | None = None
    for uid in call.legs:
        leg = node.legs.get(uid)
        if leg is None:
            continue
        for ts in leg.connected_to.values():
            if (best is None or ts < best) and leg.linkedid_at(ts) == call.linkedid:
                best = ts
    return best


def _transferred(node: NodeState, leg: Leg) -> bool:
    """The leg handed its call on: it made a transfer (blind, or either side of an attended/blonde one)."""
    return any(
        t.kind in _TRANSFERS and leg.uniqueid in (t.transferer, t.second_transferer) and leg.uniqueid != t.transferee
        for t in node.transfers.values()
    )


def call_state(node: NodeState, call: Call) -> str:
    current = members(node, call)
    if not current:
        return CALL_MERGED if any(u in node.legs for u in call.legs) else CALL_ENDED
    if call.end_ts is not None or all(leg.ended for leg in current):
        return CALL_ENDED
    return CALL_LIVE


def call_row(node: NodeState, call: Call) -> CallRow | None:
    legs = [node.legs[u] for u in call.legs if u in node.legs]
    state = call_state(node, call)
    caller = caller_leg(node, call)
    started = min((leg.started() for leg in legs), default=call.created)
    ended: int | None = None
    if state != CALL_LIVE:
        known = [e for e in (leg.end_time() for leg in legs) if e is not None]
        ended = max(known) if known else call.end_ts
    answered = caller.answered_ts if caller is not None else None
    connected = connected_at(node, call)
    merged_into = ""
    if state == CALL_MERGED:
        moved = [leg.linkedid for leg in legs if leg.linkedid != call.linkedid]
        merged_into = moved[0] if moved else ""
    result = ""
    cause: int | None = None
    text = ""
    if state == CALL_ENDED and caller is not None:
        result = TRANSFERRED if _transferred(node, caller) else leg_outcome(caller)
        cause, text = caller.cause, cause_text(caller.cause, caller.cause_text)
    kinds = tuple(t.kind for t in sorted(_transfers(node, call), key=lambda t: (t.ts, t.key)))
    sip_ids = tuple(sorted({leg.sip_call_id for leg in legs if leg.sip_call_id}))
    content = (
        caller.channel if caller is not None else "",
        caller.caller_num if caller is not None else "",
        caller.caller_name if caller is not None else "",
        callee(caller) if caller is not None else "",
        dt(started),
        _opt(answered),
        _opt(connected),
        _opt(ended),
        _secs(started, ended),
        _secs(started, connected),
        _secs(connected, ended),
        state,
        result,
        cause,
        text,
        len(call.legs),
        tuple(leg.uniqueid for leg in sorted(legs, key=lambda leg: (leg.started(), leg.uniqueid))),
        kinds,
        sip_ids,
        merged_into,
        call.incomplete or any(leg.incomplete or leg.start_ts is None for leg in legs),
    )
    # The members' own fingerprints too: the checkpoint must follow every change of a channel.
    fingerprint = _fingerprint((content, tuple(leg.fingerprint for leg in legs)))
    if fingerprint == call.fingerprint:
        return None
    call.fingerprint = fingerprint
    if state == CALL_LIVE:
        call.closed_ts = None
    elif call.closed_ts is None:
        call.closed_ts = max(call.last_ts, ended or 0)
    updated = max(call.last_ts, ended or 0, *(leg.last_ts for leg in legs))
    call.version = max(call.version + 1, updated)
    current = members(node, call)
    saved = checkpoint(call, current, _transfers(node, call))
    return CallRow(
        f"{call.node}/{call.linkedid}@{call.version}",
        call.node,
        call.linkedid,
        *content,
        dt(call.created),
        call.version,
        dt(updated),
        saved,
    )


# -- transfers ---------------------------------------------------------------------------------


def transfer_row(node: NodeState, t: Transfer) -> TransferRow | None:
    def name(uid: str, given: str) -> str:
        leg = node.legs.get(uid) if uid else None
        return given or (leg.channel if leg is not None else "")

    content = (
        t.kind,
        t.result,
        name(t.transferer, t.transferer_name),
        t.transferer,
        name(t.transferee, t.transferee_name),
        t.transferee,
        name(t.target, t.target_name),
        t.target,
        t.target_exten,
        t.second_linkedid,
        t.is_external,
        t.source,
        t.event_id,
    )
    fingerprint = _fingerprint(content)
    if fingerprint == t.fingerprint:
        return None
    t.fingerprint = fingerprint
    t.version = max(t.version + 1, t.ts)
    return TransferRow(f"{t.key}@{t.version}", t.key, t.node, t.linkedid, dt(t.ts), *content, t.version)


__all__ = [
    "CALL_ENDED",
    "CallRow",
    "LegRow",
    "TransferRow",
    "call_row",
    "callee",
    "caller_leg",
    "direction",
    "leg_row",
    "members",
    "transfer_row",
]
