"""Health of the probed targets: ``GET /api/v1/health`` and ``GET /api/v1/health/{target}/history``.

Read from the store, so any API process answers what the health processor wrote:
states from ``health_transitions`` (the newest row of each vantage point and target),
the last probe of each vantage point from ``options_probes`` (within
``processors.health.reload_probes_secs``).

- ``/health``: every target (configured, with transitions, or probed recently), ordered
  by name: its aggregated state (up, degraded, partial, down, unknown), since when,
  flapping, and per vantage point its state, since, last status code, reason, RTT,
  error, probe time, whether that probe was passive, and ``stale`` (no probe within the
  target's stale time: the processor would call it unknown). Plus ``nodes``: per
  vantage point, how many targets it sees in each state. Filters ``kind`` and
  ``state``; keyset-paginated by name (``next``).
- ``/health/{target}/history``: the target's transitions, newest first, filtered by
  time (``from``, ``to``), ``scope`` and ``node``; keyset-paginated. 404 for a target
  that is neither configured nor ever seen.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel

from api.auth import ReadPrincipal, context_of
from api.context import ApiContext, QueryStore
from api.paging import decode_cursor, encode_cursor, next_link
from api.where import Where
from processors.health.policy import Policies

router = APIRouter(tags=["health"])

TargetStateName = Literal["up", "degraded", "partial", "down", "unknown"]
TargetKind = Literal["trunk", "node", "subscriber", "other"]
TargetPath = Annotated[str, Path(min_length=1, max_length=256, description="The target's name")]


class VantagePoint(BaseModel):
    """One node's view of a target."""

    node: str
    state: str
    since: datetime | None
    flapping: bool
    stale: bool
    last_probe_at: datetime | None
    last_status: int | None
    last_reason: str | None
    last_rtt_ms: float | None
    last_error: str | None
    last_server: str | None
    passive: bool | None


class TargetHealth(BaseModel):
    name: str
    kind: str
    configured: bool
    state: TargetStateName
    since: datetime | None
    flapping: bool
    vantage_points: list[VantagePoint]


class NodeSummary(BaseModel):
    """A vantage point: how many targets it sees in each state, and its newest probe."""

    node: str
    targets: int
    up: int
    degraded: int
    down: int
    unknown: int
    stale: int
    last_probe_at: datetime | None


class HealthPage(BaseModel):
    count: int
    targets: list[TargetHealth]
    nodes: list[NodeSummary]
    next: str | None = None
    next_cursor: str | None = None


class HealthTransition(BaseModel):
    """A ``health_transitions`` row; ``from_state == to_state`` when only flapping changed."""

    id: str
    scope: Literal["node", "target"]
    node: str
    target: str
    kind: str
    from_state: str
    to_state: str
    at: datetime
    reason: str
    status: int | None
    rtt_ms: float | None
    error: str | None
    passive: bool
    flapping: bool


class HistoryPage(BaseModel):
    target: str
    count: int
    transitions: list[HealthTransition]
    next: str | None = None
    next_cursor: str | None = None


_STATES = """
SELECT scope, node, target,
       argMax(target_kind, (at, id)) AS kind,
       argMax(to_state, (at, id)) AS state,
       argMax(flapping, (at, id)) AS flapping,
       maxIf(at, from_state != to_state) AS since
FROM health_transitions
GROUP BY scope, node, target
"""

_LAST_PROBES = """
SELECT node, target,
       argMax(target_kind, ts) AS kind, max(ts) AS last_ts,
       argMax(status, ts) AS status, argMax(tuple(rtt_ms), ts).1 AS last_rtt_ms, argMax(error, ts) AS error,
       argMax(passive, ts) AS passive, argMax(body, ts) AS last_body
FROM options_probes
WHERE ts >= {since:DateTime64(6, 'UTC')}
GROUP BY node, target
"""

_HISTORY_COLUMNS = (
    "id, scope, node, target, target_kind AS kind, from_state, to_state, at, reason, "
    "if(status = 0, NULL, status) AS status, rtt_ms, nullIf(error, '') AS error, passive, flapping"
)


def _store(request: Request) -> QueryStore:
    store = context_of(request).store
    if store is None:
        raise HTTPException(status_code=503, detail="no store on this instance")
    return store


def _policies(ctx: ApiContext) -> Policies:
    return Policies(ctx.settings.processors.health, ctx.settings.collectors.options)


def _lookback(ctx: ApiContext, now: datetime) -> datetime:
    return now - timedelta(seconds=ctx.settings.processors.health.reload_probes_secs)


def _since(value: Any) -> datetime | None:
    """``maxIf`` gives the epoch when no row matched: no state change known."""
    if isinstance(value, datetime) and value.timestamp() > 0:
        return value
    return None


def _vantage(
    state: dict[str, Any] | None,
    probe: dict[str, Any] | None,
    stale_secs: float,
    now: datetime,
    passive_delay_secs: float = 0.0,
) -> VantagePoint:
    body: dict[str, Any] = {}
    if probe is not None:
        try:
            decoded = orjson.loads(probe["last_body"])
            body = decoded if isinstance(decoded, dict) else {}
        except orjson.JSONDecodeError:
            body = {}
    last_at: datetime | None = probe["last_ts"] if probe is not None else None
    if probe is not None and bool(probe["passive"]):
        stale_secs += passive_delay_secs  # a passive result is known when the pinger's transaction ends
    return VantagePoint(
        node=str((state or probe or {})["node"]),
        state=str(state["state"]) if state is not None else "unknown",
        since=_since(state["since"]) if state is not None else None,
        flapping=bool(state["flapping"]) if state is not None else False,
        stale=last_at is None or (now - last_at).total_seconds() > stale_secs,
        last_probe_at=last_at,
        last_status=(int(probe["status"]) or None) if probe is not None else None,
        last_reason=body.get("reason") if isinstance(body.get("reason"), str) else None,
        last_rtt_ms=probe["last_rtt_ms"] if probe is not None else None,
        last_error=(str(probe["error"]) or None) if probe is not None else None,
        last_server=body.get("server") if isinstance(body.get("server"), str) else None,
        passive=bool(probe["passive"]) if probe is not None else None,
    )


def load_health(store: QueryStore, ctx: ApiContext, now: datetime) -> tuple[list[TargetHealth], list[NodeSummary]]:
    """Every target's health and the per-node summary, from the store and the configured targets."""
    policies = _policies(ctx)
    health = ctx.settings.processors.health
    passive_delay = health.passive_timeout_secs + 2 * health.expire_interval_secs
    states = store.query(_STATES)
    probes = store.query(_LAST_PROBES, {"since": _lookback(ctx, now)})
    configured = {t.name: t.kind for t in ctx.settings.collectors.options.targets}
    aggregate: dict[str, dict[str, Any]] = {}
    pair_states: dict[tuple[str, str], dict[str, Any]] = {}
    for row in states:
        if row["scope"] == "target":
            aggregate[str(row["target"])] = row
        else:
            pair_states[str(row["target"]), str(row["node"])] = row
    pair_probes = {(str(r["target"]), str(r["node"])): r for r in probes}
    names = set(configured) | set(aggregate) | {t for t, _ in pair_states} | {t for t, _ in pair_probes}
    by_target: dict[str, list[tuple[str, str]]] = {}
    for pair in set(pair_states) | set(pair_probes):
        by_target.setdefault(pair[0], []).append(pair)
    targets: list[TargetHealth] = []
    summary: dict[str, dict[str, Any]] = {}
    for name in sorted(names):
        stale_secs = policies(name).stale_secs
        points = [
            _vantage(pair_states.get(pair), pair_probes.get(pair), stale_secs, now, passive_delay)
            for pair in sorted(by_target.get(name, []))
        ]
        agg = aggregate.get(name)
        kind = configured.get(name) or (str(agg["kind"]) if agg is not None else "")
        if not kind:
            source = next(
                (r for p in by_target.get(name, []) for r in (pair_states.get(p), pair_probes.get(p)) if r), None
            )
            kind = str(source["kind"]) if source is not None else "other"
        state = str(agg["state"]) if agg is not None else "unknown"
        targets.append(
            TargetHealth(
                name=name,
                kind=kind,
                configured=name in configured,
                state=state if state in ("up", "degraded", "partial", "down") else "unknown",
                since=_since(agg["since"]) if agg is not None else None,
                flapping=bool(agg["flapping"]) if agg is not None else False,
                vantage_points=points,
            )
        )
        for point in points:
            s = summary.setdefault(
                point.node,
                {"targets": 0, "up": 0, "degraded": 0, "down": 0, "unknown": 0, "stale": 0, "last_probe_at": None},
            )
            s["targets"] += 1
            s[point.state if point.state in ("up", "degraded", "down") else "unknown"] += 1
            s["stale"] += point.stale
            if point.last_probe_at is not None and (
                s["last_probe_at"] is None or point.last_probe_at > s["last_probe_at"]
            ):
                s["last_probe_at"] = point.last_probe_at
    nodes = [NodeSummary(node=node, **values) for node, values in sorted(summary.items())]
    return targets, nodes


@router.get("/health", response_model=HealthPage, summary="Health of every probed target, per vantage point")
async def get_health(
    request: Request,
    _: ReadPrincipal,
    *,
    kind: TargetKind | None = None,
    state: TargetStateName | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> HealthPage:
    ctx = context_of(request)
    store = _store(request)
    after = str(decode_cursor(cursor, 1)[0]) if cursor else None
    targets, nodes = await asyncio.to_thread(load_health, store, ctx, datetime.now(UTC))
    chosen = [
        t
        for t in targets
        if (kind is None or t.kind == kind)
        and (state is None or t.state == state)
        and (after is None or t.name > after)
    ]
    page = chosen[:limit]
    nxt = encode_cursor(page[-1].name) if len(chosen) > limit else None
    return HealthPage(
        count=len(page), targets=page, nodes=nodes, next=next_link(request, nxt) if nxt else None, next_cursor=nxt
    )


def history(
    store: QueryStore,
    target: str,
    *,
    limit: int,
    since: datetime | None = None,
    until: datetime | None = None,
    scope: str | None = None,
    node: str | None = None,
    after: tuple[datetime, str, str, str] | None = None,
) -> list[dict[str, Any]]:
    """The target's transitions, newest first, at most ``limit``.

    At one instant the aggregate's row comes before the vantage point rows that caused it.
    ``after`` is the (at, scope, node, id) of the last row of the previous page.
    """
    where = Where("target = {target:String}", target=target, limit=limit)
    where.add("at >= {since:DateTime64(6, 'UTC')}", since=since)
    where.add("at < {until:DateTime64(6, 'UTC')}", until=until)
    where.add("scope = {scope:String}", scope=scope)
    where.add("node = {node:String}", node=node)
    if after is not None:
        after_at, after_scope, after_node, after_id = after
        where.add(
            "(at, scope, node, id) < ({after_at:DateTime64(6, 'UTC')}, {after_scope:String}, {after_node:String},"
            " {after_id:String})",
            after_at=after_at,
            after_scope=after_scope,
            after_node=after_node,
            after_id=after_id,
        )
    sql = (
        f"SELECT {_HISTORY_COLUMNS} FROM health_transitions FINAL WHERE {where.sql} "  # noqa: S608 - fixed columns
        "ORDER BY at DESC, scope DESC, node DESC, id DESC LIMIT {limit:UInt32}"
    )
    return store.query(sql, where.params)


def known_target(store: QueryStore, ctx: ApiContext, target: str) -> bool:
    if ctx.settings.collectors.options.target(target) is not None:
        return True
    params = {"target": target}
    for table in ("health_transitions", "options_probes"):
        sql = f"SELECT 1 AS found FROM {table} WHERE target = {{target:String}} LIMIT 1"  # noqa: S608 - fixed names
        if store.query(sql, params):
            return True
    return False


@router.get(
    "/health/{target}/history", response_model=HistoryPage, summary="A target's state transitions, newest first"
)
async def get_history(
    request: Request,
    _: ReadPrincipal,
    target: TargetPath,
    *,
    since: Annotated[datetime | None, Query(alias="from", description="at >= this")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="at < this")] = None,
    scope: Annotated[
        Literal["node", "target"] | None, Query(description="node: per vantage point; target: the aggregate")
    ] = None,
    node: Annotated[str | None, Query(max_length=128, description="One vantage point")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> HistoryPage:
    store = _store(request)
    after: tuple[datetime, str, str, str] | None = None
    if cursor is not None:
        at, row_scope, row_node, row_id = decode_cursor(cursor, 4)
        try:
            after = (datetime.fromisoformat(str(at)), str(row_scope), str(row_node), str(row_id))
        except ValueError:
            raise HTTPException(status_code=422, detail="invalid cursor") from None
    rows = await asyncio.to_thread(
        history, store, target, limit=limit + 1, since=since, until=until, scope=scope, node=node, after=after
    )
    if not rows and after is None and not await asyncio.to_thread(known_target, store, context_of(request), target):
        raise HTTPException(status_code=404, detail="no such target: not configured and never probed")
    page = [HealthTransition(**r) for r in rows[:limit]]
    last = page[-1] if page else None
    nxt = encode_cursor(last.at.isoformat(), last.scope, last.node, last.id) if last and len(rows) > limit else None
    return HistoryPage(
        target=target,
        count=len(page),
        transitions=page,
        next=next_link(request, nxt) if nxt else None,
        next_cursor=nxt,
    )
