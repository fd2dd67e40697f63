"""Recorded-shape scenarios for the call routes, inserted straight into the correlated tables.

``ab_answered_via_sbc``: a carrier calls through the SBC (sbc1) to Asterisk (ast1); the
callee hangs up.

- a-leg ``A_LEG`` carrier 203.0.113.5:5060 <-> sbc1 10.0.0.10:5060, captured on sbc1 only;
  the 200 OK is retransmitted once (the carrier's ACK came late);
- b-leg ``B_LEG`` sbc1 10.0.0.10:5080 <-> ast1 10.0.0.20:5060, captured on sbc1 *and* ast1
  (every packet twice, 0.3 ms apart), HEP correlation id = the a-leg's Call-ID;
- call_links: both directions (hep_correlation_id) and an X-CID value carried by both legs;
- one media quality report on the a-leg, one log line correlated to the b-leg.

So: 22 stored messages, 15 distinct hops (8 a-leg incl. the retransmission, 7 b-leg).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from callscope.store.client import Store
from schemas.tables import COLUMNS, row_from_dict

T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
A_LEG = "a-leg-1@carrier.example.net"
B_LEG = "b-leg-1@sbc1.example.net"
X_CID = "xc-4711"
CARRIER = ("203.0.113.5", 5060)
SBC_OUT = ("10.0.0.10", 5060)
SBC_IN = ("10.0.0.10", 5080)
AST = ("10.0.0.20", 5060)
REASONS = {100: "Trying", 180: "Ringing", 200: "OK", 486: "Busy Here", 487: "Request Terminated"}

STORED_MESSAGES = 22
DISTINCT_HOPS = 15


@dataclass
class Hop:
    """One message on one hop: sent at ``at`` ms after T0."""

    at: float
    call_id: str
    src: tuple[str, int]
    dst: tuple[str, int]
    method: str
    cseq: int
    status: int = 0
    branch: str = ""


def sip_text(hop: Hop, from_tag: str, to_tag: str) -> str:
    uri = "sip:4930123@10.0.0.20" if hop.call_id == B_LEG else "sip:4930123@10.0.0.10"
    first = f"{hop.method} {uri} SIP/2.0" if not hop.status else f"SIP/2.0 {hop.status} {REASONS[hop.status]}"
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 10.0.0.20\r\ns=-\r\nc=IN IP4 10.0.0.20\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        if hop.method == "INVITE" and hop.status in (0, 200)
        else ""
    )
    lines = [
        first,
        f"Via: SIP/2.0/UDP {hop.src[0] if not hop.status else hop.dst[0]}:5060;branch={hop.branch}",
        f"From: <sip:+15551234@carrier.example.net>;tag={from_tag}",
        f"To: <sip:4930123@10.0.0.10>{';tag=' + to_tag if to_tag else ''}",
        f"Call-ID: {hop.call_id}",
        f"CSeq: {hop.cseq} {hop.method}",
        "User-Agent: scenario/1.0",
        f"Content-Length: {len(sdp)}",
        "",
        sdp,
    ]
    return "\r\n".join(lines)


def envelope(hop: Hop, node: str, delay_ms: float = 0.0, correlation_id: str | None = None) -> dict[str, Any]:
    ts = T0 + timedelta(milliseconds=hop.at + delay_ms)
    from_tag = "ftA" if hop.call_id == A_LEG else "ftB"
    to_tag = "" if hop.status in (0, 100) and hop.method == "INVITE" else ("ttA" if hop.call_id == A_LEG else "ttB")
    body: dict[str, Any] = {
        "src": {"ip": hop.src[0], "port": hop.src[1]},
        "dst": {"ip": hop.dst[0], "port": hop.dst[1]},
        "transport": "udp",
        "is_request": not hop.status,
        "method": hop.method,
        "call_id": hop.call_id,
        "cseq": hop.cseq,
        "from_user": "+15551234",
        "from_tag": from_tag,
        "to_user": "4930123",
        "to_tag": to_tag,
        "via_branch": hop.branch,
        "user_agent": "scenario/1.0",
        "raw": sip_text(hop, from_tag, to_tag),
    }
    if hop.status:
        body["status"] = hop.status
        body["reason"] = REASONS[hop.status]
    if correlation_id:
        body["correlation_id"] = correlation_id
    iso = ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "v": 1,
        "kind": "sip",
        "id": f"{node}-{hop.call_id}-{hop.at}-{hop.method}-{hop.status}",
        "node": node,
        "role": "sbc" if node == "sbc1" else "logic",
        "ts": iso,
        "received": iso,
        "key": hop.call_id,
        "body": body,
    }


def a_leg_hops() -> list[Hop]:
    inv = "z9hG4bKa1"
    return [
        Hop(0, A_LEG, CARRIER, SBC_OUT, "INVITE", 1, branch=inv),
        Hop(2, A_LEG, SBC_OUT, CARRIER, "INVITE", 1, 100, inv),
        Hop(60, A_LEG, SBC_OUT, CARRIER, "INVITE", 1, 180, inv),
        Hop(2000, A_LEG, SBC_OUT, CARRIER, "INVITE", 1, 200, inv),
        Hop(2500, A_LEG, SBC_OUT, CARRIER, "INVITE", 1, 200, inv),  # retransmission
        Hop(2520, A_LEG, CARRIER, SBC_OUT, "ACK", 1, branch="z9hG4bKa2"),
        Hop(30050, A_LEG, SBC_OUT, CARRIER, "BYE", 2, branch="z9hG4bKa3"),
        Hop(30080, A_LEG, CARRIER, SBC_OUT, "BYE", 2, 200, "z9hG4bKa3"),
    ]


def b_leg_hops() -> list[Hop]:
    inv = "z9hG4bKb1"
    return [
        Hop(5, B_LEG, SBC_IN, AST, "INVITE", 1, branch=inv),
        Hop(7, B_LEG, AST, SBC_IN, "INVITE", 1, 100, inv),
        Hop(55, B_LEG, AST, SBC_IN, "INVITE", 1, 180, inv),
        Hop(1990, B_LEG, AST, SBC_IN, "INVITE", 1, 200, inv),
        Hop(2005, B_LEG, SBC_IN, AST, "ACK", 1, branch="z9hG4bKb2"),
        Hop(30000, B_LEG, AST, SBC_IN, "BYE", 2, branch="z9hG4bKb3"),
        Hop(30010, B_LEG, SBC_IN, AST, "BYE", 2, 200, "z9hG4bKb3"),
    ]


def scenario_envelopes() -> list[dict[str, Any]]:
    """The 22 captured copies of ab_answered_via_sbc."""
    out = [envelope(h, "sbc1") for h in a_leg_hops()]
    for hop in b_leg_hops():
        out.append(envelope(hop, "sbc1", correlation_id=A_LEG))
        out.append(envelope(hop, "ast1", delay_ms=0.3, correlation_id=A_LEG))
    return out


def insert_messages(store: Store, envelopes: list[dict[str, Any]]) -> None:
    rows = [row_from_dict("sip", e)[1] for e in envelopes]
    store.insert("sip_messages", rows, COLUMNS["sip_messages"])


def leg_row(call_id: str, started_at: datetime, **over: Any) -> dict[str, Any]:
    """A call_legs row with every column of the table (defaults of a completed call)."""
    row: dict[str, Any] = {
        "id": f"{call_id}:ft@1",
        "call_id": call_id,
        "leg_id": f"{call_id}:ft",
        "from_tag": "ft",
        "to_tag": "tt",
        "caller": "+15551234",
        "callee": "4930123",
        "caller_display": "",
        "pai": "",
        "request_uri": "sip:4930123@10.0.0.10",
        "started_at": started_at,
        "ringing_at": started_at + timedelta(milliseconds=60),
        "answered_at": started_at + timedelta(seconds=2),
        "ended_at": started_at + timedelta(seconds=30),
        "pdd_ms": 60,
        "setup_ms": 2000,
        "duration_secs": 28.0,
        "status": 200,
        "reason": "OK",
        "reason_header": "",
        "ended_by": "callee",
        "state": "completed",
        "nodes": ["sbc1"],
        "src_ip": "203.0.113.5",
        "dst_ip": "10.0.0.10",
        "user_agent": "scenario/1.0",
        "codecs": ["PCMA/8000"],
        "correlation_ids": [],
        "x_cid": "",
        "session_id": "",
        "message_count": 8,
        "retransmissions": 0,
        "reinvites": 0,
        "version": 1,
        "updated_at": started_at + timedelta(seconds=30),
        "checkpoint": "",
    }
    row.update(over)
    return row


def insert_dicts(store: Store, table: str, rows: list[dict[str, Any]]) -> None:
    names = list(rows[0])
    store.insert(table, [[r[n] for n in names] for r in rows], names)


def seed_scenario(store: Store) -> None:
    """ab_answered_via_sbc in every table the trace reads."""
    insert_messages(store, scenario_envelopes())
    insert_dicts(
        store,
        "call_legs",
        [
            # An older version of the a-leg (ringing) that FINAL must hide.
            leg_row(A_LEG, T0, id=f"{A_LEG}:ftA@0", leg_id=f"{A_LEG}:ftA", from_tag="ftA", state="ringing",
                    status=0, version=0, x_cid=X_CID),
            leg_row(A_LEG, T0, id=f"{A_LEG}:ftA@1", leg_id=f"{A_LEG}:ftA", from_tag="ftA", x_cid=X_CID,
                    retransmissions=1),
            leg_row(B_LEG, T0 + timedelta(milliseconds=5), id=f"{B_LEG}:ftB@1", leg_id=f"{B_LEG}:ftB",
                    from_tag="ftB", nodes=["ast1", "sbc1"], src_ip="10.0.0.10", dst_ip="10.0.0.20",
                    correlation_ids=[A_LEG], x_cid=X_CID, message_count=14),
        ],
    )  # fmt: skip
    link_ts = T0 + timedelta(milliseconds=5)
    insert_dicts(
        store,
        "call_links",
        [
            {"id": f"{B_LEG}|{A_LEG}|hep", "call_id": B_LEG, "linked_call_id": A_LEG,
             "via": "hep_correlation_id", "value": A_LEG, "ts": link_ts},
            {"id": f"{A_LEG}|{B_LEG}|hep", "call_id": A_LEG, "linked_call_id": B_LEG,
             "via": "hep_correlation_id", "value": A_LEG, "ts": link_ts},
            {"id": f"{A_LEG}||x", "call_id": A_LEG, "linked_call_id": "", "via": "header:x-cid",
             "value": X_CID, "ts": T0},
            {"id": f"{B_LEG}||x", "call_id": B_LEG, "linked_call_id": "", "via": "header:x-cid",
             "value": X_CID, "ts": link_ts},
        ],
    )  # fmt: skip
    insert_dicts(
        store,
        "media_quality",
        [
            {"id": "mq1", "call_id": A_LEG, "correlation_id": A_LEG, "node": "rtp1",
             "ts": T0 + timedelta(seconds=10), "src_ip": "10.0.0.30", "src_port": 30000, "dst_ip": "203.0.113.5",
             "dst_port": 40000, "ssrc": 1, "source_ssrc": 2, "report_type": "RR", "packets_lost": 3,
             "fraction_lost": 0.01, "jitter_ms": 4.5, "rtt_ms": None, "r_factor": 90.1, "mos": 4.3,
             "missing": ["rtt"], "clock_rate": 8000, "codec": "PCMA"},
        ],
    )  # fmt: skip
    insert_dicts(
        store,
        "logs",
        [
            {"id": "log1", "node": "ast1", "role": "logic", "ts": T0 + timedelta(milliseconds=6),
             "received": T0 + timedelta(milliseconds=6), "key": B_LEG, "body": "{}", "level": "info",
             "message": "dialplan: routed to queue support", "correlation_id": B_LEG, "call_id": ""},
            {"id": "log-other", "node": "ast1", "role": "logic", "ts": T0, "received": T0, "key": "other",
             "body": "{}", "level": "info", "message": "unrelated", "correlation_id": "other", "call_id": "other"},
        ],
    )  # fmt: skip
