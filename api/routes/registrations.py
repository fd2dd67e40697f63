"""Registrations: ``GET /api/v1/registrations``.

- Without ``aor``: the current state of every AOR that ever registered successfully
  (the ``registrations_current`` view: its last 2xx REGISTER, contact, ``expires_at``,
  ``expired`` — true after a de-registration or once the binding ran out — node,
  user agent, and the newest attempt of any outcome), ordered by AOR; filters
  ``aor_contains``, ``node`` and ``expired``.
- With ``aor``: that AOR's history, every REGISTER transaction (``registrations``
  FINAL), newest first.

Both are keyset-paginated: ``next`` links to the following page, ``null`` on the last.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from api.auth import ReadPrincipal, context_of
from api.context import QueryStore
from api.paging import decode_cursor, encode_cursor, next_link
from api.where import Where

router = APIRouter(tags=["registrations"])


class RegistrationState(BaseModel):
    aor: str
    contact: str
    expires: int
    registered_at: datetime
    expires_at: datetime
    expired: bool
    node: str
    user_agent: str
    src_ip: str
    call_id: str
    last_attempt_at: datetime
    last_attempt_status: int


class RegistrationAttempt(BaseModel):
    id: str
    aor: str
    contact: str
    expires: int
    expires_at: datetime | None
    status: int
    reason: str
    node: str
    nodes: list[str]
    user_agent: str
    src_ip: str
    call_id: str
    cseq: int
    requested_at: datetime
    answered_at: datetime | None
    challenge: bool


class RegistrationPage(BaseModel):
    aor: str | None = None
    count: int
    current: list[RegistrationState] | None = None
    history: list[RegistrationAttempt] | None = None
    next: str | None = None
    next_cursor: str | None = None


_CURRENT = (
    "aor, contact, expires, registered_at, expires_at, expired, node, user_agent, src_ip, call_id, "
    "last_attempt_at, last_attempt_status"
)
_HISTORY = (
    "id, aor, contact, expires, if(status >= 200 AND status < 300 AND answered_at IS NOT NULL, "
    "answered_at + toIntervalSecond(expires), NULL) AS expires_at, status, reason, node, nodes, user_agent, "
    "src_ip, call_id, cseq, requested_at, answered_at, challenge"
)


def current_state(
    store: QueryStore,
    *,
    limit: int,
    after: str | None = None,
    aor_contains: str | None = None,
    node: str | None = None,
    expired: bool | None = None,
) -> list[dict[str, Any]]:
    where = Where(limit=limit)
    where.add("aor > {after:String}", after=after)
    where.add("position(aor, {aor_contains:String}) > 0", aor_contains=aor_contains or None)
    where.add("node = {node:String}", node=node or None)
    where.add("expired = {expired:Bool}", expired=expired)
    sql = (
        f"SELECT {_CURRENT} FROM registrations_current WHERE {where.sql} "  # noqa: S608 - fixed columns
        "ORDER BY aor LIMIT {limit:UInt32}"
    )
    return store.query(sql, where.params)


def history(
    store: QueryStore, aor: str, *, limit: int, after: tuple[datetime, str] | None = None
) -> list[dict[str, Any]]:
    where = ["aor = {aor:String}"]
    params: dict[str, Any] = {"aor": aor, "limit": limit}
    if after is not None:
        where.append("(requested_at, id) < ({after_ts:DateTime64(6, 'UTC')}, {after_id:String})")
        params["after_ts"], params["after_id"] = after
    sql = (
        f"SELECT {_HISTORY} FROM registrations FINAL WHERE {' AND '.join(where)} "  # noqa: S608 - fixed columns
        "ORDER BY requested_at DESC, id DESC LIMIT {limit:UInt32} "
        "SETTINGS do_not_merge_across_partitions_select_final = 1"
    )
    return store.query(sql, params)


@router.get("/registrations", response_model=RegistrationPage, summary="Registration state per AOR, or one's history")
async def list_registrations(
    request: Request,
    _: ReadPrincipal,
    *,
    aor: Annotated[str | None, Query(max_length=512, description="user@host: this AOR's history")] = None,
    aor_contains: Annotated[
        str | None, Query(max_length=512, description="Current state: AORs containing this")
    ] = None,
    node: Annotated[str | None, Query(max_length=128)] = None,
    expired: Annotated[bool | None, Query(description="Current state: only expired (true) or live (false)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> RegistrationPage:
    store = context_of(request).store
    if store is None:
        raise HTTPException(status_code=503, detail="no store on this instance")
    if aor is None:
        after = str(decode_cursor(cursor, 1)[0]) if cursor else None
        rows = await asyncio.to_thread(
            current_state, store, limit=limit + 1, after=after, aor_contains=aor_contains, node=node, expired=expired
        )
        current = [RegistrationState(**r) for r in rows[:limit]]
        nxt = encode_cursor(current[-1].aor) if len(rows) > limit else None
        return RegistrationPage(
            count=len(current), current=current, next=next_link(request, nxt) if nxt else None, next_cursor=nxt
        )
    position: tuple[datetime, str] | None = None
    if cursor:
        ts, row_id = decode_cursor(cursor, 2)
        try:
            position = (datetime.fromisoformat(str(ts)), str(row_id))
        except ValueError:
            raise HTTPException(status_code=422, detail="invalid cursor") from None
    rows = await asyncio.to_thread(history, store, aor, limit=limit + 1, after=position)
    attempts = [RegistrationAttempt(**r) for r in rows[:limit]]
    nxt = encode_cursor(attempts[-1].requested_at.isoformat(), attempts[-1].id) if len(rows) > limit else None
    return RegistrationPage(
        aor=aor,
        count=len(attempts),
        history=attempts,
        next=next_link(request, nxt) if nxt else None,
        next_cursor=nxt,
    )
