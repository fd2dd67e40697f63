"""Holders of the health core's state: one vantage point's view of a target, a target, flapping.

Plain mutable records used by :mod:`processors.health.state` (which holds the rules).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from processors.health.results import ProbeResult, State, TargetState

SEEN_IDS = 32  # result ids remembered per (node, target) to ignore redelivered envelopes


class Flap:
    """State changes within the window; flapping set at ``threshold`` of them, cleared after a quiet window."""

    __slots__ = ("changes", "flapping")

    def __init__(self) -> None:
        self.changes: deque[int] = deque()
        self.flapping = False

    def record(self, at: int, window_us: int, threshold: int) -> None:
        self.changes.append(at)
        while self.changes and self.changes[0] <= at - window_us:
            self.changes.popleft()
        if len(self.changes) >= threshold:
            self.flapping = True

    def quiet_since(self, now: int, window_us: int) -> int | None:
        """Clear flapping if the last change is ``window_us`` old by ``now``; return when it cleared."""
        if not self.flapping:
            return None
        if not self.changes:  # restored flapping without its changes: nothing to wait for
            self.flapping = False
            return now
        if now - self.changes[-1] < window_us:
            return None
        self.flapping = False
        return self.changes[-1] + window_us


class Pair:
    """One vantage point's view of one target."""

    __slots__ = (
        "fail_errors",
        "fail_streak",
        "flap",
        "gap_us",
        "good_streak",
        "kind",
        "last",
        "last_ts",
        "node",
        "ok_streak",
        "seen",
        "seen_order",
        "since",
        "slow_streak",
        "stale",
        "state",
        "target",
        "window",
    )

    def __init__(self, node: str, target: str, kind: str, window: int) -> None:
        self.node = node
        self.target = target
        self.kind = kind
        self.state: State = "unknown"
        self.since: int | None = None
        self.last: ProbeResult | None = None
        self.last_ts: int | None = None
        self.gap_us = 0  # recent largest interval between results (decaying): the sender's probe interval
        self.stale = False
        self.fail_streak = 0
        self.fail_errors: list[str] = []
        self.ok_streak = 0
        self.good_streak = 0
        self.slow_streak = 0
        self.window: deque[bool] = deque(maxlen=window)  # True = failed
        self.flap = Flap()
        self.seen: set[str] = set()
        self.seen_order: deque[str] = deque()

    def remember(self, event_id: str) -> bool:
        """False if the id was seen recently (a redelivered result)."""
        if event_id in self.seen:
            return False
        self.seen.add(event_id)
        self.seen_order.append(event_id)
        if len(self.seen_order) > SEEN_IDS:
            self.seen.discard(self.seen_order.popleft())
        return True

    def reset(self) -> None:
        self.fail_streak = self.ok_streak = self.good_streak = self.slow_streak = 0
        self.fail_errors.clear()
        self.window.clear()


class Target:
    __slots__ = ("flap", "kind", "name", "pairs", "reported_flapping", "since", "state")

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self.state: TargetState = "unknown"
        self.since: int | None = None
        self.pairs: dict[str, Pair] = {}
        self.flap = Flap()
        self.reported_flapping = False

    @property
    def flapping(self) -> bool:
        return self.flap.flapping or any(p.flap.flapping for p in self.pairs.values())


@dataclass(frozen=True, slots=True)
class PairView:
    node: str
    target: str
    kind: str
    state: State
    since: int | None
    flapping: bool
    last: ProbeResult | None
    stale: bool


@dataclass(frozen=True, slots=True)
class TargetView:
    name: str
    kind: str
    state: TargetState
    since: int | None
    flapping: bool
    pairs: tuple[PairView, ...]
