"""The hot path's shortcuts give exactly what the plain paths give.

- decode: the common chunk prefix read in one go == walking every chunk;
- sip: folded lines and bare-LF blank lines looked for only when the head fails == looked
  for first; the header-name cache never accepts what the checks reject;
- events: the per-collector context (node cache, event id hasher) == ``node_for_packet`` and
  ``schemas.envelope.event_id``; every envelope is what the pydantic models encode;
- the caches stay bounded whatever a sender cycles through.

Also here: a crash the comparison with the old code turned up (VQ report values like ``--1``).
"""

from __future__ import annotations

import dataclasses
import random
import re
import struct
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.hep_decode import build_mix
from callscope.settings import NodeConfig, TopologyConfig
from collectors.hep import decode as decode_module
from collectors.hep import events as events_module
from collectors.hep import sip as sip_module
from collectors.hep.config import HepConfig
from collectors.hep.decode import HepError, HepPacket, decode, encode_hep3
from collectors.hep.events import envelope_from_hep, node_for_packet, ts_text
from collectors.hep.sip import SipError, SipFields, SipMessage, parse, parse_fields
from schemas.envelope import encode, event_id, validate
from tests.hep import BYE, INVITE, OPTIONS, REGISTER, RINGING, RTCP_JSON, crlf

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOPOLOGY = TopologyConfig(
    nodes=(
        NodeConfig(name="sbc-1", role="sbc", hep_capture_id=2001),
        NodeConfig(name="media-1", role="media", hep_capture_id=7),
    )
)
HEP = HepConfig()
RECEIVED = 1_700_000_100_000_001


def _packet(payload: bytes = INVITE, **overrides: object) -> HepPacket:
    values: dict[str, object] = {
        "version": 3,
        "family": 2,
        "protocol": 17,
        "src_ip": "10.0.0.1",
        "src_port": 5060,
        "dst_ip": "10.0.0.2",
        "dst_port": 5062,
        "ts_sec": 1_700_000_000,
        "ts_usec": 5,
        "payload_type": 1,
        "payload": payload,
        "capture_id": 2001,
        "auth_key": b"myHep",
        "correlation_id": "a84b4c76e66710@pc33.atlanta.example.com",
    }
    values.update(overrides)
    return HepPacket(**values)  # type: ignore[arg-type]


def _outcome(data: bytes, *, prefix: bool) -> object:
    try:
        if data[:4] == b"HEP3" and len(data) >= 6:
            pkt = decode_module._decode_v3(data, len(data), prefix=prefix)
        else:
            pkt = decode(data)
    except HepError as exc:
        return ("error", exc.reason, str(exc))
    return dataclasses.astuple(pkt)


# --------------------------------------------------------------------------- decode


def test_the_prefix_layouts_are_what_kamailio_order_writes() -> None:
    v4 = encode_hep3(_packet())
    v6 = encode_hep3(_packet(src_ip="2001:db8::1", dst_ip="2001:db8::2", family=10))
    assert decode_module._PREFIX4_HEADERS.unpack_from(v4) == decode_module._PREFIX4_EXPECTED
    assert decode_module._PREFIX6_HEADERS.unpack_from(v6) == decode_module._PREFIX6_EXPECTED
    for data in (v4, v6):
        assert _outcome(data, prefix=True) == _outcome(data, prefix=False)
    assert (decode(v6).src_ip, decode(v6).dst_ip) == ("2001:db8::1", "2001:db8::2")


packets = st.builds(
    _packet,
    payload=st.sampled_from([INVITE, RINGING, BYE, b"", b"x"]),
    family=st.sampled_from([0, 2, 10]),
    protocol=st.integers(0, 255),
    src_ip=st.sampled_from(["10.0.0.1", "192.0.2.255", "::ffff:10.0.0.9", "2001:db8::1"]),
    dst_ip=st.sampled_from(["10.0.0.2", "2001:db8::2"]),
    src_port=st.integers(0, 65535),
    ts_sec=st.integers(0, 2**32 - 1),
    ts_usec=st.integers(0, 2**32 - 1),
    payload_type=st.integers(0, 255),
    capture_id=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    auth_key=st.one_of(st.none(), st.binary(max_size=8)),
    correlation_id=st.one_of(st.none(), st.text(max_size=8)),
    vlan=st.one_of(st.none(), st.integers(0, 65535)),
    capture_name=st.one_of(st.none(), st.text(max_size=8)),
    keepalive=st.booleans(),
)


@FUZZ
@given(packets, st.randoms(use_true_random=False))
def test_prefix_read_equals_the_chunk_walk(pkt: HepPacket, rng: random.Random) -> None:
    data = bytearray(encode_hep3(pkt))
    for _ in range(rng.randint(0, 3)):
        op = rng.randrange(4)
        if op == 0:  # declared total length anywhere, also inside the prefix
            struct.pack_into("!H", data, 4, rng.randrange(0, len(data) + 8))
        elif op == 1 and len(data) > 8:  # a lie in one of the first chunk headers
            struct.pack_into("!H", data, rng.randrange(6, min(len(data) - 1, 100)), rng.randrange(0, 32))
        elif op == 2:  # cut
            del data[rng.randrange(6, len(data) + 1) :]
        elif len(data) > 6:  # flip a byte of the prefix
            i = rng.randrange(6, min(len(data), 100))
            data[i] ^= 1 << rng.randrange(8)
    raw = bytes(data)
    assert _outcome(raw, prefix=True) == _outcome(raw, prefix=False)


# --------------------------------------------------------------------------- sip


def test_sip_fields_are_sip_message_fields_in_order() -> None:
    assert list(SipFields.__annotations__) == [f.name for f in dataclasses.fields(SipMessage)]
    for data in (INVITE, RINGING, BYE, REGISTER, OPTIONS):
        fields = parse_fields(data)
        assert list(fields) == list(SipFields.__annotations__)
        assert parse(data) == SipMessage(**fields)


def test_a_bare_lf_blank_line_before_a_crlf_one_ends_the_head() -> None:
    data = b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: lf-early\r\nCSeq: 1 MESSAGE\n\nX-Not-A-Header: 1\r\n\r\nrest"
    msg = parse(data)
    assert (msg.call_id, msg.cseq, msg.headers) == ("lf-early", 1, {})
    ended = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: lf-end\r\nCSeq: 2 OPTIONS\n\n\r\n\r\n"
    assert parse(ended).call_id == "lf-end"
    # Content-Length counts from the "\n\n": 8 bytes of body are there, 20 are not (2 bare LFs of slack)
    counted = b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nl: %d\n\nbody\r\n\r\n"
    assert parse(counted % 8).call_id == "x"
    with pytest.raises(SipError) as info:
        parse(counted % 20)
    assert info.value.reason == "content_length"


def test_head_ending_in_a_line_break_and_folds_anywhere() -> None:
    data = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: nl-end\r\nCSeq: 3 OPTIONS\n\r\n\r\n"
    assert (parse(data).call_id, parse(data).cseq) == ("nl-end", 3)
    folded_start = b"INVITE sip:a@b\r\n SIP/2.0\r\nCall-ID: f1\r\nCSeq: 1 INVITE\r\n\r\n"
    assert (parse(folded_start).method, parse(folded_start).request_uri) == ("INVITE", "sip:a@b")
    folded_call_id = b"BYE sip:a@b SIP/2.0\r\nCall-ID:\r\n\tf2\r\nCSeq: 2 BYE\r\n\r\n"
    assert parse(folded_call_id).call_id == "f2"


_FOLD = re.compile(rb"\r?\n[ \t]+")
_HEADER_LINES = [
    b"Via: SIP/2.0/UDP h1;branch=z9hG4bK1",
    b"v: SIP/2.0/TCP h2;branch=z9hG4bK2",
    b"From: Al <sip:a@b>;tag=9",
    b"t: <sip:c@d>",
    b"Route: <sip:r1>",
    b"record-route: <sip:r2>",
    b"Supported: timer",
    b"X-CID: link",
    b"Contact: <sip:e@f>;expires=30",
    b"Subject: one",
]


@FUZZ
@given(
    st.lists(st.sampled_from(_HEADER_LINES), max_size=8),
    st.lists(st.tuples(st.integers(0, 200), st.sampled_from([b"\r\n ", b"\r\n\t", b"\n  "])), max_size=3),
)
def test_folded_message_parses_like_its_unfolded_form(lines: list[bytes], folds: list[tuple[int, bytes]]) -> None:
    head = b"\r\n".join([b"INVITE sip:x@y SIP/2.0", b"Call-ID: fold-prop", b"CSeq: 5 INVITE", *lines])
    for pos, fold in folds:  # a space after a visible character becomes a line break and indent
        spaces = [m.start() for m in re.finditer(rb"(?<=[^\s]) ", head)]
        if spaces:
            at = spaces[pos % len(spaces)]
            head = head[:at] + fold + head[at + 1 :]
    folded = head + b"\r\nContent-Length: 0\r\n\r\n"
    unfolded = _FOLD.sub(b" ", head) + b"\r\nContent-Length: 0\r\n\r\n"
    assert _fields_or_reason(folded) == _fields_or_reason(unfolded)


def _fields_or_reason(data: bytes) -> object:
    try:
        fields = parse_fields(data)
    except SipError as exc:
        return exc.reason
    return {k: v for k, v in fields.items() if k != "raw"}


def test_header_name_cache_never_accepts_a_line_without_a_colon() -> None:
    base = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
    assert parse(base + b"X-Odd-Name: 1\r\n\r\n").call_id == "c1"  # caches "X-Odd-Name"
    with pytest.raises(SipError) as info:
        parse(base + b"X-Odd-Name\r\n\r\n")
    assert info.value.reason == "header"
    spellings = b"CALL-ID: up\r\ncseq : 4 OPTIONS\r\n"
    first = parse(b"OPTIONS sip:a@b SIP/2.0\r\n" + spellings + b"\r\n")
    again = parse(b"OPTIONS sip:a@b SIP/2.0\r\n" + spellings + b"\r\n")
    assert first == again
    assert (first.call_id, first.cseq) == ("up", 4)


# --------------------------------------------------------------------------- events


def _envelope(pkt: HepPacket, topology: TopologyConfig = TOPOLOGY, node: str = "col-1") -> dict[str, object]:
    _, _, raw = envelope_from_hep(pkt, topology=topology, hep=HEP, received_us=RECEIVED, collector_node=node)
    data: dict[str, object] = orjson.loads(raw)
    return data


def test_every_bench_packet_is_what_the_models_encode() -> None:
    mix = build_mix(3)
    extra = [encode_hep3(_packet(p, payload_type=t)) for p, t in [(RTCP_JSON, 5), (b"log line\n", 100), (REGISTER, 1)]]
    for data in mix + extra:
        env = _envelope(decode(data))
        assert orjson.loads(encode(validate(env))) == env


def test_node_and_event_id_as_the_plain_functions_give_them() -> None:
    other = TopologyConfig(nodes=(NodeConfig(name="media-2", role="media", hep_capture_id=7),))
    cases: list[tuple[TopologyConfig, str, dict[str, object]]] = [
        (TOPOLOGY, "col-1", {"capture_id": 7}),
        (other, "col-1", {"capture_id": 7}),
        (TOPOLOGY, "col-1", {"capture_id": None}),
        (TOPOLOGY, "col-2", {"capture_id": None}),
        (TOPOLOGY, "col-2", {"capture_id": 99, "capture_name": "kam 1/eu"}),
        (TOPOLOGY, "col-2", {"capture_id": 99}),
        (other, "col-2", {"capture_id": 2001}),
    ]
    for _ in range(2):  # the second round runs on warm caches, switching context every packet
        for topology, node, fields in cases:
            for payload, ptype, kind in [(OPTIONS, 1, "sip"), (RTCP_JSON, 5, "rtcp"), (b"log", 100, "log")]:
                pkt = decode(encode_hep3(_packet(payload, payload_type=ptype, **fields)))
                env = _envelope(pkt, topology, node)
                name, role, _ = node_for_packet(pkt, topology=topology, hep=HEP, collector_node=node)
                assert (env["node"], env["role"]) == (name, role)
                assert env["id"] == event_id(kind, name, pkt.raw)


def _reference_ts(ts_us: int) -> str:
    sec, usec = divmod(ts_us, 1_000_000)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{usec:06d}Z"


@FUZZ
@given(st.integers(0, 4_102_444_800 * 1_000_000))
def test_ts_text_formats_like_datetime(ts_us: int) -> None:
    assert ts_text(ts_us) == _reference_ts(ts_us)


def test_ts_text_microsecond_edges() -> None:
    for usec in (0, 1, 999, 1000, 1001, 99_999, 100_000, 999_999):
        ts_us = 1_700_000_000 * 1_000_000 + usec
        assert ts_text(ts_us) == _reference_ts(ts_us)


# --------------------------------------------------------------------------- found on the way


def test_vq_values_with_two_signs_stay_text_instead_of_crashing() -> None:
    # "--1" once passed the digits check and crashed int(): a ValueError out of the collector's parser.
    body = b"VQSessionReport\r\nPacketLoss:NLR=--1 JDR=-3 X=-\r\n"
    data = crlf(
        "PUBLISH sip:collector@example.com SIP/2.0\nCall-ID: vq-1\nCSeq: 1 PUBLISH\n"
        f"Content-Type: application/vq-rtcpxr\nContent-Length: {len(body)}\n\n"
    )
    report = parse(data + body).vq_report
    assert report is not None
    assert report["PacketLoss"] == {"NLR": "--1", "JDR": -3, "X": "-"}
    env = _envelope(decode(encode_hep3(_packet(data + body))))  # the whole path: an envelope, no crash
    assert validate(env).kind == "sip"


# --------------------------------------------------------------------------- bounds


def test_caches_stay_bounded_whatever_a_sender_cycles_through() -> None:
    base = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: b\r\nCSeq: 1 OPTIONS\r\n"
    for i in range(sip_module._CANONICAL_MAX + 50):
        parse(base + f"X-H{i}: v\r\n".encode() + b"\r\n")
    parse(base + b"X-" + b"L" * 200 + b": v\r\n\r\n")
    assert len(sip_module._CANONICAL) <= sip_module._CANONICAL_MAX
    assert all(len(name) <= 64 for name in sip_module._CANONICAL)

    for i in range(decode_module._IP_TEXT_MAX + 50):
        decode(encode_hep3(_packet(src_ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")))
    assert len(decode_module._IP_TEXT) <= decode_module._IP_TEXT_MAX

    long_name = "n" * 300
    for i in range(events_module._CACHE_MAX + 50):
        _envelope(decode(encode_hep3(_packet(OPTIONS, capture_id=10_000 + i))))
    _envelope(decode(encode_hep3(_packet(OPTIONS, capture_id=None, capture_name=long_name))))
    context = events_module._context
    assert context is not None
    assert len(context.nodes) <= events_module._CACHE_MAX
    assert all(name is None or len(name) <= 256 for _, name in context.nodes)
    assert len(context.prefixes) <= events_module._CACHE_MAX
