"""The API's routers: open process routes and the token-protected ``/api/v1`` tree.

Routers of the ``/api/v1`` tree declare paths relative to it (``@router.get("/ingest")``);
:func:`api_v1_router` mounts them under the prefix behind :func:`api.auth.require_read`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.auth import API_PREFIX, require_read
from api.routes import calls, events, health, ingest, queues, registrations, system

__all__ = ["API_PREFIX", "api_v1_router", "open_router"]


def open_router() -> APIRouter:
    """``/healthz``, ``/readyz``, ``/metrics``: no token needed (probes and Prometheus)."""
    router = APIRouter()
    router.include_router(system.router)
    return router


def api_v1_router() -> APIRouter:
    """Everything under ``/api/v1``, closed by :func:`api.auth.require_read` (routes may need more)."""
    router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_read)])
    router.include_router(system.api_router)
    router.include_router(ingest.router)
    router.include_router(events.router)
    router.include_router(calls.router)
    router.include_router(registrations.router)
    router.include_router(health.router)
    router.include_router(queues.router)
    return router
