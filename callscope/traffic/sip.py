"""SIP, SDP, RTCP and HEP3 builders for generated traffic: pure, bytes out.

A :class:`Dialog` writes the requests and responses of one SIP dialog as one endpoint pair
sees it; :func:`hep` wraps a payload in a HEP3 packet stamped with the capturing node.
Nothing here draws random numbers: callers pass every varying value in, so the same plan
gives the same bytes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

from collectors.hep.decode import HepPacket, encode_hep3

#: HEP payload types used here: SIP, RTCP as JSON (rtpengine), a log line.
SIP, RTCP_JSON, LOG = 1, 5, 100
HEP_KIND = {SIP: "sip", RTCP_JSON: "rtcp", LOG: "log"}


def hex_id(rng: random.Random, n: int) -> str:
    """``n`` lowercase hex digits."""
    return f"{rng.getrandbits(4 * n):0{n}x}"


def sdp(ip: str, port: int, session: int) -> str:
    """An audio offer/answer: PCMA, PCMU and telephone-event."""
    return (
        f"v=0\r\no=- {session} {session} IN IP4 {ip}\r\ns=callscope\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )


@dataclass
class Dialog:
    """One SIP dialog between a caller (``via_host``) and the next hop; ``extra`` is one more header line."""

    call_id: str
    from_uri: str
    from_tag: str
    to_uri: str
    branch: str
    via_host: str
    agent: str = "callscope-generate"
    extra: str = ""
    to_tag: str = ""
    cseq: int = 1

    def request(
        self, method: str, uri: str | None = None, body: str = "", *, to_tag: bool = False, cseq: int | None = None
    ) -> bytes:
        to = f"<{self.to_uri}>" + (f";tag={self.to_tag}" if to_tag and self.to_tag else "")
        user = self.from_uri.split(":", 1)[1].split("@")[0]
        lines = [
            f"{method} {uri or self.to_uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.via_host}:5060;branch=z9hG4bK{self.branch}",
            "Max-Forwards: 70",
            f'From: "{user}" <{self.from_uri}>;tag={self.from_tag}',
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq if cseq is None else cseq} {method}",
            f"Contact: <sip:{user}@{self.via_host}:5060>",
            f"User-Agent: {self.agent}",
        ]
        if self.extra:
            lines.append(self.extra)
        return _finish(lines, body)

    def request_from_callee(self, method: str, contact_host: str, *, cseq: int, branch: str) -> bytes:
        """A request the callee sends inside the dialog (a BYE from the called side)."""
        user = self.to_uri.split(":", 1)[1].split("@")[0]
        lines = [
            f"{method} {self.from_uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {contact_host}:5060;branch=z9hG4bK{branch}",
            "Max-Forwards: 70",
            f"From: <{self.to_uri}>;tag={self.to_tag}",
            f"To: <{self.from_uri}>;tag={self.from_tag}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{user}@{contact_host}:5060>",
            f"User-Agent: {self.agent}",
        ]
        return _finish(lines, "")

    def response(
        self,
        status: int,
        reason: str,
        method: str,
        body: str = "",
        *,
        tag: bool = True,
        cseq: int | None = None,
        branch: str | None = None,
        via_host: str | None = None,
        callee_side: bool = False,
    ) -> bytes:
        """A response; ``callee_side`` answers a request the callee sent (From/To swapped)."""
        to = f"<{self.to_uri}>" + (f";tag={self.to_tag}" if tag and self.to_tag else "")
        frm = f"<{self.from_uri}>;tag={self.from_tag}"
        if callee_side:
            frm, to = f"<{self.to_uri}>;tag={self.to_tag}", f"<{self.from_uri}>;tag={self.from_tag}"
        lines = [
            f"SIP/2.0 {status} {reason}",
            f"Via: SIP/2.0/UDP {via_host or self.via_host}:5060;branch=z9hG4bK{branch or self.branch}",
            f"From: {frm}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq if cseq is None else cseq} {method}",
            f"Server: {self.agent}",
        ]
        if self.extra and status < 300 and not callee_side:
            lines.append(self.extra)
        return _finish(lines, body)


def _finish(lines: list[str], body: str) -> bytes:
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def rtcp_report(rng: random.Random) -> bytes:
    """A sender report with one report block, as rtpengine writes it in HEP type 5 JSON."""
    lost = rng.choice((0, 0, 0, 1, 3, 12))
    doc = {
        "sender_information": {
            "ntp_timestamp_sec": 3900000000 + rng.randrange(10**6),
            "ntp_timestamp_usec": rng.randrange(10**6),
            "rtp_timestamp": rng.randrange(2**32),
            "packets": 250,
            "octets": 40000,
        },
        "ssrc": rng.randrange(2**32),
        "type": 200,
        "report_count": 1,
        "report_blocks": [
            {
                "source_ssrc": rng.randrange(2**32),
                "fraction_lost": lost,
                "packets_lost": lost,
                "highest_seq_no": rng.randrange(65536),
                "ia_jitter": rng.randrange(2, 80),
                "lsr": 0,
                "dlsr": 0,
            }
        ],
        "sdes_ssrc": 0,
    }
    return orjson.dumps(doc)


def hep(
    *,
    ts_us: int,
    src: tuple[str, int],
    dst: tuple[str, int],
    capture_id: int,
    capture_name: str | None = None,
    payload: bytes,
    payload_type: int = SIP,
    correlation_id: str | None = None,
) -> bytes:
    """One HEP3 packet over UDP/IPv4 as the capturing node would send it."""
    return encode_hep3(
        HepPacket(
            version=3,
            family=2,
            protocol=17,
            src_ip=src[0],
            src_port=src[1],
            dst_ip=dst[0],
            dst_port=dst[1],
            ts_sec=ts_us // 1_000_000,
            ts_usec=ts_us % 1_000_000,
            payload_type=payload_type,
            payload=payload,
            capture_id=capture_id,
            capture_name=capture_name,
            correlation_id=correlation_id,
        )
    )
