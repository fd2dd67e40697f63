"""SDP (RFC 4566/8866) summary and VQ-RTCPXR (RFC 6035) report parsing. Pure, no I/O.

Both return plain JSON-ready dicts on the hot path (no pydantic): :func:`summarize` returns
exactly the shape of :class:`schemas.bodies.SdpSummary` (``SdpSummary.model_validate`` accepts
it), with values clipped to that model's limits so a hostile body cannot make a valid SIP
message fail envelope validation. Both parsers are lenient: a line they do not understand is
skipped, never raised.
"""

from __future__ import annotations

import math
import re
from typing import Any, TypedDict

__all__ = ["SdpMediaDict", "SdpSummaryDict", "parse_vq_report", "summarize"]


class SdpMediaDict(TypedDict):
    media: str
    port: int
    proto: str
    formats: list[str]
    codecs: list[str]
    connection: str | None
    direction: str | None


class SdpSummaryDict(TypedDict):
    connection: str | None
    origin: str | None
    media: list[SdpMediaDict]


#: RFC 3551 static payload types, used when an ``m=`` format has no ``a=rtpmap``.
STATIC_CODECS = {
    "0": "PCMU/8000",
    "3": "GSM/8000",
    "4": "G723/8000",
    "5": "DVI4/8000",
    "6": "DVI4/16000",
    "7": "LPC/8000",
    "8": "PCMA/8000",
    "9": "G722/8000",
    "10": "L16/44100/2",
    "11": "L16/44100",
    "12": "QCELP/8000",
    "13": "CN/8000",
    "14": "MPA/90000",
    "15": "G728/8000",
    "16": "DVI4/11025",
    "17": "DVI4/22050",
    "18": "G729/8000",
    "25": "CelB/90000",
    "26": "JPEG/90000",
    "28": "nv/90000",
    "31": "H261/90000",
    "32": "MPV/90000",
    "33": "MP2T/90000",
    "34": "H263/90000",
}
_DIRECTIONS = frozenset(("sendrecv", "sendonly", "recvonly", "inactive"))
_MAX_MEDIA = 32
_MAX_FORMATS = 64


def _conn_addr(value: str) -> str | None:
    # c=<nettype> <addrtype> <connection-address>[/ttl[/n]]
    parts = value.split()
    if len(parts) < 3:
        return None
    addr = parts[2].split("/", 1)[0]
    return addr[:64] if addr else None


def summarize(text: str) -> SdpSummaryDict:
    """Summarise an SDP body: origin, session ``c=``, and each ``m=`` with its codecs.

    A media's ``connection`` is its own ``c=`` or else the session-level one (which may be
    missing: ``m=`` before any ``c=`` is legal when every media has its own). ``direction``
    is the media's attribute, else the session-level one, else ``None``.
    """
    session_conn: str | None = None
    session_dir: str | None = None
    origin: str | None = None
    media: list[SdpMediaDict] = []
    rtpmaps: list[dict[str, str]] = []
    cur: SdpMediaDict | None = None
    cur_map: dict[str, str] = {}
    for line in text.split("\n"):
        kind = line[:2]  # lines without "<letter>=" and the types not summarised fall through
        if kind == "a=":
            name, _, rest = line[2:].rstrip("\r").partition(":")
            if name == "rtpmap":
                pt, _, enc = rest.strip().partition(" ")
                if cur is not None and enc:
                    cur_map[pt] = enc.strip()[:64]
            elif name in _DIRECTIONS:
                if cur is None:
                    session_dir = name
                else:
                    cur["direction"] = name
        elif kind == "m=":
            if len(media) >= _MAX_MEDIA:
                cur = None
                continue
            parts = line[2:].split()  # split() drops the "\r" too
            if len(parts) < 2:
                cur = None
                continue
            port_text = parts[1].split("/", 1)[0]
            if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5 or int(port_text) > 65535:
                cur = None
                continue
            cur_map = {}
            cur = {
                "media": parts[0][:32],
                "port": int(port_text),
                "proto": parts[2][:64] if len(parts) > 2 else "",
                "formats": [f[:32] for f in parts[3 : 3 + _MAX_FORMATS]],
                "codecs": [],
                "connection": None,
                "direction": None,
            }
            media.append(cur)
            rtpmaps.append(cur_map)
        elif kind == "c=":
            addr = _conn_addr(line[2:])  # splits on whitespace, "\r" included
            if cur is None:
                session_conn = addr
            else:
                cur["connection"] = addr
        elif kind == "o=":
            origin = line[2:].rstrip("\r")[:256]
    for m, rtpmap in zip(media, rtpmaps, strict=True):
        codecs = m["codecs"]
        for fmt in m["formats"]:
            codec = rtpmap.get(fmt) or STATIC_CODECS.get(fmt)
            if codec is not None:
                codecs.append(codec)
        if m["connection"] is None:
            m["connection"] = session_conn
        if m["direction"] is None:
            m["direction"] = session_dir
    return {"connection": session_conn, "origin": origin, "media": media}


# --------------------------------------------------------------------------- VQ-RTCPXR

_VQ_PAIR = re.compile(r'\s*([A-Za-z][A-Za-z0-9_]*)[=:]("[^"]*"|\S*)')
_VQ_STRING_KEYS = frozenset(
    (
        "CallID",
        "LocalID",
        "RemoteID",
        "OrigID",
        "FromID",
        "ToID",
        "LocalGroup",
        "RemoteGroup",
        "LocalMAC",
        "RemoteMAC",
        "DialogID",
        "x-UserAgent",
    )
)
_VQ_SECTIONS = frozenset(("LocalMetrics", "RemoteMetrics"))
_MAX_VQ_LINES = 256


def _vq_scalar(text: str) -> Any:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    unsigned = text[1:] if text[:1] == "-" else text  # one sign at most: "--1" is text, not a crash
    if unsigned.isascii() and unsigned.isdigit() and len(text) < 19:
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):  # NaN / inf are not JSON
        return text
    return number


def _vq_value(key: str, value: str) -> Any:
    if key in _VQ_STRING_KEYS:
        return value
    pairs: dict[str, Any] = {}
    pos = 0
    while pos < len(value):
        m = _VQ_PAIR.match(value, pos)
        if m is None or m.end() == pos:
            break
        pairs[m.group(1)] = _vq_scalar(m.group(2))
        pos = m.end()
    if pairs and not value[pos:].strip():
        return pairs
    return value


def parse_vq_report(text: str) -> dict[str, Any]:
    """Parse a VQ-RTCPXR body (RFC 6035) into a dict.

    ``type`` is the first line (``VQSessionReport``, ``VQIntervalReport``, ``VQAlertReport``,
    may carry ``: CallTerm``). Identification lines (``CallID``, ``LocalID``, ``LocalAddr`` ...)
    and the ``LocalMetrics:`` block are top-level keys; the ``RemoteMetrics:`` block goes
    under ``"RemoteMetrics"``. A value made only of ``K=V`` pairs (RFC 6035) or ``K:V`` pairs
    (HEPGEN's ``LocalAddr:IP:1.2.3.4 PORT:5000``) becomes a dict with numbers converted, e.g.
    ``{"PacketLoss": {"NLR": 8.0}, "Delay": {"IAJ": 93}}``; anything else stays a string.
    """
    report: dict[str, Any] = {}
    target = report
    lines = text.split("\n", _MAX_VQ_LINES)[:_MAX_VQ_LINES]
    first = True
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if first:
            first = False
            report["type"] = line[:128]
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not key:
            continue
        value = value.strip()
        if not value and key in _VQ_SECTIONS:
            if key == "RemoteMetrics":
                target = {}
                report["RemoteMetrics"] = target
            else:
                target = report
            continue
        target[key[:64]] = _vq_value(key, value)
    return report
