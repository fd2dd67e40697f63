"""Body models, one per envelope kind: the kind's own fields.

They are contracts between collectors and processors: collectors fill them,
processors and the store read them. Fields are optional where a source may not
know them; every model forbids unknown fields so a typo fails loudly, and keeps
an ``extra`` mapping for source fields that have no column of their own.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Endpoint(_Body):
    """An IP endpoint as seen on the wire."""

    ip: str = Field(max_length=64)
    port: int = Field(ge=0, le=65535)


class SdpMedia(_Body):
    """One ``m=`` line of an SDP body with what belongs to it."""

    media: str = Field(max_length=32, description="audio, video, image (T.38) ...")
    port: int = Field(ge=0, le=65535)
    proto: str = Field(default="", max_length=64)
    formats: list[str] = Field(default_factory=list, max_length=64)
    codecs: list[str] = Field(default_factory=list, max_length=64, description="rtpmap names, e.g. PCMA/8000")
    connection: str | None = Field(default=None, max_length=64, description="c= address for this media")
    direction: str | None = Field(default=None, max_length=16, description="sendrecv, sendonly, recvonly, inactive")


class SdpSummary(_Body):
    connection: str | None = Field(default=None, max_length=64, description="session-level c= address")
    origin: str | None = Field(default=None, max_length=256)
    media: list[SdpMedia] = Field(default_factory=list, max_length=32)


class SipBody(_Body):
    """One SIP message as captured (HEP payload type 1, a pcap, a probe) on one node.

    Header values are as on the wire (unfolded, compact forms expanded to their
    long names in ``headers``); users and tags are parsed out of From/To.
    """

    src: Endpoint
    dst: Endpoint
    transport: Literal["udp", "tcp", "tls", "sctp", "ws", "wss", "other"] = "udp"
    capture_id: int | None = Field(default=None, ge=0)
    capture_name: str | None = None
    correlation_id: str | None = Field(default=None, max_length=1024, description="HEP chunk 0x0011 when present.")
    is_request: bool
    method: str | None = Field(
        default=None, max_length=32, description="Request method, or the CSeq method of a response."
    )
    request_uri: str | None = Field(default=None, max_length=1024)
    status: int | None = Field(default=None, ge=100, le=699)
    reason: str | None = Field(default=None, max_length=256, description="Reason phrase of a response.")
    call_id: str = Field(max_length=1024)
    cseq: int | None = Field(default=None, ge=0)
    from_user: str | None = None
    from_display: str | None = None
    from_uri: str | None = None
    from_tag: str | None = None
    to_user: str | None = None
    to_display: str | None = None
    to_uri: str | None = None
    to_tag: str | None = None
    via_branch: str | None = Field(default=None, description="Branch of the top Via.")
    via_branches: list[str] = Field(default_factory=list, max_length=32)
    contact: str | None = None
    user_agent: str | None = None
    server: str | None = None
    pai: str | None = Field(default=None, description="P-Asserted-Identity URI (first).")
    pai_user: str | None = None
    session_id: str | None = Field(default=None, max_length=256, description="Session-ID (RFC 7989) local uuid.")
    expires: int | None = Field(default=None, ge=0, description="Expires header, or the Contact's expires parameter.")
    reason_header: str | None = Field(
        default=None, max_length=512, description="Reason header (RFC 3326), e.g. Q.850;cause=16."
    )
    content_type: str | None = None
    correlation: dict[str, str] = Field(
        default_factory=dict, description="Configured correlation headers found (lower-case name -> value), e.g. x-cid."
    )
    sdp: SdpSummary | None = None
    vq_report: dict[str, Any] | None = Field(
        default=None, description="VQ-RTCPXR (RFC 6035) body of a PUBLISH, parsed."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Other selected headers (Route, Record-Route ...)."
    )
    raw: str = Field(description="The SIP message as text (latin-1 for non-UTF-8 bytes).")


class RtcpBody(_Body):
    """An RTCP report (HEP type 5, rtpengine's JSON) tied to a call by its correlation id (the Call-ID)."""

    src: Endpoint
    dst: Endpoint
    capture_id: int | None = Field(default=None, ge=0)
    correlation_id: str | None = Field(default=None, max_length=1024)
    report: dict[str, Any] = Field(description="The decoded RTCP JSON document as sent.")


class AmiBody(_Body):
    """One Asterisk Manager Interface event (or a collector marker such as a gap)."""

    event: str = Field(min_length=1, max_length=128)
    fields: dict[str, str] = Field(default_factory=dict)
    dialect: Literal["asterisk11", "asterisk13", "unknown"] = "unknown"


class CdrBody(_Body):
    """One CDR row (cdr_csv Master.csv or a cdr_custom mapping)."""

    uniqueid: str
    linkedid: str | None = None
    src: str = ""
    dst: str = ""
    start: str | None = None
    answer: str | None = None
    end: str | None = None
    duration: int | None = Field(default=None, ge=0)
    billsec: int | None = Field(default=None, ge=0)
    disposition: str = ""
    fields: dict[str, str] = Field(default_factory=dict, description="Every column of the row by name.")


class CelBody(_Body):
    """One CEL event row (cel_custom CSV)."""

    eventtype: str = Field(min_length=1)
    uniqueid: str
    linkedid: str | None = None
    channame: str = ""
    extra: dict[str, Any] | str | None = None
    fields: dict[str, str] = Field(default_factory=dict)


class QueueLogBody(_Body):
    """One queue_log line: ``epoch|callid|queue|agent|event|data1|...|data5``."""

    callid: str
    queue: str
    agent: str
    event: str = Field(min_length=1, max_length=64)
    data: list[str] = Field(default_factory=list, max_length=16)


class OptionsBody(_Body):
    """The result of one SIP OPTIONS probe, sent actively or seen passively."""

    target: str = Field(min_length=1, max_length=256)
    target_kind: Literal["trunk", "node", "subscriber", "other"] = "trunk"
    uri: str = ""
    transport: Literal["udp", "tcp", "tls"] = "udp"
    passive: bool = False
    status: int | None = Field(default=None, ge=100, le=699)
    reason: str | None = None
    rtt_ms: float | None = Field(default=None, ge=0)
    server: str | None = None
    error: Literal["timeout", "refused", "dns", "tls", "malformed", "unexpected_code"] | None = None
    error_detail: str | None = Field(default=None, max_length=256, description="Short text on the error.")
    remote: str | None = Field(default=None, max_length=128, description="Address actually probed (IP:PORT).")
    attempts: int | None = Field(
        default=None, ge=0, description="Transmissions of the request (UDP retransmissions included)."
    )


class LogBody(_Body):
    """A log line (HEP type 100 or a collector's own)."""

    src: Endpoint | None = None
    dst: Endpoint | None = None
    capture_id: int | None = Field(default=None, ge=0)
    message: str
    level: str | None = None
    correlation_id: str | None = Field(default=None, max_length=1024)
    call_id: str | None = Field(default=None, max_length=1024)
    source: str | None = None
