"""SIP OPTIONS requests and their answers: the prober's pure core (no I/O, no clock).

- :func:`new_ids` draws the per-probe identifiers: a Via branch with the RFC 3261 magic
  cookie ``z9hG4bK``, a Call-ID and a From tag, fresh for every probe.
- :func:`build_request` renders the request bytes: Request-URI, Via (transport, sent-by,
  branch, ``rport``), Max-Forwards 70, From with its tag, To, Call-ID, ``CSeq n OPTIONS``,
  Contact, User-Agent, ``Accept: application/sdp`` and ``Content-Length: 0``.
- :func:`read_answer` parses one answer with the SIP parser of the HEP collector
  (:func:`collectors.hep.sip.parse`) and keeps what matching and the result need.
- :func:`matches` says whether an answer belongs to a transaction: the top Via branch,
  the Call-ID and the CSeq method must all agree.
- :func:`frame` cuts one message off a TCP/TLS byte stream by its Content-Length.
- :func:`classify` turns a final status into the result's error class.

Bad input raises :class:`AnswerError` (a :class:`schemas.errors.DecodeError`) and nothing else.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

from collectors.hep.sip import SipError, parse
from collectors.options.config import Transport
from schemas.errors import DecodeError

__all__ = [
    "MAGIC_COOKIE",
    "MAX_ANSWER_BYTES",
    "Answer",
    "AnswerError",
    "ErrorClass",
    "Outcome",
    "ProbeIds",
    "build_request",
    "classify",
    "frame",
    "matches",
    "new_ids",
    "read_answer",
]

ErrorClass = Literal["timeout", "refused", "dns", "tls", "malformed", "unexpected_code"]
ERROR_CLASSES: tuple[ErrorClass, ...] = ("timeout", "refused", "dns", "tls", "malformed", "unexpected_code")

MAGIC_COOKIE = "z9hG4bK"
MAX_ANSWER_BYTES = 65535
_MAX_HEAD = 16384  # a stream answer whose headers do not end within this many bytes is garbage


class AnswerError(DecodeError):
    """Bytes that are not a SIP answer we can use; ``reason`` is ``garbage``, ``request`` or ``oversized``."""

    reason = "garbage"


@dataclass(frozen=True, slots=True)
class ProbeIds:
    """What makes one probe's transaction unique on the wire."""

    branch: str
    call_id: str
    from_tag: str


def new_ids(domain: str = "callscope") -> ProbeIds:
    """Fresh random identifiers (128 bits in the branch and the Call-ID)."""
    return ProbeIds(
        branch=f"{MAGIC_COOKIE}-{secrets.token_hex(16)}",
        call_id=f"{secrets.token_hex(16)}@{domain}",
        from_tag=secrets.token_hex(6),
    )


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def build_request(
    *,
    request_uri: str,
    transport: Transport,
    local: tuple[str, int],
    ids: ProbeIds,
    cseq: int,
    from_uri: str,
    to_uri: str | None = None,
    user_agent: str = "callscope",
) -> bytes:
    """The OPTIONS request as sent. ``local`` is the (address, port) answers come back to (the Via sent-by)."""
    sent_by = _hostport(*local)
    lines = (
        f"OPTIONS {request_uri} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {sent_by};branch={ids.branch};rport",
        "Max-Forwards: 70",
        f"From: <{from_uri}>;tag={ids.from_tag}",
        f"To: <{to_uri or request_uri}>",
        f"Call-ID: {ids.call_id}",
        f"CSeq: {cseq} OPTIONS",
        f"Contact: <sip:callscope@{sent_by}{'' if transport == 'udp' else f';transport={transport}'}>",
        f"User-Agent: {user_agent}",
        "Accept: application/sdp",
        "Content-Length: 0",
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass(frozen=True, slots=True)
class Answer:
    """The parts of a SIP response the prober uses."""

    status: int
    reason: str
    branch: str | None
    call_id: str
    method: str | None  # from CSeq
    server: str | None  # Server, else User-Agent

    @property
    def provisional(self) -> bool:
        return self.status < 200


@dataclass(slots=True)
class Outcome:
    """How one transaction ended on the wire: a final answer, a refusal, or nothing (timeout)."""

    answer: Answer | None = None
    received: float = 0.0  # monotonic time the final answer was read
    refused: str | None = None  # detail of an ICMP or send error
    garbled: bool = False  # the peer sent bytes that were not a usable answer
    attempts: int = 0  # transmissions
    first_send: float = 0.0  # monotonic
    first_send_us: int = 0  # wall clock, microseconds


def read_answer(data: bytes) -> Answer:
    """Parse one datagram or framed stream message as a SIP response; :class:`AnswerError` otherwise."""
    if not data.startswith(b"SIP/2.0 "):
        if data[:16].split(b" ", 1)[0].isalpha() and b" SIP/2.0" in data[:1100]:
            raise AnswerError("a SIP request, not an answer", reason="request")
        raise AnswerError("not a SIP status line", reason="garbage")
    try:
        msg = parse(data, correlation_headers=(), max_message_bytes=MAX_ANSWER_BYTES)
    except SipError as exc:
        reason = "oversized" if exc.reason == "oversized" else "garbage"
        raise AnswerError(f"unparseable answer: {exc}", reason=reason) from None
    assert msg.status is not None  # a status line was checked above
    server = msg.server or msg.user_agent
    return Answer(
        status=msg.status,
        reason=msg.reason or "",
        branch=msg.via_branch,
        call_id=msg.call_id,
        method=msg.method.upper() if msg.method else None,
        server=server[:256] if server else None,
    )


def matches(answer: Answer, branch: str, call_id: str) -> bool:
    """Whether ``answer`` answers the OPTIONS transaction with this branch and Call-ID."""
    return answer.branch == branch and answer.call_id == call_id and answer.method == "OPTIONS"


def classify(status: int, expect: tuple[int, ...]) -> ErrorClass | None:
    """The error class of a final answer: None when ``status`` counts as reachable."""
    return None if status in expect else "unexpected_code"


def frame(buf: bytes | bytearray) -> tuple[bytes | None, int]:
    """Cut the first complete message off a stream: ``(message, bytes consumed)``.

    ``(None, n)`` means more bytes are needed; ``n`` leading CRLF keep-alives (RFC 5626)
    may be dropped already. Raises :class:`AnswerError` when the head grows past 16 KiB
    without ending, or its Content-Length is missing a number or too large.
    """
    skip = 0
    n = len(buf)
    while skip < n and buf[skip] in (0x0D, 0x0A):
        skip += 1
    end = buf.find(b"\r\n\r\n", skip)
    if end < 0:
        if n - skip > _MAX_HEAD:
            raise AnswerError("no end of headers within 16 KiB", reason="oversized")
        return None, skip
    head_end = end + 4
    length = 0
    for line in bytes(buf[skip:end]).split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            text = value.strip()
            if not text.isdigit() or len(text) > 6:
                raise AnswerError("bad Content-Length on a stream", reason="garbage")
            length = int(text)
            break
    if head_end - skip + length > MAX_ANSWER_BYTES:
        raise AnswerError("answer larger than 64 KiB", reason="oversized")
    if n < head_end + length:
        return None, skip
    return bytes(buf[skip : head_end + length]), head_end + length
