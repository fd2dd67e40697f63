"""What every file collector shares in its configuration (``collectors.cdr``, ``.cel``, ``.queue_log``).

The file collectors follow one file each on the node that writes it (an Asterisk's
``Master.csv``, its CEL CSV, its ``queue_log``). The options here are the tailer's
(:mod:`collectors.tail.tailer`) plus the two every format needs: which Asterisk node the
file belongs to, and the time zone of the dates the file writes in local time.
"""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_timezone(value: str) -> str:
    """``local`` (this machine's zone), ``UTC`` or an IANA zone name such as ``Europe/Paris``."""
    if value in ("local", "UTC"):
        return value
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}: use local, UTC or an IANA name such as Europe/Paris") from None
    return value


def check_columns(value: tuple[str, ...]) -> tuple[str, ...]:
    """Column names of a CSV mapping: identifiers, each once."""
    seen: set[str] = set()
    for name in value:
        if not _COLUMN.match(name):
            raise ValueError(f"column name {name!r} must be letters, digits and _ (not starting with a digit)")
        if name in seen:
            raise ValueError(f"column {name!r} appears twice")
        seen.add(name)
    return value


class TailConfig(BaseModel):
    """Options of one tailed file (the base of each file collector's config)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(default=False, description="Follow the file (off by default: not every node has it).")
    path: Path = Field(description="The file to follow; rotated copies are found beside it.")
    node: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="The Asterisk node whose file this is (default: this process's node).",
    )
    timezone: str = Field(
        default="local",
        description="Zone of the local-time dates in the file: local (this machine's), UTC, or an IANA name.",
    )
    start_at: Literal["beginning", "end"] = Field(
        default="beginning", description="Where a first run without a checkpoint starts reading."
    )
    poll_interval_secs: float = Field(default=0.2, gt=0, le=60, description="How often the file is checked.")
    read_block_bytes: int = Field(
        default=1024 * 1024, ge=4096, le=64 * 1024 * 1024, description="Bytes read at once (bounds a batch)."
    )
    max_line_bytes: int = Field(
        default=1024 * 1024, ge=256, description="A longer line is dead-lettered (its head) and skipped."
    )
    fingerprint_bytes: int = Field(
        default=1024, ge=16, le=65536, description="Leading bytes that identify a file beside its inode."
    )
    rotated_linger_secs: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="A renamed or deleted file is read until it has not grown for this long, then closed.",
    )
    flush_partial_on_rotation: bool = Field(
        default=True,
        description="When a rotated file is closed with a last line that has no newline, publish that line.",
    )
    checkpoint_interval_secs: float = Field(
        default=1.0, ge=0, le=3600, description="Least time between checkpoint writes (0: after every batch)."
    )
    retry_initial_secs: float = Field(default=0.2, gt=0, description="First wait after the bus refused a batch.")
    retry_max_secs: float = Field(default=10.0, gt=0, description="Longest wait between retries.")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_timezone(value)
