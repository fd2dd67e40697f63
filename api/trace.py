"""The queries behind the call routes: search legs, load everything known about one Call-ID.

Synchronous functions over :class:`api.context.QueryStore` (routes run them in a
worker thread; the benchmark calls them directly). Every query is bound by its
table's sort key or a skip index:

- ``call_legs`` ORDER BY (call_id, leg_id), bloom filter on ``x_cid``;
- ``call_links`` ORDER BY (call_id, linked_call_id, via, value), bloom filter on ``value``;
- ``sip_messages``, ``media_quality`` ORDER BY (call_id, ts, id); ``logs`` ORDER BY (call_id, ts, id).

``FINAL`` collapses replayed rows. The raw tables are partitioned by day of
``ts`` and a replayed row keeps its ``ts``, so no row has a twin in another
partition: ``do_not_merge_across_partitions_select_final=1`` lets FINAL work per
partition, which is what keeps a trace lookup in single-digit milliseconds.

Sections: a trace is assembled in two lists of functions ``(store, trace) -> None``.
:data:`LINKERS` run right after the ``call_links`` lookup and may add linked
Call-IDs (so the legs and messages of those calls are loaded too);
:data:`SECTIONS` run last and may read everything loaded before them. The Asterisk
side (:mod:`api.trace_asterisk`) is one of each: :func:`link_asterisk` finds the
Asterisk calls of the Call-ID (or of an Asterisk linkedid/uniqueid given as the
Call-ID) and links the SIP Call-IDs of their channels; :func:`load_asterisk_events`
reads their AMI/CEL events. Another part of a trace (a queue session) is one more
function appended to a list and a field of :class:`Trace`.

Queries per trace: every query costs the embedded engine a few milliseconds even on an
empty table, so a trace first asks ``system.tables`` which of its tables hold no row
(:func:`empty_tables`, one lookup) and skips those queries (no Asterisk, RTCP or log
sources: no Asterisk, media or log queries), and the Asterisk linker reuses the
``call_links`` rows read for the links instead of reading them again.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from api.context import QueryStore
from api.queue_queries import sessions_for_callids
from api.trace_asterisk import SIDE_TABLES, AsteriskSide, find_asterisk, load_events
from schemas.tables import COLUMNS

# Every stored column of a leg but the processor's internal restart state.
LEG_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS["call_legs"] if c != "checkpoint")
_LEGS = ", ".join(LEG_COLUMNS)

MESSAGE_COLUMNS = (
    "id, node, ts, call_id, src_ip, src_port, dst_ip, dst_port, transport, is_request, method, status, reason, "
    "cseq, from_tag, to_tag, correlation_id, user_agent, JSONExtractString(body, 'via_branch') AS via_branch, raw"
)
MEDIA_COLUMNS = (
    "id, call_id, correlation_id, node, ts, src_ip, src_port, dst_ip, dst_port, ssrc, source_ssrc, report_type, "
    "packets_lost, fraction_lost, jitter_ms, rtt_ms, r_factor, mos, missing"
)

MAX_MESSAGES = 5000
MAX_LINKED_CALLS = 100
MAX_LOGS = 2000
MAX_MEDIA = 2000

NumberMatch = Literal["contains", "exact"]

_FINAL_SETTINGS = " SETTINGS do_not_merge_across_partitions_select_final = 1, max_threads = 2"


def _query(store: QueryStore, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Run a query over FINAL tables, merging per partition (see the module)."""
    return store.query(sql + _FINAL_SETTINGS, params)


# Every table a trace reads, for :func:`empty_tables`.
TRACE_TABLES = (
    "call_links",
    "call_legs",
    "sip_messages",
    "media_quality",
    "logs",
    *sorted(SIDE_TABLES),
    "ami_events",
    "cel",
    "queue_sessions",
)


# Per store, the trace tables seen holding rows: a table that had rows is queried from then on without
# asking again (were it emptied later, the query would only find nothing, as it should).
_FILLED: weakref.WeakKeyDictionary[QueryStore, set[str]] = weakref.WeakKeyDictionary()


def empty_tables(store: QueryStore, tables: tuple[str, ...] = TRACE_TABLES) -> frozenset[str]:
    """The ``tables`` that hold no row at all, in one lookup of ``system.tables``.

    A trace skips the queries of these (an installation without Asterisk, RTCP or logs
    pays nothing for those sections). Only a count of exactly 0 counts as empty: a table
    whose size the engine cannot tell (a Distributed table reports NULL) is queried.
    Once every table has been seen with rows, the lookup is no longer made for ``store``.
    """
    try:
        filled = _FILLED.setdefault(store, set())
    except TypeError:  # a store that takes no weak reference: ask every time
        filled = set()
    unknown = [t for t in tables if t not in filled]
    if not unknown:
        return frozenset()
    rows = store.query(
        "SELECT name, total_rows FROM system.tables "
        "WHERE database = currentDatabase() AND name IN {names:Array(String)}",
        {"names": unknown},
    )
    filled.update(str(r["name"]) for r in rows if r["total_rows"])
    return frozenset(str(r["name"]) for r in rows if r["total_rows"] == 0)


@dataclass(frozen=True)
class LegFilter:
    """What ``GET /calls`` searches by; ``None`` means any."""

    since: datetime | None = None
    until: datetime | None = None
    number: str | None = None
    number_match: NumberMatch = "contains"
    status: str | None = None  # "486" or "4xx"
    state: str | None = None
    node: str | None = None
    min_duration_secs: float | None = None
    correlation_id: str | None = None
    x_cid: str | None = None
    call_id: str | None = None


def search_legs(
    store: QueryStore, flt: LegFilter, *, limit: int, after: tuple[datetime, str] | None = None
) -> list[dict[str, Any]]:
    """Legs matching ``flt``, newest ``started_at`` first (then ``leg_id`` descending), at most ``limit``.

    ``after`` is the (started_at, leg_id) of the last row of the previous page.
    """
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if flt.since is not None:
        where.append("started_at >= {since:DateTime64(6, 'UTC')}")
        params["since"] = flt.since
    if flt.until is not None:
        where.append("started_at < {until:DateTime64(6, 'UTC')}")
        params["until"] = flt.until
    if flt.number:
        params["number"] = flt.number
        if flt.number_match == "exact":
            where.append(
                "(caller = {number:String} OR callee = {number:String} OR pai = {number:String}"
                " OR extract(pai, '^(?:sips?:|tel:)?([^@;>]+)') = {number:String})"
            )
        else:
            where.append(
                "(position(caller, {number:String}) > 0 OR position(callee, {number:String}) > 0"
                " OR position(pai, {number:String}) > 0)"
            )
    if flt.status:
        if flt.status.endswith("xx"):
            where.append("intDiv(status, 100) = {status_class:UInt16}")
            params["status_class"] = int(flt.status[0])
        else:
            where.append("status = {status:UInt16}")
            params["status"] = int(flt.status)
    if flt.state:
        where.append("state = {state:String}")
        params["state"] = flt.state
    if flt.node:
        where.append("has(nodes, {node:String})")
        params["node"] = flt.node
    if flt.min_duration_secs is not None:
        where.append("duration_secs >= {min_duration:Float64}")
        params["min_duration"] = flt.min_duration_secs
    if flt.correlation_id:
        where.append("has(correlation_ids, {correlation_id:String})")
        params["correlation_id"] = flt.correlation_id
    if flt.x_cid:
        where.append("x_cid = {x_cid:String}")
        params["x_cid"] = flt.x_cid
    if flt.call_id:
        where.append("call_id = {call_id:String}")
        params["call_id"] = flt.call_id
    if after is not None:
        where.append("(started_at, leg_id) < ({after_ts:DateTime64(6, 'UTC')}, {after_leg:String})")
        params["after_ts"], params["after_leg"] = after
    sql = (
        f"SELECT {_LEGS} FROM call_legs FINAL WHERE {' AND '.join(where) or '1'} "  # noqa: S608 - fixed columns
        "ORDER BY started_at DESC, leg_id DESC LIMIT {limit:UInt32}"
    )
    return _query(store, sql, params)


@dataclass
class Trace:
    """Everything known about one Call-ID and the calls linked to it (one hop)."""

    call_id: str
    legs: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    linked_legs: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    messages_truncated: bool = False
    media_quality: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    asterisk: AsteriskSide = field(default_factory=AsteriskSide)
    queue_sessions: list[dict[str, Any]] = field(default_factory=list)
    # How it was loaded, for the sections: tables known to hold no row, and the values of the
    # Call-ID's own ``asterisk`` link rows when ``call_links`` was read already (None: not read).
    empty: frozenset[str] = field(default=frozenset(), repr=False)
    asterisk_values: list[str] | None = field(default=None, repr=False)

    @property
    def call_ids(self) -> list[str]:
        """The Call-ID first, then the linked ones in the order found."""
        seen = {self.call_id: None}
        for link in self.links:
            seen.setdefault(link["linked_call_id"], None)
        for leg in self.linked_legs:
            seen.setdefault(leg["call_id"], None)
        return list(seen)

    @property
    def found(self) -> bool:
        """Anything known about the call: a media-only Call-ID (RTCP, logs) is a call too."""
        return bool(self.legs or self.links or self.messages or self.media_quality or self.logs or self.asterisk.legs)


TraceSection = Callable[[QueryStore, Trace], None]


def link_asterisk(store: QueryStore, trace: Trace) -> None:
    """The Asterisk calls of the Call-ID (by its SIP Call-ID link rows, or as a linkedid/uniqueid) and the
    SIP Call-IDs of their channels, added as links with via ``asterisk``."""
    linked = sorted({link["linked_call_id"] for link in trace.links if link["linked_call_id"]} - {trace.call_id})
    trace.asterisk = find_asterisk(
        store, trace.call_id, linked[:MAX_LINKED_CALLS], own_values=trace.asterisk_values, empty=trace.empty
    )
    known = {(link["linked_call_id"], link["via"]) for link in trace.links}
    trace.links.extend(link for link in trace.asterisk.links if (link["linked_call_id"], link["via"]) not in known)


def load_asterisk_events(store: QueryStore, trace: Trace) -> None:
    """The AMI and CEL events of the trace's Asterisk calls."""
    load_events(store, trace.asterisk, empty=trace.empty)


def load_queue_sessions(store: QueryStore, trace: Trace) -> None:
    """The queue sessions of the trace's Asterisk channels (caller uniqueid, linkedid or answering agent)."""
    ids = [*trace.asterisk.uniqueids, *trace.asterisk.linkedids]
    if ids and "queue_sessions" not in trace.empty:
        trace.queue_sessions = sessions_for_callids(store, ids)


LINKERS: list[TraceSection] = [link_asterisk]
SECTIONS: list[TraceSection] = [load_asterisk_events, load_queue_sessions]


def link_rows(store: QueryStore, call_id: str) -> list[dict[str, Any]]:
    """The ``call_links`` rows of ``call_id``: ``{"linked_call_id", "via", "value", "ts"}``."""
    return _query(
        store,
        "SELECT linked_call_id, via, value, ts FROM call_links FINAL WHERE call_id = {cid:String}",
        {"cid": call_id},
    )


def find_links(
    store: QueryStore, call_id: str, legs: list[dict[str, Any]], rows: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Calls linked to ``call_id``, one hop: direct ``call_links`` rows, shared values, and the legs' own ids.

    ``rows``: the Call-ID's :func:`link_rows` when read already. Returns
    ``{"linked_call_id", "via", "value", "ts"}`` rows, at most one per (linked call, via).
    """
    if rows is None:
        rows = link_rows(store, call_id)
    links = [r for r in rows if r["linked_call_id"]]
    carried = [r for r in rows if not r["linked_call_id"] and r["value"]]
    if carried:
        shared = _query(
            store,
            # Not "call_id AS linked_call_id": ClickHouse would resolve the WHERE's linked_call_id to the alias.
            "SELECT call_id, via, value, ts FROM call_links FINAL "
            "WHERE value IN {values:Array(String)} AND linked_call_id = '' AND call_id != {cid:String} "
            "ORDER BY ts LIMIT {limit:UInt32}",
            {"values": sorted({r["value"] for r in carried}), "cid": call_id, "limit": MAX_LINKED_CALLS * 4},
        )
        wanted = {(r["via"], r["value"]) for r in carried}
        links.extend(
            {"linked_call_id": r["call_id"], "via": r["via"], "value": r["value"], "ts": r["ts"]}
            for r in shared
            if (r["via"], r["value"]) in wanted
        )
    # What the legs carry themselves (a processor that has not written its links yet).
    for leg in legs:
        links.extend(
            {"linked_call_id": value, "via": "hep_correlation_id", "value": value, "ts": None}
            for value in leg.get("correlation_ids") or ()
            if value and value != call_id
        )
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for link in links:
        unique.setdefault((link["linked_call_id"], link["via"]), link)
    return list(unique.values())[: MAX_LINKED_CALLS * 2]


def load_trace(
    store: QueryStore,
    call_id: str,
    *,
    with_logs: bool = True,
    max_messages: int = MAX_MESSAGES,
    linkers: list[TraceSection] | None = None,
    sections: list[TraceSection] | None = None,
) -> Trace:
    """Everything about ``call_id``: check :attr:`Trace.found` (nothing known -> 404).

    Links come first (``call_links`` carries the HEP correlation and X-CID links the
    processor found, then the :data:`LINKERS`), then one query reads the legs of the call
    and of its linked calls; a leg's own correlation ids that no link named yet cost one
    more query (a processor that wrote the leg before its links). The :data:`SECTIONS`
    come last.
    """
    trace = Trace(call_id=call_id, empty=empty_tables(store))
    rows = [] if "call_links" in trace.empty else link_rows(store, call_id)
    trace.asterisk_values = [str(r["value"]) for r in rows if r["via"] == "asterisk"]
    trace.links = find_links(store, call_id, [], rows)
    for linker in LINKERS if linkers is None else linkers:
        linker(store, trace)
    linked = sorted({link["linked_call_id"] for link in trace.links} - {call_id})[:MAX_LINKED_CALLS]
    legs = (
        []
        if "call_legs" in trace.empty
        else _query(
            store,
            f"SELECT {_LEGS} FROM call_legs FINAL WHERE call_id IN {{ids:Array(String)}} "  # noqa: S608 - fixed columns
            "ORDER BY started_at, leg_id LIMIT {limit:UInt32}",
            {"ids": [call_id, *linked], "limit": MAX_LINKED_CALLS * 4},
        )
    )
    trace.legs = [leg for leg in legs if leg["call_id"] == call_id]
    trace.linked_legs = [leg for leg in legs if leg["call_id"] != call_id]
    extra = {v for leg in trace.legs for v in leg["correlation_ids"] if v and v != call_id} - set(linked)
    x_cids = sorted({leg["x_cid"] for leg in trace.legs if leg["x_cid"]})
    known_x_cids = {link["value"] for link in trace.links if link["via"].startswith("header:")}
    if extra or set(x_cids) - known_x_cids:
        trace.links.extend(
            {"linked_call_id": value, "via": "hep_correlation_id", "value": value, "ts": None}
            for value in sorted(extra)
        )
        more = _query(
            store,
            f"SELECT {_LEGS} FROM call_legs FINAL "  # noqa: S608 - fixed columns
            "WHERE (call_id IN {ids:Array(String)} OR x_cid IN {xcids:Array(String)}) "
            "AND call_id NOT IN {known:Array(String)} ORDER BY started_at, leg_id LIMIT {limit:UInt32}",
            {"ids": sorted(extra), "xcids": x_cids, "known": [call_id, *linked], "limit": MAX_LINKED_CALLS},
        )
        trace.linked_legs.extend(more)
    ids = trace.call_ids
    messages = (
        []
        if "sip_messages" in trace.empty
        else _query(
            store,
            f"SELECT {MESSAGE_COLUMNS} FROM sip_messages FINAL WHERE call_id IN {{ids:Array(String)}} "  # noqa: S608
            "ORDER BY ts, id LIMIT {limit:UInt32}",
            {"ids": ids, "limit": max_messages + 1},
        )
    )
    trace.messages_truncated = len(messages) > max_messages
    trace.messages = messages[:max_messages]
    trace.media_quality = (
        []
        if "media_quality" in trace.empty
        else _query(
            store,
            f"SELECT {MEDIA_COLUMNS} FROM media_quality FINAL "  # noqa: S608
            "WHERE call_id IN {ids:Array(String)} OR correlation_id IN {ids:Array(String)} "
            "ORDER BY ts, id LIMIT {limit:UInt32}",
            {"ids": ids, "limit": MAX_MEDIA},
        )
    )
    if with_logs and "logs" not in trace.empty:
        trace.logs = _query(
            store,
            "SELECT id, node, ts, level, message, correlation_id, call_id FROM logs FINAL "
            "WHERE call_id IN {ids:Array(String)} OR correlation_id IN {ids:Array(String)} "
            "ORDER BY ts, id LIMIT {limit:UInt32}",
            {"ids": ids, "limit": MAX_LOGS},
        )
    for section in SECTIONS if sections is None else sections:
        section(store, trace)
    return trace


def load_messages(
    store: QueryStore,
    call_id: str,
    *,
    linked: bool = True,
    max_messages: int = MAX_MESSAGES,
    asterisk: bool = False,
) -> Trace:
    """Only what a ladder or a pcap needs: the legs, links and SIP messages of the call (and linked calls).

    ``asterisk``: also the Asterisk side (its SIP Call-IDs are linked calls when ``linked``) and its events.
    """
    trace = Trace(call_id=call_id)
    if linked:
        trace.legs = _query(
            store,
            "SELECT call_id, correlation_ids, x_cid FROM call_legs FINAL WHERE call_id = {cid:String}",
            {"cid": call_id},
        )
        trace.links = find_links(store, call_id, trace.legs)
    if asterisk:
        link_asterisk(store, trace)
        if not linked:
            trace.links = []
        load_asterisk_events(store, trace)
        x_cids = sorted({leg["x_cid"] for leg in trace.legs if leg["x_cid"]})
        if x_cids:
            trace.linked_legs = _query(
                store,
                "SELECT DISTINCT call_id FROM call_legs WHERE x_cid IN {xcids:Array(String)} "
                "AND call_id != {cid:String} LIMIT {limit:UInt32}",
                {"xcids": x_cids, "cid": call_id, "limit": MAX_LINKED_CALLS},
            )
    messages = _query(
        store,
        f"SELECT {MESSAGE_COLUMNS} FROM sip_messages FINAL WHERE call_id IN {{ids:Array(String)}} "  # noqa: S608
        "ORDER BY ts, id LIMIT {limit:UInt32}",
        {"ids": trace.call_ids[: MAX_LINKED_CALLS + 1], "limit": max_messages + 1},
    )
    trace.messages_truncated = len(messages) > max_messages
    trace.messages = messages[:max_messages]
    return trace
