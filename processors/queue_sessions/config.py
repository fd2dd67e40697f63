"""Configuration of the queue_sessions processor (``processors.queue_sessions`` in the settings).

The processor's named timeouts, and the SLA definitions the API applies by default
(``GET /api/v1/queues/{queue}/sla`` may override them per request). See docs/queues.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Source = Literal["queue_log", "ami"]
Denominator = Literal["answered", "answered_abandoned", "answered_abandoned_non_short"]

#: Thresholds the rollup answers exactly (its wait histograms stop at this many seconds).
ROLLUP_MAX_THRESHOLD_SECS = 3600


class QueueSessionsConfig(BaseModel):
    """Timeouts of the session state machine (event time) and the SLA definitions.

    Timeouts count from the session's last event, so the row a timeout writes is the
    same whichever process computes it and when.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sources: tuple[Source, ...] = Field(
        default=("queue_log", "ami"),
        min_length=1,
        description="Which event sources build sessions and agent states. Both: a stay reported by both is "
        "one session (queue_log wins where they differ). In a distributed deployment where AMI events are "
        "keyed by a linkedid that differs from the caller's uniqueid, keep one source (docs/queues.md).",
    )
    settle_secs: float = Field(
        default=30.0,
        ge=0,
        description="An ended session waits this long (event time) for late events of the other source "
        "before its final row is written; only final rows feed the queue_sla_15m rollup.",
    )
    leave_grace_secs: float = Field(
        default=3.0,
        ge=0,
        description="AMI QueueCallerLeave with no AgentConnect or QueueCallerAbandon within this long: the "
        "session ends as 'exit' (AMI does not say why; queue_log does).",
    )
    max_wait_secs: float = Field(
        default=7200.0, gt=0, description="A waiting caller with no event for this long ends as 'lost'."
    )
    answered_max_secs: float = Field(
        default=14400.0, gt=0, description="An answered session with no event for this long ends as 'answered_lost'."
    )
    source_match_secs: float = Field(
        default=10.0,
        ge=0,
        description="Two sources' entries into the same queue by the same channel within this many seconds "
        "are the same session.",
    )
    tombstone_secs: float = Field(
        default=3600.0,
        ge=0,
        description="A finalised session is remembered this long, so late or replayed events change nothing.",
    )
    reload_hours: float = Field(
        default=6.0, gt=0, description="On start, sessions updated within this many hours are reloaded."
    )
    expire_interval_secs: float = Field(default=1.0, gt=0, description="How often the shell calls expire(now).")
    seen_events_max: int = Field(
        default=128, ge=8, description="Event fingerprints remembered per session to ignore duplicates."
    )
    # -- SLA definitions (the API's defaults) -------------------------------------------------------
    service_level_secs: int = Field(
        default=20, ge=0, le=86400, description="Service level: answered within this many seconds of waiting."
    )
    short_abandon_secs: int = Field(
        default=5,
        ge=0,
        le=86400,
        description="An abandon after waiting less than this is a short abandon (excluded by the "
        "'answered_abandoned_non_short' denominator).",
    )
    service_level_denominator: Denominator = Field(
        default="answered_abandoned",
        description="Service level = answered within service_level_secs / this: 'answered', "
        "'answered_abandoned' or 'answered_abandoned_non_short' (answered + abandoned - short abandons).",
    )
    service_level_include_timeouts: bool = Field(
        default=False, description="Add the callers who left on the queue's timeout to the denominator."
    )
    tail_window_secs: float = Field(
        default=900.0,
        gt=0,
        description="The API adds to the rollup the ended sessions not yet final, looking back this far "
        "(updated_at); must exceed settle_secs plus the processor's lag.",
    )

    @model_validator(mode="after")
    def _tail_covers_settle(self) -> QueueSessionsConfig:
        if self.tail_window_secs <= self.settle_secs:
            raise ValueError("tail_window_secs must be greater than settle_secs")
        return self
