"""CSV records one per line, as Asterisk's cdr_csv, cdr_custom and cel_custom write them. Pure.

Values are double-quoted with an embedded ``"`` doubled (RFC 4180); integers may be bare.
A record never spans lines here: a line is a record, and a line that does not close its
quotes is an error (:class:`~schemas.errors.DecodeError`, reason ``csv``), never a reason
to swallow the next line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from schemas.errors import DecodeError


def split_csv(line: str) -> list[str]:
    """One CSV record on one line (RFC 4180 quoting). Raises DecodeError(reason="csv")."""
    try:
        return next(csv.reader((line,), strict=True), [])
    except csv.Error as exc:
        raise DecodeError(f"not a CSV record: {exc}", reason="csv") from None


def split_csv_many(lines: list[str]) -> Iterator[list[str] | DecodeError]:
    """:func:`split_csv` of each line, in order, with one CSV reader for them all (half the cost per line).

    A record is one line. A line with an odd number of quotes cannot close its last quoted
    field: it is split alone (and fails) and the reader gets an empty line in its place.
    When the reader still joins lines into one record (a quote inside an unquoted field)
    or fails, each line it read is split alone again, so one bad line never costs another.
    """
    odd = [line.count('"') % 2 == 1 for line in lines]
    reader = csv.reader(("" if bad else line for line, bad in zip(lines, odd, strict=True)), strict=True)
    done = 0
    while True:
        try:
            row: list[str] | None = next(reader)
        except StopIteration:
            break
        except csv.Error:
            row = None
        end = reader.line_num
        if row is not None and end - done == 1 and not odd[done]:
            yield row
        else:
            for k in range(done, end):
                yield _split_one(lines[k])
        done = end
    for k in range(done, len(lines)):  # not reached: the reader reads every line
        yield _split_one(lines[k])


def _split_one(line: str) -> list[str] | DecodeError:
    try:
        return split_csv(line)
    except DecodeError as exc:
        return exc
