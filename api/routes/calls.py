"""Calls: search legs, trace one Call-ID across nodes, its ladder and a pcap of it.

- ``GET /api/v1/calls``: legs (``call_legs``), newest ``started_at`` first, filtered by
  time range, number, status, state, node, duration and correlation values;
  keyset-paginated (``next`` is the link to the following page, ``null`` on the last).
- ``GET /api/v1/calls/{call_id}``: the legs of the call, the calls linked to it
  (one hop: ``call_links`` rows, shared values such as X-CID, HEP correlation
  ids), their legs, every SIP message of them all on every node in time order,
  media quality reports and log lines. 404 when nothing is known of the Call-ID.
  The Asterisk side too (:mod:`api.trace_asterisk`): the Asterisk calls whose channels
  carry the Call-ID (``call_links`` via ``asterisk``), or the call of the linkedid or
  uniqueid given as the Call-ID, with their channels (``asterisk_legs``), transfers and
  AMI/CEL events; the SIP Call-IDs of those channels are linked calls.
- ``GET /api/v1/calls/{call_id}/ladder``: the SIP ladder (:mod:`api.ladder`) as
  JSON (default), ``?format=svg``, ``?format=mermaid`` or ``?format=html``, with the
  Asterisk events as notes on their nodes' columns (``?asterisk=false`` leaves them out).
- ``GET /api/v1/calls/{call_id}/pcap``: the messages as a pcap file (:mod:`api.pcap_export`).

Queries are in :mod:`api.trace`. A Call-ID may contain ``/`` (RFC 3261 allows it): the routes
take the rest of the path, the ladder and pcap routes are matched first.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel

from api.auth import ReadPrincipal, context_of
from api.context import QueryStore
from api.ladder import Ladder, Message, build_ladder, hosts_from_topology, ladder_messages
from api.ladder_render import render_html, render_mermaid, render_svg
from api.paging import decode_cursor, encode_cursor, next_link
from api.pcap_export import build_pcap
from api.queue_models import QueueSession
from api.routes.asterisk_models import AsteriskCall, AsteriskEvent, AsteriskLeg, AsteriskTransfer, pick
from api.trace import LegFilter, NumberMatch, Trace, load_messages, load_trace, search_legs
from api.trace_asterisk import notes as asterisk_notes

router = APIRouter(tags=["calls"])

LegState = Literal["live", "ringing", "answered", "completed", "failed", "cancelled", "timeout"]
CallIdPath = Annotated[str, Path(min_length=1, max_length=1024, description="The SIP Call-ID")]


class CallLeg(BaseModel):
    """One SIP dialog (Call-ID + from-tag) merged over every node that saw it: a ``call_legs`` row."""

    id: str
    call_id: str
    leg_id: str
    from_tag: str
    to_tag: str
    caller: str
    callee: str
    caller_display: str
    pai: str
    request_uri: str
    started_at: datetime
    ringing_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    pdd_ms: int | None
    setup_ms: int | None
    duration_secs: float | None
    status: int
    reason: str
    reason_header: str
    ended_by: str
    state: str
    nodes: list[str]
    src_ip: str
    dst_ip: str
    user_agent: str
    codecs: list[str]
    correlation_ids: list[str]
    x_cid: str
    session_id: str
    message_count: int
    retransmissions: int
    reinvites: int
    version: int
    updated_at: datetime


class LegPage(BaseModel):
    count: int
    legs: list[CallLeg]
    next: str | None = None
    next_cursor: str | None = None


class CallLink(BaseModel):
    linked_call_id: str
    via: str
    value: str
    ts: datetime | None


class SipMessage(BaseModel):
    id: str
    ts: datetime
    node: str
    call_id: str
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: str
    is_request: bool
    method: str
    status: int
    reason: str
    cseq: int
    from_tag: str
    to_tag: str
    via_branch: str
    correlation_id: str
    user_agent: str
    raw: str


class MediaQuality(BaseModel):
    id: str
    call_id: str
    correlation_id: str
    node: str
    ts: datetime
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    ssrc: int
    source_ssrc: int
    report_type: str
    packets_lost: int
    fraction_lost: float
    jitter_ms: float | None
    rtt_ms: float | None
    r_factor: float | None
    mos: float | None
    missing: list[str]


class LogLine(BaseModel):
    id: str
    node: str
    ts: datetime
    level: str
    message: str
    correlation_id: str
    call_id: str


class CallTrace(BaseModel):
    call_id: str
    call_ids: list[str]
    legs: list[CallLeg]
    links: list[CallLink]
    linked_legs: list[CallLeg]
    messages: list[SipMessage]
    messages_truncated: bool
    media_quality: list[MediaQuality]
    logs: list[LogLine]
    asterisk_calls: list[AsteriskCall] = []
    asterisk_legs: list[AsteriskLeg] = []
    asterisk_transfers: list[AsteriskTransfer] = []
    asterisk_events: list[AsteriskEvent] = []
    asterisk_events_truncated: bool = False
    queue_sessions: list[QueueSession] = []


def _store(request: Request) -> QueryStore:
    store = context_of(request).store
    if store is None:
        raise HTTPException(status_code=503, detail="no store on this instance")
    return store


_STATUS = re.compile(r"^(?:[1-6](?:\d\d|xx)|0)$")


@router.get("/calls", response_model=LegPage, summary="Search call legs")
async def list_calls(
    request: Request,
    _: ReadPrincipal,
    *,
    since: Annotated[datetime | None, Query(alias="from", description="started_at >= this")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="started_at < this")] = None,
    number: Annotated[
        str | None,
        Query(max_length=256, description="Matches caller, callee or P-Asserted-Identity (see number_match)"),
    ] = None,
    number_match: Annotated[
        NumberMatch,
        Query(description="contains: substring of caller, callee or PAI; exact: equal to one (PAI: its user part)"),
    ] = "contains",
    status: Annotated[
        str | None, Query(description="Final SIP code (486), a class (4xx), or 0 for legs without one")
    ] = None,
    state: LegState | None = None,
    node: Annotated[str | None, Query(max_length=128, description="A node that saw the leg")] = None,
    min_duration_secs: Annotated[float | None, Query(ge=0)] = None,
    correlation_id: Annotated[str | None, Query(max_length=1024, description="A HEP correlation id of the leg")] = None,
    x_cid: Annotated[str | None, Query(max_length=1024, description="The leg's X-CID-style header value")] = None,
    call_id: Annotated[str | None, Query(max_length=1024)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> LegPage:
    if status is not None and not _STATUS.match(status):
        raise HTTPException(status_code=422, detail="status must be a SIP code (486), a class (4xx) or 0")
    after: tuple[datetime, str] | None = None
    if cursor is not None:
        ts, leg = decode_cursor(cursor, 2)
        try:
            after = (datetime.fromisoformat(str(ts)), str(leg))
        except ValueError:
            raise HTTPException(status_code=422, detail="invalid cursor") from None
    flt = LegFilter(
        since=since,
        until=until,
        number=number,
        number_match=number_match,
        status=status,
        state=state,
        node=node,
        min_duration_secs=min_duration_secs,
        correlation_id=correlation_id,
        x_cid=x_cid,
        call_id=call_id,
    )
    rows = await asyncio.to_thread(search_legs, _store(request), flt, limit=limit + 1, after=after)
    page = [CallLeg(**r) for r in rows[:limit]]
    nxt = None
    if len(rows) > limit:
        last = page[-1]
        nxt = encode_cursor(last.started_at.isoformat(), last.leg_id)
    return LegPage(count=len(page), legs=page, next=next_link(request, nxt) if nxt else None, next_cursor=nxt)


def trace_model(trace: Trace) -> CallTrace:
    return CallTrace(
        call_id=trace.call_id,
        call_ids=trace.call_ids,
        legs=[CallLeg(**r) for r in trace.legs],
        links=[CallLink(**r) for r in trace.links],
        linked_legs=[CallLeg(**r) for r in trace.linked_legs],
        messages=[SipMessage(**r) for r in trace.messages],
        messages_truncated=trace.messages_truncated,
        media_quality=[MediaQuality(**r) for r in trace.media_quality],
        logs=[LogLine(**r) for r in trace.logs],
        asterisk_calls=[AsteriskCall(**pick(AsteriskCall, r)) for r in trace.asterisk.calls],
        asterisk_legs=[AsteriskLeg(**pick(AsteriskLeg, r)) for r in trace.asterisk.legs],
        asterisk_transfers=[AsteriskTransfer(**pick(AsteriskTransfer, r)) for r in trace.asterisk.transfers],
        asterisk_events=[AsteriskEvent(**r) for r in trace.asterisk.events],
        asterisk_events_truncated=trace.asterisk.events_truncated,
        queue_sessions=[QueueSession(**r) for r in trace.queue_sessions],
    )


async def _ladder(request: Request, call_id: str, linked: bool, asterisk: bool = False) -> tuple[Ladder, Trace]:
    trace = await asyncio.to_thread(load_messages, _store(request), call_id, linked=linked, asterisk=asterisk)
    notes = asterisk_notes(trace.asterisk.events) if asterisk else []
    if not trace.messages and not notes:
        raise HTTPException(status_code=404, detail="no SIP message of this Call-ID")
    hosts = hosts_from_topology(context_of(request).settings.topology)
    return build_ladder(call_id, [Message.from_row(r) for r in trace.messages], hosts, notes=notes), trace


LinkedQuery = Annotated[bool, Query(description="Include the messages of linked calls (one hop)")]
AsteriskQuery = Annotated[bool, Query(description="Show the Asterisk nodes' AMI/CEL events as notes")]

_MEDIA_TYPES = {
    "svg": "image/svg+xml",
    "mermaid": "text/plain; charset=utf-8",
    "html": "text/html; charset=utf-8",
}


@router.get(
    "/calls/{call_id:path}/ladder",
    summary="The SIP ladder: JSON, SVG, mermaid or a standalone HTML page",
    responses={200: {"content": {"application/json": {}, **{t: {} for t in _MEDIA_TYPES.values()}}}},
)
async def get_ladder(
    request: Request,
    _: ReadPrincipal,
    call_id: CallIdPath,
    format: Literal["json", "svg", "mermaid", "html"] = "json",
    linked: LinkedQuery = True,
    asterisk: AsteriskQuery = True,
) -> Any:
    ladder, trace = await _ladder(request, call_id, linked, asterisk)
    if format == "json":
        return ladder.to_json()
    if format == "svg":
        body = render_svg(ladder)
    elif format == "mermaid":
        body = render_mermaid(ladder)
    else:
        body = render_html(ladder, {e["id"]: e["fields"] for e in trace.asterisk.events})
    return Response(content=body, media_type=_MEDIA_TYPES[format])


def _filename(call_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", call_id)[:100].strip("._") or "call"
    return f"{safe}.pcap"


@router.get(
    "/calls/{call_id:path}/pcap",
    summary="The call's SIP messages as a pcap file",
    responses={200: {"content": {"application/vnd.tcpdump.pcap": {}}}},
)
async def get_pcap(
    request: Request,
    _: ReadPrincipal,
    call_id: CallIdPath,
    linked: LinkedQuery = True,
    dedup: Annotated[
        bool, Query(description="One frame per hop (as in the ladder); false: every copy every node captured")
    ] = True,
) -> Response:
    if dedup:
        messages = ladder_messages((await _ladder(request, call_id, linked))[0])
    else:
        trace = await asyncio.to_thread(load_messages, _store(request), call_id, linked=linked)
        if not trace.messages:
            raise HTTPException(status_code=404, detail="no SIP message of this Call-ID")
        messages = [Message.from_row(r) for r in trace.messages]
    return Response(
        content=build_pcap(messages),
        media_type="application/vnd.tcpdump.pcap",
        headers={"Content-Disposition": f'attachment; filename="{_filename(call_id)}"'},
    )


@router.get("/calls/{call_id:path}", response_model=CallTrace, summary="Everything about one Call-ID")
async def get_call(request: Request, _: ReadPrincipal, call_id: CallIdPath) -> CallTrace:
    trace = await asyncio.to_thread(load_trace, _store(request), call_id)
    if not trace.found:
        raise HTTPException(status_code=404, detail="nothing is known of this Call-ID")
    return trace_model(trace)
