"""queue_log lines -> ``queue_log`` bodies. Pure: no I/O, no clock.

Two layouts, told apart per line by the first field:

- the file Asterisk's logger writes: ``epoch|callid|queuename|agent|event|data1|data2|...``,
  a variable number of data fields (none for FULL, three for ENTERQUEUE, five for TRANSFER,
  one ``|``-joined field on very old versions). Values are kept exactly as written.
- the DB/realtime table (``queue_log`` in a database, Wazo's samples), exported as
  ``time | callid | queuename | agent | event | data1 | ... | data5`` with the time as
  ``YYYY-MM-DD HH:MM:SS[.ffffff]`` in the configured zone. Values are stripped of the
  padding a table printer (psql) adds; its header, ruler and ``(N rows)`` lines are not
  records (skipped).

Body: :class:`schemas.bodies.QueueLogBody` (callid, queue, agent, event, data). Key: callid
(``NONE`` for agent and queue events that belong to no call). Time: the line's.

Errors (:class:`~schemas.errors.DecodeError`, reason): ``fields`` (fewer than five fields,
or more than 16 data fields), ``event`` (empty, or longer than 64 characters), ``time``
(a first field that is neither an epoch nor a date, or an epoch of more than 12 digits).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from collectors.tail.times import LocalTimes, epoch_us
from collectors.tail.translate import Parsed, parse_each
from schemas.errors import DecodeError

MAX_DATA = 16
_RULER = re.compile(r"[-+\s]+")
_FOOTER = re.compile(r"\(\d+ rows?\)")


class QueueLogParser:
    kind = "queue_log"

    def __init__(self, timezone: str = "local") -> None:
        self.times = LocalTimes(timezone)

    def parse_many(self, lines: list[str]) -> Iterator[Parsed | DecodeError | None]:
        return parse_each(self, lines)

    def parse(self, line: str) -> Parsed | None:
        parts = line.split("|")
        first = parts[0]
        if first.isascii() and first.isdigit():
            if len(first) > 12:  # past year 9999, and int() refuses over 4300 digits
                raise DecodeError(f"epoch {first[:24]}... is out of range", reason="time")
            ts_us: int | None = int(first) * 1_000_000
        else:
            stripped = first.strip()
            ts_us = epoch_us(stripped)
            if ts_us is None:
                ts_us = self.times.parse(stripped)
                if ts_us is None:
                    _not_a_record(line, stripped)
                    return None
                parts = [p.strip() for p in parts]
            elif stripped != first:
                parts = [p.strip() for p in parts]
        if len(parts) < 5:
            raise DecodeError(f"{len(parts)} fields; a queue_log line has at least 5", reason="fields")
        if len(parts) - 5 > MAX_DATA:
            raise DecodeError(f"{len(parts) - 5} data fields (at most {MAX_DATA})", reason="fields")
        callid, queue, agent, event = parts[1], parts[2], parts[3], parts[4]
        if not event or len(event) > 64:
            raise DecodeError(f"event {event[:80]!r} is empty or too long", reason="event")
        body = {"callid": callid, "queue": queue, "agent": agent, "event": event, "data": parts[5:]}
        return callid, ts_us, body


def _not_a_record(line: str, first: str) -> None:
    """None for what a table printer adds around the rows; DecodeError for anything else."""
    if not line.strip() or first == "time" or _RULER.fullmatch(line) or _FOOTER.fullmatch(line.strip()):
        return
    raise DecodeError(f"first field {first[:64]!r} is neither an epoch nor a date", reason="time")
