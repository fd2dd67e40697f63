"""SIP and SDP parsing on RFC 3261-style messages and crafted bad input."""

from __future__ import annotations

import pytest

from collectors.hep.sdp import parse_vq_report, summarize
from collectors.hep.sip import SipError, parse
from schemas.bodies import SdpSummary
from schemas.errors import DecodeError
from tests.hep import BYE, INVITE, OPTIONS, REGISTER, RINGING, crlf


def test_invite_fields() -> None:
    msg = parse(INVITE)
    assert msg.is_request
    assert (msg.method, msg.request_uri, msg.status, msg.reason) == ("INVITE", "sip:bob@biloxi.example.com", None, None)
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert msg.cseq == 314159
    assert (msg.from_display, msg.from_uri, msg.from_user, msg.from_tag) == (
        "Alice Liddell",
        "sip:alice@atlanta.example.com",
        "alice",
        "1928301774",
    )
    assert (msg.to_display, msg.to_user, msg.to_tag) == ("Bob", "bob", None)
    assert msg.via_branch == "z9hG4bKnashds8"
    assert msg.contact == "<sip:alice@pc33.atlanta.example.com>"
    assert msg.user_agent == "softphone/1.0"
    assert (msg.pai, msg.pai_user) == ("sip:+15551234567@atlanta.example.com;user=phone", "+15551234567")
    assert msg.session_id == "ab30317f1a784dc48ff824d0d3715d86"
    assert msg.correlation == {"x-cid": "0c2a7f1e-leg-link"}
    assert msg.content_type == "application/sdp"
    assert msg.headers == {"Max-Forwards": "70"}
    assert msg.raw == INVITE.decode()
    assert msg.sdp == {
        "connection": "192.0.2.101",
        "origin": "alice 2890844526 2890844526 IN IP4 atlanta.example.com",
        "media": [
            {
                "media": "audio",
                "port": 49172,
                "proto": "RTP/AVP",
                "formats": ["0", "8", "101"],
                "codecs": ["PCMU/8000", "PCMA/8000", "telephone-event/8000"],  # PCMA from the static table
                "connection": "192.0.2.101",
                "direction": "sendrecv",
            }
        ],
    }
    SdpSummary.model_validate(msg.sdp)


def test_response_takes_method_from_cseq_and_collects_all_via_branches() -> None:
    msg = parse(RINGING)
    assert not msg.is_request
    assert (msg.status, msg.reason, msg.method) == (180, "Ringing", "INVITE")
    assert msg.via_branches == ["z9hG4bK4b43c2ff8.1", "z9hG4bK77ef4c2312983.1", "z9hG4bKnashds8"]
    assert msg.via_branch == "z9hG4bK4b43c2ff8.1"
    assert msg.to_tag == "a6c85cf"


def test_bye_reason_header_and_register_contact_expires() -> None:
    assert parse(BYE).reason_header == 'Q.850;cause=16;text="Normal call clearing"'
    reg = parse(REGISTER)
    assert reg.expires == 7200
    assert reg.from_tag == "456248"
    withexp = REGISTER.replace(b"Content-Length: 0", b"Expires: 3600\r\nContent-Length: 0")
    assert parse(withexp).expires == 3600  # the Expires header wins over the Contact parameter


def test_compact_forms_case_and_folding() -> None:
    data = crlf(
        "SUBSCRIBE sip:presence@example.com SIP/2.0\n"
        "v: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKa, SIP/2.0/UDP 10.0.0.2;BRANCH=z9hG4bKb\n"
        "f: <sip:a@example.com>;TAG=ft\n"
        "t: sip:b@example.com\n"
        "i: compact-1\n"
        "CSEQ: 7 SUBSCRIBE\n"
        "m: <sip:a@10.0.0.1>;expires=60\n"
        "o: presence\n"
        "k: timer\n"
        "s: a folded\n"
        "  subject line\n"
        "ROUTE: <sip:p1.example.com;lr>\n"
        "route: <sip:p2.example.com;lr>\n"
        "c: text/plain\n"
        "l: 5\n"
        "\n"
        "hello"
    )
    msg = parse(data)
    assert msg.call_id == "compact-1"
    assert msg.cseq == 7
    assert msg.via_branches == ["z9hG4bKa", "z9hG4bKb"]
    assert msg.from_tag == "ft"
    assert (msg.to_uri, msg.to_user, msg.to_display) == ("sip:b@example.com", "b", None)
    assert msg.expires == 60
    assert msg.content_type == "text/plain"
    assert msg.headers == {
        "Event": "presence",
        "Supported": "timer",
        "Subject": "a folded subject line",
        "Route": "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
    }


def test_bare_lf_message_and_tel_uri() -> None:
    data = (
        b"MESSAGE tel:+4930123 SIP/2.0\nCall-ID: lf-1\nCSeq: 2 MESSAGE\nFrom: <tel:+4930999;phone-context=x>;tag=1\n"
        b"To: tel:+4930123\nContent-Length: 0\n\n"
    )
    msg = parse(data)
    assert (msg.from_user, msg.from_tag, msg.to_user) == ("+4930999", "1", "+4930123")


def test_content_length_bounds_the_body() -> None:
    data = INVITE + b"\x00\x00padding"
    assert parse(data).sdp == parse(INVITE).sdp


def test_correlation_headers_are_configurable() -> None:
    msg = parse(INVITE, correlation_headers=("X-CID", "x-other"))
    assert msg.correlation == {"x-cid": "0c2a7f1e-leg-link"}
    assert parse(INVITE, correlation_headers=()).correlation == {}


def test_non_utf8_message_falls_back_to_latin1() -> None:
    data = OPTIONS.replace(b"From: <sip:ping", b'From: "Jos\xe9" <sip:ping')
    msg = parse(data)
    assert msg.from_display == "José"
    assert "José" in msg.raw


# --------------------------------------------------------------------------- SDP


def test_sdp_media_before_connection_and_per_media_connection() -> None:
    sdp = summarize(
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.1.1.1\r\na=sendonly\r\n"
        "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        "m=image 5000 udptl t38\r\nc=IN IP6 2001:db8::5/64\r\n"
    )
    assert sdp["connection"] is None
    audio, video, image = sdp["media"]
    assert (audio["connection"], audio["direction"], audio["codecs"]) == ("10.1.1.1", "sendonly", ["PCMU/8000"])
    assert (video["port"], video["connection"], video["codecs"]) == (0, None, ["H264/90000"])
    assert (image["media"], image["proto"], image["formats"], image["connection"]) == (
        "image",
        "udptl",
        ["t38"],
        "2001:db8::5",
    )
    SdpSummary.model_validate(sdp)


def test_sdp_garbage_is_skipped_and_clipped() -> None:
    sdp = summarize(
        "junk\nm=audio notaport RTP/AVP 0\nm=audio 99999 RTP/AVP 0\nm=\nc=IN\na=rtpmap:\n"
        + "m=audio 1 RTP/AVP "
        + " ".join(str(i) for i in range(200))
        + "\n"
        + "".join(f"m=audio {i} RTP/AVP 0\n" for i in range(50))
    )
    assert len(sdp["media"]) == 32
    assert len(sdp["media"][0]["formats"]) == 64
    SdpSummary.model_validate(sdp)


def test_vq_rtcpxr_rfc6035_layout() -> None:
    report = parse_vq_report(
        "VQSessionReport: CallTerm\r\n"
        "CallID:6dwfm-7qyg2@192.0.2.10\r\n"
        "LocalID:<sip:alice@example.org>\r\n"
        "LocalAddr:IP=10.10.1.100 PORT=5000 SSRC=0x2468abcd\r\n"
        "LocalMetrics:\r\n"
        'SessionDesc:PT=18 PD=G729 SR=8000 FD=20 FMTP="annexb=no" PLC=3\r\n'
        "PacketLoss:NLR=5.0 JDR=2.0\r\n"
        "Delay:RTD=200 ESD=140 IAJ=2\r\n"
        "RemoteMetrics:\r\n"
        "PacketLoss:NLR=1.5\r\n"
    )
    assert report["type"] == "VQSessionReport: CallTerm"
    assert report["CallID"] == "6dwfm-7qyg2@192.0.2.10"
    assert report["LocalAddr"] == {"IP": "10.10.1.100", "PORT": 5000, "SSRC": "0x2468abcd"}
    assert report["SessionDesc"]["FMTP"] == "annexb=no"
    assert report["PacketLoss"] == {"NLR": 5.0, "JDR": 2.0}
    assert report["Delay"]["IAJ"] == 2
    assert report["RemoteMetrics"] == {"PacketLoss": {"NLR": 1.5}}


# --------------------------------------------------------------------------- bad input


def _with(header_lines: str, start: str = "OPTIONS sip:x@example.com SIP/2.0", body: bytes = b"") -> bytes:
    return crlf(start + "\n" + header_lines + "\n\n") + body


_BASE = "Call-ID: c1\nCSeq: 1 OPTIONS\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>\nVia: SIP/2.0/UDP h;branch=z9hG4bKx"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not_sip"),
        (b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", "not_sip"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "not_sip"),
        (b"POST /sip HTTP/1.0\r\n\r\n", "not_sip"),
        (b"SIP/2.0", "start_line"),  # sip3's PACKET_1 payload
        (b"NOTIFY", "start_line"),  # sip3's PACKET_2 payload
        (b"\x00\x01\x02\x03", "start_line"),
        (_with(_BASE, start="SIP/2.0 99 Too Low"), "start_line"),
        (_with(_BASE, start="SIP/2.0 2OO OK"), "start_line"),
        (_with(_BASE, start="INVITE sip:x SIP/3.0"), "start_line"),
        (_with(_BASE, start="INV1TE sip:x SIP/2.0"), "start_line"),
        (_with(_BASE, start="INVITE  SIP/2.0"), "start_line"),
        (_with(_BASE, start="INVITE sip:" + "x" * 2000 + " SIP/2.0"), "oversized"),
        (_with(_BASE + "\nthis line has no colon"), "header"),
        (_with(_BASE + "\n: no name"), "header"),
        (_with(_BASE + "\nBad Name: x"), "header"),
        (_with(_BASE.replace("Call-ID: c1\n", "")), "call_id"),
        (_with(_BASE.replace("Call-ID: c1", "Call-ID:")), "call_id"),
        (_with(_BASE.replace("Call-ID: c1", "Call-ID: " + "x" * 1025)), "call_id"),
        (_with(_BASE.replace("CSeq: 1 OPTIONS\n", "")), "cseq"),
        (_with(_BASE.replace("CSeq: 1 OPTIONS", "CSeq: one OPTIONS")), "cseq"),
        (_with(_BASE.replace("CSeq: 1 OPTIONS", "CSeq: 4294967296 OPTIONS")), "cseq"),
        (_with(_BASE.replace("CSeq: 1 OPTIONS", "CSeq:")), "cseq"),
        (_with(_BASE + "\nContent-Length: 10", body=b"short"), "content_length"),
        (_with(_BASE + "\nContent-Length: 4294967296", body=b"x"), "content_length"),
        (_with(_BASE + "\nContent-Length: 99999999999999999999"), "content_length"),
        (_with(_BASE + "\nContent-Length: abc"), "content_length"),
        (_with(_BASE + "\nContent-Length: -1"), "content_length"),
        (_with(_BASE + "\nContent-Length:"), "content_length"),
        (_with(_BASE + "\nContent-Length: ²"), "content_length"),  # a digit to str.isdigit, not to int()
        (_with(_BASE + "\nWarning: " + "w" * 9000), "oversized"),
        (_with(_BASE + "\nReason: " + "r" * 9000), "oversized"),
        (_with(_BASE + "".join(f"\nX-H{i}: v" for i in range(300))), "oversized"),
        (b"OPTIONS sip:x SIP/2.0\r\n" + b"X: y\r\n" * 20000, "oversized"),  # > max_message_bytes
    ],
)
def test_bad_sip_raises_sip_error_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(SipError) as info:
        parse(data)
    assert info.value.reason == reason
    assert isinstance(info.value, DecodeError)


def test_optional_headers_that_are_bad_leave_fields_empty() -> None:
    data = _with(_BASE + "\nExpires: soon\nFrom-Bogus: x\nP-Asserted-Identity: <broken\nSession-ID:")
    msg = parse(data)
    assert msg.expires is None
    assert msg.pai is None
    assert msg.session_id is None


def test_long_reason_phrase_and_reason_header_are_clipped() -> None:
    data = _with(_BASE + "\nReason: " + "r" * 1000, start="SIP/2.0 500 " + "x" * 1000)
    msg = parse(data)
    assert msg.reason is not None
    assert len(msg.reason) == 256
    assert msg.reason_header is not None
    assert len(msg.reason_header) == 512
