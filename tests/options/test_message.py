"""The pure core: requests, answers, matching, stream framing, schedule offsets, envelopes."""

from __future__ import annotations

import contextlib
import statistics

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.hep.sip import parse
from collectors.options.config import OptionsConfig, OptionsTarget
from collectors.options.events import ProbeResult, envelope_from_result, spec_for
from collectors.options.message import (
    AnswerError,
    ProbeIds,
    build_request,
    classify,
    frame,
    matches,
    new_ids,
    read_answer,
)
from collectors.options.schedule import next_due, start_offset
from schemas.envelope import OptionsEnvelope, validate
from tests.options.responder import answer_for

IDS = ProbeIds(branch="z9hG4bK-abc", call_id="cid-1@callscope", from_tag="f1")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _request(transport: str = "udp", local: tuple[str, int] = ("10.0.0.9", 40000)) -> bytes:
    return build_request(
        request_uri="sip:carrier.example.net:5060",
        transport=transport,  # type: ignore[arg-type]
        local=local,
        ids=IDS,
        cseq=3,
        from_uri="sip:callscope@sbc-1",
        user_agent="callscope-test",
    )


def test_request_round_trips_through_the_sip_parser() -> None:
    msg = parse(_request())
    assert (msg.method, msg.request_uri, msg.cseq) == ("OPTIONS", "sip:carrier.example.net:5060", 3)
    assert msg.via_branch == "z9hG4bK-abc"
    assert msg.call_id == "cid-1@callscope"
    assert (msg.from_uri, msg.from_tag) == ("sip:callscope@sbc-1", "f1")
    assert msg.to_uri == "sip:carrier.example.net:5060"
    assert msg.to_tag is None
    assert msg.contact == "<sip:callscope@10.0.0.9:40000>"
    assert msg.user_agent == "callscope-test"
    assert msg.headers["Max-Forwards"] == "70"
    text = _request().decode()
    assert "\r\nVia: SIP/2.0/UDP 10.0.0.9:40000;branch=z9hG4bK-abc;rport\r\n" in text
    assert "\r\nAccept: application/sdp\r\n" in text
    assert text.endswith("Content-Length: 0\r\n\r\n")


def test_request_over_tls_and_ipv6() -> None:
    text = _request("tls", ("2001:db8::1", 5061)).decode()
    assert "Via: SIP/2.0/TLS [2001:db8::1]:5061;branch=" in text
    assert "Contact: <sip:callscope@[2001:db8::1]:5061;transport=tls>" in text


def test_new_ids_are_fresh_and_rfc3261_branches() -> None:
    ids = [new_ids() for _ in range(1000)]
    assert all(i.branch.startswith("z9hG4bK") for i in ids)
    assert len({i.branch for i in ids}) == len({i.call_id for i in ids}) == 1000


def test_answer_is_read_and_matched() -> None:
    raw = answer_for(_request(), 200, "OK", server="Kamailio (5.6.3)", user_agent="ignored")
    answer = read_answer(raw)
    assert (answer.status, answer.reason, answer.server, answer.method) == (200, "OK", "Kamailio (5.6.3)", "OPTIONS")
    assert matches(answer, "z9hG4bK-abc", "cid-1@callscope")
    assert not matches(answer, "z9hG4bK-other", "cid-1@callscope")
    assert not matches(answer, "z9hG4bK-abc", "cid-2@callscope")
    invite = read_answer(raw.replace(b"3 OPTIONS", b"3 INVITE"))
    assert not matches(invite, "z9hG4bK-abc", "cid-1@callscope")
    provisional = read_answer(answer_for(_request(), 100, "Trying", server=None, user_agent=None))
    assert provisional.provisional


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "garbage"),
        (b"HTTP/1.1 200 OK\r\n\r\n", "garbage"),
        (b"SIP/2.0 2000 OK\r\n\r\n", "garbage"),
        (b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\n\r\n", "garbage"),  # no Call-ID
        (b"OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n\r\n", "request"),
        (b"SIP/2.0 200 OK\r\n" + b"X: y\r\n" * 300 + b"\r\n", "oversized"),
    ],
)
def test_bad_answers_raise_answer_error(data: bytes, reason: str) -> None:
    with pytest.raises(AnswerError) as info:
        read_answer(data)
    assert info.value.reason == reason


def test_classify() -> None:
    assert classify(200, (200,)) is None
    assert classify(404, (200,)) == "unexpected_code"
    assert classify(404, (200, 404)) is None


def test_frame_cuts_messages_by_content_length() -> None:
    one = answer_for(_request(), 200, "OK", server=None, user_agent=None)
    with_body = one.replace(b"Content-Length: 0", b"Content-Length: 5") + b"hello"
    stream = b"\r\n\r\n" + one + with_body + one[:10]
    first, used = frame(stream)
    assert first == one
    rest = stream[used:]
    second, used2 = frame(rest)
    assert second == with_body
    assert frame(rest[used2:]) == (None, 0)
    assert frame(b"SIP/2.0 200 OK\r\nl: 10\r\n\r\nabc") == (None, 0)  # compact Content-Length, body pending


@pytest.mark.parametrize(
    "stream",
    [
        b"SIP/2.0 200 OK\r\nContent-Length: x\r\n\r\n",
        b"SIP/2.0 200 OK\r\nContent-Length: 99999999\r\n\r\n",
        b"a" * 20000,
    ],
)
def test_frame_rejects_bad_streams(stream: bytes) -> None:
    with pytest.raises(AnswerError):
        frame(stream)


@FUZZ
@given(st.binary(max_size=2000))
def test_only_answer_error_escapes_read_answer_and_frame(data: bytes) -> None:
    for candidate in (data, b"SIP/2.0 200 OK\r\n" + data):
        with contextlib.suppress(AnswerError):
            read_answer(candidate)
        try:
            message, used = frame(candidate)
        except AnswerError:
            continue
        assert 0 <= used <= len(candidate)
        if message is not None:
            assert len(message) <= used


@FUZZ
@given(st.integers(min_value=0, max_value=len(_request()) - 1), st.integers(min_value=0, max_value=255))
def test_mutated_answers_never_crash(position: int, byte: int) -> None:
    raw = bytearray(answer_for(_request(), 200, "OK", server="s", user_agent=None))
    raw[position % len(raw)] = byte
    try:
        answer = read_answer(bytes(raw))
    except AnswerError:
        return
    assert 100 <= answer.status <= 699


def test_start_offsets_are_deterministic_bounded_and_spread() -> None:
    offsets = [start_offset(f"trunk-{i}", 30.0, 0.1) for i in range(2000)]
    assert offsets == [start_offset(f"trunk-{i}", 30.0, 0.1) for i in range(2000)]
    assert all(0 <= o < 3.0 for o in offsets)
    buckets = [0] * 10
    for o in offsets:
        buckets[int(o / 0.3)] += 1
    assert min(buckets) > 120  # about 200 per tenth: no burst, no hole
    assert abs(statistics.mean(offsets) - 1.5) < 0.1
    assert start_offset("trunk-1", 30.0, 0.0) == 0.0


def test_next_due_stays_on_the_grid_and_skips_missed_slots() -> None:
    assert next_due(10.0, 5.0, 12.0) == 15.0
    assert next_due(10.0, 5.0, 15.0) == 20.0
    assert next_due(10.0, 5.0, 31.0) == 35.0


def test_envelope_validates_and_carries_the_result() -> None:
    cfg = OptionsConfig(targets=(OptionsTarget(name="carrier-a", uri="sips:sbc.carrier.example:5061", kind="trunk"),))
    spec = spec_for(cfg.targets[0], cfg, "sbc-1")
    result = ProbeResult(
        1_700_000_000_123_456,
        "unexpected_code",
        status=503,
        reason="Service Unavailable",
        rtt_ms=12.5,
        server="carrier-sbc",
        error_detail="503 is not in [200]",
        remote="192.0.2.10:5061",
        attempts=1,
        call_id="c@x",
    )
    key, raw = envelope_from_result(spec, result, node="sbc-1", role="sbc", received_us=1_700_000_000_200_000)
    assert key == b"carrier-a"
    env = validate(orjson.loads(raw))
    assert isinstance(env, OptionsEnvelope)
    assert (env.node, env.role, env.key) == ("sbc-1", "sbc", "carrier-a")
    assert env.ts.isoformat() == "2023-11-14T22:13:20.123456+00:00"
    body = env.body
    assert (body.target, body.target_kind, body.transport, body.passive) == ("carrier-a", "trunk", "tls", False)
    assert (body.status, body.error, body.rtt_ms, body.attempts) == (503, "unexpected_code", 12.5, 1)
    assert body.uri == "sips:sbc.carrier.example:5061"
    again = envelope_from_result(spec, result, node="sbc-1", role="sbc", received_us=1_700_000_000_300_000)
    assert orjson.loads(again[1])["id"] == env.id  # the same probe, the same id
