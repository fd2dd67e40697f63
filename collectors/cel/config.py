"""Configuration of the CEL collector (``collectors.cel`` in the YAML file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from collectors.tail.config import TailConfig, check_columns

#: The common cel_custom mapping (Asterisk's sample cel_custom.conf, and the test suite's).
DEFAULT_COLUMNS: tuple[str, ...] = (
    "eventtype",
    "eventtime",
    "cid_name",
    "cid_num",
    "cid_ani",
    "cid_rdnis",
    "cid_dnid",
    "exten",
    "context",
    "channame",
    "appname",
    "appdata",
    "amaflags",
    "accountcode",
    "uniqueid",
    "linkedid",
    "bridgepeer",
    "userfield",
    "userdeftype",
    "eventextra",
)


class CelConfig(TailConfig):
    """Asterisk's CEL events as cel_custom writes them (CSV, one event per line)."""

    path: Path = Field(
        default=Path("/var/log/asterisk/cel-custom/Master.csv"), description="The file the cel_custom mapping writes."
    )
    columns: tuple[str, ...] = Field(
        default=DEFAULT_COLUMNS,
        min_length=1,
        max_length=256,
        description="The cel_custom mapping's column names, in order; eventtype is required.",
    )

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        check_columns(value)
        if "eventtype" not in value:
            raise ValueError("the mapping must name an eventtype column")
        return value
