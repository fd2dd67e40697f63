"""Configuration of the call_legs processor (``processors.call_legs`` in the settings)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CallLegsConfig(BaseModel):
    """Named timeouts of the leg state machine and the shell's reload window.

    Every timeout counts from the last message seen in the dialog (event time, not
    wall clock), so the row a timeout produces is the same whoever computes it and when.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    setup_timeout_secs: float = Field(
        default=64.0, gt=0, description="INVITE with no 18x and no final answer: closed as 'timeout' (64*T1)."
    )
    ringing_timeout_secs: float = Field(
        default=300.0, gt=0, description="Ringing (18x seen) with no final answer: closed as 'timeout'."
    )
    answered_max_secs: float = Field(
        default=14400.0,
        gt=0,
        description="Answered and no message (BYE, re-INVITE, UPDATE ...) for this long: closed as 'timeout', "
        "ended_by 'system'.",
    )
    final_linger_secs: float = Field(
        default=32.0,
        ge=0,
        description="A closed leg stays in memory this long after its last message to absorb late ACKs, "
        "BYE answers and retransmissions (64*T1/2).",
    )
    correlation_headers: tuple[str, ...] = Field(
        default=("x-cid",),
        description="Correlation headers (lower-case) in preference order: the first found fills x_cid; "
        "every one found becomes call_links rows via 'header:<name>'.",
    )
    reload_hours: float = Field(
        default=6.0, gt=0, description="On start, live legs updated within this many hours are reloaded."
    )
    expire_interval_secs: float = Field(default=1.0, gt=0, description="How often the shell calls expire(now).")
    seen_ids_max: int = Field(
        default=256, ge=1, description="Event ids remembered per leg to ignore replays (bus redelivery)."
    )
