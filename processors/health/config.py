"""Configuration of the health processor (``processors.health`` in the settings).

Thresholds of the per (node, target) state machine, flapping detection, staleness
and passive OPTIONS. RTT thresholds, probe intervals and expected codes are the
prober's (``collectors.options``: :meth:`OptionsConfig.effective_rtt_degraded_ms`
and friends), so one target is judged the same way by the prober and by this
processor. See docs/health.md.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class HealthConfig(BaseModel):
    """Named thresholds of the health state machine (see docs/health.md for the transitions)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failures_to_down: int = Field(
        default=3, ge=1, le=1000, description="Consecutive failed probes that make a (node, target) down."
    )
    successes_to_up: int = Field(
        default=2,
        ge=1,
        le=1000,
        description="Consecutive reachable probes that bring a down (node, target) back; consecutive good "
        "(reachable, fast) probes that bring a degraded one back to up.",
    )
    slow_probes_to_degraded: int = Field(
        default=2,
        ge=1,
        le=1000,
        description="Consecutive answers slower than the target's rtt_degraded_ms that make it degraded.",
    )
    intermittent_failures: int = Field(
        default=2,
        ge=1,
        le=1000,
        description="Failed probes within the last intermittent_window_probes that make a reachable target "
        "degraded (judged when an answer comes back; a run of failures goes on to down instead).",
    )
    intermittent_window_probes: int = Field(
        default=10, ge=1, le=1000, description="How many recent probes the intermittent rule looks at."
    )
    flap_transitions: int = Field(
        default=4, ge=2, le=1000, description="State changes within flap_window_secs that mark a target flapping."
    )
    flap_window_secs: float = Field(
        default=600.0, gt=0, le=86400, description="Flapping window; flapping clears after this long without a change."
    )
    stale_secs: float | None = Field(
        default=None,
        gt=0,
        le=86400 * 7,
        description="No result for this long: the (node, target) becomes unknown and its options_up series "
        "is removed. Default: 3 x the target's interval + its timeout (collectors.options).",
    )
    max_targets: int = Field(
        default=20_000,
        ge=1,
        le=1_000_000,
        description="Targets tracked that are not in collectors.options.targets (results of other nodes' "
        "probers, passive targets); results for more are dropped and counted, so metric labels stay bounded.",
    )
    passive: bool = Field(default=True, description="Turn OPTIONS transactions seen in HEP into passive results.")
    passive_timeout_secs: float = Field(
        default=32.0, gt=0, le=3600, description="A passive OPTIONS with no final answer by then: timeout (Timer F)."
    )
    passive_linger_secs: float = Field(
        default=32.0,
        ge=0,
        le=3600,
        description="An answered passive transaction is kept this long to absorb retransmissions.",
    )
    max_passive_targets: int = Field(
        default=1000,
        ge=0,
        le=100_000,
        description="Distinct unconfigured passive targets (host:port); requests to more are dropped and counted "
        "in callscope_options_passive_targets_dropped_total.",
    )
    max_passive_transactions: int = Field(
        default=100_000, ge=1, le=10_000_000, description="Passive OPTIONS transactions held in memory at once."
    )
    expire_interval_secs: float = Field(
        default=1.0,
        gt=0,
        le=1.0,
        description="How often staleness, flapping and passive timeouts are checked (the shell's clock).",
    )
    reload_probes_secs: float = Field(
        default=86400.0,
        gt=0,
        le=86400 * 30,
        description="On start, the last probe of each (node, target) is read from options_probes this far back.",
    )

    @model_validator(mode="after")
    def _window(self) -> HealthConfig:
        if self.intermittent_failures > self.intermittent_window_probes:
            raise ValueError("intermittent_failures must not exceed intermittent_window_probes")
        return self
