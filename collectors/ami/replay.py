"""The ``ami`` replay format: AMI recordings through the collector's own envelope path.

Two forms, told apart by the content (``--format ami`` is needed only when the file's start
says neither):

- **wire transcripts**: what passes on port 5038 (panoramisk's ``*.yaml`` fixtures; a
  ``tcpdump``/``ngrep`` dump of a session), LF or CRLF, with or without banner, garbage
  included: parsed by :class:`.wire.AmiFramer`. Event blocks become envelopes; responses and
  actions are not events and are skipped; garbage becomes an error item (dead-lettered).
- **JSON lists of events**: ``[{"Event": "Newchannel", "Uniqueid": ..., ...}, ...]``
  (cacofonisk's recordings). Values should be strings (numbers are turned into strings);
  the empty ``"content"`` key that panoramisk-based recorders add is dropped.

Dialect: the banner's, else the first event only one dialect sends, for the whole file.

Time and ids, so that replaying a file twice stores it once: ``id`` is made of the file's
digest and the event's index; ``ts`` and ``received`` come from a replay clock, not the wall
clock. The clock starts at the first time the file shows (an event ``Timestamp``, or the
epoch inside an Asterisk ``Uniqueid``/``Linkedid`` such as ``1529936141.21`` or
``host-1529936141.21``; else the file's modification time), moves forward to every later
such time it meets, and else advances one microsecond per event, so the order of the file is
the order of ``ts``. Events with their own ``Timestamp`` keep it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from collectors.ami.dialect import Dialect, DialectTracker, classify
from collectors.ami.events import envelope_from_fields, event_name, timestamp_us
from collectors.ami.wire import AmiFramer, Banner, Block, Garbage, encode_block
from schemas.errors import DecodeError

if TYPE_CHECKING:  # callscope.formats imports this module while it builds its registry: Item comes late
    from callscope.formats import Item

__all__ = ["AmiFormat", "load_events"]

_CHUNK = 1 << 20
_JSON_HEAD = re.compile(rb'^\s*\[\s*(?:\{[^{}]*?"event"\s*:|\])', re.IGNORECASE | re.DOTALL)
_WIRE_HEAD = re.compile(r"^(?:Asterisk Call Manager|(?:event|response|action)\s*:)", re.IGNORECASE)
_ID_EPOCH = re.compile(r"(?:^|-)(\d{9,10})\.\d+$")
_ID_KEYS = ("Linkedid", "Uniqueid", "UniqueID", "Uniqueid1", "DestLinkedid", "DestUniqueid", "LinkedID")
_MIN_EPOCH = 946_684_800
_MAX_EPOCH = 4_102_444_800


class AmiFormat:
    """AMI wire transcripts and JSON lists of AMI events."""

    name = "ami"
    description = "Asterisk Manager Interface: raw wire transcripts, or JSON lists of events"

    def sniff(self, head: bytes) -> bool:
        if _JSON_HEAD.match(head):
            return True
        for line in head.split(b"\n", 64)[:64]:
            text = line.decode("utf-8", "replace").strip()
            if text:
                return _WIRE_HEAD.match(text) is not None
        return False

    def read(self, path: Path, *, node: str, role: str) -> Iterator[Item]:
        with path.open("rb") as fh:
            head = fh.read(64 * 1024)
        if _JSON_HEAD.match(head):
            yield from _read_json(path, node=node, role=role)
        else:
            yield from _read_wire(path, node=node, role=role)


# ---------------------------------------------------------------------- the replay clock
def _id_epoch_us(fields: Mapping[str, str]) -> int | None:
    for name in _ID_KEYS:
        value = fields.get(name)
        if value:
            match = _ID_EPOCH.search(value)
            if match is not None:
                seconds = int(match.group(1))
                if _MIN_EPOCH <= seconds < _MAX_EPOCH:
                    return seconds * 1_000_000
    return None


def _time_in(fields: Mapping[str, str]) -> int | None:
    return timestamp_us(fields) or _id_epoch_us(fields)


class _Clock:
    def __init__(self, start_us: int) -> None:
        self.now = start_us - 1

    def tick(self, fields: Mapping[str, str]) -> int:
        seen = _time_in(fields)
        self.now = seen if seen is not None and seen > self.now else self.now + 1
        return self.now


def _mtime_us(path: Path) -> int:
    return int(path.stat().st_mtime * 1_000_000)


# ---------------------------------------------------------------------- JSON lists
def load_events(data: bytes) -> list[dict[str, str]]:
    """The events of a JSON list recording, as string dicts. Raises :class:`DecodeError`."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}", reason="json") from None
    if not isinstance(doc, list):
        raise DecodeError("an AMI JSON recording is a list of events", reason="json")
    return [_event_dict(item, i) for i, item in enumerate(doc)]


def _event_dict(item: Any, index: int) -> dict[str, str]:
    if not isinstance(item, dict):
        raise DecodeError(f"item {index} is not a JSON object", reason="json_event")
    out: dict[str, str] = {}
    for key, value in item.items():
        if isinstance(value, str):
            if key == "content" and not value:
                continue  # added by panoramisk-based recorders, not an AMI key
            out[key] = value
        elif isinstance(value, bool) or value is None or not isinstance(value, int | float):
            raise DecodeError(f"item {index}: {key} is not a string", reason="json_event")
        else:
            out[key] = str(value)
    return out


def _read_json(path: Path, *, node: str, role: str) -> Iterator[Item]:
    from callscope.formats import Item

    data = path.read_bytes()
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        yield Item(None, raw=data[:4096], error=DecodeError(f"{path.name}: not JSON: {exc}", reason="json"))
        return
    if not isinstance(doc, list):
        yield Item(None, raw=data[:4096], error=DecodeError("an AMI JSON recording is a list", reason="json"))
        return
    events: list[dict[str, str] | DecodeError] = []
    for i, raw_item in enumerate(doc):
        try:
            events.append(_event_dict(raw_item, i))
        except DecodeError as exc:
            events.append(exc)
    good = [e for e in events if isinstance(e, dict)]
    dialect = _dialect(good, None)
    clock = _Clock(_first_time(good) or _mtime_us(path))
    for index, event in enumerate(events):
        if isinstance(event, DecodeError):
            yield Item(None, raw=orjson.dumps(doc[index])[:4096], error=event)
            continue
        yield _item(event, index, digest, clock, node=node, role=role, dialect=dialect)


def _first_time(events: list[dict[str, str]]) -> int | None:
    for event in events:
        seen = _time_in(event)
        if seen is not None:
            return seen
    return None


def _dialect(events: list[dict[str, str]], banner: str | None) -> Dialect:
    tracker = DialectTracker(banner)
    for event in events:
        if tracker.dialect != "unknown":
            break
        name = event.get("Event") or ""
        if classify(name, event) != "unknown":
            tracker.label(name, event)
    return tracker.dialect


def _item(
    fields: dict[str, str], index: int, digest: str, clock: _Clock, *, node: str, role: str, dialect: Dialect
) -> Item:
    from callscope.formats import Item

    raw = encode_block(fields, crlf=False)
    try:
        name = event_name(fields)
        key, envelope = envelope_from_fields(
            fields,
            node=node,
            role=role,
            dialect=dialect,
            received_us=clock.tick(fields),
            id_parts=("replay", digest, str(index)),
            event=name,
        )
    except DecodeError as exc:
        return Item(None, raw=raw, error=exc)
    return Item(envelope, kind="ami", key=key, raw=raw)


# ---------------------------------------------------------------------- wire transcripts
def _blocks(path: Path) -> Iterator[Banner | Block | Garbage]:
    framer = AmiFramer()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield from framer.feed(chunk)
    yield from framer.close()


def _read_wire(path: Path, *, node: str, role: str) -> Iterator[Item]:
    from callscope.formats import Item

    # First pass: the file's digest, its dialect and its first time; second pass: the items.
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    banner: str | None = None
    tracker = DialectTracker()
    first: int | None = None
    for item in _blocks(path):
        if isinstance(item, Banner):
            banner = banner or item.version
        elif isinstance(item, Block) and item.kind == "event":
            if tracker.dialect == "unknown":
                tracker.label(item.name, item.fields)
            if first is None:
                first = _time_in(item.fields)
        if banner is not None and first is not None and tracker.dialect != "unknown":
            break
    dialect = DialectTracker(banner).dialect if banner else tracker.dialect
    if dialect == "unknown":
        dialect = tracker.dialect
    clock = _Clock(first or _mtime_us(path))
    hexdigest = digest.hexdigest()
    index = 0
    for item in _blocks(path):
        if isinstance(item, Garbage):
            yield Item(None, raw=item.raw, error=item.error)
        elif isinstance(item, Block) and item.kind == "event":
            yield _item(item.fields, index, hexdigest, clock, node=node, role=role, dialect=dialect)
            index += 1
