"""The Asterisk side of a call trace: legs, calls, transfers and AMI/CEL events, found from a SIP Call-ID or
an Asterisk linkedid/uniqueid.

Synchronous queries over :class:`api.context.QueryStore` (see :mod:`api.trace`), each bound by a sort key,
a skip index or a time window:

- ``call_links`` (ORDER BY call_id ...): rows ``(sip_call_id, '', 'asterisk', 'linkedid@node')`` that
  processors/asterisk_calls writes when a channel's SIP Call-ID is known;
- ``asterisk_legs`` (ORDER BY uniqueid, node; bloom filters on ``linkedids`` and ``sip_call_id``);
- ``asterisk_calls`` (ORDER BY linkedid, node), ``asterisk_transfers`` (ORDER BY linkedid, ...);
- ``ami_events`` and ``cel`` (ORDER BY linkedid, ts, id; bloom filter on uniqueid), within the call's
  time window (their partitions are days of ``ts``). Events that name no channel of the call
  (transfers are keyed by the node) are found by the ids the transfer rows keep.

:func:`note_for` turns an event into a ladder note (what happened to which channel).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from api.context import QueryStore
from api.ladder import Note
from schemas.tables import COLUMNS

MAX_CALLS = 50
MAX_LEGS = 500
MAX_EVENTS = 2000
WINDOW = timedelta(hours=1)  # events looked for this long around the call's channels

LEG_COLUMNS: tuple[str, ...] = COLUMNS["asterisk_legs"]
_LEGS = ", ".join(LEG_COLUMNS)
# Asterisk's uniqueid/linkedid: [systemname-]epoch.sequence (a SIP Call-ID rarely looks like that)
ASTERISK_ID = re.compile(r"^(?:[A-Za-z0-9_.-]+-)?\d{9,10}\.\d+$")
CALL_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS["asterisk_calls"] if c != "checkpoint")
TRANSFER_COLUMNS: tuple[str, ...] = COLUMNS["asterisk_transfers"]

_SETTINGS = " SETTINGS do_not_merge_across_partitions_select_final = 1, max_threads = 2"


def _query(store: QueryStore, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return store.query(sql + _SETTINGS, params)


def split_value(value: str) -> tuple[str, str]:
    """``linkedid@node`` (a ``call_links`` value of via ``asterisk``) -> (linkedid, node)."""
    linkedid, _, node = value.rpartition("@")
    return (linkedid, node) if linkedid else (value, "")


@dataclass
class AsteriskSide:
    """What Asterisk says about one call: its calls (linkedids), channels, transfers and raw events."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    legs: list[dict[str, Any]] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    events_truncated: bool = False
    links: list[dict[str, Any]] = field(default_factory=list)  # SIP Call-IDs of the channels, as trace links

    @property
    def linkedids(self) -> list[str]:
        return sorted({c["linkedid"] for c in self.calls} | {lid for leg in self.legs for lid in leg["linkedids"]})

    @property
    def uniqueids(self) -> list[str]:
        return sorted({leg["uniqueid"] for leg in self.legs})


# The tables an Asterisk side is read from: when all of them are empty there is none to find.
SIDE_TABLES = frozenset({"asterisk_legs", "asterisk_calls", "asterisk_transfers"})


def find_asterisk(
    store: QueryStore,
    call_id: str,
    sip_call_ids: list[str] | None = None,
    *,
    own_values: list[str] | None = None,
    empty: frozenset[str] = frozenset(),
) -> AsteriskSide:
    """The Asterisk calls tied to ``call_id``: by its SIP Call-ID link rows, or as a linkedid/uniqueid.

    ``sip_call_ids``: more SIP Call-IDs of the trace (linked calls) whose Asterisk side counts too.
    ``own_values``: the ``value`` of ``call_id``'s own ``asterisk`` link rows when the caller has read
    them already (then only the other Call-IDs' rows are looked up). ``empty``: tables known to hold
    no row (their lookups are skipped).
    """
    side = AsteriskSide()
    if empty >= SIDE_TABLES:
        return side
    ids = [call_id, *(sip_call_ids or [])] if own_values is None else list(sip_call_ids or [])
    found = set(own_values or ())
    if ids and "call_links" not in empty:
        # No FINAL: a link row is inserted once per (Call-ID, value) and replays only repeat it.
        values = store.query(
            "SELECT value FROM call_links WHERE call_id IN {ids:Array(String)} AND via = 'asterisk' "
            "LIMIT {limit:UInt32}",
            {"ids": ids, "limit": MAX_CALLS * 4},
        )
        found.update(str(row["value"]) for row in values)
    wanted: dict[str, set[str]] = {}  # linkedid -> nodes ('' = any)
    for value in sorted(found):
        linkedid, node = split_value(value)
        wanted.setdefault(linkedid, set()).add(node)
    if ASTERISK_ID.match(call_id):
        # An Asterisk uniqueid or linkedid given as the Call-ID: the primary key, then the bloom filter.
        direct = _query(
            store,
            "SELECT node, linkedid FROM asterisk_legs FINAL WHERE uniqueid = {cid:String}"
            " UNION ALL SELECT node, linkedid FROM asterisk_legs FINAL WHERE has(linkedids, {cid:String})"
            " LIMIT {limit:UInt32}",
            {"cid": call_id, "limit": MAX_LEGS},
        )
        for row in direct:
            wanted.setdefault(str(row["linkedid"]), set()).add(str(row["node"]))
    if not wanted:
        return side
    linkedids = sorted(wanted)[:MAX_CALLS]
    legs = _query(
        store,
        f"SELECT {_LEGS} FROM asterisk_legs FINAL WHERE hasAny(linkedids, {{lids:Array(String)}}) "  # noqa: S608
        f"UNION ALL SELECT {_LEGS} FROM asterisk_legs FINAL WHERE uniqueid IN {{lids:Array(String)}} "
        "LIMIT {limit:UInt32}",
        {"lids": linkedids, "limit": MAX_LEGS},
    )
    unique = {leg["leg_id"]: leg for leg in legs if _wanted(wanted, leg["linkedids"], leg["node"])}
    side.legs = sorted(unique.values(), key=lambda leg: (leg["started_at"], leg["uniqueid"]))
    all_lids = sorted({*linkedids, *(lid for leg in side.legs for lid in leg["linkedids"])})[: MAX_CALLS * 2]
    nodes = {leg["node"] for leg in side.legs} | {n for ns in wanted.values() for n in ns if n}
    calls = _query(
        store,
        f"SELECT {', '.join(CALL_COLUMNS)} FROM asterisk_calls FINAL "  # noqa: S608 - fixed columns
        "WHERE linkedid IN {lids:Array(String)} ORDER BY started_at, linkedid LIMIT {limit:UInt32}",
        {"lids": all_lids, "limit": MAX_CALLS * 2},
    )
    side.calls = [c for c in calls if not nodes or c["node"] in nodes]
    transfers = _query(
        store,
        f"SELECT {', '.join(TRANSFER_COLUMNS)} FROM asterisk_transfers FINAL "  # noqa: S608 - fixed columns
        "WHERE linkedid IN {lids:Array(String)} ORDER BY ts, transfer_id LIMIT {limit:UInt32}",
        {"lids": all_lids, "limit": MAX_LEGS},
    )
    side.transfers = [t for t in transfers if not nodes or t["node"] in nodes]
    seen = set(ids)
    for leg in side.legs:
        sip = leg["sip_call_id"]
        if sip and sip not in seen:
            seen.add(sip)
            side.links.append(
                {"linked_call_id": sip, "via": "asterisk", "value": f"{leg['linkedid']}@{leg['node']}", "ts": None}
            )
    return side


def _wanted(wanted: dict[str, set[str]], linkedids: list[str], node: str) -> bool:
    for lid in linkedids:
        nodes = wanted.get(lid)
        if nodes is not None and ("" in nodes or node in nodes or not any(nodes)):
            return True
    return False


def load_events(
    store: QueryStore, side: AsteriskSide, *, max_events: int = MAX_EVENTS, empty: frozenset[str] = frozenset()
) -> None:
    """The AMI and CEL events of the side's calls (``side.events``, time order, at most ``max_events``).

    ``empty``: tables known to hold no row (``ami_events``, ``cel``), not queried.
    """
    if not side.legs and not side.calls:
        return
    starts = [leg["started_at"] for leg in side.legs] + [c["started_at"] for c in side.calls]
    ends = [t for t in (*(leg["ended_at"] for leg in side.legs), *(c["ended_at"] for c in side.calls)) if t]
    ends += [leg["updated_at"] for leg in side.legs]
    since: datetime = min(starts) - WINDOW
    until: datetime = max([*ends, *starts]) + WINDOW
    params = {
        "lids": side.linkedids,
        "uids": side.uniqueids,
        "ids": sorted({t["event_id"] for t in side.transfers if t["event_id"]}),
        "since": since,
        "until": until,
        "limit": max_events + 1,
    }
    ami = (
        []
        if "ami_events" in empty
        else _query(
            store,
            "SELECT id, node, ts, event, linkedid, uniqueid, channel, body FROM ami_events FINAL"
            " WHERE ts >= {since:DateTime64(6, 'UTC')} AND ts <= {until:DateTime64(6, 'UTC')}"
            " AND (linkedid IN {lids:Array(String)}"
            " OR (linkedid = '' AND (uniqueid IN {uids:Array(String)} OR id IN {ids:Array(String)})))"
            " ORDER BY ts, id LIMIT {limit:UInt32}",
            params,
        )
    )
    cel = (
        []
        if "cel" in empty
        else _query(
            store,
            "SELECT id, node, ts, eventtype AS event, linkedid, uniqueid, channame AS channel, body FROM cel FINAL"
            " WHERE ts >= {since:DateTime64(6, 'UTC')} AND ts <= {until:DateTime64(6, 'UTC')}"
            " AND (linkedid IN {lids:Array(String)} OR uniqueid IN {uids:Array(String)})"
            " ORDER BY ts, id LIMIT {limit:UInt32}",
            params,
        )
    )
    events = [_event("ami", row) for row in ami] + [_event("cel", row) for row in cel]
    events.sort(key=lambda e: (e["ts"], e["source"], e["id"]))
    side.events_truncated = len(events) > max_events
    side.events = events[:max_events]


def _event(source: str, row: dict[str, Any]) -> dict[str, Any]:
    try:
        body = orjson.loads(row["body"])
    except orjson.JSONDecodeError:
        body = {}
    fields = body.get("fields") if isinstance(body, dict) else None
    out = {k: row[k] for k in ("id", "node", "ts", "event", "linkedid", "uniqueid", "channel")}
    out["source"] = source
    out["fields"] = {str(k): str(v) for k, v in fields.items()} if isinstance(fields, dict) else {}
    if source == "cel" and isinstance(body, dict) and body.get("extra") not in (None, ""):
        extra = body["extra"]
        out["fields"]["extra"] = extra if isinstance(extra, str) else orjson.dumps(extra).decode()
    return out


# -- ladder notes ------------------------------------------------------------------------------

_AMI_NOTES = frozenset(
    {
        "Newchannel",
        "Newstate",
        "DialBegin",
        "DialEnd",
        "Dial",
        "BridgeEnter",
        "BridgeLeave",
        "Bridge",
        "BlindTransfer",
        "AttendedTransfer",
        "Transfer",
        "Pickup",
        "Masquerade",
        "Hangup",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "AgentCalled",
        "AgentConnect",
        "AgentComplete",
        "AgentRingNoAnswer",
        "CallscopeGap",
    }
)
_CEL_SKIP = frozenset({"APP_START", "APP_END", "USER_DEFINED", "BRIDGE_UPDATE"})


def note_for(event: dict[str, Any]) -> Note | None:
    """The ladder note of one AMI/CEL event, None for the ones a ladder does not show (Newexten, VarSet ...)."""
    name = str(event["event"])
    f: dict[str, str] = event.get("fields") or {}
    chan = str(event.get("channel") or f.get("Channel") or "")
    if event["source"] == "cel":
        if name in _CEL_SKIP:
            return None
        text = f"CEL {name} {chan}".strip()
        extra = f.get("extra", "")
        if name == "HANGUP" and extra:
            text += f" ({extra[:60]})"
    else:
        if name not in _AMI_NOTES:
            return None
        text = _ami_text(name, chan, f)
    return Note(
        id=str(event["id"]),
        ts=event["ts"],
        node=str(event["node"]),
        source=str(event["source"]),
        event=name,
        text=text[:160],
    )


def _ami_text(name: str, chan: str, f: dict[str, str]) -> str:
    if name == "Newstate":
        return f"{chan} {f.get('ChannelStateDesc', '')}".strip()
    if name == "Hangup":
        return f"Hangup {chan} {f.get('Cause', '')} {f.get('Cause-txt', '')}".strip()
    if name in ("DialBegin", "DialEnd"):
        status = f" {f['DialStatus']}" if f.get("DialStatus") else ""
        return f"{name} {chan} → {f.get('DestChannel', '')}{status}"
    if name == "Dial":
        return f"Dial {f.get('SubEvent', '')} {chan} → {f.get('Destination', '')} {f.get('DialStatus', '')}".strip()
    if name in ("BridgeEnter", "BridgeLeave"):
        return f"{name} {chan} {f.get('BridgeUniqueid', '')[:8]}"
    if name == "Bridge":
        return f"Bridge {f.get('Bridgestate', '')} {f.get('Channel1', '')} ↔ {f.get('Channel2', '')}"
    if name == "BlindTransfer":
        moved = f.get("TransfereeChannel", "")
        return f"BlindTransfer {f.get('TransfererChannel', '')}: {moved} → {f.get('Extension', '')}"
    if name == "AttendedTransfer":
        return f"AttendedTransfer {f.get('OrigTransfererChannel', '')} ({f.get('DestType', '')}) {f.get('Result', '')}"
    if name == "Masquerade":
        return f"Masquerade {f.get('Clone', '')} → {f.get('Original', '')}"
    if name == "CallscopeGap":
        return f"AMI gap {f.get('since', '')} – {f.get('until', '')} ({f.get('reason', '')})"
    return f"{name} {chan}".strip()


def notes(events: list[dict[str, Any]]) -> list[Note]:
    return [note for note in map(note_for, events) if note is not None]
