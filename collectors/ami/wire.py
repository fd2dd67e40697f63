"""The AMI wire framing: bytes in, blocks out. Pure: no I/O, no clock.

What Asterisk sends on port 5038 (and what recorded transcripts hold):

- a banner line on connect, ``Asterisk Call Manager/<AMI version>``, with no blank line after it;
- blocks of ``Key: Value`` lines ending at an empty line. The first key names the block:
  ``Event:``, ``Response:`` or ``Action:`` (matched case-insensitively: clients send
  ``action: command``). Keys keep their case; a key sent twice (``Variable``, ``ChanVariable``)
  keeps every value, joined with ``\\n`` (AMI values never hold a newline). ``Key: `` and
  ``Key:`` are empty values.
- ``Response: Follows`` (Asterisk up to 11 answering ``Command``) carries free text after its
  ``Privilege``/``ActionID`` lines, ending with ``--END COMMAND--`` (alone or glued to the last
  output line); that text is :attr:`Block.output`, blank lines included.
- lines end with CRLF on the wire; LF alone is accepted too (recorded transcripts).

Resynchronisation: anything that is not part of a block -- a line of garbage, a key line with
no block around it, a line of text inside a block -- becomes a :class:`Garbage` item (with a
:class:`WireError`, a :class:`~schemas.errors.DecodeError`) and parsing goes on. A block start
glued to garbage, as in a capture that lost bytes (``[218 bytes missing in capture
file]Event: Newexten``), is found inside the line: the prefix is garbage, the block starts
there. Lines past ``max_line_bytes`` and blocks past ``max_fields`` / ``max_output_bytes``
are cut and reported, so memory stays bounded whatever arrives.

:class:`AmiFramer` is incremental (feed it what the socket read; the result does not depend on
how the bytes were split), :func:`parse_wire` parses a whole text at once. Neither raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from schemas.errors import DecodeError

__all__ = [
    "BANNER_PREFIX",
    "AmiFramer",
    "Banner",
    "Block",
    "BlockKind",
    "Garbage",
    "Item",
    "WireError",
    "encode_block",
    "parse_wire",
]

BANNER_PREFIX = "Asterisk Call Manager"
END_COMMAND = "--END COMMAND--"
GARBAGE_KEEP_BYTES = 4096  # raw bytes kept in a Garbage item (for its dead letter)

BlockKind = Literal["event", "response", "action"]
_KINDS: dict[str, BlockKind] = {"event": "event", "response": "response", "action": "action"}
# A block start glued behind something that is not a letter or digit (the capture-gap case).
_EMBEDDED_START = re.compile(r"(?<![A-Za-z0-9])(?:event|response|action):", re.IGNORECASE)
_FOLLOWS_HEADERS = frozenset({"privilege", "actionid", "commandid", "message"})
_VERSION = re.compile(r"/\s*([0-9][0-9A-Za-z.\-]*)")


class WireError(DecodeError):
    """Text on an AMI stream that is not part of a block. ``reason``: a bounded label."""

    reason = "garbage"


@dataclass(frozen=True, slots=True)
class Banner:
    """The greeting line, e.g. ``Asterisk Call Manager/7.0.3`` (``version`` ``"7.0.3"``)."""

    text: str
    version: str


@dataclass(frozen=True, slots=True)
class Block:
    """One AMI block. ``name`` is the value of its first line (``Newchannel``, ``Success``, ``Ping``)."""

    kind: BlockKind
    name: str
    fields: dict[str, str]
    output: str | None = None  # Response: Follows command output (lines joined with "\n")
    complete: bool = True  # False when the stream ended or was cut inside the block

    def get(self, key: str, default: str | None = None) -> str | None:
        """A field by name, exact spelling first, then case-insensitively."""
        value = self.fields.get(key)
        if value is not None:
            return value
        lower = key.lower()
        for name, candidate in self.fields.items():
            if name.lower() == lower:
                return candidate
        return default


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes that are not AMI: ``error`` says why (its ``reason`` is the metric label)."""

    error: WireError
    raw: bytes = field(repr=False)


Item = Banner | Block | Garbage


def _garbage(reason: str, text: str, detail: str) -> Garbage:
    raw = text.encode("utf-8", "replace")[:GARBAGE_KEEP_BYTES]
    return Garbage(WireError(detail, reason=reason), raw)


class AmiFramer:
    """Incremental AMI framing for one stream (one TCP connection or one file)."""

    def __init__(
        self, *, max_line_bytes: int = 65536, max_fields: int = 1024, max_output_bytes: int = 1024 * 1024
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self.max_fields = max_fields
        self.max_output_bytes = max_output_bytes
        self._buf = b""
        self._skipping = False  # dropping the rest of an overlong line
        self._kind: BlockKind | None = None
        self._name = ""
        self._fields: dict[str, str] = {}
        self._follows = 0  # 0 no, 1 Response: Follows headers, 2 its output
        self._output: list[str] = []
        self._output_size = 0
        self._output_blank = False
        self._garbage: list[str] = []
        self._discard = False  # dropping the rest of an oversized block, up to its blank line

    @property
    def pending(self) -> bool:
        """True while a block (or a partial line) is unfinished."""
        return bool(self._buf) or self._kind is not None

    # ------------------------------------------------------------------ input
    def feed(self, data: bytes) -> list[Item]:
        """Parse what arrived; return the items it completed (possibly none)."""
        out: list[Item] = []
        buf = self._buf + data if self._buf else data
        end = buf.rfind(b"\n")
        if end < 0:
            if self._skipping:
                self._buf = b""  # still inside the overlong line
                return out
            self._buf = buf
            self._check_partial(out)
            return out
        complete = buf[:end]
        self._buf = buf[end + 1 :]
        if self._skipping:
            cut = complete.find(b"\n")
            self._skipping = False
            if cut < 0:
                self._check_partial(out)
                return out
            complete = complete[cut + 1 :]
        self._lines(complete, out)
        self._check_partial(out)
        return out

    def close(self) -> list[Item]:
        """The stream ended: finish the last line and the block it was in (``complete=False``)."""
        out: list[Item] = []
        if self._buf and not self._skipping:
            rest, self._buf = self._buf, b""
            self._lines(rest, out)
        self._buf = b""
        self._skipping = False
        self._discard = False
        if self._kind is not None:
            self._emit(out, complete=False)
        self._flush_garbage(out)
        return out

    def _check_partial(self, out: list[Item]) -> None:
        if len(self._buf) > self.max_line_bytes:
            out.append(
                _garbage(
                    "line_too_long",
                    self._buf[:GARBAGE_KEEP_BYTES].decode("utf-8", "replace"),
                    f"line over {self.max_line_bytes} bytes",
                )
            )
            self._buf = b""
            self._skipping = True

    # ------------------------------------------------------------------ lines
    def _lines(self, chunk: bytes, out: list[Item]) -> None:
        max_line = self.max_line_bytes
        if len(chunk) > max_line and max(map(len, chunk.split(b"\n"))) > max_line:
            for raw in chunk.split(b"\n"):  # rare: cut the overlong lines out, keep their places
                if len(raw) > max_line:
                    out.append(_garbage("line_too_long", raw.decode("utf-8", "replace"), f"line over {max_line} bytes"))
                else:
                    self._lines(raw, out)
            return
        text = chunk.decode("utf-8", "replace")
        if "\r" in text:
            text = text.replace("\r", "")
        for line in text.split("\n"):
            if self._discard:
                self._discard = bool(line) and not line.isspace()
                continue
            if self._follows == 2:
                self._output_line(line, out)
                continue
            if not line or (line[0] in " \t" and line.isspace()):
                if self._kind is not None:
                    self._emit(out)
                elif self._garbage:
                    self._flush_garbage(out)
                continue
            key, sep, value = line.partition(":")
            if sep and key and " " not in key and "\t" not in key:
                if value[:1] == " ":
                    value = value[1:]
                fields = self._fields
                if self._kind is not None:
                    if self._follows == 1 and key.lower() not in _FOLLOWS_HEADERS:
                        self._follows = 2
                        self._output_line(line, out)
                        continue
                    if key in fields:
                        fields[key] = f"{fields[key]}\n{value}"
                    else:
                        if len(fields) >= self.max_fields:
                            self._too_large(out)
                            continue
                        fields[key] = value
                    continue
                kind = _KINDS.get(key.lower())
                if kind is not None:
                    self._start(kind, key, value, out)
                    continue
            self._odd_line(line, out)

    def _start(self, kind: BlockKind, key: str, value: str, out: list[Item]) -> None:
        self._flush_garbage(out)
        self._kind = kind
        self._name = value.strip()
        self._fields = {key: value}
        if kind == "response" and self._name.lower() == "follows":
            self._follows = 1

    def _odd_line(self, line: str, out: list[Item]) -> None:
        """A line that is not ``Key: Value`` where one was expected: banner, command output, garbage."""
        if self._kind is None and line.startswith(BANNER_PREFIX):
            self._flush_garbage(out)
            match = _VERSION.search(line)
            out.append(Banner(line.strip(), match.group(1) if match else ""))
            return
        match = _EMBEDDED_START.search(line, 1)
        if match is not None:
            start = match.start()
            if self._kind is not None:
                self._emit(out, complete=False)
            self._garbage.append(line[:start])
            self._flush_garbage(out)
            key, _, value = line[start:].partition(":")
            self._start(_KINDS[key.lower()], key, value[1:] if value[:1] == " " else value, out)
            return
        if self._follows == 1:
            self._follows = 2
            self._output_line(line, out)
            return
        if self._kind is not None:
            out.append(_garbage("garbage", line, f"line inside a {self._kind} block is not 'Key: Value'"))
            return
        self._garbage.append(line)
        if sum(map(len, self._garbage)) > GARBAGE_KEEP_BYTES:
            self._flush_garbage(out)

    def _output_line(self, line: str, out: list[Item]) -> None:
        if line.endswith(END_COMMAND):
            head = line[: -len(END_COMMAND)]
            if head:
                self._output.append(head)
            self._emit(out)
            return
        if self._output_blank and _KINDS.get(line.partition(":")[0].lower()) is not None:
            # A blank line, then a new block: the --END COMMAND-- never came.
            self._emit(out, complete=False)
            self._lines(line.encode(), out)
            return
        self._output_blank = not line or line.isspace()
        self._output_size += len(line) + 1
        if self._output_size > self.max_output_bytes:
            self._too_large(out)
            return
        self._output.append(line)

    def _too_large(self, out: list[Item]) -> None:
        what = f"{self._kind} {self._name}"[:64]
        detail = f"block over {self.max_fields} fields or {self.max_output_bytes} output bytes: {what}"
        out.append(_garbage("block_too_large", what, detail))
        self._clear_block()
        self._discard = True

    # ------------------------------------------------------------------ output
    def _emit(self, out: list[Item], *, complete: bool = True) -> None:
        if self._kind is not None:
            output = None
            if self._follows:
                while self._output and not self._output[-1].strip():
                    self._output.pop()
                output = "\n".join(self._output)
            out.append(Block(self._kind, self._name, self._fields, output, complete))
        self._clear_block()

    def _clear_block(self) -> None:
        self._kind = None
        self._name = ""
        self._fields = {}
        self._follows = 0
        self._output = []
        self._output_size = 0
        self._output_blank = False

    def _flush_garbage(self, out: list[Item]) -> None:
        if self._garbage:
            text = "\n".join(self._garbage)
            self._garbage = []
            if text.strip():
                out.append(_garbage("garbage", text, "text outside any AMI block"))


def parse_wire(data: bytes | str, **limits: int) -> list[Item]:
    """Every item of a whole AMI text (a transcript, a test stream)."""
    framer = AmiFramer(**limits)
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    return framer.feed(raw) + framer.close()


def encode_block(fields: Iterable[tuple[str, str]] | dict[str, str], *, crlf: bool = True) -> bytes:
    """The wire form of one block (values with ``\\n`` become repeated keys), blank line included."""
    eol = "\r\n" if crlf else "\n"
    pairs = fields.items() if isinstance(fields, dict) else fields
    lines = [f"{key}: {part}" for key, value in pairs for part in value.split("\n")]
    return (eol.join(lines) + eol + eol).encode("utf-8")
