"""HEP packet -> envelope: kinds, keys, nodes, ids, times; every output validates against the models."""

from __future__ import annotations

import random

import orjson
import pytest

from callscope.settings import NodeConfig, TopologyConfig
from collectors.hep.config import HepConfig
from collectors.hep.decode import HepPacket, decode, encode_hep3
from collectors.hep.events import envelope_from_hep, ts_text
from collectors.hep.sip import SipError
from schemas.envelope import LogEnvelope, RtcpEnvelope, SipEnvelope, validate
from schemas.errors import DecodeError
from tests.hep import BYE, INVITE, OPTIONS, REGISTER, RINGING, RTCP_JSON

TOPOLOGY = TopologyConfig(
    nodes=(
        NodeConfig(name="sbc-1", role="sbc", hep_capture_id=2001),
        NodeConfig(name="media-1", role="media", hep_capture_id=7),
    )
)
HEP = HepConfig()
RECEIVED = 1_700_000_100_000_001


def _pkt(payload: bytes = INVITE, **overrides: object) -> HepPacket:
    values: dict[str, object] = {
        "version": 3,
        "family": 2,
        "protocol": 17,
        "src_ip": "10.0.0.1",
        "src_port": 5060,
        "dst_ip": "10.0.0.2",
        "dst_port": 5060,
        "ts_sec": 1_700_000_000,
        "ts_usec": 5,
        "payload_type": 1,
        "payload": payload,
        "capture_id": 2001,
        "correlation_id": "a84b4c76e66710@pc33.atlanta.example.com",
    }
    values.update(overrides)
    return decode(encode_hep3(HepPacket(**values)))  # type: ignore[arg-type]


def _env(
    pkt: HepPacket, hep: HepConfig = HEP, topology: TopologyConfig = TOPOLOGY
) -> tuple[str, str, dict[str, object]]:
    kind, key, raw = envelope_from_hep(pkt, topology=topology, hep=hep, received_us=RECEIVED, collector_node="col-1")
    return kind, key, orjson.loads(raw)


def test_sip_envelope() -> None:
    kind, key, data = _env(_pkt())
    assert (kind, key) == ("sip", "a84b4c76e66710@pc33.atlanta.example.com")
    env = validate(data)
    assert isinstance(env, SipEnvelope)
    assert (env.node, env.role, env.key) == ("sbc-1", "sbc", key)
    assert data["ts"] == "2023-11-14T22:13:20.000005Z"
    assert data["received"] == "2023-11-14T22:15:00.000001Z"
    body = env.body
    assert (body.src.ip, body.src.port, body.dst.ip, body.transport) == ("10.0.0.1", 5060, "10.0.0.2", "udp")
    assert (body.capture_id, body.correlation_id) == (2001, key)
    assert (body.method, body.cseq, body.from_tag, body.via_branch) == (
        "INVITE",
        314159,
        "1928301774",
        "z9hG4bKnashds8",
    )
    assert body.sdp is not None
    assert body.sdp.media[0].codecs == ["PCMU/8000", "PCMA/8000", "telephone-event/8000"]
    assert body.correlation == {"x-cid": "0c2a7f1e-leg-link"}
    assert body.raw == INVITE.decode()


def test_same_packet_same_id_other_packet_other_id() -> None:
    pkt = _pkt()
    first = _env(pkt)[2]["id"]
    assert _env(decode(pkt.raw))[2]["id"] == first
    assert _env(_pkt(ts_usec=6))[2]["id"] != first
    # a packet built in memory without raw bytes gets the id of its HEP3 encoding
    rebuilt = HepPacket(**{f: getattr(pkt, f) for f in pkt.__slots__ if f != "raw"})
    assert _env(rebuilt)[2]["id"] == first


def test_rtcp_json_envelope() -> None:
    kind, key, data = _env(_pkt(RTCP_JSON, payload_type=5, capture_id=7, src_port=0, dst_port=0))
    assert (kind, key) == ("rtcp", "a84b4c76e66710@pc33.atlanta.example.com")
    env = validate(data)
    assert isinstance(env, RtcpEnvelope)
    assert (env.node, env.role) == ("media-1", "media")
    assert env.body.report == orjson.loads(RTCP_JSON)


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'{"a": NaN}', b"\xff\xfe"])
def test_rtcp_payload_that_is_not_a_json_object(payload: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        _env(_pkt(payload, payload_type=5))
    assert info.value.reason == "rtcp_json"


def test_log_envelope_fills_call_id_from_a_call_id_like_correlation() -> None:
    kind, key, data = _env(_pkt(b"SYSLOG: Processing OPTIONS request\n", payload_type=100))
    assert (kind, key) == ("log", "a84b4c76e66710@pc33.atlanta.example.com")
    env = validate(data)
    assert isinstance(env, LogEnvelope)
    assert env.body.message == "SYSLOG: Processing OPTIONS request"
    assert env.body.call_id == key
    _, key, data = _env(_pkt(b"x", payload_type=100, correlation_id=None))
    assert key == ""
    assert validate(data).body.call_id is None  # type: ignore[union-attr]
    _, _, data = _env(_pkt(b"x", payload_type=100, correlation_id="not a call id"))
    assert validate(data).body.call_id is None  # type: ignore[union-attr]


def test_unsupported_payload_type_is_a_decode_error() -> None:
    with pytest.raises(DecodeError) as info:
        _env(_pkt(b"\x80\x00", payload_type=4))
    assert info.value.reason == "unsupported_type"


def test_keepalive_and_auth() -> None:
    with pytest.raises(DecodeError) as info:
        _env(_pkt(b"", keepalive=True))
    assert info.value.reason == "keepalive"
    secured = HepConfig(auth_key="myHep")
    assert _env(_pkt(auth_key=b"myHep"), hep=secured)[0] == "sip"
    for key in (None, b"other"):
        with pytest.raises(DecodeError) as info:
            _env(_pkt(auth_key=key), hep=secured)
        assert info.value.reason == "auth"


def test_bad_sip_raises_sip_error() -> None:
    with pytest.raises(SipError):
        _env(_pkt(b"SIP/2.0"))


def test_node_fallbacks_and_byteswapped_capture_id() -> None:
    assert _env(_pkt(capture_id=None))[2]["node"] == "col-1"
    assert _env(_pkt(capture_id=99))[2]["node"] == "hep-99"
    data = _env(_pkt(capture_id=99, capture_name="kam 1/eu"))[2]
    assert (data["node"], data["role"]) == ("kam-1-eu", "collector")
    swapped = 2001 << 16  # sngrep 1.6: bytes 07 D1 00 00 for capture id 2001
    data = _env(_pkt(capture_id=swapped), hep=HepConfig(capture_id_byteswap=(swapped,)))[2]
    assert (data["node"], data["role"], data["body"]["capture_id"]) == ("sbc-1", "sbc", 2001)  # type: ignore[index]
    assert _env(_pkt(capture_id=swapped))[2]["node"] == f"hep-{swapped}"


def test_time_of_hepv1_and_timeless_hep3_is_the_receive_time() -> None:
    data = _env(_pkt(ts_sec=0, ts_usec=0))[2]
    assert data["ts"] == data["received"]
    v1 = HepPacket(1, 2, 17, "10.0.0.1", 5060, "10.0.0.2", 5060, 0, 0, payload=OPTIONS, raw=b"v1-bytes")
    data = _env(v1)[2]
    assert data["ts"] == ts_text(RECEIVED)
    assert validate(data).body.transport == "udp"  # type: ignore[union-attr]


def test_transport_from_ip_protocol() -> None:
    for proto, name in ((6, "tcp"), (132, "sctp"), (17, "udp"), (50, "other")):
        assert _env(_pkt(protocol=proto))[2]["body"]["transport"] == name  # type: ignore[index]


def test_correlation_id_over_the_model_limit() -> None:
    with pytest.raises(DecodeError) as info:
        _env(_pkt(correlation_id="c" * 1025))
    assert info.value.reason == "correlation_id"


def test_a_sample_of_mixed_outputs_validates() -> None:
    rng = random.Random(7)
    payloads = [(INVITE, 1), (RINGING, 1), (BYE, 1), (REGISTER, 1), (OPTIONS, 1), (RTCP_JSON, 5), (b"log", 100)]
    for i in range(300):
        payload, ptype = rng.choice(payloads)
        pkt = _pkt(
            payload,
            payload_type=ptype,
            ts_sec=1_600_000_000 + rng.randrange(10**8),
            ts_usec=rng.randrange(10**6),
            capture_id=rng.choice([None, 2001, 7, rng.randrange(2**32)]),
            correlation_id=rng.choice([None, "x@y", f"{i}-uuid"]),
            src_ip=rng.choice(["10.0.0.1", "2001:db8::1"]),
            family=10,
            vlan=rng.choice([None, 5]),
        )
        kind, key, data = _env(pkt)
        env = validate(data)
        assert env.kind == kind
        assert env.key == key
