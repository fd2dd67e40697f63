"""Keyset pagination for the query routes: opaque cursors and ``next`` links.

A cursor is the sort key of the last row of a page (e.g. ``started_at`` and
``leg_id``), JSON-encoded then base64url'd: stable under inserts (a new row
never shifts a page the way an offset does) and cheap for ClickHouse (a range
condition on the sort key instead of skipping rows). Clients treat it as opaque.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from fastapi import HTTPException, Request


def encode_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The values of ``cursor``; 422 when it is not one of ours."""
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != arity:
        raise HTTPException(status_code=422, detail="invalid cursor")
    return values


def next_link(request: Request, cursor: str) -> str:
    """The request's own path and query with ``cursor`` replaced (relative, so it survives proxies)."""
    url = request.url.include_query_params(cursor=cursor)
    return f"{url.path}?{url.query}"
