"""In-flight state of the asterisk_calls core: channels (legs), calls, transfers and bridges of one node.

Every dataclass here survives a JSON round trip (orjson serialises them field by field),
which is what a call's ``checkpoint`` column holds for a restarted shell. Times are
integer microseconds since the epoch (event time); ``-1`` means "never set" where a
field orders updates (the value of the newest event wins).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from processors.asterisk_calls.bridges import Span
from processors.asterisk_calls.fields import is_local, local_pair

LIVE = "live"
RINGING = "ringing"
ANSWERED = "answered"
HUNGUP = "hungup"
TIMEOUT = "timeout"
LOST = "lost"
LEG_FINAL = frozenset({HUNGUP, TIMEOUT, LOST})

CALL_LIVE = "live"
CALL_ENDED = "ended"
CALL_MERGED = "merged"

AST_STATE_DOWN = 0
AST_STATE_RING = 4
AST_STATE_RINGING = 5
AST_STATE_UP = 6


@dataclass
class Leg:
    """One Asterisk channel on one node (node + uniqueid)."""

    node: str
    uniqueid: str
    created: int  # first sight (fixed: the row's partition key)
    last_ts: int
    linkedid: str = ""
    linkedid_ts: int = -1
    linkedid_derived: bool = False  # Asterisk 11 AMI: inferred from Dial/LocalBridge, not stated
    linkedids: list[str] = field(default_factory=list)
    first_seen: dict[str, int] = field(default_factory=dict)  # linkedid -> earliest event naming it
    channel: str = ""
    channel_ts: int = -1
    caller_num: str = ""
    caller_name: str = ""
    caller_ts: int = -1
    caller_name_ts: int = -1
    connected_num: str = ""
    connected_name: str = ""
    connected_line_ts: int = -1
    connected_name_ts: int = -1
    context: str = ""
    exten: str = ""
    exten_ts: int = -1
    start_ts: int | None = None  # Newchannel / CHAN_START
    estimated_start_ts: int | None = None  # from a resync's Duration
    ringing_ts: int | None = None
    answered_ts: int | None = None
    ended_ts: int | None = None
    state_code: int | None = None
    state_ts: int = -1
    cause: int | None = None
    cause_text: str = ""
    dialed_by: str = ""
    dialed_ts: int = -1
    dial_string: str = ""
    dial_status: str = ""
    dial_status_ts: int = -1
    dials: list[str] = field(default_factory=list)
    forwarded_to: str = ""
    twin: str = ""
    spans: dict[str, list[Span]] = field(default_factory=dict)  # bridge id -> stays in it (bridges.py)
    connected_to: dict[str, int] = field(default_factory=dict)  # non-Local far end -> first moment connected
    sip_call_id: str = ""
    incomplete: bool = False
    gap_until: int | None = None
    resync_deadline: int | None = None
    resync_ts: int = -1
    timeout_at: int | None = None
    lost: bool = False
    sources: list[str] = field(default_factory=list)
    version: int = 0
    fingerprint: str = ""

    @property
    def local(self) -> bool:
        return is_local(self.channel)

    @property
    def ended(self) -> bool:
        return self.ended_ts is not None or self.timeout_at is not None or self.lost

    def state(self) -> str:
        if self.lost:
            return LOST
        if self.ended_ts is not None:
            return HUNGUP
        if self.timeout_at is not None:
            return TIMEOUT
        if self.answered_ts is not None:
            return ANSWERED
        if self.ringing_ts is not None:
            return RINGING
        return LIVE

    def linkedid_at(self, ts: int) -> str:
        """The linkedid the channel had at ``ts`` (the newest one named by then)."""
        best, best_ts = self.linkedid, -1
        for lid, since in self.first_seen.items():
            if best_ts < since <= ts:
                best, best_ts = lid, since
        if best_ts < 0 and self.first_seen:
            best = min(self.first_seen, key=lambda lid: self.first_seen[lid])
        return best

    def started(self) -> int:
        if self.start_ts is not None:
            return self.start_ts
        if self.estimated_start_ts is not None:
            return self.estimated_start_ts
        return self.created

    def end_time(self) -> int | None:
        if self.ended_ts is not None:
            return self.ended_ts
        if self.lost:
            return self.gap_until
        return self.timeout_at

    def touch(self, ts: int) -> None:
        self.last_ts = max(self.last_ts, ts)

    def add_source(self, source: str) -> None:
        if source not in self.sources:
            self.sources.append(source)
            self.sources.sort()


@dataclass
class Transfer:
    """A transfer, pickup or masquerade, by (kind, the channel that did it)."""

    key: str
    node: str
    linkedid: str
    ts: int
    kind: str
    source: str
    event_id: str
    result: str = ""
    transferer: str = ""
    transferer_name: str = ""
    transferee: str = ""
    transferee_name: str = ""
    target: str = ""
    target_name: str = ""
    target_exten: str = ""
    second_linkedid: str = ""
    second_transferer: str = ""
    dest_bridge: str = ""  # attended transfers without Transferee/TransferTarget: resolved from the bridge
    is_external: bool = False
    version: int = 0
    fingerprint: str = ""


@dataclass
class Call:
    """The channels of one linkedid on one node."""

    node: str
    linkedid: str
    created: int
    last_ts: int
    legs: list[str] = field(default_factory=list)  # uniqueids that ever had this linkedid, in order
    end_ts: int | None = None  # CEL LINKEDID_END
    caller: str = ""  # the transferee after a transfer
    incomplete: bool = False
    transfers: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # call_links ids written
    closed_ts: int | None = None
    version: int = 0
    fingerprint: str = ""

    def touch(self, ts: int) -> None:
        self.last_ts = max(self.last_ts, ts)


class NodeState:
    """Everything one Asterisk node's events built: legs by uniqueid, calls by linkedid, bridges, names."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.legs: dict[str, Leg] = {}
        self.calls: dict[str, Call] = {}
        self.transfers: dict[str, Transfer] = {}
        self.bridges: dict[str, list[str]] = {}  # bridge id -> uniqueids that were ever in it
        self.names: dict[str, str] = {}  # channel name -> uniqueid (latest)
        self.pairs: dict[str, dict[str, str]] = {}  # Local pair name -> side -> uniqueid

    def name(self, leg: Leg, name: str, ts: int) -> None:
        """Record ``name`` for ``leg`` if it is newer than the one known; index it (and its Local pair)."""
        if not name or ts < leg.channel_ts:
            return
        leg.channel, leg.channel_ts = name, ts
        self.names[name] = leg.uniqueid
        pair = local_pair(name)
        if pair is not None:
            sides = self.pairs.setdefault(pair[0], {})
            sides[pair[1]] = leg.uniqueid
            other = sides.get("2" if pair[1] == "1" else "1")
            if other and other in self.legs and other != leg.uniqueid:
                leg.twin = other
                self.legs[other].twin = leg.uniqueid

    def by_name(self, name: str) -> Leg | None:
        uid = self.names.get(name)
        return None if uid is None else self.legs.get(uid)

    def forget_leg(self, leg: Leg) -> None:
        self.legs.pop(leg.uniqueid, None)
        if self.names.get(leg.channel) == leg.uniqueid:
            del self.names[leg.channel]
        pair = local_pair(leg.channel)
        if pair is not None:
            sides = self.pairs.get(pair[0])
            if sides is not None:
                sides.pop(pair[1], None)
                if not sides:
                    del self.pairs[pair[0]]
        for bridge_id in leg.spans:
            members = self.bridges.get(bridge_id)
            if members is None:
                continue
            if leg.uniqueid in members:
                members.remove(leg.uniqueid)
            if not members:
                del self.bridges[bridge_id]

    def in_bridge(self, leg: Leg, bridge_id: str) -> None:
        members = self.bridges.setdefault(bridge_id, [])
        if leg.uniqueid not in members:
            members.append(leg.uniqueid)


def checkpoint(call: Call, legs: list[Leg], transfers: list[Transfer]) -> str:
    """The JSON a call row carries so a restarted shell can take the call back."""
    return orjson.dumps({"call": call, "legs": legs, "transfers": transfers}).decode()


def restore(data: str) -> tuple[Call, list[Leg], list[Transfer]]:
    """Inverse of :func:`checkpoint`. Raises ValueError (or TypeError) on a malformed checkpoint."""
    doc: Any = orjson.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("checkpoint is not an object")
    call = Call(**doc["call"])
    legs = [Leg(**item) for item in doc.get("legs") or ()]
    transfers = [Transfer(**item) for item in doc.get("transfers") or ()]
    return call, legs, transfers
