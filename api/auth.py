"""Bearer-token authentication for everything under ``/api``.

Tokens come from :attr:`api.context.ApiContext.effective_tokens`, each with a
scope: ``read`` or ``admin`` (admin implies read). A missing or unknown token is
answered 401 with ``WWW-Authenticate: Bearer``; a known token without the scope
a route needs is answered 403. The presented token is compared with every
configured token in constant time (SHA-256 digests through
:func:`hmac.compare_digest`, no early exit), so neither timing nor length tells
which token was close.

With ``api.auth.enabled: false`` (settings allow it only on a loopback listen
address) every ``/api`` route is open and the caller acts as an admin.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.context import ApiContext

Scope = Literal["read", "admin"]

API_PREFIX = "/api/v1"
"""Every route under this prefix is closed by :func:`require_read`."""

_bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="An API token from api.auth.tokens.")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made the request: the token's name and scope."""

    name: str
    scope: Scope

    def allows(self, needed: Scope) -> bool:
        return needed == "read" or self.scope == "admin"


ANONYMOUS_ADMIN = Principal(name="anonymous", scope="admin")


def context_of(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def authenticate(ctx: ApiContext, presented: str) -> Principal | None:
    """The principal whose token equals ``presented``, or ``None``. Constant time over all tokens."""
    wanted = _digest(presented)
    found: Principal | None = None
    for candidate in ctx.effective_tokens:
        if hmac.compare_digest(wanted, _digest(candidate.token)) and found is None:
            found = Principal(name=candidate.name, scope=candidate.scope)
    return found


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def require_read(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Dependency: a valid token of any scope (or auth disabled)."""
    ctx = context_of(request)
    if not ctx.settings.api.auth.enabled:
        return ANONYMOUS_ADMIN
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing bearer token")
    principal = authenticate(ctx, credentials.credentials)
    if principal is None:
        raise _unauthorized("invalid bearer token")
    return principal


async def require_admin(principal: Annotated[Principal, Depends(require_read)]) -> Principal:
    """Dependency: a valid token with the admin scope (or auth disabled)."""
    if not principal.allows("admin"):
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="this operation needs an admin token")
    return principal


ReadPrincipal = Annotated[Principal, Depends(require_read)]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
