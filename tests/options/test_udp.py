"""The prober over UDP against a real responder on 127.0.0.1: answers, timer E, stray answers, ICMP."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import Callable

from collectors.hep.sip import parse
from tests.ci import unavailable
from tests.options.conftest import ProbeKit, closed_port
from tests.options.responder import Behaviour, SipResponder, answer_for


async def test_200_ok_with_rtt_server_header_and_a_well_formed_request(
    responder: SipResponder, make_prober: Callable[..., ProbeKit]
) -> None:
    kit = make_prober()
    before = time.time_ns() // 1000
    result = await kit.probe(f"sip:trunk@127.0.0.1:{responder.udp_port}", cseq=7)
    assert result.error is None
    assert (result.status, result.reason) == (200, "OK")
    assert result.server == "test-responder/1.0"
    assert result.rtt_ms is not None
    assert 0 < result.rtt_ms < 1000
    assert result.attempts == 1
    assert result.remote == f"127.0.0.1:{responder.udp_port}"
    assert before <= result.ts_us <= time.time_ns() // 1000
    (request,) = responder.requests
    msg = parse(request.data)
    assert msg.method == "OPTIONS"
    assert msg.request_uri == f"sip:trunk@127.0.0.1:{responder.udp_port}"
    assert msg.via_branch is not None
    assert msg.via_branch.startswith("z9hG4bK")
    via = request.header("Via") or ""
    assert via.startswith("SIP/2.0/UDP 127.0.0.1:")
    assert via.endswith(";rport")
    assert msg.cseq == 7
    assert request.header("CSeq") == "7 OPTIONS"
    assert request.header("Max-Forwards") == "70"
    assert request.header("Accept") == "application/sdp"
    assert request.header("Content-Length") == "0"
    assert msg.from_tag
    assert msg.from_uri == "sip:callscope@probe-node"
    assert msg.to_uri == f"sip:trunk@127.0.0.1:{responder.udp_port}"
    assert msg.user_agent == "callscope"
    assert msg.contact is not None
    assert result.call_id == msg.call_id


async def test_every_probe_has_a_fresh_branch_and_call_id(
    responder: SipResponder, make_prober: Callable[..., ProbeKit]
) -> None:
    kit = make_prober()
    results = await asyncio.gather(*(kit.probe(f"sip:127.0.0.1:{responder.udp_port}") for _ in range(20)))
    assert all(r.error is None for r in results)
    branches = {parse(r.data).via_branch for r in responder.requests}
    call_ids = {r.call_id for r in responder.requests}
    assert len(branches) == len(call_ids) == len(responder.requests) == 20


async def test_user_agent_header_stands_in_for_server(
    responder: SipResponder, make_prober: Callable[..., ProbeKit]
) -> None:
    responder.behaviour = Behaviour(server=None, user_agent="FPBX-16.0(18.9)")
    result = await make_prober().probe(f"sip:127.0.0.1:{responder.udp_port}")
    assert result.error is None
    assert result.server == "FPBX-16.0(18.9)"


async def test_retransmissions_follow_timer_e_and_rtt_counts_from_the_first_send(
    responder: SipResponder, make_prober: Callable[..., ProbeKit]
) -> None:
    responder.behaviour = Behaviour(drop_first=2)
    kit = make_prober(t1_ms=100, t2_ms=400)
    result = await kit.probe(f"sip:127.0.0.1:{responder.udp_port}")
    assert result.error is None
    assert result.status == 200
    assert result.attempts == 3
    copies = responder.copies(result.call_id)
    assert len(copies) == 3
    assert len({c.data for c in copies}) == 1  # the same request, byte for byte
    gaps = [b.at - a.at for a, b in itertools.pairwise(copies)]
    assert gaps[0] >= 0.095  # T1
    assert gaps[1] >= 0.195  # 2 x T1
    assert result.rtt_ms is not None
    assert result.rtt_ms >= 295  # from the first send, not the last
    assert kit.telemetry.registry.get_sample_value("callscope_options_retransmissions_total") == 2


async def test_retransmission_interval_is_capped_at_t2(
    responder: SipResponder, make_prober: Callable[..., ProbeKit]
) -> None:
    responder.behaviour = Behaviour(mode="silent")
    kit = make_prober(t1_ms=50, t2_ms=100)
    result = await kit.probe(f"sip:127.0.0.1:{responder.udp_port}", timeout_secs=0.8)
    assert result.error == "timeout"
    copies = responder.copies(result.call_id)
    assert result.attempts == len(copies)
    gaps = [b.at - a.at for a, b in itertools.pairwise(copies)]
    assert len(gaps) >= 4
    assert gaps[0] >= 0.045  # T1
    assert all(g >= 0.095 for g in gaps[1:])  # 2 x T1 = T2 ...
    assert max(gaps) < 0.19  # ... and no more: uncapped doubling would wait 0.2 s, then 0.4 s


async def test_provisional_then_final(responder: SipResponder, make_prober: Callable[..., ProbeKit]) -> None:
    responder.behaviour = Behaviour(provisional=True, delay_secs=0.3)
    kit = make_prober(t1_ms=50, t2_ms=100)
    result = await kit.probe(f"sip:127.0.0.1:{responder.udp_port}")
    assert result.error is None
    assert result.status == 200
    assert result.rtt_ms is not None
    assert result.rtt_ms >= 290  # the 100 did not end the transaction
    copies = responder.copies(result.call_id)
    gaps = [b.at - a.at for a, b in itertools.pairwise(copies)]
    assert len(gaps) >= 2
    assert all(g >= 0.095 for g in gaps[1:])  # the running timer E fires, then every T2 (RFC 3261 17.1.2.2)


async def test_404_is_unexpected_unless_configured(
    responder: SipResponder, make_prober: Callable[..., ProbeKit]
) -> None:
    responder.behaviour = Behaviour(code=404, reason="Not Found")
    strict = await make_prober().probe(f"sip:127.0.0.1:{responder.udp_port}")
    assert strict.error == "unexpected_code"
    assert (strict.status, strict.reason) == (404, "Not Found")
    assert strict.rtt_ms is not None
    lenient = await make_prober(expect_codes=[200, 404]).probe(f"sip:127.0.0.1:{responder.udp_port}")
    assert lenient.error is None
    assert lenient.status == 404
    per_target = await make_prober().probe(f"sip:127.0.0.1:{responder.udp_port}", expect_codes=[404, 405])
    assert per_target.error is None


async def test_silence_is_a_timeout(responder: SipResponder, make_prober: Callable[..., ProbeKit]) -> None:
    responder.behaviour = Behaviour(mode="silent")
    kit = make_prober()
    started = time.monotonic()
    result = await kit.probe(f"sip:127.0.0.1:{responder.udp_port}", timeout_secs=0.5)
    elapsed = time.monotonic() - started
    assert result.error == "timeout"
    assert result.status is None
    assert result.rtt_ms is None
    assert 0.45 <= elapsed < 1.5
    assert result.attempts >= 3
    assert result.error_detail is not None
    assert "no final answer within 0.5 s" in result.error_detail


async def test_nothing_listening_is_refused_through_icmp(make_prober: Callable[..., ProbeKit]) -> None:
    kit = make_prober()
    started = time.monotonic()
    result = await kit.probe(f"sip:127.0.0.1:{closed_port()}", timeout_secs=2)
    assert result.error == "refused"
    assert result.error_detail == "ICMP port unreachable"
    assert time.monotonic() - started < 1.0  # at once, not at the timeout


async def test_refused_and_answered_targets_share_the_socket(
    responder: SipResponder, make_prober: Callable[..., ProbeKit]
) -> None:
    kit = make_prober()
    dead = closed_port()
    results = await asyncio.gather(
        *(kit.probe(f"sip:127.0.0.1:{dead if i % 2 else responder.udp_port}") for i in range(40))
    )
    assert [r.error for r in results] == [None if i % 2 == 0 else "refused" for i in range(40)]


async def test_answer_from_another_address_is_ignored_and_counted(
    responder: SipResponder, make_prober: Callable[..., ProbeKit]
) -> None:
    responder.behaviour = Behaviour(mode="wrong_source")
    kit = make_prober()
    result = await kit.probe(f"sip:127.0.0.1:{responder.udp_port}", timeout_secs=0.4)
    assert result.error == "timeout"
    assert kit.stray("wrong_source") == result.attempts >= 1


async def test_stray_answers_are_counted_and_do_not_disturb_the_probe(
    responder: SipResponder, make_prober: Callable[..., ProbeKit]
) -> None:
    responder.behaviour = Behaviour(mode="stray_first")
    kit = make_prober()
    result = await kit.probe(f"sip:127.0.0.1:{responder.udp_port}")
    assert result.error is None
    assert kit.stray("unknown_branch") == 1


async def test_wrong_call_id_is_a_mismatch(responder: SipResponder, make_prober: Callable[..., ProbeKit]) -> None:
    responder.behaviour = Behaviour(mode="wrong_call_id")
    kit = make_prober()
    result = await kit.probe(f"sip:127.0.0.1:{responder.udp_port}", timeout_secs=0.3)
    assert result.error == "timeout"
    assert kit.stray("mismatch") >= 1


async def test_late_answers_and_garbage_at_the_socket_are_counted(
    responder: SipResponder, make_prober: Callable[..., ProbeKit]
) -> None:
    kit = make_prober()
    result = await kit.probe(f"sip:127.0.0.1:{responder.udp_port}")
    assert result.error is None
    port = kit.prober.udp.ports[socket.AF_INET]
    (request,) = responder.requests
    late = answer_for(request.data, 200, "OK", server=None, user_agent=None)
    responder.send_udp_from_other(late, ("127.0.0.1", port))  # a retransmitted answer, after the end
    responder.send_udp_from_other(b"\x16\x03\x01 garbage", ("127.0.0.1", port))
    responder.send_udp_from_other(request.data, ("127.0.0.1", port))  # a request, not an answer
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (kit.stray("late"), kit.stray("garbage"), kit.stray("request")) != (1, 1, 1):
        await asyncio.sleep(0.01)
    assert (kit.stray("late"), kit.stray("garbage"), kit.stray("request")) == (1, 1, 1)
    again = await kit.probe(f"sip:127.0.0.1:{responder.udp_port}")  # the prober still works
    assert again.error is None


async def test_garbage_from_the_target_is_malformed(
    responder: SipResponder, make_prober: Callable[..., ProbeKit]
) -> None:
    responder.behaviour = Behaviour(mode="garbage")
    kit = make_prober()
    result = await kit.probe(f"sip:127.0.0.1:{responder.udp_port}", timeout_secs=0.4)
    assert result.error == "malformed"
    assert kit.stray("garbage") >= 1


async def test_unresolvable_host_is_dns_within_the_dns_timeout(make_prober: Callable[..., ProbeKit]) -> None:
    kit = make_prober(dns_timeout_secs=1.0)
    started = time.monotonic()
    results = await asyncio.gather(
        kit.probe("sip:carrier.callscope-test.invalid"), kit.probe("sips:sbc.callscope-test.invalid:5061")
    )
    assert time.monotonic() - started < 1.8
    assert [r.error for r in results] == ["dns", "dns"]
    assert all(r.error_detail for r in results)


async def test_host_names_resolve(responder: SipResponder, make_prober: Callable[..., ProbeKit]) -> None:
    result = await make_prober().probe(f"sip:localhost:{responder.udp_port}")
    if result.error == "refused":  # localhost may resolve to ::1 first, where the responder does not listen
        assert result.remote is not None
        assert result.remote.startswith("[::1]")
        return
    assert result.error is None
    assert result.remote == f"127.0.0.1:{responder.udp_port}"


def _ipv6_loopback() -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.bind(("::1", 0))
    except OSError as exc:
        sock.close()
        unavailable(f"no IPv6 loopback here: {exc}")
    return sock


async def test_ipv6_targets_answered_and_refused(make_prober: Callable[..., ProbeKit]) -> None:
    sock = _ipv6_loopback()
    port = sock.getsockname()[1]
    sock.settimeout(10)

    def answer_one() -> None:
        data, addr = sock.recvfrom(65535)
        sock.sendto(answer_for(data, 200, "OK", server="v6-peer", user_agent=None), addr)

    try:
        kit = make_prober()
        _, result = await asyncio.gather(asyncio.to_thread(answer_one), kit.probe(f"sip:[::1]:{port}", timeout_secs=5))
        assert result.error is None
        assert (result.status, result.server, result.remote) == (200, "v6-peer", f"[::1]:{port}")
    finally:
        sock.close()
    refused = await kit.probe(f"sip:[::1]:{port}", timeout_secs=2)  # the socket is closed now
    assert refused.error == "refused"
    assert refused.error_detail == "ICMP port unreachable"
