"""SIP message parsing (RFC 3261 syntax, what observability needs). Pure, no I/O.

:func:`parse` takes one SIP message as bytes and returns a :class:`SipMessage` carrying the
fields of :class:`schemas.bodies.SipBody` that come from the message itself (the transport
fields -- src, dst, transport, capture id/name, correlation id -- come from HEP). Values are
plain Python/JSON types (``sdp`` and ``vq_report`` are dicts), so ``orjson.dumps`` of the
dataclass is a valid body once the transport fields are added (see :mod:`.events`).

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from collectors.hep.sdp import SdpSummaryDict, parse_vq_report, summarize
from schemas.errors import DecodeError

__all__ = ["COMPACT", "KEPT_HEADERS", "REASONS", "SipError", "SipMessage", "parse"]

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


#: Compact header forms (RFC 3261 7.3.3, RFC 3265, 3515, 3841, 3891, 3892, 4028, 4474, 3428).
COMPACT = {
    "i": "call-id",
    "f": "from",
    "t": "to",
    "v": "via",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
    "y": "identity",
    "n": "identity-info",
}

#: Headers kept verbatim in ``SipMessage.headers`` (long names; repeated ones joined with ", ").
KEPT_HEADERS = {
    name.lower(): name
    for name in (
        "Route",
        "Record-Route",
        "Max-Forwards",
        "Event",
        "Subscription-State",
        "Refer-To",
        "Referred-By",
        "Replaces",
        "Diversion",
        "History-Info",
        "Warning",
        "Privacy",
        "P-Charging-Vector",
        "Session-Expires",
        "RSeq",
        "RAck",
        "Supported",
        "Require",
        "Allow",
        "Subject",
    )
}

_KEPT_NAMES = KEPT_HEADERS
#: Headers whose repeats are joined with ", " (comma-separated lists by RFC 3261 7.3.1).
_MULTI = frozenset(("via", "route", "record-route", "supported", "require", "allow", "history-info", "diversion"))
_FOLD = re.compile(r"\r?\n[ \t]+")


def _text(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data.decode("latin-1")


_NAME_ADDR = re.compile(r'[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))[ \t]*<([^>]*)>(.*)', re.S)
_ADDR_SPEC = re.compile(r"[ \t]*([^;]*?)[ \t]*(;.*)?", re.S)
_TAG = re.compile(r";[ \t]*tag=([^; \t,]+)", re.I)
_BRANCH = re.compile(r";[ \t]*branch=([^;, \t>]+)", re.I)
_EXPIRES = re.compile(r";[ \t]*expires=([0-9]+)", re.I)
_SIP_USER = re.compile(r"(?:sips?|SIPS?|Sips?):([^@;:]+)[^@>]*@")
_TEL_USER = re.compile(r"(?:tel|TEL|Tel):([^;>]+)")


def _name_addr(value: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(display, uri, user, tag) of a From/To/PAI value."""
    m = _NAME_ADDR.match(value)
    if m is not None:
        quoted, display, uri, params = m.groups()
        if quoted is not None:
            display = quoted
        uri = uri.strip()
    else:
        if "<" in value:  # "<" without ">"
            return None, None, None, None
        m = _ADDR_SPEC.fullmatch(value)
        if m is None:  # pragma: no cover - the pattern matches any string
            return None, None, None, None
        uri, params = m.groups()
        display = None
    tag = None
    if params:
        t = _TAG.search(params)
        if t is not None:
            tag = t.group(1)
    return display or None, uri or None, _uri_user(uri), tag


def _uri_user(uri: str) -> str | None:
    m = _SIP_USER.match(uri)
    if m is not None:
        return m.group(1)
    m = _TEL_USER.match(uri)
    if m is not None:
        return m.group(1).strip() or None
    return None


def _split_commas(value: str) -> list[str]:
    """Split a header value on commas outside quotes and angle brackets."""
    if "," not in value:
        return [value]
    out: list[str] = []
    depth = 0
    quoted = False
    start = 0
    for i, ch in enumerate(value):
        if ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            out.append(value[start:i])
            start = i + 1
    out.append(value[start:])
    return out


def _digits(value: str) -> int | None:
    if value and len(value) <= 10 and value.isascii() and value.isdigit():
        return int(value)
    return None


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
    n = len(data)
    if n == 0:
        raise SipError("empty message", reason="not_sip")
    if n > max_message_bytes:
        raise SipError(f"{n}-byte message", reason="oversized")
    # Header/body split on the bytes, so Content-Length counts bytes.
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n", 0, crlf if crlf >= 0 else n)
    if lf >= 0:  # bare-LF message (or "\r\n\n"); a head line never contains "\n\n"
        head_end, body_start = lf, lf + 2
    elif crlf >= 0:
        head_end, body_start = crlf, crlf + 4
    else:
        head_end = body_start = n
    raw = _text(data)
    # One decode: byte offsets are character offsets when every character took one byte.
    head = raw[:head_end] if len(raw) == n else _text(data[:head_end])
    if "\n " in head or "\n\t" in head:
        head = _FOLD.sub(" ", head)
    lines = head.rstrip("\r\n").split("\n")
    if len(lines) > MAX_HEADER_LINES:
        raise SipError(f"{len(lines)} header lines", reason="oversized")
    if len(head) > MAX_HEADER_LINE and max(map(len, lines)) > MAX_HEADER_LINE:
        raise SipError("header line over 8 KiB", reason="oversized")
    is_request, method, request_uri, status, reason = _start_line(lines[0].rstrip("\r"))

    # First value of every header by canonical lower-case name; repeats of the
    # comma-list headers (Via, Route ...) are joined with ", ".
    found: dict[str, str] = {}
    compact = COMPACT
    multi = _MULTI
    for line in lines[1:]:
        name, colon, text = line.partition(":")
        if not colon:
            if line.startswith((" ", "\t")):
                raise SipError("continuation before any header", reason="header")
            raise SipError("header line without a colon", reason="header")
        name = name.rstrip(" \t").lower()
        if not name or " " in name or "\t" in name or name[0] in " \t":
            raise SipError("bad header name", reason="header")
        if len(name) == 1:
            name = compact.get(name, name)
        text = text.strip()
        old = found.get(name)
        if old is None:
            found[name] = text
        elif name in multi:
            found[name] = f"{old}, {text}"

    call_id = found.get("call-id")
    if not call_id:
        raise SipError("missing Call-ID", reason="call_id")
    if len(call_id) > MAX_CALL_ID:
        raise SipError("Call-ID over 1024 characters", reason="call_id")
    cseq_value = found.get("cseq")
    if cseq_value is None:
        raise SipError("missing CSeq", reason="cseq")
    cseq_parts = cseq_value.split()
    cseq = _digits(cseq_parts[0]) if len(cseq_parts) == 2 else None
    if cseq is None or cseq >= 1 << 32:
        raise SipError("bad CSeq", reason="cseq")
    if not is_request:
        method = cseq_parts[1][:32]

    # Body, bounded by Content-Length.
    clen_value = found.get("content-length")
    body_len = n - body_start
    if clen_value is not None:
        clen = _digits(clen_value)
        if clen is None or clen >= 1 << 32:
            raise SipError("bad Content-Length", reason="content_length")
        if clen > body_len and (lf < 0 or clen > body_len + data.count(b"\n") - data.count(b"\r\n")):
            raise SipError("Content-Length past the end", reason="content_length")
        body_len = min(body_len, clen)

    from_display = from_uri = from_user = from_tag = None
    value = found.get("from")
    if value is not None:
        from_display, from_uri, from_user, from_tag = _name_addr(value)
    to_display = to_uri = to_user = to_tag = None
    value = found.get("to")
    if value is not None:
        to_display, to_uri, to_user, to_tag = _name_addr(value)
    via = found.get("via")
    branches = _BRANCH.findall(via)[:MAX_VIA_BRANCHES] if via is not None else []
    pai = pai_user = None
    value = found.get("p-asserted-identity")
    if value is not None:
        _, pai, pai_user, _ = _name_addr(_split_commas(value)[0])
    session_id = None
    value = found.get("session-id")
    if value is not None:
        session_id = value.split(";", 1)[0].strip()[:256] or None
    contact = found.get("contact")
    expires = None
    value = found.get("expires")
    if value is not None:
        expires = _digits(value)
    elif contact is not None:
        m = _EXPIRES.search(_split_commas(contact)[0])
        if m is not None:
            expires = _digits(m.group(1))
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
    kept = {_KEPT_NAMES[k]: v for k, v in found.items() if k in _KEPT_NAMES}
    correlation: dict[str, str] = {}
    for wanted in correlation_headers:
        value = found.get(wanted) or found.get(wanted.lower())
        if value is not None:
            correlation[wanted.lower()] = value
    return SipMessage(
        is_request,
        method,
        request_uri,
        status,
        reason,
        call_id,
        cseq,
        from_user,
        from_display,
        from_uri,
        from_tag,
        to_user,
        to_display,
        to_uri,
        to_tag,
        branches[0] if branches else None,
        branches,
        contact,
        found.get("user-agent"),
        found.get("server"),
        pai,
        pai_user,
        session_id,
        expires,
        reason_header,
        ctype,
        correlation,
        sdp,
        vq_report,
        kept,
        raw,
    )
