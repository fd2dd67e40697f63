"""Tests of the HEP collector's pure core: HEP decoding, SIP/SDP parsing, envelopes, fuzzing.

Shared helpers live here: the corpus (read in place from ``../shared/corpus``) and sample
SIP messages in the style of RFC 3261's examples.
"""

from __future__ import annotations


def crlf(text: str) -> bytes:
    """A message written with LF in the source, sent with CRLF as on the wire."""
    return text.replace("\n", "\r\n").encode()


SDP_OFFER = (
    "v=0\n"
    "o=alice 2890844526 2890844526 IN IP4 atlanta.example.com\n"
    "s=-\n"
    "c=IN IP4 192.0.2.101\n"
    "t=0 0\n"
    "m=audio 49172 RTP/AVP 0 8 101\n"
    "a=rtpmap:0 PCMU/8000\n"
    "a=rtpmap:101 telephone-event/8000\n"
    "a=sendrecv\n"
)

# RFC 3261 section 24.2 (F1), with an SDP offer and a few headers callscope reads.
INVITE = crlf(
    "INVITE sip:bob@biloxi.example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\n"
    "Max-Forwards: 70\n"
    'To: "Bob" <sip:bob@biloxi.example.com>\n'
    'From: "Alice Liddell" <sip:alice@atlanta.example.com>;tag=1928301774\n'
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\n"
    "CSeq: 314159 INVITE\n"
    "Contact: <sip:alice@pc33.atlanta.example.com>\n"
    'P-Asserted-Identity: "Alice" <sip:+15551234567@atlanta.example.com;user=phone>, <tel:+15551234567>\n'
    "Session-ID: ab30317f1a784dc48ff824d0d3715d86;remote=00000000000000000000000000000000\n"
    "User-Agent: softphone/1.0\n"
    "X-CID: 0c2a7f1e-leg-link\n"
    "Content-Type: application/sdp\n"
    f"Content-Length: {len(crlf(SDP_OFFER))}\n"
    "\n"
) + crlf(SDP_OFFER)

RINGING = crlf(
    "SIP/2.0 180 Ringing\n"
    "Via: SIP/2.0/UDP server10.biloxi.example.com;branch=z9hG4bK4b43c2ff8.1;received=192.0.2.3\n"
    "Via: SIP/2.0/UDP bigbox3.site3.atlanta.example.com;branch=z9hG4bK77ef4c2312983.1;received=192.0.2.2\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8;received=192.0.2.1\n"
    "To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\n"
    "Contact: <sip:bob@192.0.2.4>\n"
    "CSeq: 314159 INVITE\n"
    "Content-Length: 0\n"
    "\n"
)

BYE = crlf(
    "BYE sip:alice@pc33.atlanta.example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds10\n"
    "Max-Forwards: 70\n"
    "From: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\n"
    "To: Alice <sip:alice@atlanta.example.com>;tag=1928301774\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\n"
    "CSeq: 231 BYE\n"
    'Reason: Q.850;cause=16;text="Normal call clearing"\n'
    "Content-Length: 0\n"
    "\n"
)

REGISTER = crlf(
    "REGISTER sip:registrar.biloxi.example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7\n"
    "Max-Forwards: 70\n"
    "To: Bob <sip:bob@biloxi.example.com>\n"
    "From: Bob <sip:bob@biloxi.example.com>;tag=456248\n"
    "Call-ID: 843817637684230@998sdasdh09\n"
    "CSeq: 1826 REGISTER\n"
    "Contact: <sip:bob@192.0.2.4>;expires=7200\n"
    "Content-Length: 0\n"
    "\n"
)

OPTIONS = crlf(
    "OPTIONS sip:carrier.example.net SIP/2.0\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-opt-1\n"
    "From: <sip:ping@10.0.0.1>;tag=p1\n"
    "To: <sip:carrier.example.net>\n"
    "Call-ID: opt-1@10.0.0.1\n"
    "CSeq: 1 OPTIONS\n"
    "Max-Forwards: 70\n"
    "Content-Length: 0\n"
    "\n"
)

RTCP_JSON = (
    b'{"sender_information":{"ntp_timestamp_sec":3650797214,"packets":106,"ntp_timestamp_usec":1321734,'
    b'"octets":16960,"rtp_timestamp":16960},"ssrc":451916597,"type":200,"report_blocks":[{"source_ssrc":898343773,'
    b'"highest_seq_no":20881,"fraction_lost":0,"ia_jitter":1,"packets_lost":0,"lsr":-1097006646,"dlsr":7733}],'
    b'"report_count":1}'
)
