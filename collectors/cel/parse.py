"""CEL lines (cel_custom CSV) -> ``cel`` bodies. Pure: no I/O, no clock.

cel_custom writes what its mapping says, one event per line, each value through
``CSV_QUOTE`` (double-quoted, ``"`` doubled). The columns are named by the mapping in the
config; the default is the common 20-column order (see :data:`collectors.cel.config.DEFAULT_COLUMNS`).

- ``eventtime``: ``1335310195.513823`` (epoch seconds, the default) or
  ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (a ``dateformat`` in cel.conf), read in the configured
  zone. It is the envelope's ``ts``.
- ``extra`` (column ``eventextra``, or ``extra``): Asterisk 12+ writes a JSON object
  (``{"hangupcause":16,"hangupsource":"PJSIP/100-00000001","dialstatus":"ANSWER"}``), which
  becomes a dict; older versions write comma text (``16,dialplan/builtin,``), kept as text.
- ``channame`` (or ``channel``), ``uniqueid``, ``linkedid``; key = linkedid, else uniqueid.

Errors (:class:`~schemas.errors.DecodeError`, reason): ``csv``, ``columns`` (a count other
than the mapping's), ``eventtype`` (empty), ``time`` (an eventtime that is neither form).
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any

import orjson

from collectors.cel.config import DEFAULT_COLUMNS
from collectors.tail.csv_lines import split_csv, split_csv_many
from collectors.tail.times import LocalTimes, epoch_us
from collectors.tail.translate import Parsed
from schemas.errors import DecodeError


def parse_extra(text: str) -> dict[str, Any] | str | None:
    """The JSON object of Asterisk 12+, the raw text of older versions, None when empty."""
    if not text:
        return None
    if text[0] == "{":
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
        if isinstance(value, dict):
            return value
    return text


class CelParser:
    kind = "cel"

    def __init__(self, columns: tuple[str, ...] = DEFAULT_COLUMNS, timezone: str = "local") -> None:
        self.columns = columns
        self.times = LocalTimes(timezone)
        extra = "eventextra" if "eventextra" in columns else "extra"
        channel = "channame" if "channame" in columns else "channel"
        wanted = ("eventtype", "eventtime", "uniqueid", "linkedid", channel, extra)
        absent = len(columns)  # the "" appended to each row
        self._get = operator.itemgetter(*(columns.index(c) if c in columns else absent for c in wanted))

    def parse(self, line: str) -> Parsed | None:
        return self.record(split_csv(line))

    def parse_many(self, lines: list[str]) -> Iterator[Parsed | DecodeError | None]:
        record = self.record
        for values in split_csv_many(lines):
            if isinstance(values, DecodeError):
                yield values
                continue
            try:
                yield record(values)
            except DecodeError as exc:
                yield exc

    def record(self, values: list[str]) -> Parsed:
        """The body of one split CEL row."""
        names = self.columns
        if len(values) != len(names):
            raise DecodeError(f"{len(values)} columns where the mapping names {len(names)}", reason="columns")
        fields = dict(zip(names, values, strict=False))  # same length, checked above
        values.append("")  # what the getter reads for a column the mapping lacks
        eventtype, when, uniqueid, linkedid, channame, extra = self._get(values)
        if not eventtype:
            raise DecodeError("empty eventtype", reason="eventtype")
        ts_us = None
        if when:
            ts_us = epoch_us(when)
            if ts_us is None:
                ts_us = self.times.parse(when)
                if ts_us is None:
                    raise DecodeError(
                        f"eventtime {when[:64]!r} is neither epoch seconds nor YYYY-MM-DD HH:MM:SS", reason="time"
                    )
        body: dict[str, Any] = {
            "eventtype": eventtype,
            "uniqueid": uniqueid,
            "linkedid": linkedid or None,
            "channame": channame,
            "extra": parse_extra(extra),
            "fields": fields,
        }
        return linkedid or uniqueid, ts_us, body
