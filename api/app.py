"""The FastAPI application: :func:`create_app` builds it from an :class:`ApiContext`.

Routes:

- ``GET /healthz`` (open): 200 while the process runs.
- ``GET /readyz`` (open): runs every ready check with a timeout; 200 when all pass, 503 otherwise.
- ``GET /metrics`` (open): the process's Prometheus metrics.
- ``/api/v1/...``: bearer token required (:mod:`api.auth`); ``POST /api/v1/ingest`` needs admin.
- ``/docs`` and ``/openapi.json``: the OpenAPI description.

Every HTTP request is counted in ``callscope_http_requests_total`` by route
template (``/api/v1/ingest``, never the raw path), method and status class, so
the labels stay bounded.
"""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import callscope
from api.auth import API_PREFIX
from api.context import ApiContext
from api.routes import api_v1_router, open_router

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"


def route_template(scope: Scope) -> str:
    """The matched route's path template, never the raw path (bounded label).

    FastAPI keeps routers included with a prefix as declared, so a route of the
    ``/api/v1`` tree reports its path relative to that prefix; the prefix is put
    back here. Unmatched requests share one label.
    """
    path = getattr(scope.get("route"), "path", None)
    if not isinstance(path, str) or not path:
        return UNMATCHED_ROUTE
    if str(scope.get("path", "")).startswith(API_PREFIX + "/") and not path.startswith(API_PREFIX + "/"):
        return API_PREFIX + path
    return path


class HttpMetricsMiddleware:
    """Pure ASGI middleware counting requests by route template, method and status class."""

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status_code = 500  # what the server answers when the app raises before responding

        async def send_counting(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            template = route_template(scope)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.counter.labels(route=template, method=method, status=f"{status_code // 100}xx").inc()


def create_app(ctx: ApiContext, *, query_routes: bool = True) -> FastAPI:
    """Build the API for one process. ``ctx`` is reachable from routes as ``request.app.state.ctx``.

    ``query_routes=False`` serves the open routes only (``/healthz``, ``/readyz``, ``/metrics``):
    what a collector or processor process exposes.
    """
    app = FastAPI(
        title="callscope",
        version=callscope.__version__,
        description="Call traces, queue SLA and health of a clustered VoIP platform.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.ctx = ctx
    app.include_router(open_router())
    if query_routes:
        app.include_router(api_v1_router())
    app.add_middleware(HttpMetricsMiddleware, counter=ctx.telemetry.http_requests)
    return app
