"""Configuration of the asterisk_calls processor (``processors.asterisk_calls`` in the settings)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class AsteriskCallsConfig(BaseModel):
    """Named timeouts of the channel/call state machine, the restart window and where the SIP Call-ID is found.

    Timeouts count from the last event seen for the channel (event time, not the wall
    clock), so the row a timeout writes is the same whoever computes it and when.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    unanswered_timeout_secs: float = Field(
        default=3600.0,
        gt=0,
        description="A channel never answered and silent this long (no Hangup seen): closed as 'timeout'.",
    )
    answered_max_secs: float = Field(
        default=14400.0,
        gt=0,
        description="An answered channel with no event for this long (no Hangup seen): closed as 'timeout'.",
    )
    resync_timeout_secs: float = Field(
        default=60.0,
        gt=0,
        description="After a gap marker (the AMI connection was lost), a live channel that no resync "
        "(CoreShowChannel) confirmed within this long after the reconnect is closed as 'lost': it hung up "
        "while nobody listened.",
    )
    final_linger_secs: float = Field(
        default=60.0,
        ge=0,
        description="An ended call stays in memory this long after its last event, to absorb late CEL/CDR "
        "rows and events from other partitions.",
    )
    reload_hours: float = Field(
        default=6.0, gt=0, description="On start, live calls updated within this many hours are reloaded."
    )
    expire_interval_secs: float = Field(default=1.0, gt=0, description="How often the shell calls expire(now).")
    recent_ids_max: int = Field(
        default=100_000, ge=16, description="Event ids remembered to ignore redelivered events (bus replays)."
    )
    max_channels_per_call: int = Field(
        default=1000, ge=2, description="Channels one linkedid may hold; more are counted and ignored."
    )
    sip_call_id_variables: tuple[str, ...] = Field(
        default=("SIPCALLID",),
        description="Channel variables holding the SIP Call-ID (AMI VarSet, manager.conf channelvars, CEL "
        "extra keys); leading underscores of inherited variables are ignored, case-insensitive.",
    )
    cdr_sip_call_id_fields: tuple[str, ...] = Field(
        default=("sipcallid", "userfield"),
        description="CDR columns (by name, case-insensitive) that may hold the SIP Call-ID, in preference order.",
    )
    cel_sip_call_id_fields: tuple[str, ...] = Field(
        default=("userfield",),
        description="CEL columns (by name, case-insensitive) that may hold the SIP Call-ID, in preference order.",
    )

    @field_validator("sip_call_id_variables", "cdr_sip_call_id_fields", "cel_sip_call_id_fields")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name.strip("_") or any(c.isspace() for c in name):
                raise ValueError(f"not a variable or column name: {name!r}")
        return value

    def call_id_variables(self) -> frozenset[str]:
        """The SIP Call-ID variable names, upper-case, without leading underscores."""
        return frozenset(name.lstrip("_").upper() for name in self.sip_call_id_variables)
