"""Lines -> envelopes: what every file collector (and its replay format) does per line. Pure.

A format supplies a :class:`LineParser`: one text line in, ``(key, ts_us, body)`` out, or
None for a line that is not a record (a blank line, a table header), or a
:class:`~schemas.errors.DecodeError` with a bounded ``reason``. :func:`translate` turns a
batch of raw lines into encoded envelopes and dead-letter records.

The envelope is assembled from pre-encoded pieces (orjson for the key and the body dict),
not through the pydantic models, which would cost more than the parsing; ``tests/files``
validates what comes out against :mod:`schemas.envelope`.

Event id: ``event_id(kind, node, line)`` over the line's bytes without its line ending.
The same line always gives the same id: a line read twice (a retry after the bus refused a
batch, a copy left by ``copytruncate``, a replay of a file the live collector already read)
is stored once. Two byte-identical lines of one file are one event; in these formats every
line carries its own time and ids, so that only merges true repeats.

Text: UTF-8, and Latin-1 for a line that is not UTF-8 (Asterisk writes caller names as it
got them), so no line is refused for its encoding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from collectors.tail.times import ts_bytes
from schemas.envelope import SCHEMA_VERSION
from schemas.errors import DecodeError
from schemas.topics import deadletter_record

Parsed = tuple[str, int | None, dict[str, Any]]
"""(correlation key, event time in microseconds since the epoch or None, body as the kind's model wants it)."""

MAX_KEY = 1024  # the envelope's key limit
_dumps = orjson.dumps


class LineParser(Protocol):
    """The pure core of one file format."""

    kind: str

    def parse(self, line: str) -> Parsed | None:
        """One line without its line ending -> (key, ts_us, body); None for a line that holds no record."""
        ...

    def parse_many(self, lines: list[str]) -> Iterator[Parsed | DecodeError | None]:
        """:meth:`parse` for each line in order, the error in place of a line that fails.

        Lazily: the caller encodes each result before the next is made, so a batch never
        holds thousands of body dicts at once (the cyclic GC would walk them all).
        """
        ...


def parse_each(parser: LineParser, lines: list[str]) -> Iterator[Parsed | DecodeError | None]:
    """``parse_many`` of a format that has nothing to batch."""
    parse = parser.parse
    for line in lines:
        try:
            yield parse(line)
        except DecodeError as exc:
            yield exc


class EnvelopeMaker:
    """Encodes envelopes of one kind from one node.

    The envelope is assembled from pre-encoded pieces: the constant head (version, kind,
    node, role), the id, the two times (``received`` is the same for a whole batch, and
    formatted times are cached per second), the key and the body (orjson). The id hasher
    keeps (kind, node) already fed.
    """

    __slots__ = ("_head", "_prefix", "_received", "kind", "node", "role")

    def __init__(self, kind: str, node: str, role: str) -> None:
        self.kind = kind
        self.node = node
        self.role = role
        prefix = hashlib.blake2b(digest_size=16)
        prefix.update(kind.encode())
        prefix.update(b"\x00")
        prefix.update(node.encode())
        prefix.update(b"\x00")
        self._prefix = prefix
        head = orjson.dumps({"v": SCHEMA_VERSION, "kind": kind, "node": node, "role": role})
        self._head = head[:-1] + b',"id":"'
        self._received: tuple[int, bytes] = (-1, b"")

    def event_id(self, raw: bytes) -> str:
        """``schemas.envelope.event_id(kind, node, raw)``."""
        h = self._prefix.copy()
        h.update(raw)
        return h.hexdigest()

    def make(self, key: str, ts_us: int, received_us: int, body: dict[str, Any], raw: bytes) -> bytes:
        """The envelope's bytes. Raises DecodeError: ``time`` out of range, ``encode`` (e.g. JSON nested too deep)."""
        try:
            body_json = _dumps(body)
        except orjson.JSONEncodeError as exc:
            raise DecodeError(f"body cannot be encoded: {exc}", reason="encode") from None
        h = self._prefix.copy()
        h.update(raw)
        received = self._received
        if received[0] != received_us:
            received = self._received = (received_us, ts_bytes(received_us))
        return b"".join(
            (
                self._head,
                h.hexdigest().encode(),
                b'","ts":"',
                ts_bytes(ts_us),
                b'","received":"',
                received[1],
                b'","key":',
                _dumps(key),
                b',"body":',
                body_json,
                b"}",
            )
        )


def decode_line(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@dataclass(slots=True)
class Translated:
    """One batch's output: envelopes keyed for their topic, dead-letter records, lines that held no record."""

    envelopes: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    deadletters: list[bytes] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)  # dead letters by reason
    skipped: int = 0


def translate_line(
    raw: bytes, parser: LineParser, maker: EnvelopeMaker, received_us: int | None, *, fallback_ts_us: int = 0
) -> tuple[str, bytes] | None:
    """(key, envelope) for one line without its line ending; None when it holds no record.

    The envelope's ``ts`` is the line's own time, else ``received_us``, else ``fallback_ts_us``.
    ``received_us`` None (a replay) makes ``received`` the line's time, so a replay gives the
    same envelopes every time. Raises :class:`DecodeError`.
    """
    parsed = parser.parse(decode_line(raw))
    if parsed is None:
        return None
    key, ts_us, body = parsed
    if len(key) > MAX_KEY:
        raise DecodeError(f"correlation key of {len(key)} characters (limit {MAX_KEY})", reason="key")
    if ts_us is None:
        ts_us = received_us if received_us is not None else fallback_ts_us
    return key, maker.make(key, ts_us, ts_us if received_us is None else received_us, body, raw)


def translate(
    lines: list[bytes],
    parser: LineParser,
    maker: EnvelopeMaker,
    received_us: int,
    *,
    component: str,
    out: Translated | None = None,
) -> Translated:
    """Envelopes and dead letters for raw lines (line endings removed, blank lines skipped)."""
    out = out if out is not None else Translated()
    raws = [raw[:-1] if raw.endswith(b"\r") else raw for raw in lines]  # CRLF files
    raws = [raw for raw in raws if raw]
    out.skipped += len(lines) - len(raws)
    try:
        texts = [raw.decode() for raw in raws]
    except UnicodeDecodeError:
        texts = [decode_line(raw) for raw in raws]
    results = parser.parse_many(texts)
    envelopes = out.envelopes
    make = maker.make
    node = maker.node
    for raw, result in zip(raws, results, strict=True):
        if result.__class__ is tuple:
            key, ts_us, body = result
            if len(key) > MAX_KEY:
                detail = f"correlation key of {len(key)} characters (limit {MAX_KEY})"
                add_deadletter(out, "key", detail, raw, component=component, node=node)
                continue
            try:
                envelope = make(key, received_us if ts_us is None else ts_us, received_us, body, raw)
            except DecodeError as exc:
                add_deadletter(out, exc.reason, str(exc), raw, component=component, node=node)
                continue
            envelopes.append((key.encode(), envelope))
        elif result is None:
            out.skipped += 1
        elif isinstance(result, DecodeError):
            add_deadletter(out, result.reason, str(result), raw, component=component, node=node)
    return out


def add_deadletter(out: Translated, reason: str, detail: str, raw: bytes, *, component: str, node: str) -> None:
    out.deadletters.append(deadletter_record(component=component, reason=reason, detail=detail, raw=raw, node=node))
    out.reasons[reason] = out.reasons.get(reason, 0) + 1
