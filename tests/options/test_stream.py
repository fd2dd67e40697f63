"""The prober over TCP and TLS against a real responder: answers, refusals, certificates, broken answers."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

from collectors.hep.sip import parse
from tests.options.conftest import Certs, ProbeKit, closed_port
from tests.options.responder import Behaviour, SipResponder


async def test_tcp_200_ok(responder: SipResponder, make_prober: Callable[..., ProbeKit]) -> None:
    kit = make_prober()
    result = await kit.probe(f"sip:127.0.0.1:{responder.tcp_port};transport=tcp")
    assert result.error is None
    assert (result.status, result.server, result.attempts) == (200, "test-responder/1.0", 1)
    assert result.rtt_ms is not None
    assert result.rtt_ms > 0
    (request,) = responder.requests
    assert request.transport == "tcp"
    msg = parse(request.data)
    assert msg.request_uri == f"sip:127.0.0.1:{responder.tcp_port};transport=tcp"
    assert (request.header("Via") or "").startswith("SIP/2.0/TCP 127.0.0.1:")
    assert "transport=tcp" in (msg.contact or "")


async def test_tcp_provisional_then_final(responder: SipResponder, make_prober: Callable[..., ProbeKit]) -> None:
    responder.behaviour = Behaviour(provisional=True, delay_secs=0.2)
    result = await make_prober().probe(f"sip:127.0.0.1:{responder.tcp_port}", transport="tcp")
    assert result.error is None
    assert result.status == 200
    assert result.rtt_ms is not None
    assert result.rtt_ms >= 190


async def test_tcp_unexpected_code(responder: SipResponder, make_prober: Callable[..., ProbeKit]) -> None:
    responder.behaviour = Behaviour(code=503, reason="Service Unavailable")
    result = await make_prober().probe(f"sip:127.0.0.1:{responder.tcp_port}", transport="tcp")
    assert result.error == "unexpected_code"
    assert result.status == 503


async def test_tcp_refused(make_prober: Callable[..., ProbeKit]) -> None:
    started = time.monotonic()
    result = await make_prober().probe(f"sip:127.0.0.1:{closed_port()};transport=tcp")
    assert result.error == "refused"
    assert result.attempts == 0
    assert time.monotonic() - started < 1.0


async def test_tcp_silence_is_a_timeout(responder: SipResponder, make_prober: Callable[..., ProbeKit]) -> None:
    responder.behaviour = Behaviour(mode="silent")
    result = await make_prober().probe(f"sip:127.0.0.1:{responder.tcp_port};transport=tcp", timeout_secs=0.4)
    assert result.error == "timeout"
    assert result.error_detail is not None
    assert "waiting for the answer" in result.error_detail


async def test_tcp_truncated_answer_is_malformed(responder: SipResponder, make_prober: Callable[..., ProbeKit]) -> None:
    responder.behaviour = Behaviour(mode="truncated")
    result = await make_prober().probe(f"sip:127.0.0.1:{responder.tcp_port};transport=tcp")
    assert result.error == "malformed"
    assert result.error_detail is not None
    assert "middle of an answer" in result.error_detail


async def test_tcp_garbage_answer_is_malformed(responder: SipResponder, make_prober: Callable[..., ProbeKit]) -> None:
    responder.behaviour = Behaviour(mode="garbage")
    result = await make_prober().probe(f"sip:127.0.0.1:{responder.tcp_port};transport=tcp")
    assert result.error == "malformed"


async def test_tcp_close_without_answer_is_malformed(
    responder: SipResponder, make_prober: Callable[..., ProbeKit]
) -> None:
    responder.behaviour = Behaviour(mode="close")
    result = await make_prober().probe(f"sip:127.0.0.1:{responder.tcp_port};transport=tcp")
    assert result.error == "malformed"
    assert result.error_detail is not None
    assert "without answering" in result.error_detail


async def test_tcp_answer_of_another_transaction_is_skipped(
    responder: SipResponder, make_prober: Callable[..., ProbeKit]
) -> None:
    responder.behaviour = Behaviour(mode="stray_first")
    kit = make_prober()
    result = await kit.probe(f"sip:127.0.0.1:{responder.tcp_port};transport=tcp")
    assert result.error is None
    assert kit.stray("mismatch") == 1


async def test_tls_ok_with_a_trusted_certificate(
    certs: Certs, make_responder: Callable[..., SipResponder], make_prober: Callable[..., ProbeKit]
) -> None:
    r = make_responder(certs.server_context())
    kit = make_prober(tls_ca_file=str(certs.ca))
    result = await kit.probe(f"sips:127.0.0.1:{r.tls_port}")
    assert result.error is None, result.error_detail
    assert result.status == 200
    (request,) = r.requests
    assert request.transport == "tls"
    assert (request.header("Via") or "").startswith("SIP/2.0/TLS ")
    by_name = await kit.probe(f"sip:localhost:{r.tls_port};transport=tls")
    if by_name.remote is not None and by_name.remote.startswith("127.0.0.1"):
        assert by_name.error is None, by_name.error_detail


async def test_tls_untrusted_certificate_is_tls(
    certs: Certs, make_responder: Callable[..., SipResponder], make_prober: Callable[..., ProbeKit]
) -> None:
    r = make_responder(certs.server_context(rogue=True))
    result = await make_prober(tls_ca_file=str(certs.ca)).probe(f"sips:127.0.0.1:{r.tls_port}")
    assert result.error == "tls"
    assert result.error_detail is not None
    assert "certificate" in result.error_detail
    assert r.requests == []  # nothing was sent over an unverified channel
    unverified = await make_prober(tls_ca_file=str(certs.ca), tls_verify=False).probe(f"sips:127.0.0.1:{r.tls_port}")
    assert unverified.error is None


async def test_tls_to_a_plain_tcp_port_is_tls(responder: SipResponder, make_prober: Callable[..., ProbeKit]) -> None:
    result = await make_prober(timeout_secs=2).probe(f"sips:127.0.0.1:{responder.tcp_port}")
    assert result.error == "tls"


async def test_tls_handshake_that_never_comes_is_a_timeout(make_prober: Callable[..., ProbeKit]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as mute:  # accepts (backlog) and never speaks
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)
        port = mute.getsockname()[1]
        result = await make_prober().probe(f"sips:127.0.0.1:{port}", timeout_secs=0.5)
    assert result.error == "timeout"
    assert result.error_detail is not None
    assert "TLS handshake" in result.error_detail


async def test_many_tcp_probes_at_once(responder: SipResponder, make_prober: Callable[..., ProbeKit]) -> None:
    kit = make_prober()
    results = await asyncio.gather(
        *(kit.probe(f"sip:u{i}@127.0.0.1:{responder.tcp_port};transport=tcp") for i in range(100))
    )
    assert all(r.error is None for r in results)
    assert len(responder.requests) == 100
