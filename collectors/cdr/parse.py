r'''CDR lines -> ``cdr`` bodies. Pure: no I/O, no clock.

cdr_csv (``Master.csv``) writes one record per line: strings double-quoted with an embedded
``"`` doubled (a clid ``"Test User" <test>`` is written ``"""Test User"" <test>"``),
integers bare, and an unset time as a bare empty field (the ``answer`` of an unanswered
call). Its columns are

    accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
    start, answer, end, duration, billsec, disposition, amaflags

then ``uniqueid`` (``loguniqueid``), ``userfield`` (``loguserfield``), then ``peeraccount,
linkedid, sequence`` (``newcdrcolumns``). Which of them a file has is told by the count:
16, 17 (+uniqueid), 18 (+uniqueid, userfield: the usual one), 19 (16 + newcdrcolumns),
20 (17 + newcdrcolumns), 21 (18 + newcdrcolumns). A cdr_custom file has the columns its
mapping names (``collectors.cdr.columns``); a row with another count is refused.

Body: :class:`schemas.bodies.CdrBody` -- ``start``/``answer``/``end`` as the file wrote them
(None when empty), ``duration``/``billsec`` as integers (None when absent or not a number),
``fields`` every column by name. Key: ``linkedid``, else ``uniqueid``. Time: ``start`` (else
``end``, else ``answer``) read in the configured zone (CDR dates are the Asterisk's local
time unless ``usegmtime``).

Errors (:class:`~schemas.errors.DecodeError`, reason): ``csv`` (unterminated quote, a NUL,
text after a closing quote), ``columns`` (a count no layout has), ``time`` (an impossible date).
'''

from __future__ import annotations

import operator
import re
from collections.abc import Iterator
from typing import Any

from collectors.tail.csv_lines import split_csv, split_csv_many
from collectors.tail.times import LocalTimes
from collectors.tail.translate import Parsed
from schemas.errors import DecodeError

BASE = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
)
NEW_COLUMNS = ("peeraccount", "linkedid", "sequence")

#: cdr_csv layouts by column count.
CDR_CSV_LAYOUTS: dict[int, tuple[str, ...]] = {
    16: BASE,
    17: (*BASE, "uniqueid"),
    18: (*BASE, "uniqueid", "userfield"),
    19: (*BASE, *NEW_COLUMNS),
    20: (*BASE, "uniqueid", *NEW_COLUMNS),
    21: (*BASE, "uniqueid", "userfield", *NEW_COLUMNS),
}


_SECONDS = re.compile(r"\d{1,9}\Z", re.ASCII)  # the usual bare integer, surely below 2**32


def _int(text: str) -> int | None:
    """Seconds as an integer; None when empty, not a number or beyond what the store keeps (UInt32)."""
    if not text:
        return None
    if text.isascii() and text.isdigit():
        value = int(text) if len(text) <= 10 else _MAX_SECONDS + 1
    else:
        try:
            value = int(float(text))  # cdr_custom may format durations as seconds with a fraction
        except (ValueError, OverflowError):
            return None
    return value if 0 <= value <= _MAX_SECONDS else None


_MAX_SECONDS = 2**32 - 1
_NAMED = ("uniqueid", "linkedid", "src", "dst", "start", "answer", "end", "duration", "billsec", "disposition")


class _Layout:
    """A column order, and a getter of the columns the body names from a row with ``""`` appended."""

    __slots__ = ("get", "names")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        absent = len(names)  # the appended ""
        self.get = operator.itemgetter(*(names.index(n) if n in names else absent for n in _NAMED))


class CdrParser:
    """cdr_csv (layout by column count) or a cdr_custom mapping."""

    kind = "cdr"

    def __init__(self, columns: tuple[str, ...] = (), timezone: str = "local") -> None:
        self.columns = columns
        self.times = LocalTimes(timezone)
        self._custom = _Layout(columns) if columns else None
        self._csv = {n: _Layout(names) for n, names in CDR_CSV_LAYOUTS.items()}

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
        """The body of one split CDR row."""
        layout = self._custom or self._csv.get(len(values))
        if layout is None:
            raise DecodeError(
                f"{len(values)} columns: cdr_csv writes 16 to 21; name a cdr_custom mapping in collectors.cdr.columns",
                reason="columns",
            )
        if len(layout.names) != len(values):
            raise DecodeError(f"{len(values)} columns where the mapping names {len(layout.names)}", reason="columns")
        fields = dict(zip(layout.names, values, strict=False))  # same length, checked above
        values.append("")
        uniqueid, linkedid, src, dst, start, answer, end, duration, billsec, disposition = layout.get(values)
        body: dict[str, Any] = {
            "uniqueid": uniqueid,
            "linkedid": linkedid or None,
            "src": src,
            "dst": dst,
            "start": start or None,
            "answer": answer or None,
            "end": end or None,
            "duration": int(duration) if _SECONDS.match(duration) else _int(duration),
            "billsec": int(billsec) if _SECONDS.match(billsec) else _int(billsec),
            "disposition": disposition,
            "fields": fields,
        }
        parse_time = self.times.parse
        ts_us = parse_time(start) if start else None
        if ts_us is None and end:
            ts_us = parse_time(end)
        if ts_us is None and answer:
            ts_us = parse_time(answer)
        return linkedid or uniqueid, ts_us, body
