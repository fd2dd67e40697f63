"""Raw events, before any correlation: ``GET /api/v1/events`` and ``GET /api/v1/events/stats``.

Every envelope the pipeline accepted is in its kind's raw table; these routes
let an engineer look at them by correlation key and time, and let anyone check
that what went in came out (``events`` against ``distinct_ids``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from api.auth import ReadPrincipal, context_of
from api.where import Where
from schemas.envelope import KINDS
from schemas.tables import TABLES

router = APIRouter(tags=["events"])


class StoredEvent(BaseModel):
    id: str
    kind: str
    node: str
    role: str
    ts: datetime
    received: datetime
    key: str
    body: dict[str, Any]


class EventPage(BaseModel):
    kind: str
    count: int
    events: list[StoredEvent]


class TableStats(BaseModel):
    table: str
    events: int
    distinct_ids: int


class EventStats(BaseModel):
    tables: dict[str, TableStats]
    deadletters: int


def _store(request: Request) -> Any:
    store = context_of(request).store
    if store is None:
        raise HTTPException(status_code=503, detail="no store on this instance")
    return store


@router.get("/events", response_model=EventPage, summary="Raw events of one kind, by key and time")
async def list_events(
    request: Request,
    _: ReadPrincipal,
    *,
    kind: Annotated[str, Query(description="Envelope kind: " + ", ".join(KINDS))],
    key: Annotated[str | None, Query(description="Correlation key (Call-ID, linkedid, target ...)")] = None,
    node: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
) -> EventPage:
    if kind not in TABLES:
        raise HTTPException(status_code=422, detail=f"unknown kind {kind!r}")
    where = Where(limit=limit)
    where.add("key = {key:String}", key=key)
    where.add("node = {node:String}", node=node)
    where.add("ts >= {since:DateTime64(6, 'UTC')}", since=since)
    where.add("ts < {until:DateTime64(6, 'UTC')}", until=until)
    # sip_messages keeps the SIP text in its own compressed column, not in body.
    extra = ", raw" if kind == "sip" else ""
    sql = (
        f"SELECT id, node, role, ts, received, key, body{extra} FROM {TABLES[kind]} FINAL "  # noqa: S608 - table from a fixed map
        f"WHERE {where.sql} ORDER BY ts, id LIMIT {{limit:UInt32}}"
    )
    rows = await asyncio.to_thread(_store(request).query, sql, where.params)
    events = [
        StoredEvent(
            id=r["id"],
            kind=kind,
            node=r["node"],
            role=r["role"],
            ts=r["ts"],
            received=r["received"],
            key=r["key"],
            body=_body(r),
        )
        for r in rows
    ]
    return EventPage(kind=kind, count=len(events), events=events)


def _body(row: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(row["body"])
    if "raw" in row:
        body["raw"] = row["raw"]
    return body


@router.get("/events/stats", response_model=EventStats, summary="Stored events per kind and dead letters")
async def event_stats(request: Request, _: ReadPrincipal) -> EventStats:
    store = _store(request)
    parts = [
        f"SELECT '{kind}' AS kind, count() AS events, uniqExact(id) AS distinct_ids FROM {table} FINAL"  # noqa: S608
        for kind, table in TABLES.items()
    ]
    rows = await asyncio.to_thread(store.query, " UNION ALL ".join(parts))
    dead = await asyncio.to_thread(store.query, "SELECT count() AS n FROM deadletters")
    tables = {
        r["kind"]: TableStats(table=TABLES[r["kind"]], events=int(r["events"]), distinct_ids=int(r["distinct_ids"]))
        for r in rows
    }
    return EventStats(tables=tables, deadletters=int(dead[0]["n"]) if dead else 0)
