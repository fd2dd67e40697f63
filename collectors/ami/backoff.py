"""Capped exponential backoff with jitter, for reconnecting. Pure: the caller passes the random draw."""

from __future__ import annotations


class Backoff:
    """Delays ``initial * 2**n`` capped at ``maximum``, each drawn in ``[d/2, d]`` ("equal jitter").

    The jitter keeps collectors on many hosts from reconnecting to a restarted Asterisk in
    lockstep; the lower half-bound keeps the delay from collapsing to nothing.
    """

    def __init__(self, initial_secs: float, maximum_secs: float) -> None:
        if initial_secs <= 0 or maximum_secs < initial_secs:
            raise ValueError("need 0 < initial_secs <= maximum_secs")
        self.initial = initial_secs
        self.maximum = maximum_secs
        self.attempt = 0

    def next_delay(self, draw: float) -> float:
        """The next delay; ``draw`` is a random number in [0, 1)."""
        base = min(self.maximum, self.initial * float(1 << min(self.attempt, 62)))
        self.attempt += 1
        return base / 2 + base / 2 * min(max(draw, 0.0), 1.0)

    def reset(self) -> None:
        """A connection proved healthy: start again from ``initial``."""
        self.attempt = 0
