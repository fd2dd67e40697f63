"""Recorded-input formats for ``callscope replay``.

Each format turns a file into envelopes through the same parsers the live
collectors use. A format can say whether a file looks like it (``sniff`` on the
first bytes), so ``--format`` is needed only where detection is ambiguous.
Collectors register their formats here as they arrive (HEP, pcap, AMI, CDR,
CEL, queue_log); the platform ships JSON-lines envelopes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import orjson

from schemas.envelope import decode, encode
from schemas.errors import DecodeError

if TYPE_CHECKING:
    from callscope.settings import CollectorsConfig


@dataclass(frozen=True, slots=True)
class Item:
    """One replayed input: an encoded envelope, or what could not be made into one."""

    envelope: bytes | None
    kind: str | None = None
    key: str = ""
    raw: bytes = b""
    error: DecodeError | None = None


class Format(Protocol):
    name: str
    description: str

    def sniff(self, head: bytes) -> bool: ...

    def read(self, path: Path, *, node: str, role: str) -> Iterator[Item]: ...


class JsonLines:
    """One callscope envelope per line (what the bus carries; what ``/api/v1/ingest`` takes)."""

    name = "jsonl"
    description = "callscope envelopes, one JSON object per line"

    def sniff(self, head: bytes) -> bool:
        for line in head.splitlines():
            text = line.strip()
            if not text:
                continue
            if not text.startswith(b"{"):
                return False
            try:
                doc = orjson.loads(text)
            except orjson.JSONDecodeError:
                # The head may cut a long line; a leading object with "kind" is enough.
                return b'"kind"' in text
            return isinstance(doc, dict) and "kind" in doc and "body" in doc
        return False

    def read(self, path: Path, *, node: str, role: str) -> Iterator[Item]:
        del node, role  # envelopes carry their own node and role
        with path.open("rb") as fh:
            for line in fh:
                text = line.strip()
                if not text:
                    continue
                try:
                    env = decode(text)
                except DecodeError as exc:
                    yield Item(None, raw=text, error=exc)
                    continue
                yield Item(encode(env), kind=env.kind, key=env.key, raw=text)


def _builtin_formats() -> dict[str, Format]:
    # Imported here: the collectors' formats build callscope.formats.Item.
    from collectors.ami.replay import AmiFormat
    from collectors.hep.replay import HepFileFormat, PcapFormat

    return {f.name: f for f in (JsonLines(), PcapFormat(), HepFileFormat(), AmiFormat())}


FORMATS: dict[str, Format] = _builtin_formats()


def _asterisk_file_formats(collectors: CollectorsConfig | None = None) -> dict[str, Format]:
    """cdr, cel and queue_log: the file collectors' parsers, with their configured mappings and zones."""
    from collectors.cdr.replay import CdrFormat
    from collectors.cel.replay import CelFormat
    from collectors.queue_log.replay import QueueLogFormat

    if collectors is None:
        return {f.name: f for f in (CdrFormat(), CelFormat(), QueueLogFormat())}
    formats = (CdrFormat(collectors.cdr), CelFormat(collectors.cel), QueueLogFormat(collectors.queue_log))
    return {f.name: f for f in formats}


FORMATS.update(_asterisk_file_formats())


def use_collector_settings(collectors: CollectorsConfig) -> None:
    """Replay cdr, cel and queue_log with the configured mappings (cdr_custom, cel_custom) and time zones."""
    FORMATS.update(_asterisk_file_formats(collectors))


def detect(path: Path) -> Format | None:
    """The one format whose sniff accepts the file's first bytes, or None."""
    with path.open("rb") as fh:
        head = fh.read(64 * 1024)
    matches = [f for f in FORMATS.values() if f.sniff(head)]
    return matches[0] if len(matches) == 1 else None
