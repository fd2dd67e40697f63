"""SIP message parsing (RFC 3261 syntax, what observability needs). Pure, no I/O.

:func:`parse` takes one SIP message as bytes and returns a :class:`SipMessage` carrying the
fields of :class:`schemas.bodies.SipBody` that come from the message itself (the transport
fields -- src, dst, transport, capture id/name, correlation id -- come from HEP). Values are
plain Python/JSON types (``sdp`` and ``vq_report`` are dicts). :func:`parse_fields` returns
the same fields as a plain dict, in the same order: the collector's hot path puts it in the
envelope body as it is, once the transport fields are added (see :mod:`.events`). Header
names and the syntax of header values are in :mod:`.sip_headers`.

Accepted syntax: request and status lines; case-insensitive header names; compact forms
(RFC 3261 section 7.3.3 and later RFCs, see :data:`COMPACT`); folded (continuation) lines;
several values on one line separated by commas for Via, Route and Record-Route; CRLF or
bare LF line ends. ``Content-Length`` (when present) bounds the body; bytes after it are
ignored (UDP padding), a body shorter than it is an error -- except in a bare-LF message,
whose line ends were converted from CRLF (hand-made messages, sipcapture's HEPGEN): each
bare LF lost one byte, so Content-Length may exceed the body by at most the number of bare
LFs in the message.

Errors: :class:`SipError` with ``reason`` from :data:`REASONS`, and never another
exception:

- ``not_sip``: an HTTP request or response (e.g. HTTP on port 5060), empty input;
- ``start_line``: no valid request or status line;
- ``header``: a header line without a name and colon, a continuation line before any header;
- ``oversized``: the message is larger than ``max_message_bytes``, a header line is longer
  than 8 KiB, the request URI is longer than 1024 characters, more than 256 header lines;
- ``call_id``: Call-ID missing, empty or longer than 1024 characters;
- ``cseq``: CSeq missing or not ``<number> <method>`` with a number below 2^32;
- ``content_length``: Content-Length empty, non-numeric, >= 2^32, or past the end.

Other header values that are empty or malformed (Expires, From, Contact ...) leave their
field ``None``: one bad optional header does not lose the message. Values longer than the
body model's limits (reason phrase 256, Reason 512, Session-ID 256) are cut to the limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from collectors.hep.sdp import STATIC_CODECS, SdpSummaryDict, parse_vq_report, summarize
from collectors.hep.sip_headers import (
    BRANCH,
    COMPACT,
    EXPIRES,
    KEPT_HEADERS,
    MULTI,
    digits,
    name_addr,
    split_commas,
)
from collectors.hep.speedups import native
from schemas.errors import DecodeError

__all__ = [
    "COMPACT",
    "KEPT_HEADERS",
    "REASONS",
    "SipError",
    "SipFields",
    "SipMessage",
    "parse",
    "parse_fields",
    "parse_fields_pure",
]

REASONS = ("not_sip", "start_line", "header", "oversized", "call_id", "cseq", "content_length")

MAX_HEADER_LINE = 8192
MAX_CALL_ID = 1024
MAX_HEADER_LINES = 256
MAX_VIA_BRANCHES = 32


class SipError(DecodeError):
    """A SIP message that cannot be parsed. ``reason`` is one of :data:`REASONS`."""

    reason = "sip"


@dataclass(slots=True)
class SipMessage:
    """The message-derived fields of :class:`schemas.bodies.SipBody`, same names and meaning."""

    is_request: bool
    method: str | None
    request_uri: str | None
    status: int | None
    reason: str | None
    call_id: str
    cseq: int | None
    from_user: str | None = None
    from_display: str | None = None
    from_uri: str | None = None
    from_tag: str | None = None
    to_user: str | None = None
    to_display: str | None = None
    to_uri: str | None = None
    to_tag: str | None = None
    via_branch: str | None = None
    via_branches: list[str] = field(default_factory=list)
    contact: str | None = None
    user_agent: str | None = None
    server: str | None = None
    pai: str | None = None
    pai_user: str | None = None
    session_id: str | None = None
    expires: int | None = None
    reason_header: str | None = None
    content_type: str | None = None
    correlation: dict[str, str] = field(default_factory=dict)
    sdp: SdpSummaryDict | None = None
    vq_report: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: str = ""


class SipFields(TypedDict):
    """:class:`SipMessage`'s fields as a dict (what :func:`parse_fields` returns), in the same order."""

    is_request: bool
    method: str | None
    request_uri: str | None
    status: int | None
    reason: str | None
    call_id: str
    cseq: int | None
    from_user: str | None
    from_display: str | None
    from_uri: str | None
    from_tag: str | None
    to_user: str | None
    to_display: str | None
    to_uri: str | None
    to_tag: str | None
    via_branch: str | None
    via_branches: list[str]
    contact: str | None
    user_agent: str | None
    server: str | None
    pai: str | None
    pai_user: str | None
    session_id: str | None
    expires: int | None
    reason_header: str | None
    content_type: str | None
    correlation: dict[str, str]
    sdp: SdpSummaryDict | None
    vq_report: dict[str, Any] | None
    headers: dict[str, str]
    raw: str


_FOLD = re.compile(r"\r?\n[ \t]+")
_CR_LF = (13, 10)


def _text(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _start_line(line: str) -> tuple[bool, str | None, str | None, int | None, str | None]:
    if line.startswith("SIP/2.0 "):
        code_text, _, reason = line[8:].partition(" ")
        if len(code_text) != 3 or not code_text.isascii() or not code_text.isdigit():
            raise SipError("bad status code", reason="start_line")
        status = int(code_text)
        if not 100 <= status <= 699:
            raise SipError("status code out of range", reason="start_line")
        return False, None, None, status, reason.strip()[:256]
    parts = line.split(" ")
    if len(parts) == 3 and parts[2] == "SIP/2.0":
        method, uri = parts[0], parts[1]
        if not method or len(method) > 32 or not method.isascii() or not method.isalpha():
            raise SipError("bad method", reason="start_line")
        if not uri:
            raise SipError("empty request URI", reason="start_line")
        if len(uri) > 1024:
            raise SipError("request URI over 1024 characters", reason="oversized")
        return True, method, uri, None, None
    upper = line[:8].upper()
    if upper.startswith("HTTP/") or (len(parts) >= 2 and parts[-1].upper().startswith("HTTP/")):
        raise SipError("HTTP, not SIP", reason="not_sip")
    raise SipError("no SIP start line", reason="start_line")


def parse(
    data: bytes,
    *,
    correlation_headers: Sequence[str] = ("x-cid",),
    max_message_bytes: int = 65535,
) -> SipMessage:
    """Parse one SIP message. Raises :class:`SipError` (see the module docstring) and nothing else."""
    return SipMessage(
        **parse_fields(data, correlation_headers=correlation_headers, max_message_bytes=max_message_bytes)
    )


# Canonical (lower-case, long-form) header name by the text before the colon, as written.
# Only valid names are cached; a full cache is cleared (agents use a few dozen spellings).
_CANONICAL: dict[str, str] = {}
_CANONICAL_MAX = 1024


def _header_name(line: str, name: str, colon: str) -> str:
    """The canonical name of a header line's ``name`` part; :class:`SipError` when it is not one."""
    if not colon:
        if line.startswith((" ", "\t")):
            raise SipError("continuation before any header", reason="header")
        raise SipError("header line without a colon", reason="header")
    key = name.rstrip(" \t").lower()
    if not key or " " in key or "\t" in key or key[0] in " \t":
        raise SipError("bad header name", reason="header")
    if len(key) == 1:
        key = COMPACT.get(key, key)
    if len(name) <= 64:  # bounded memory: long names are not remembered
        if len(_CANONICAL) >= _CANONICAL_MAX:
            _CANONICAL.clear()
        _CANONICAL[name] = key
    return key


def _head(head: str) -> tuple[bool, str | None, str | None, int | None, str | None, dict[str, str]]:
    """The start line's fields and the first value of every header by canonical lower-case name.

    Repeats of the comma-list headers (Via, Route ...) are joined with ", ".
    """
    lines = head.rstrip("\r\n").split("\n")
    if len(lines) > MAX_HEADER_LINES:
        raise SipError(f"{len(lines)} header lines", reason="oversized")
    if len(head) > MAX_HEADER_LINE and max(map(len, lines)) > MAX_HEADER_LINE:
        raise SipError("header line over 8 KiB", reason="oversized")
    is_request, method, request_uri, status, reason = _start_line(lines[0].rstrip("\r"))
    found: dict[str, str] = {}
    canonical = _CANONICAL
    multi = MULTI
    for line in lines[1:]:
        name, colon, text = line.partition(":")
        key = canonical.get(name)
        if key is None or not colon:
            key = _header_name(line, name, colon)
        if key not in found:
            found[key] = text.strip()
        elif key in multi:
            found[key] = f"{found[key]}, {text.strip()}"
    return is_request, method, request_uri, status, reason, found


def parse_fields_pure(
    data: bytes,
    *,
    correlation_headers: Sequence[str] = ("x-cid",),
    max_message_bytes: int = 65535,
) -> SipFields:
    """:func:`parse` without the dataclass: the same fields as a dict, in :class:`SipMessage`'s order.

    This is the collector's hot path: the dict goes into the envelope's body as it is. This
    function is the pure-Python reference; :data:`parse_fields` is the C accelerator's
    equivalent when it is built (see :mod:`collectors.hep.speedups`).
    """
    n = len(data)
    if n == 0:
        raise SipError("empty message", reason="not_sip")
    if n > max_message_bytes:
        raise SipError(f"{n}-byte message", reason="oversized")
    # Header/body split on the bytes, so Content-Length counts bytes. The blank line is the
    # first "\r\n\r\n" or an earlier "\n\n" (a bare-LF message). A "\n\n" inside the head up
    # to "\r\n\r\n" makes an empty header line, which never parses, or sits at its end: so it
    # is looked for only when that head fails or ends in a line break (rare), not every time.
    crlf = data.find(b"\r\n\r\n")
    if crlf >= 0:
        lf = -1
        head_end, body_start = crlf, crlf + 4
    else:
        lf = data.find(b"\n\n")
        head_end, body_start = (lf, lf + 2) if lf >= 0 else (n, n)
    raw = _text(data)
    # One decode: byte offsets are character offsets when every character took one byte.
    ascii_offsets = len(raw) == n
    head = raw[:head_end] if ascii_offsets else _text(data[:head_end])
    try:
        parsed = _head(head)
    except SipError:
        parsed = None
    if parsed is None or (crlf > 0 and data[crlf - 1] in _CR_LF):  # the head ends in "\r" or "\n"
        if crlf >= 0:
            lf = data.find(b"\n\n", 0, crlf)
            if lf >= 0:  # bare-LF message (or "\r\n\n"); a head line never contains "\n\n"
                head_end, body_start = lf, lf + 2
                head = raw[:head_end] if ascii_offsets else _text(data[:head_end])
        # Folded lines are rare too: a continuation line starts with a space or tab, which no
        # header name does, so an unfolded head that has one never parses either.
        if "\n " in head or "\n\t" in head:
            head = _FOLD.sub(" ", head)
        parsed = _head(head)  # raises the error of the head as it is
    is_request, method, request_uri, status, reason, found = parsed

    call_id = found.get("call-id")
    if not call_id:
        raise SipError("missing Call-ID", reason="call_id")
    if len(call_id) > MAX_CALL_ID:
        raise SipError("Call-ID over 1024 characters", reason="call_id")
    cseq_value = found.get("cseq")
    if cseq_value is None:
        raise SipError("missing CSeq", reason="cseq")
    cseq_parts = cseq_value.split()
    cseq = digits(cseq_parts[0]) if len(cseq_parts) == 2 else None
    if cseq is None or cseq >= 1 << 32:
        raise SipError("bad CSeq", reason="cseq")
    if not is_request:
        method = cseq_parts[1][:32]

    # Body, bounded by Content-Length.
    clen_value = found.get("content-length")
    body_len = n - body_start
    if clen_value is not None:
        clen = digits(clen_value)
        if clen is None or clen >= 1 << 32:
            raise SipError("bad Content-Length", reason="content_length")
        if clen > body_len and (lf < 0 or clen > body_len + data.count(b"\n") - data.count(b"\r\n")):
            raise SipError("Content-Length past the end", reason="content_length")
        body_len = min(body_len, clen)

    from_display = from_uri = from_user = from_tag = None
    value = found.get("from")
    if value is not None:
        from_display, from_uri, from_user, from_tag = name_addr(value)
    to_display = to_uri = to_user = to_tag = None
    value = found.get("to")
    if value is not None:
        to_display, to_uri, to_user, to_tag = name_addr(value)
    via = found.get("via")
    branches = BRANCH.findall(via)[:MAX_VIA_BRANCHES] if via is not None else []
    pai = pai_user = None
    value = found.get("p-asserted-identity")
    if value is not None:
        _, pai, pai_user, _ = name_addr(split_commas(value)[0])
    session_id = None
    value = found.get("session-id")
    if value is not None:
        session_id = value.split(";", 1)[0].strip()[:256] or None
    contact = found.get("contact")
    expires = None
    value = found.get("expires")
    if value is not None:
        expires = digits(value)
    elif contact is not None and ";" in contact:  # an expires parameter needs a ";"
        m = EXPIRES.search(split_commas(contact)[0])
        if m is not None:
            expires = digits(m.group(1))
    reason_header = found.get("reason")
    if reason_header is not None:
        reason_header = reason_header[:512]
    ctype = found.get("content-type")
    sdp: SdpSummaryDict | None = None
    vq_report: dict[str, Any] | None = None
    if body_len and ctype is not None:
        media_type = ctype.split(";", 1)[0].strip().lower()
        if media_type == "application/sdp":
            sdp = summarize(_text(data[body_start : body_start + body_len]))
        elif media_type == "application/vq-rtcpxr":
            vq_report = parse_vq_report(_text(data[body_start : body_start + body_len]))
    kept = {KEPT_HEADERS[k]: v for k, v in found.items() if k in KEPT_HEADERS}
    correlation: dict[str, str] = {}
    for wanted in correlation_headers:
        value = found.get(wanted) or found.get(wanted.lower())
        if value is not None:
            correlation[wanted.lower()] = value
    return {
        "is_request": is_request,
        "method": method,
        "request_uri": request_uri,
        "status": status,
        "reason": reason,
        "call_id": call_id,
        "cseq": cseq,
        "from_user": from_user,
        "from_display": from_display,
        "from_uri": from_uri,
        "from_tag": from_tag,
        "to_user": to_user,
        "to_display": to_display,
        "to_uri": to_uri,
        "to_tag": to_tag,
        "via_branch": branches[0] if branches else None,
        "via_branches": branches,
        "contact": contact,
        "user_agent": found.get("user-agent"),
        "server": found.get("server"),
        "pai": pai,
        "pai_user": pai_user,
        "session_id": session_id,
        "expires": expires,
        "reason_header": reason_header,
        "content_type": ctype,
        "correlation": correlation,
        "sdp": sdp,
        "vq_report": vq_report,
        "headers": kept,
        "raw": raw,
    }


#: :func:`parse_fields_pure`, or the C accelerator's equivalent when it is built (same arguments).
parse_fields: Callable[..., SipFields] = parse_fields_pure
if native is not None:
    native.configure_sip(parse_fields_pure, name_addr, STATIC_CODECS, parse_vq_report, COMPACT, KEPT_HEADERS, MULTI)
    parse_fields = native.parse_fields
