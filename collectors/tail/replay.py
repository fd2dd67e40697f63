"""Replay formats of the file collectors: a whole file through the same parser as the live tailer.

Every line becomes the envelope the live collector would publish (same id, so a file
replayed after the live collector read it is stored once), with ``received`` set to the
line's own time, so two replays give identical envelopes. A line without a time of its own
takes the file's modification time. The last line is taken even without its newline
(the live tailer waits for it). Lines that do not parse come back as error items, which
``callscope replay`` dead-letters with their reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from collectors.tail.translate import EnvelopeMaker, LineParser, translate_line
from schemas.errors import DecodeError

if TYPE_CHECKING:
    from callscope.formats import Item


def _item(
    envelope: bytes | None,
    *,
    kind: str | None = None,
    key: str = "",
    raw: bytes = b"",
    error: DecodeError | None = None,
) -> Item:
    from callscope.formats import Item  # callscope.formats imports this module's formats

    return Item(envelope, kind=kind, key=key, raw=raw, error=error)


def first_line(head: bytes) -> str | None:
    """The first non-blank line of a file's head, as text."""
    for raw in head.splitlines():
        if raw.strip():
            try:
                return raw.decode()
            except UnicodeDecodeError:
                return raw.decode("latin-1")
    return None


class LineFileFormat:
    """A file with one record per line, read with a file collector's parser."""

    name = "lines"
    description = "one record per line"

    def parser(self) -> LineParser:
        raise NotImplementedError

    def sniff(self, head: bytes) -> bool:
        raise NotImplementedError

    def read(self, path: Path, *, node: str, role: str) -> Iterator[Item]:
        parser = self.parser()
        maker = EnvelopeMaker(parser.kind, node, role)
        mtime_us = int(path.stat().st_mtime * 1_000_000)
        with path.open("rb") as fh:
            for raw in fh:
                line = raw.rstrip(b"\r\n")
                if not line:
                    continue
                try:
                    done = translate_line(line, parser, maker, None, fallback_ts_us=mtime_us)
                except DecodeError as exc:
                    yield _item(None, raw=line, error=exc)
                    continue
                if done is not None:
                    yield _item(done[1], kind=parser.kind, key=done[0], raw=line)
