"""What goes into and comes out of the health core: probe results, transitions and markers.

Times are integer microseconds since the epoch (the store's DateTime64(6) ticks).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from schemas.envelope import OptionsEnvelope
from schemas.tables import micros

State = Literal["unknown", "up", "degraded", "down"]
TargetState = Literal["unknown", "up", "degraded", "partial", "down"]
Scope = Literal["node", "target"]

STATES: tuple[State, ...] = ("unknown", "up", "degraded", "down")
TARGET_STATES: tuple[TargetState, ...] = ("up", "degraded", "partial", "down", "unknown")
RESULTS: tuple[str, ...] = ("ok", "timeout", "refused", "dns", "tls", "malformed", "unexpected_code")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One OPTIONS probe result from one vantage point (``node``), active or passive."""

    id: str
    node: str
    target: str
    kind: str
    ts: int
    status: int | None = None
    reason: str | None = None
    rtt_ms: float | None = None
    error: str | None = None
    passive: bool = False
    server: str | None = None

    @property
    def ok(self) -> bool:
        """Reachable: the prober found the answer among the expected codes."""
        return self.error is None

    @property
    def result(self) -> str:
        """The ``result`` label of ``callscope_options_probes_total``."""
        return "ok" if self.error is None else self.error

    @classmethod
    def from_envelope(cls, env: OptionsEnvelope) -> ProbeResult:
        b = env.body
        return cls(
            id=env.id,
            node=env.node,
            target=b.target,
            kind=b.target_kind,
            ts=micros(env.ts),
            status=b.status,
            reason=b.reason,
            rtt_ms=b.rtt_ms,
            error=b.error,
            passive=b.passive,
            server=b.server,
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """One ``health_transitions`` row: a state change, or (``from_state == to_state``) a flapping change.

    ``scope`` is ``node`` for one vantage point's view of the target, ``target`` for the
    aggregate over vantage points (``node`` is then ``""``). The id hashes what the row
    says, so the same transition computed twice (a replay, another process) is one row.
    """

    scope: Scope
    node: str
    target: str
    kind: str
    from_state: str
    to_state: str
    at: int
    reason: str
    status: int = 0
    rtt_ms: float | None = None
    error: str = ""
    passive: bool = False
    flapping: bool = False

    @property
    def id(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        for part in (self.scope, self.node, self.target, self.from_state, self.to_state, str(self.at)):
            h.update(part.encode())
            h.update(b"\x00")
        h.update(b"f" if self.flapping else b"-")
        return h.hexdigest()

    @property
    def state_change(self) -> bool:
        return self.from_state != self.to_state

    def values(self) -> tuple[Any, ...]:
        """Values in ``schemas.tables.COLUMNS['health_transitions']`` order."""
        return (
            self.id,
            self.scope,
            self.node,
            self.target,
            self.kind,
            self.from_state,
            self.to_state,
            self.at,
            self.reason,
            self.status,
            self.rtt_ms,
            self.error,
            self.passive,
            self.flapping,
        )


@dataclass(frozen=True, slots=True)
class Stale:
    """A (node, target) had no result for its stale time: its per-node series should go."""

    node: str
    target: str
    kind: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A result the core did not apply: a duplicate (same event id) or over the target limit."""

    reason: Literal["duplicate", "target_limit", "late"]


Output = Transition | Stale | Ignored
