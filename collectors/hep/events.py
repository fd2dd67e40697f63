"""HEP packet -> envelope: the translation the HEP collector calls per packet. Pure, no I/O.

:func:`envelope_from_hep` returns ``(kind, key, envelope bytes)``. The envelope JSON is built
from plain dicts with orjson (this is the hot path; building the pydantic models costs more
than everything else together). The output is exactly what :func:`schemas.envelope.validate`
accepts -- ``tests/hep/test_events.py`` validates samples of it.

Payload types:

- 1 (SIP): kind ``sip``, key = Call-ID, body :class:`schemas.bodies.SipBody`.
- 5 (RTCP as JSON, rtpengine/HEPGEN): kind ``rtcp``, key = correlation id (the Call-ID) or
  ``""``, body :class:`schemas.bodies.RtcpBody` with ``report`` the JSON document as sent.
- 100 (log): kind ``log``, key = correlation id or ``""``; ``call_id`` is filled when the
  correlation id can be a SIP Call-ID (RFC 3261 ``word ["@" word]``, which includes UUIDs).
- anything else (RTP 4, MOS 34/35, DNS 53, ISUP 54 ...): :class:`schemas.errors.DecodeError`
  with reason ``unsupported_type``, so the collector dead-letters it with its raw bytes:
  nothing is dropped silently, and a type that matters later shows up in the dead letters.

Other errors (all :class:`~schemas.errors.DecodeError`, reason in brackets): a keep-alive
packet without payload (``keepalive``: the collector skips those before calling), an auth
key that differs from ``HepConfig.auth_key`` (``auth``), bad SIP (:class:`.sip.SipError`),
an RTCP payload that is not a JSON object (``rtcp_json``), a correlation id over 1024
characters (``correlation_id``).

Node: the topology node whose ``hep_capture_id`` is the packet's capture id -- after
un-swapping the ids listed in ``HepConfig.capture_id_byteswap`` (sngrep 1.6 writes it with
its 16-bit halves swapped); the body's ``capture_id`` is the un-swapped id. Without a topology match the node is
the capture name (chunk 0x0013, reduced to ``[A-Za-z0-9_.-]``), else ``hep-<capture id>``,
else ``collector_node``. The role comes from the topology (``collector`` when unknown).

Id: ``event_id(kind, node, raw packet bytes)`` -- the same packet gives the same id, so a
packet mirrored twice or replayed deduplicates. Time: the HEP time; HEPv1 packets, and
HEP3 packets without time chunks, take ``received_us``.
"""

from __future__ import annotations

import hmac
import re
import time
from typing import Any

import orjson

from callscope.settings import TopologyConfig
from collectors.hep.config import HepConfig
from collectors.hep.decode import HepPacket, encode_hep3
from collectors.hep.sip import parse
from schemas.envelope import SCHEMA_VERSION, event_id
from schemas.errors import DecodeError

__all__ = ["PAYLOAD_TYPES", "envelope_from_hep", "node_for_packet", "ts_text"]

#: Payload types with an envelope kind.
PAYLOAD_TYPES = {1: "sip", 5: "rtcp", 100: "log"}

_TRANSPORTS = {17: "udp", 6: "tcp", 132: "sctp"}
_NODE_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_CALL_ID = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+)?")
_dumps = orjson.dumps

# Formatted seconds: packets arrive in time order, so nearly every call hits this small cache.
_SECONDS: dict[int, str] = {}


def ts_text(ts_us: int) -> str:
    """``2024-01-02T03:04:05.123456Z`` for microseconds since the epoch (what the envelope models accept)."""
    sec, usec = divmod(ts_us, 1_000_000)
    text = _SECONDS.get(sec)
    if text is None:
        try:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        except (OverflowError, OSError, ValueError):
            raise DecodeError(f"time {ts_us} out of range", reason="time") from None
        if len(_SECONDS) >= 64:
            _SECONDS.clear()
        _SECONDS[sec] = text
    return f"{text}.{usec:06d}Z"


def _swap32(value: int) -> int:
    """Undo sngrep's capture id: its 16-bit halves arrive swapped (2002 = 0x000007D2 comes as 0x07D20000)."""
    value &= 0xFFFFFFFF
    return ((value >> 16) | (value << 16)) & 0xFFFFFFFF


def node_for_packet(
    pkt: HepPacket, *, topology: TopologyConfig, hep: HepConfig, collector_node: str
) -> tuple[str, str, int | None]:
    """(node name, role, un-swapped capture id) for a packet, as described in the module docstring."""
    capture_id = pkt.capture_id
    if capture_id is not None and capture_id in hep.capture_id_byteswap:
        capture_id = _swap32(capture_id)
    if capture_id is not None:
        for node in topology.nodes:
            if node.hep_capture_id == capture_id:
                return node.name, node.role, capture_id
    if pkt.capture_name:
        name = _NODE_CHARS.sub("-", pkt.capture_name).strip("-")[:128]
        if name:
            return name, topology.role_of(name), capture_id
    name = f"hep-{capture_id}" if capture_id is not None else collector_node
    return name, topology.role_of(name), capture_id


def _endpoint(ip: str, port: int) -> dict[str, Any]:
    return {"ip": ip[:64], "port": port}


def envelope_from_hep(
    pkt: HepPacket,
    *,
    topology: TopologyConfig,
    hep: HepConfig,
    received_us: int,
    collector_node: str,
) -> tuple[str, str, bytes]:
    """Translate one decoded packet into ``(kind, key, envelope JSON)``. Raises :class:`DecodeError`."""
    ptype = pkt.payload_type
    kind = PAYLOAD_TYPES.get(ptype)
    if kind is None:
        raise DecodeError(f"HEP payload type {ptype} is not handled", reason="unsupported_type")
    if pkt.keepalive:
        raise DecodeError("keep-alive packet without payload", reason="keepalive")
    if hep.auth_key is not None and not hmac.compare_digest(pkt.auth_key or b"", hep.auth_key.encode()):
        raise DecodeError("auth key differs", reason="auth")
    correlation_id = pkt.correlation_id
    if correlation_id is not None and len(correlation_id) > 1024:
        raise DecodeError("correlation id over 1024 characters", reason="correlation_id")
    node, role, capture_id = node_for_packet(pkt, topology=topology, hep=hep, collector_node=collector_node)
    ts_us = pkt.ts_us if pkt.version != 1 and (pkt.ts_sec or pkt.ts_usec) else received_us
    raw = pkt.raw or encode_hep3(pkt)
    src = _endpoint(pkt.src_ip, pkt.src_port)
    dst = _endpoint(pkt.dst_ip, pkt.dst_port)

    if kind == "sip":
        msg = parse(pkt.payload, correlation_headers=hep.correlation_headers, max_message_bytes=hep.max_packet_bytes)
        key = msg.call_id
        head = {
            "src": src,
            "dst": dst,
            "transport": _TRANSPORTS.get(pkt.protocol, "other"),
            "capture_id": capture_id,
            "capture_name": pkt.capture_name,
            "correlation_id": correlation_id,
        }
        # The SipMessage dataclass serialises to the rest of the body: splice the two objects.
        body = _dumps(head)[:-1] + b"," + _dumps(msg)[1:]
    elif kind == "rtcp":
        try:
            report = orjson.loads(pkt.payload)
        except orjson.JSONDecodeError:
            raise DecodeError("RTCP payload is not JSON", reason="rtcp_json") from None
        if not isinstance(report, dict):
            raise DecodeError("RTCP payload is not a JSON object", reason="rtcp_json")
        key = correlation_id or ""
        try:
            body = _dumps(
                {"src": src, "dst": dst, "capture_id": capture_id, "correlation_id": correlation_id, "report": report}
            )
        except orjson.JSONEncodeError:  # pragma: no cover - what orjson loads it can dump
            raise DecodeError("RTCP JSON cannot be re-encoded", reason="rtcp_json") from None
    else:
        payload = pkt.payload
        try:
            message = payload.decode()
        except UnicodeDecodeError:
            message = payload.decode("latin-1")
        key = correlation_id or ""
        call_id = correlation_id if correlation_id and _CALL_ID.fullmatch(correlation_id) else None
        body = _dumps(
            {
                "src": src,
                "dst": dst,
                "capture_id": capture_id,
                "message": message.rstrip("\r\n\x00"),
                "level": None,
                "correlation_id": correlation_id,
                "call_id": call_id,
                "source": "hep",
            }
        )
    envelope = _dumps(
        {
            "v": SCHEMA_VERSION,
            "kind": kind,
            "id": event_id(kind, node, raw),
            "node": node,
            "role": role,
            "ts": ts_text(ts_us),
            "received": ts_text(received_us),
            "key": key,
        }
    )
    return kind, key, envelope[:-1] + b',"body":' + body + b"}"
