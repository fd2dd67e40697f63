"""Queues and agents: ``/api/v1/queues``, ``/queues/{queue}/sla``, ``/queues/{queue}/sessions``, ``/agents``.

Read from the store (what processors/queue_sessions wrote), so any API process answers.

- ``/queues``: every queue seen, with what a wallboard shows now: callers waiting and
  talking, the longest current wait, members and paused members, and ``last_entered_at``
  (the newest entry of the last hours, else the start of the queue's last 15 minutes
  in the rollup).
- ``/queues/{queue}/sla``: SLA figures per interval and in total (docs/queues.md has
  every formula). ``from`` (default: today 00:00 UTC), ``to`` (default: now),
  ``interval`` (``900``, ``15m``, ``1h``, ``1d`` or ``total``; default 15 minutes),
  ``threshold_secs``, ``short_abandon_secs``, ``denominator`` and ``include_timeouts``
  (defaults from ``processors.queue_sessions``), ``source`` (``auto``: the rollup when
  the request lines up with it, else the exact query; ``exact``; ``rollup``).
- ``/queues/{queue}/sessions``: the queue's sessions, newest first, filtered by time,
  outcome, state, agent, caller, callid, answered, minimum wait; keyset-paginated.
- ``/agents``: the current state of every agent (logged in, per queue member/paused
  with the reason, the call being talked) and calls answered and talk time since ``from``.
- ``/agents/{agent}/states``: one agent's intervals, newest first; keyset-paginated (agent
  names hold slashes, ``Agent/1001``, ``PJSIP/1001``: the path takes them as they are).
"""

from __future__ import annotations

import asyncio
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from api.auth import ReadPrincipal, context_of
from api.context import QueryStore
from api.paging import decode_cursor, encode_cursor, next_link
from api.queue_models import (
    AgentHistory,
    AgentInterval,
    AgentList,
    AgentState,
    QueueList,
    QueueSession,
    QueueSummary,
    SessionPage,
    SlaReport,
)
from api.queue_queries import agent_history, agents_overview, queue_overview, sessions_page
from api.queue_sla import ROLLUP_STEP_SECS, SlaRequest, sla_report
from processors.queue_sessions.config import Denominator, QueueSessionsConfig

router = APIRouter(tags=["queues"])

QueuePath = Annotated[str, Path(min_length=1, max_length=128, description="The queue's name")]
AgentPath = Annotated[str, Path(min_length=1, max_length=256, description="The agent (member name)")]
Outcome = Literal[
    "completed_caller",
    "completed_agent",
    "transferred",
    "answered_lost",
    "abandoned",
    "timeout",
    "exit_empty",
    "exit_key",
    "exit",
    "lost",
    "full",
    "join_empty",
    "join_unavail",
    "closed",
]
SessionState = Literal["waiting", "talking", "ended"]
MAX_INTERVALS = 20_000
MAX_RANGE = timedelta(days=400)
_INTERVAL = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _store(request: Request) -> QueryStore:
    store = context_of(request).store
    if store is None:
        raise HTTPException(status_code=503, detail="no store on this instance")
    return store


def _config(request: Request) -> QueueSessionsConfig:
    return context_of(request).settings.processors.queue_sessions


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def parse_interval(text: str, start: datetime, end: datetime) -> int:
    """Seconds of an ``interval`` parameter (``900``, ``15m``, ``1h``, ``1d``, ``total``); 422 otherwise."""
    if text == "total":
        span = max(1.0, (end - start).total_seconds())
        return int(math.ceil(span / ROLLUP_STEP_SECS) * ROLLUP_STEP_SECS)
    match = _INTERVAL.match(text.strip())
    if match is None:
        raise HTTPException(status_code=422, detail="interval must be seconds, or a number with s, m, h or d, or total")
    secs = int(match[1]) * _UNITS[match[2]]
    if secs < 60:
        raise HTTPException(status_code=422, detail="interval must be at least 60 seconds")
    return secs


def _cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    ts, key = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(str(ts)), str(key)
    except ValueError:
        raise HTTPException(status_code=422, detail="invalid cursor") from None


@router.get("/queues", response_model=QueueList, summary="Every queue, with callers waiting and members now")
async def list_queues(request: Request, _: ReadPrincipal) -> QueueList:
    cfg = _config(request)
    rows = await asyncio.to_thread(
        queue_overview, _store(request), now=datetime.now(UTC), live_window_secs=cfg.answered_max_secs
    )
    return QueueList(count=len(rows), queues=[QueueSummary(**r) for r in rows])


@router.get("/queues/{queue}/sla", response_model=SlaReport, summary="A queue's SLA figures per interval")
async def queue_sla(
    request: Request,
    _: ReadPrincipal,
    queue: QueuePath,
    *,
    since: Annotated[
        datetime | None, Query(alias="from", description="entered_at >= this (default today 00:00 UTC)")
    ] = None,
    until: Annotated[datetime | None, Query(alias="to", description="entered_at < this (default now)")] = None,
    interval: Annotated[str, Query(max_length=16, description="900, 15m, 1h, 1d or total")] = "15m",
    threshold_secs: Annotated[
        int | None, Query(ge=0, le=86400, description="Answered within this many seconds")
    ] = None,
    short_abandon_secs: Annotated[int | None, Query(ge=0, le=86400)] = None,
    denominator: Denominator | None = None,
    include_timeouts: bool | None = None,
    source: Literal["auto", "exact", "rollup"] = "auto",
) -> Response:
    cfg = _config(request)
    now = datetime.now(UTC)
    start = _utc(since) if since is not None else _today()
    end = _utc(until) if until is not None else now
    if end <= start:
        raise HTTPException(status_code=422, detail="'to' must be after 'from'")
    if end - start > MAX_RANGE:
        raise HTTPException(status_code=422, detail=f"the range may span at most {MAX_RANGE.days} days")
    step = parse_interval(interval, start, end)
    if math.ceil((end - start).total_seconds() / step) > MAX_INTERVALS:
        raise HTTPException(status_code=422, detail=f"at most {MAX_INTERVALS} intervals: choose a longer interval")
    req = SlaRequest(
        queue=queue,
        start=start,
        end=end,
        interval_secs=step,
        threshold_secs=cfg.service_level_secs if threshold_secs is None else threshold_secs,
        short_abandon_secs=cfg.short_abandon_secs if short_abandon_secs is None else short_abandon_secs,
        denominator=denominator or cfg.service_level_denominator,
        include_timeouts=cfg.service_level_include_timeouts if include_timeouts is None else include_timeouts,
    )
    try:
        # Thousands of intervals: the report is built and serialised in the worker thread, once (its shape is
        # SlaReport's, checked by the tests), not as models the framework would validate again.
        body = await asyncio.to_thread(
            sla_report, _store(request), req, source=source, now=now, tail_window_secs=cfg.tail_window_secs
        )
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return Response(content=body, media_type="application/json")


@router.get("/queues/{queue}/sessions", response_model=SessionPage, summary="A queue's sessions, newest first")
async def queue_sessions(
    request: Request,
    _: ReadPrincipal,
    queue: QueuePath,
    *,
    since: Annotated[datetime | None, Query(alias="from", description="entered_at >= this (default 24 h ago)")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="entered_at < this")] = None,
    outcome: Annotated[list[Outcome] | None, Query(description="One or more outcomes")] = None,
    state: Annotated[list[SessionState] | None, Query()] = None,
    agent: Annotated[str | None, Query(max_length=256)] = None,
    caller: Annotated[str | None, Query(max_length=256, description="Part of the caller's number")] = None,
    callid: Annotated[
        str | None, Query(max_length=256, description="The caller channel's uniqueid or linkedid")
    ] = None,
    answered: bool | None = None,
    min_wait_secs: Annotated[float | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> SessionPage:
    start = _utc(since) if since is not None else datetime.now(UTC) - timedelta(days=1)
    rows = await asyncio.to_thread(
        sessions_page,
        _store(request),
        queue,
        start=start,
        end=None if until is None else _utc(until),
        limit=limit + 1,
        after=_cursor(cursor),
        outcomes=outcome or (),
        states=state or (),
        agent=agent,
        caller=caller,
        callid=callid,
        answered=answered,
        min_wait_secs=min_wait_secs,
    )
    page = [QueueSession(**r) for r in rows[:limit]]
    nxt = encode_cursor(page[-1].entered_at.isoformat(), page[-1].session_id) if len(rows) > limit else None
    return SessionPage(
        queue=queue, count=len(page), sessions=page, next=next_link(request, nxt) if nxt else None, next_cursor=nxt
    )


@router.get("/agents", response_model=AgentList, summary="Every agent's state now and calls since 'from'")
async def list_agents(
    request: Request,
    _: ReadPrincipal,
    *,
    since: Annotated[
        datetime | None, Query(alias="from", description="Count calls answered since this (default today 00:00 UTC)")
    ] = None,
    agent: Annotated[str | None, Query(max_length=256)] = None,
) -> AgentList:
    cfg = _config(request)
    stats_from = _utc(since) if since is not None else _today()
    rows: list[dict[str, Any]] = await asyncio.to_thread(
        agents_overview,
        _store(request),
        now=datetime.now(UTC),
        stats_from=stats_from,
        live_window_secs=cfg.answered_max_secs,
        agent=agent,
    )
    return AgentList(count=len(rows), stats_from=stats_from, agents=[AgentState(**r) for r in rows])


@router.get("/agents/{agent:path}/states", response_model=AgentHistory, summary="One agent's intervals, newest first")
async def agent_states(
    request: Request,
    _: ReadPrincipal,
    agent: AgentPath,
    *,
    since: Annotated[
        datetime | None, Query(alias="from", description="Intervals ending after this (default 7 days ago)")
    ] = None,
    until: Annotated[datetime | None, Query(alias="to", description="Intervals starting before this")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> AgentHistory:
    start = _utc(since) if since is not None else datetime.now(UTC) - timedelta(days=7)
    rows = await asyncio.to_thread(
        agent_history,
        _store(request),
        agent,
        start=start,
        end=None if until is None else _utc(until),
        limit=limit + 1,
        after=_cursor(cursor),
    )
    intervals = [AgentInterval(**r) for r in rows[:limit]]
    nxt = encode_cursor(intervals[-1].started_at.isoformat(), intervals[-1].id) if len(rows) > limit else None
    return AgentHistory(
        agent=agent,
        count=len(intervals),
        intervals=intervals,
        next=next_link(request, nxt) if nxt else None,
        next_cursor=nxt,
    )
