"""Malformed HEP for flood tests: every kind of bad packet, each with the outcome the collector owes it.

Each bad packet is unique (its sequence number is inside), so its dead-letter row has an id
of its own. :data:`KINDS` says, per kind, the reason the collector classifies it under
(``collectors.hep.packet.REASONS`` for HEP, ``collectors.hep.sip.REASONS`` for SIP, plus
``auth`` and ``unsupported_type``), whether it is dead-lettered or only counted as dropped
(a wrong or missing auth key: ``callscope_events_dropped_total{reason="auth"}``, by design of
``collectors.hep.auth_key``), whether its HEP decodes (else, with an auth key configured, no key
can be read from it: it is dropped as ``auth`` too, its reason counted in ``callscope_errors_total``),
and whether it can travel inside a TCP stream (only packets whose HEP3 framing is intact can: the
collector closes a stream that does not start a frame with ``HEP3`` or declares a length below 6).
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from dataclasses import dataclass, replace

from collectors.hep.decode import HepPacket, encode_hep3


@dataclass(frozen=True)
class Kind:
    reason: str
    deadlettered: bool  # False: counted as dropped, not stored
    framed: bool  # intact HEP3 framing: may go inside a TCP stream
    hep_decodes: bool = True  # False: the HEP decoder refuses it (no auth key can be read from it)


KINDS: dict[str, Kind] = {
    "short_datagram": Kind("short", True, False, False),
    "truncated_hep": Kind("chunk", True, False, False),  # cut inside the payload chunk
    "declared_length_below_header": Kind("length", True, False, False),
    "wrong_magic": Kind("magic", True, False, False),
    "wrong_version": Kind("magic", True, False, False),
    "hep2_bad_family": Kind("family", True, False, False),
    "chunk_length_past_end": Kind("chunk", True, True, False),
    "zero_length_chunk": Kind("chunk", True, True, False),
    "bad_zlib": Kind("zlib", True, True, False),
    "wrong_auth_key": Kind("auth", False, True),
    "missing_auth_key": Kind("auth", False, True),
    "unsupported_payload_type": Kind("unsupported_type", True, True),
    "sip_no_start_line": Kind("start_line", True, True),
    "sip_content_length_past_end": Kind("content_length", True, True),
    "sip_content_length_over_2_32": Kind("content_length", True, True),
    "sip_oversized_header": Kind("oversized", True, True),
    "sip_broken_header_line": Kind("header", True, True),
    "non_hep_garbage": Kind("magic", True, False, False),
}


@dataclass(frozen=True)
class Bad:
    kind: str
    data: bytes

    @property
    def expect(self) -> Kind:
        return KINDS[self.kind]


def _sip(call_id: str, *, start: bool = True, extra: str = "", content_length: str = "0", body: str = "") -> bytes:
    lines = [
        *(["INVITE sip:bob@10.9.9.9 SIP/2.0"] if start else []),
        "Via: SIP/2.0/UDP 10.9.9.8:5060;branch=z9hG4bKflood",
        "From: <sip:alice@10.9.9.8>;tag=f1",
        "To: <sip:bob@10.9.9.9>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        *([extra] if extra else []),
        f"Content-Length: {content_length}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def _packet(payload: bytes, auth_key: bytes | None, seq: int, payload_type: int = 1) -> HepPacket:
    return HepPacket(
        version=3,
        family=2,
        protocol=17,
        src_ip="10.9.9.8",
        src_port=5060,
        dst_ip="10.9.9.9",
        dst_port=5060,
        ts_sec=1_700_000_000 + seq,
        ts_usec=seq % 1_000_000,
        payload_type=payload_type,
        payload=payload,
        capture_id=909,
        capture_name="flood",
        auth_key=auth_key,
    )


def _chunk(ctype: int, value: bytes, length: int | None = None) -> bytes:
    return struct.pack("!HHH", 0, ctype, len(value) + 6 if length is None else length) + value


def _with_chunk(packet: bytes, chunk: bytes) -> bytes:
    """``packet`` with ``chunk`` appended and the HEP3 total length fixed up (the framing stays intact)."""
    body = packet[6:] + chunk
    return b"HEP3" + struct.pack("!H", len(body) + 6) + body


def make(kind: str, seq: int, auth_key: bytes) -> bytes:
    """One bad packet of ``kind``; ``seq`` makes it unique."""
    call_id = f"flood-{kind}-{seq}@10.9.9.8"
    good = encode_hep3(_packet(_sip(call_id), auth_key, seq))
    if kind == "short_datagram":
        return b"\x00" + seq.to_bytes(4, "big")  # 5 bytes: shorter than any HEP header
    if kind == "truncated_hep":
        return good[: len(good) - 20]
    if kind == "declared_length_below_header":
        return b"HEP3" + struct.pack("!H", 5) + good[6:]
    if kind == "wrong_magic":
        return b"HEP2" + good[4:]
    if kind == "wrong_version":
        return b"\x07" + good[1:]
    if kind == "hep2_bad_family":
        # HEPv2 fixed header: version, length, family 99 (neither IPv4 nor IPv6), protocol, ports
        return struct.pack("!BBBBHH", 2, 28, 99, 17, 5060, 5060) + seq.to_bytes(8, "big") + _sip(call_id)
    if kind == "chunk_length_past_end":
        return _with_chunk(good, _chunk(0x13, b"x", length=4000))
    if kind == "zero_length_chunk":
        return _with_chunk(good, _chunk(0x13, b"", length=0))
    if kind == "bad_zlib":
        garbage = b"\x78\x9c" + seq.to_bytes(4, "big") + b"this is not deflate data"
        return _rebuild_with_payload_chunk(_packet(b"", auth_key, seq), _chunk(0x10, garbage))
    if kind == "wrong_auth_key":
        return encode_hep3(_packet(_sip(call_id), b"not-the-key-" + str(seq).encode(), seq))
    if kind == "missing_auth_key":
        return encode_hep3(_packet(_sip(call_id), None, seq))
    if kind == "unsupported_payload_type":
        return encode_hep3(_packet(b"\x80\x00" + seq.to_bytes(4, "big"), auth_key, seq, payload_type=34))
    if kind == "sip_no_start_line":
        return encode_hep3(_packet(_sip(call_id, start=False), auth_key, seq))
    if kind == "sip_content_length_past_end":
        return encode_hep3(_packet(_sip(call_id, content_length="500", body="v=0\r\n"), auth_key, seq))
    if kind == "sip_content_length_over_2_32":
        return encode_hep3(_packet(_sip(call_id, content_length=str(2**32)), auth_key, seq))
    if kind == "sip_oversized_header":
        return encode_hep3(_packet(_sip(call_id, extra="Subject: " + "s" * 9000), auth_key, seq))
    if kind == "sip_broken_header_line":
        return encode_hep3(_packet(_sip(call_id, extra="this line has no colon"), auth_key, seq))
    if kind == "non_hep_garbage":
        rng = random.Random(seq)
        return b"GARBAGE-" + seq.to_bytes(4, "big") + rng.randbytes(rng.randrange(8, 400))
    raise ValueError(f"unknown kind {kind!r}")


def _rebuild_with_payload_chunk(pkt: HepPacket, payload_chunk: bytes) -> bytes:
    """``pkt`` as a keep-alive (no payload chunk) plus ``payload_chunk``: a payload the encoder would not write."""
    return _with_chunk(encode_hep3(replace(pkt, payload=b"", keepalive=True)), payload_chunk)


def bad_packets(per_kind: int, auth_key: bytes, first_seq: int = 0) -> list[Bad]:
    """``per_kind`` packets of every kind in :data:`KINDS`, kinds interleaved."""
    out: list[Bad] = []
    seq = first_seq
    for _ in range(per_kind):
        for kind in KINDS:
            out.append(Bad(kind, make(kind, seq, auth_key)))
            seq += 1
    return out


def garbage_stream(seq: int) -> bytes:
    """Bytes for a TCP connection that does not speak HEP3 at all (unique in its first 256 bytes)."""
    rng = random.Random(10_000 + seq)
    return b"GET / HTTP/1.1\r\nX-Seq: " + str(seq).encode() + b"\r\n\r\n" + rng.randbytes(2000)


def expected(
    bads: list[Bad], garbage_streams: int, *, auth_key: bool
) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """(dead letters by reason, drops by reason, decode errors of dropped packets by reason) the collector
    owes for ``bads`` and the garbage streams, with or without an auth key configured."""
    dead: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    unread: Counter[str] = Counter()
    for bad in bads:
        kind = bad.expect
        if auth_key and not kind.hep_decodes:  # unauthenticated: counted, not stored
            dropped["auth"] += 1
            unread[kind.reason] += 1
        else:
            (dead if kind.deadlettered else dropped)[kind.reason] += 1
    if auth_key:
        dropped["auth"] += garbage_streams
    else:
        dead["magic"] += garbage_streams
    return dead, dropped, unread
