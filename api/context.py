"""What the API's routes need, handed in by the runtime (no globals).

The runtime builds one :class:`ApiContext` and passes it to
:func:`api.app.create_app`; routes reach it through ``request.app.state.ctx``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from callscope.bus.base import Producer
from callscope.settings import Settings, TokenConfig
from callscope.telemetry import Telemetry

ReadyCheck = Callable[[], Awaitable[bool]]


class QueryStore(Protocol):
    """The slice of the store the query routes use."""

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...


@dataclass
class ApiContext:
    """Everything the API routes use.

    - ``producer``: where ``POST /api/v1/ingest`` publishes; ``None`` on an
      API-only role without ingest (the route then answers 503).
    - ``ready_checks``: named readiness probes (``"bus"``, ``"store"``) run by
      ``GET /readyz``, each bounded by ``ready_timeout_secs``.
    - ``tokens``: the effective bearer tokens (configured ones plus the generated
      admin token, see :func:`callscope.tokens.effective_tokens`). ``None`` means
      the configured ``settings.api.auth.tokens`` only.
    - ``store``: for the query routes that come later.
    """

    settings: Settings
    telemetry: Telemetry
    producer: Producer | None = None
    ready_checks: dict[str, ReadyCheck] = field(default_factory=dict)
    store: QueryStore | None = None
    tokens: tuple[TokenConfig, ...] | None = None
    ready_timeout_secs: float = 2.0

    @property
    def effective_tokens(self) -> tuple[TokenConfig, ...]:
        return self.settings.api.auth.tokens if self.tokens is None else self.tokens
