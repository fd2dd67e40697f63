"""Per-target thresholds: what the state machine needs to know about each target.

Derived once from the prober's config (``collectors.options``) and the health
config; targets not in the config (other nodes' targets, passive ``host:port``
targets) get the prober's defaults. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from collectors.options.config import OptionsConfig, OptionsTarget
from processors.health.config import HealthConfig


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """How one target is judged."""

    rtt_degraded_ms: float
    stale_secs: float
    expect_codes: tuple[int, ...]


class Policies:
    """The :class:`TargetPolicy` of every target name (configured ones precomputed, others the defaults)."""

    def __init__(self, health: HealthConfig, options: OptionsConfig) -> None:
        self.health = health
        self.options = options
        self._configured: dict[str, TargetPolicy] = {t.name: self._policy(t) for t in options.targets}
        self.default = self._policy(None)

    def _policy(self, target: OptionsTarget | None) -> TargetPolicy:
        opts = self.options
        if target is None:
            interval = opts.interval_secs
            timeout = min(opts.timeout_secs, interval)
            rtt = opts.rtt_degraded_ms
            expect = opts.expect_codes
        else:
            interval = opts.effective_interval(target)
            timeout = opts.effective_timeout(target)
            rtt = opts.effective_rtt_degraded_ms(target)
            expect = opts.effective_expect(target)
        stale = self.health.stale_secs if self.health.stale_secs is not None else 3 * interval + timeout
        return TargetPolicy(rtt_degraded_ms=rtt, stale_secs=stale, expect_codes=expect)

    def __call__(self, target: str) -> TargetPolicy:
        return self._configured.get(target, self.default)

    def configured(self, target: str) -> bool:
        return target in self._configured

    @property
    def max_stale_secs(self) -> float:
        return max([self.default.stale_secs, *(p.stale_secs for p in self._configured.values())])
