"""Replay format ``queue_log``: a queue_log file (or a DB export of the queue_log table).

Sniffed when the first line is ``epoch|callid|queue|agent|EVENT...``, a row of the DB layout
(``YYYY-MM-DD HH:MM:SS[.ffffff] | callid | ...``), or a table printer's header
(``time | callid | queuename | ...``).
"""

from __future__ import annotations

import re

from collectors.queue_log.config import QueueLogConfig
from collectors.queue_log.parse import QueueLogParser
from collectors.tail.replay import LineFileFormat, first_line
from collectors.tail.translate import LineParser

_FILE = re.compile(r"\d{9,11}(\.\d+)?\|[^|]*\|[^|]*\|[^|]*\|[A-Z][A-Z_]*(\|.*)?")
_DB = re.compile(r"\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\s*\|([^|]*\|){3}\s*[A-Z][A-Z_]*\s*(\|.*)?")
_HEADER = re.compile(r"\s*time\s*\|\s*callid\s*\|\s*queuename\s*\|.*")


class QueueLogFormat(LineFileFormat):
    name = "queue_log"
    description = "Asterisk queue_log: epoch|callid|queue|agent|event|data..., or the DB layout with a date"

    def __init__(self, config: QueueLogConfig | None = None) -> None:
        self.config = config or QueueLogConfig()

    def parser(self) -> LineParser:
        return QueueLogParser(self.config.timezone)

    def sniff(self, head: bytes) -> bool:
        line = first_line(head)
        return line is not None and any(p.fullmatch(line) for p in (_FILE, _DB, _HEADER))
