"""SIP header names and value syntax, for :mod:`.sip`. Pure, no I/O.

Names: the compact forms, the headers kept verbatim, the comma-list headers whose repeats
are joined. Values: name-addr (From, To, P-Asserted-Identity), the user part of a SIP or tel
URI, comma lists outside quotes and angle brackets, and unsigned decimal numbers. None of
these raise: a value they cannot read gives ``None``.
"""

from __future__ import annotations

import re

__all__ = ["BRANCH", "COMPACT", "EXPIRES", "KEPT_HEADERS", "MULTI", "digits", "name_addr", "split_commas", "uri_user"]

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

#: Headers whose repeats are joined with ", " (comma-separated lists by RFC 3261 7.3.1).
MULTI = frozenset(("via", "route", "record-route", "supported", "require", "allow", "history-info", "diversion"))

_NAME_ADDR = re.compile(r'[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))[ \t]*<([^>]*)>(.*)', re.S)
_ADDR_SPEC = re.compile(r"[ \t]*([^;]*?)[ \t]*(;.*)?", re.S)
_TAG = re.compile(r";[ \t]*tag=([^; \t,]+)", re.I)
BRANCH = re.compile(r";[ \t]*branch=([^;, \t>]+)", re.I)
EXPIRES = re.compile(r";[ \t]*expires=([0-9]+)", re.I)
_SIP_USER = re.compile(r"(?:sips?|SIPS?|Sips?):([^@;:]+)[^@>]*@")
_TEL_USER = re.compile(r"(?:tel|TEL|Tel):([^;>]+)")


# The common shapes in one match: ``<uri>``, ``Name <uri>`` or ``"Name" <uri>`` (no escapes in
# the quotes), with the SIP user and the first ``;tag=`` read by optional lookaheads. Where it
# matches it finds what _NAME_ADDR, _SIP_USER and _TAG find (same skeleton, the lookaheads are
# bounded by the ``>`` that _NAME_ADDR's uri stops at); anything else takes the general path.
_NAME_ADDR_FAST = re.compile(
    r'[ \t]*(?:"([^"\\]*)"|([^<"]*?))[ \t]*<'
    r"(?:(?=\s*(?:sips?|SIPS?|Sips?):([^@;:>]+)[^@>]*@))?"
    r"([^>]*)>"
    r"(?:(?=.*?;[ \t]*(?i:tag)=([^; \t,]+)))?",
    re.S,
)


def name_addr(value: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(display, uri, user, tag) of a From/To/PAI value."""
    m = _NAME_ADDR_FAST.match(value)
    if m is not None:
        quoted, display, user, uri, tag = m.groups()
        if quoted is not None:
            display = quoted
        uri = uri.strip()  # \s* in the lookahead skips what strip() drops
        return display or None, uri or None, user if user is not None else uri_user(uri), tag
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
    return display or None, uri or None, uri_user(uri), tag


def uri_user(uri: str) -> str | None:
    """The user part of a ``sip:``/``sips:`` URI (before ``@``) or the number of a ``tel:`` URI."""
    m = _SIP_USER.match(uri)
    if m is not None:
        return m.group(1)
    m = _TEL_USER.match(uri)
    if m is not None:
        return m.group(1).strip() or None
    return None


def split_commas(value: str) -> list[str]:
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


def digits(value: str) -> int | None:
    """An unsigned decimal of at most 10 ASCII digits, else ``None``."""
    if value and len(value) <= 10 and value.isascii() and value.isdigit():
        return int(value)
    return None
