"""HEP packet -> envelope: the translation the HEP collector calls per packet. Pure, no I/O.

:func:`envelope_from_hep` returns ``(kind, key, envelope bytes)``. The envelope JSON is built
from plain dicts with orjson (this is the hot path; building the pydantic models costs more
than everything else together): the SIP body is the dict :func:`.sip.parse_fields` returns,
after the transport fields, encoded with the envelope in one ``orjson.dumps``. The output is
exactly what the pydantic models of :mod:`schemas.envelope` would encode --
``tests/hep/test_events.py`` and ``tests/hep/test_hot_path.py`` check samples of it.

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
packet mirrored twice or replayed deduplicates. Per (topology, config, collector node) a
context caches the node of each (capture id, capture name) and a blake2b hasher per (kind,
node) that has already read the id's prefix (see ``_Context``).

Time: the HEP time; HEPv1 packets, and HEP3 packets without time chunks, take ``received_us``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from typing import Any

import orjson

from callscope.settings import TopologyConfig
from collectors.hep.config import HepConfig
from collectors.hep.decode import HepPacket, encode_hep3
from collectors.hep.sip import parse_fields_pure
from collectors.hep.speedups import native
from schemas.envelope import SCHEMA_VERSION
from schemas.errors import DecodeError

__all__ = ["PAYLOAD_TYPES", "envelope_from_hep", "envelope_from_hep_pure", "node_for_packet", "ts_text"]

#: Payload types with an envelope kind.
PAYLOAD_TYPES = {1: "sip", 5: "rtcp", 100: "log"}

_TRANSPORTS = {17: "udp", 6: "tcp", 132: "sctp"}
_NODE_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_CALL_ID = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+)?")
_dumps = orjson.dumps

# Formatted seconds (with the dot): packets arrive in time order, so nearly every call hits this small cache.
_SECONDS: dict[int, str] = {}
_DIGITS3 = tuple(f"{i:03d}" for i in range(1000))  # microseconds as two 3-digit halves: no format spec to parse


def ts_text(ts_us: int) -> str:
    """``2024-01-02T03:04:05.123456Z`` for microseconds since the epoch (what the envelope models accept)."""
    sec, usec = divmod(ts_us, 1_000_000)
    text = _SECONDS.get(sec)
    if text is None:
        try:
            text = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
        except (OverflowError, OSError, ValueError):
            raise DecodeError(f"time {ts_us} out of range", reason="time") from None
        if len(_SECONDS) >= 64:
            _SECONDS.clear()
        _SECONDS[sec] = text
    return f"{text}{_DIGITS3[usec // 1000]}{_DIGITS3[usec % 1000]}Z"


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


class _Context:
    """What the translation derives from one (topology, config, collector node): built once, reused.

    Nodes are cached by (capture id, capture name) -- agents are few, packets many -- and each
    node's event id hasher is kept with the (kind, node) prefix already fed, so a packet's id
    costs one copy and one update. The caches are bounded (cleared when full).
    """

    __slots__ = ("auth_key", "collector_node", "hep", "nodes", "prefixes", "topology")

    def __init__(self, topology: TopologyConfig, hep: HepConfig, collector_node: str) -> None:
        self.topology = topology
        self.hep = hep
        self.collector_node = collector_node
        self.auth_key = hep.auth_key.encode() if hep.auth_key is not None else None
        self.nodes: dict[tuple[int | None, str | None], tuple[str, str, int | None]] = {}
        self.prefixes: dict[tuple[str, str], Any] = {}

    def node(self, pkt: HepPacket) -> tuple[str, str, int | None]:
        key = (pkt.capture_id, pkt.capture_name)
        found = self.nodes.get(key)
        if found is None:
            found = node_for_packet(pkt, topology=self.topology, hep=self.hep, collector_node=self.collector_node)
            if pkt.capture_name is None or len(pkt.capture_name) <= 256:  # bounded memory
                if len(self.nodes) >= _CACHE_MAX:
                    self.nodes.clear()
                self.nodes[key] = found
        return found

    def event_id(self, kind: str, node: str, raw: bytes) -> str:
        """``schemas.envelope.event_id(kind, node, raw)``, from a hasher that has seen the prefix."""
        prefix = self.prefixes.get((kind, node))
        if prefix is None:
            prefix = hashlib.blake2b(digest_size=16)
            prefix.update(kind.encode())
            prefix.update(b"\x00")
            prefix.update(node.encode())
            prefix.update(b"\x00")
            if len(self.prefixes) >= _CACHE_MAX:
                self.prefixes.clear()
            self.prefixes[(kind, node)] = prefix
        h = prefix.copy()
        h.update(raw)
        return str(h.hexdigest())


_CACHE_MAX = 4096
_CONTEXTS_MAX = 8
# A collector calls with the same three objects every time (the configs are frozen): the last
# context is checked by identity per packet; a few more are kept for processes that run more
# than one collector (HEP and replay). A context holds its topology and config, so the ids in
# the keys cannot be reused by other objects while it is kept.
_context: _Context | None = None
_contexts: dict[tuple[int, int, str], _Context] = {}


def _context_for(topology: TopologyConfig, hep: HepConfig, collector_node: str) -> _Context:
    global _context  # noqa: PLW0603 - the last context, checked first by envelope_from_hep
    key = (id(topology), id(hep), collector_node)
    ctx = _contexts.get(key)
    if ctx is None or ctx.topology is not topology or ctx.hep is not hep:
        if len(_contexts) >= _CONTEXTS_MAX:
            _contexts.clear()
        ctx = _contexts[key] = _Context(topology, hep, collector_node)
    _context = ctx
    return ctx


def envelope_from_hep_pure(
    pkt: HepPacket,
    *,
    topology: TopologyConfig,
    hep: HepConfig,
    received_us: int,
    collector_node: str,
) -> tuple[str, str, bytes]:
    """Translate one decoded packet into ``(kind, key, envelope JSON)``. Raises :class:`DecodeError`.

    The pure-Python reference; :data:`envelope_from_hep` is the same with the C accelerator
    encoding SIP packets when it is built (see :mod:`collectors.hep.speedups`).
    """
    ptype = pkt.payload_type
    kind = PAYLOAD_TYPES.get(ptype)
    if kind is None:
        raise DecodeError(f"HEP payload type {ptype} is not handled", reason="unsupported_type")
    if pkt.keepalive:
        raise DecodeError("keep-alive packet without payload", reason="keepalive")
    ctx = _context
    if ctx is None or ctx.topology is not topology or ctx.hep is not hep or ctx.collector_node != collector_node:
        ctx = _context_for(topology, hep, collector_node)
    if ctx.auth_key is not None and not hmac.compare_digest(pkt.auth_key or b"", ctx.auth_key):
        raise DecodeError("auth key differs", reason="auth")
    correlation_id = pkt.correlation_id
    if correlation_id is not None and len(correlation_id) > 1024:
        raise DecodeError("correlation id over 1024 characters", reason="correlation_id")
    node, role, capture_id = ctx.node(pkt)
    ts_sec = pkt.ts_sec
    ts_usec = pkt.ts_usec
    ts_us = ts_sec * 1_000_000 + ts_usec if pkt.version != 1 and (ts_sec or ts_usec) else received_us
    raw = pkt.raw or encode_hep3(pkt)
    src = {"ip": pkt.src_ip[:64], "port": pkt.src_port}
    dst = {"ip": pkt.dst_ip[:64], "port": pkt.dst_port}

    body: dict[str, Any] = {}
    rtcp_body: bytes | None = None
    if kind == "sip":
        fields = parse_fields_pure(
            pkt.payload, correlation_headers=hep.correlation_headers, max_message_bytes=hep.max_packet_bytes
        )
        key = fields["call_id"]
        body = {
            "src": src,
            "dst": dst,
            "transport": _TRANSPORTS.get(pkt.protocol, "other"),
            "capture_id": capture_id,
            "capture_name": pkt.capture_name,
            "correlation_id": correlation_id,
        }
        body.update(fields)
    elif kind == "rtcp":
        try:
            report = orjson.loads(pkt.payload)
        except orjson.JSONDecodeError:
            raise DecodeError("RTCP payload is not JSON", reason="rtcp_json") from None
        if not isinstance(report, dict):
            raise DecodeError("RTCP payload is not a JSON object", reason="rtcp_json")
        key = correlation_id or ""
        try:  # on its own, as before: orjson's nesting limit counts from the body, not the envelope
            rtcp_body = _dumps(
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
        body = {
            "src": src,
            "dst": dst,
            "capture_id": capture_id,
            "message": message.rstrip("\r\n\x00"),
            "level": None,
            "correlation_id": correlation_id,
            "call_id": call_id,
            "source": "hep",
        }
    envelope: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "kind": kind,
        "id": ctx.event_id(kind, node, raw),
        "node": node,
        "role": role,
        "ts": ts_text(ts_us),
        "received": ts_text(received_us),
        "key": key,
    }
    if rtcp_body is not None:
        return kind, key, _dumps(envelope)[:-1] + b',"body":' + rtcp_body + b"}"
    envelope["body"] = body
    return kind, key, _dumps(envelope)


def _envelope_from_hep_native(
    pkt: HepPacket,
    *,
    topology: TopologyConfig,
    hep: HepConfig,
    received_us: int,
    collector_node: str,
) -> tuple[str, str, bytes]:
    """:func:`envelope_from_hep_pure` with the SIP body parsed and the envelope encoded in C.

    Only a SIP or RTCP packet that passes every check is encoded here (RTCP: the report's
    JSON by orjson, as in the pure path, the rest of the envelope in C); the C function gives up
    (``None``) on a message it does not read itself, and everything else -- other payload
    types, errors of any kind -- is left to :func:`envelope_from_hep_pure`, so results and
    errors are that function's. The one error raised on this path is :func:`ts_text`'s
    (``time``), which the C function raises after the message parsed, as the pure path does.
    """
    ptype = pkt.payload_type
    if ptype in (1, 5) and not pkt.keepalive and _sip_envelope is not None and _envelope_head is not None:
        ctx = _context
        if ctx is None or ctx.topology is not topology or ctx.hep is not hep or ctx.collector_node != collector_node:
            ctx = _context_for(topology, hep, collector_node)
        correlation_id = pkt.correlation_id
        if (ctx.auth_key is None or hmac.compare_digest(pkt.auth_key or b"", ctx.auth_key)) and (
            correlation_id is None or len(correlation_id) <= 1024
        ):
            found = ctx.nodes.get((pkt.capture_id, pkt.capture_name))  # ctx.node and ctx.event_id, inlined
            node, role, capture_id = ctx.node(pkt) if found is None else found
            raw = pkt.raw or encode_hep3(pkt)
            kind = "sip" if ptype == 1 else "rtcp"
            prefix = ctx.prefixes.get((kind, node))
            if prefix is None:
                event_id = ctx.event_id(kind, node, raw)
            else:
                h = prefix.copy()
                h.update(raw)
                event_id = h.hexdigest()
            ts_sec = pkt.ts_sec
            ts_usec = pkt.ts_usec
            ts_us = ts_sec * 1_000_000 + ts_usec if pkt.version != 1 and (ts_sec or ts_usec) else received_us
            if ptype == 1:
                done = _sip_envelope(
                    pkt.payload,
                    hep.correlation_headers,
                    hep.max_packet_bytes,
                    SCHEMA_VERSION,
                    event_id,
                    node,
                    role,
                    ts_us,
                    received_us,
                    pkt.src_ip[:64],
                    pkt.src_port,
                    pkt.dst_ip[:64],
                    pkt.dst_port,
                    _TRANSPORTS.get(pkt.protocol, "other"),
                    capture_id,
                    pkt.capture_name,
                    correlation_id,
                )
                if done is not None:
                    return "sip", done[0], done[1]
            else:  # RTCP: the pure path's body; bad JSON is left to it (its error comes first)
                try:
                    report = orjson.loads(pkt.payload)
                    body = (
                        _dumps(
                            {
                                "src": {"ip": pkt.src_ip[:64], "port": pkt.src_port},
                                "dst": {"ip": pkt.dst_ip[:64], "port": pkt.dst_port},
                                "capture_id": capture_id,
                                "correlation_id": correlation_id,
                                "report": report,
                            }
                        )
                        if isinstance(report, dict)
                        else None
                    )
                except (orjson.JSONDecodeError, orjson.JSONEncodeError):  # the pure path raises its error
                    body = None
                if body is not None:
                    key = correlation_id or ""
                    head = _envelope_head(SCHEMA_VERSION, "rtcp", event_id, node, role, ts_us, received_us, key)
                    if head is not None:
                        return "rtcp", key, head + b',"body":' + body + b"}"
    return envelope_from_hep_pure(
        pkt, topology=topology, hep=hep, received_us=received_us, collector_node=collector_node
    )


_sip_envelope: Callable[..., tuple[str, bytes] | None] | None = None
_envelope_head: Callable[..., bytes | None] | None = None
#: Translate one decoded packet: :func:`envelope_from_hep_pure`, or with the C accelerator when it is built.
envelope_from_hep: Callable[..., tuple[str, str, bytes]] = envelope_from_hep_pure
if native is not None:
    native.configure_envelope(ts_text, _SECONDS)
    _sip_envelope = native.sip_envelope
    _envelope_head = native.envelope_head
    envelope_from_hep = _envelope_from_hep_native
