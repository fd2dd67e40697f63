"""Process routes: liveness, readiness, metrics (open) and ``/api/v1/info`` (read scope)."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from pydantic import BaseModel

import callscope
from api.auth import ReadPrincipal, Scope, context_of
from api.context import ApiContext, ReadyCheck

CheckResult = Literal["ok", "failed", "timeout", "error"]

router = APIRouter(tags=["system"])
api_router = APIRouter(tags=["system"])  # mounted under /api/v1


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, CheckResult]


class Info(BaseModel):
    name: str
    version: str
    node: str
    role: str
    bus: str
    ingest: bool
    principal: str
    scope: Scope


@router.get("/healthz", summary="Liveness: 200 while the process runs")
async def healthz() -> Health:
    return Health()


async def _run_check(ctx: ApiContext, name: str, check: ReadyCheck) -> CheckResult:
    try:
        ok = await asyncio.wait_for(check(), timeout=ctx.ready_timeout_secs)
    except TimeoutError:
        ctx.telemetry.errors.labels(component="api", error="ReadyCheckTimeout").inc()
        return "timeout"
    except Exception as exc:
        ctx.telemetry.errors.labels(component="api", error=type(exc).__name__).inc()
        ctx.telemetry.logger("api").warning("ready check raised", check=name, error=repr(exc))
        return "error"
    return "ok" if ok else "failed"


@router.get(
    "/readyz",
    summary="Readiness: 200 when every check passes, 503 otherwise",
    responses={503: {"model": Readiness, "description": "At least one check failed or timed out."}},
)
async def readyz(request: Request) -> JSONResponse:
    ctx = context_of(request)
    names = list(ctx.ready_checks)
    results = await asyncio.gather(*(_run_check(ctx, name, ctx.ready_checks[name]) for name in names))
    checks = dict(zip(names, results, strict=True))
    ready = all(result == "ok" for result in results)
    body = Readiness(status="ready" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format 0.0.4)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}}},
)
async def metrics(request: Request) -> Response:
    ctx = context_of(request)
    return Response(content=ctx.telemetry.render(), media_type=CONTENT_TYPE_PLAIN_0_0_4)


@api_router.get("/info", summary="This process: version, node, role and the caller's scope")
async def info(request: Request, principal: ReadPrincipal) -> Info:
    ctx = context_of(request)
    settings = ctx.settings
    return Info(
        name="callscope",
        version=callscope.__version__,
        node=settings.node,
        role=settings.role,
        bus=settings.bus.kind,
        ingest=ctx.producer is not None,
        principal=principal.name,
        scope=principal.scope,
    )
