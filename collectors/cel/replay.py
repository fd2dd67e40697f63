"""Replay format ``cel``: a cel_custom CSV through the CEL collector's parser.

Sniffed when the first line has the default mapping's 20 columns, a CEL event type first
and an eventtime second. Another mapping needs ``--format cel`` and ``collectors.cel.columns``.
"""

from __future__ import annotations

import csv
import re

from collectors.cel.config import CelConfig
from collectors.cel.parse import CelParser
from collectors.tail.replay import LineFileFormat, first_line
from collectors.tail.translate import LineParser

_EVENTTYPE = re.compile(r"[A-Z][A-Z0-9_]{2,63}")
_EVENTTIME = re.compile(r"\d{9,11}(\.\d{1,6})?|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?")


class CelFormat(LineFileFormat):
    name = "cel"
    description = "Asterisk CEL CSV (cel_custom; default 20-column mapping, else collectors.cel.columns)"

    def __init__(self, config: CelConfig | None = None) -> None:
        self.config = config or CelConfig()

    def parser(self) -> LineParser:
        return CelParser(self.config.columns, self.config.timezone)

    def sniff(self, head: bytes) -> bool:
        line = first_line(head)
        if line is None:
            return False
        try:
            values = next(csv.reader((line,)))
        except (csv.Error, StopIteration):
            return False
        columns = self.config.columns
        if len(values) != len(columns) or "eventtime" not in columns:
            return False
        fields = dict(zip(columns, values, strict=True))
        return bool(_EVENTTYPE.fullmatch(fields["eventtype"])) and bool(_EVENTTIME.fullmatch(fields["eventtime"]))
