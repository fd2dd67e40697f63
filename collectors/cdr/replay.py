"""Replay format ``cdr``: a Master.csv (cdr_csv) through the CDR collector's parser.

Sniffed when the first line is a cdr_csv record: 16 to 21 CSV columns with a start date in
the 10th, integer duration and billsec in the 13th and 14th and a known disposition in the
15th. A cdr_custom file needs ``--format cdr`` and its mapping in ``collectors.cdr.columns``.
"""

from __future__ import annotations

import csv
import re

from collectors.cdr.config import CdrConfig
from collectors.cdr.parse import CDR_CSV_LAYOUTS, CdrParser
from collectors.tail.replay import LineFileFormat, first_line
from collectors.tail.translate import LineParser

_DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
DISPOSITIONS = frozenset({"ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"})


def looks_like_cdr_csv(line: str) -> bool:
    try:
        values = next(csv.reader((line,)))  # lenient: a file whose first record is cut is still a CDR file
    except (csv.Error, StopIteration):
        return False
    if len(values) not in CDR_CSV_LAYOUTS:
        return False
    return (
        bool(_DATE.fullmatch(values[9]))
        and values[12].isdigit()
        and values[13].isdigit()
        and values[14] in DISPOSITIONS
    )


class CdrFormat(LineFileFormat):
    name = "cdr"
    description = "Asterisk CDR CSV: cdr_csv Master.csv (16-21 columns), or cdr_custom with collectors.cdr.columns"

    def __init__(self, config: CdrConfig | None = None) -> None:
        self.config = config or CdrConfig()

    def parser(self) -> LineParser:
        return CdrParser(self.config.columns, self.config.timezone)

    def sniff(self, head: bytes) -> bool:
        line = first_line(head)
        return line is not None and looks_like_cdr_csv(line)
