"""Configuration of the CDR collector (``collectors.cdr`` in the YAML file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from collectors.tail.config import TailConfig, check_columns


class CdrConfig(TailConfig):
    """Asterisk's CDR file: ``Master.csv`` of cdr_csv, or a cdr_custom file with its mapping."""

    path: Path = Field(
        default=Path("/var/log/asterisk/cdr-csv/Master.csv"),
        description="cdr_csv's Master.csv, or the file a cdr_custom mapping writes.",
    )
    columns: tuple[str, ...] = Field(
        default=(),
        max_length=256,
        description=(
            "cdr_custom: the mapping's column names in order (e.g. clid, src, dst, ..., sipcallid)."
            " Empty: cdr_csv, whose layout is told by the column count (16 to 21)."
        ),
    )

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_columns(value)
