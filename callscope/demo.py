"""``callscope demo``: realistic HEP3 traffic so a newcomer sees data within a minute.

A made-up two-node platform: an SBC (``sbc1``, capture id 101, 10.0.0.10) in front of a
proxy (``proxy1``, capture id 102, 10.0.0.20). Each call has two legs with their own
Call-IDs, linked by an ``X-CID`` header on the inner leg. The mix: answered calls
(INVITE/100/180/200/ACK/BYE/200 with SDP, an RTCP report as JSON with the Call-ID as
correlation id, and a log line), busy (486), cancelled (CANCEL/200/487/ACK), failed
(404, 408, 503), registrations (REGISTER 401 then 200) and OPTIONS keep-alives.

:func:`generate` is pure: the same seed and start time give the same packets. The CLI
sends them over UDP (or one TCP connection) to 127.0.0.1 unless told another host.
"""

from __future__ import annotations

import random
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

import orjson

from collectors.hep.decode import HepPacket, encode_hep3

SBC = ("sbc1", 101, "10.0.0.10")
PROXY = ("proxy1", 102, "10.0.0.20")
CARRIER_IP = "203.0.113.5"
PHONE_NET = "192.168.50."
MEDIA_IP = "10.0.0.30"
OUTCOMES = ("answered", "busy", "cancelled", "failed_404", "failed_408", "failed_503")
OUTCOME_WEIGHTS = (55, 10, 10, 9, 8, 8)


@dataclass
class DemoTraffic:
    """Packets to send, in time order, and what they are."""

    packets: list[bytes] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)  # sip / rtcp / log
    scenarios: Counter[str] = field(default_factory=Counter)  # answered, busy, ..., registration, options
    call_ids: list[str] = field(default_factory=list)


@dataclass
class _Hop:
    node: tuple[str, int, str]
    src: tuple[str, int]
    dst: tuple[str, int]


class _Builder:
    def __init__(self, rng: random.Random, start_us: int, traffic: DemoTraffic) -> None:
        self.rng = rng
        self.now_us = start_us
        self.traffic = traffic
        self._items: list[tuple[int, int, bytes]] = []
        self._seq = 0

    def tick(self, ms: float) -> None:
        self.now_us += int(ms * 1000)

    def emit(
        self,
        hop: _Hop,
        payload: bytes,
        *,
        at_us: int | None = None,
        payload_type: int = 1,
        correlation_id: str | None = None,
        reverse: bool = False,
    ) -> None:
        src, dst = (hop.dst, hop.src) if reverse else (hop.src, hop.dst)
        ts = self.now_us if at_us is None else at_us
        pkt = HepPacket(
            version=3,
            family=2,
            protocol=17,
            src_ip=src[0],
            src_port=src[1],
            dst_ip=dst[0],
            dst_port=dst[1],
            ts_sec=ts // 1_000_000,
            ts_usec=ts % 1_000_000,
            payload_type=payload_type,
            payload=payload,
            capture_id=hop.node[1],
            capture_name=hop.node[0],
            correlation_id=correlation_id,
        )
        self._seq += 1
        self._items.append((ts, self._seq, encode_hep3(pkt)))
        self.traffic.kinds[{1: "sip", 5: "rtcp", 100: "log"}[payload_type]] += 1

    def finish(self) -> None:
        self._items.sort()
        self.traffic.packets.extend(item[2] for item in self._items)


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _sdp(ip: str, port: int, session: int) -> str:
    return (
        f"v=0\r\no=- {session} {session} IN IP4 {ip}\r\ns=callscope demo\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )


@dataclass
class _Dialog:
    call_id: str
    from_uri: str
    from_tag: str
    to_uri: str
    branch: str
    via_host: str
    extra: str = ""
    to_tag: str = ""
    cseq: int = 1

    def request(
        self, method: str, uri: str, cseq_method: str | None = None, body: str = "", *, to_tag: bool = False
    ) -> bytes:
        to = f"<{self.to_uri}>" + (f";tag={self.to_tag}" if to_tag and self.to_tag else "")
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.via_host}:5060;branch=z9hG4bK{self.branch}",
            "Max-Forwards: 70",
            f'From: "Demo" <{self.from_uri}>;tag={self.from_tag}',
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} {cseq_method or method}",
            f"Contact: <sip:{self.from_uri.split(':', 1)[1].split('@')[0]}@{self.via_host}:5060>",
            "User-Agent: callscope-demo",
        ]
        if self.extra:
            lines.append(self.extra)
        return _finish(lines, body)

    def response(self, status: int, reason: str, method: str, body: str = "", *, tag: bool = True) -> bytes:
        to = f"<{self.to_uri}>" + (f";tag={self.to_tag}" if tag and self.to_tag else "")
        lines = [
            f"SIP/2.0 {status} {reason}",
            f"Via: SIP/2.0/UDP {self.via_host}:5060;branch=z9hG4bK{self.branch}",
            f'From: "Demo" <{self.from_uri}>;tag={self.from_tag}',
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} {method}",
            "Server: callscope-demo",
        ]
        if self.extra and status < 300:
            lines.append(self.extra)
        return _finish(lines, body)


def _finish(lines: list[str], body: str) -> bytes:
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def _call(b: _Builder, outcome: str, n: int) -> None:
    rng = b.rng
    caller = f"+3491{rng.randrange(1000000, 9999999)}"
    callee = f"{rng.randrange(100, 999)}"
    a_id = f"{_hex(rng, 16)}@{CARRIER_IP}"
    b_id = f"{_hex(rng, 12)}-{n}@{SBC[2]}"
    b.traffic.call_ids.append(a_id)
    leg_a = _Dialog(
        a_id, f"sip:{caller}@{CARRIER_IP}", _hex(rng, 8), f"sip:{callee}@{SBC[2]}", _hex(rng, 10), CARRIER_IP
    )
    leg_b = _Dialog(
        b_id,
        f"sip:{caller}@{SBC[2]}",
        _hex(rng, 8),
        f"sip:{callee}@{PROXY[2]}",
        _hex(rng, 10),
        SBC[2],
        f"X-CID: {a_id}",
    )
    hop_a = _Hop(SBC, (CARRIER_IP, 5060), (SBC[2], 5060))
    hop_b = _Hop(PROXY, (SBC[2], 5060), (PROXY[2], 5060))
    session = rng.randrange(10**9)
    invite_a = leg_a.request("INVITE", leg_a.to_uri, body=_sdp(CARRIER_IP, 20000 + 2 * (n % 5000), session))
    invite_b = leg_b.request("INVITE", leg_b.to_uri, body=_sdp(SBC[2], 30000 + 2 * (n % 5000), session))
    b.emit(hop_a, invite_a)
    b.tick(2)
    b.emit(hop_a, leg_a.response(100, "Trying", "INVITE", tag=False), reverse=True)
    b.tick(3)
    b.emit(hop_b, invite_b)
    b.tick(2)
    b.emit(hop_b, leg_b.response(100, "Trying", "INVITE", tag=False), reverse=True)
    leg_a.to_tag, leg_b.to_tag = _hex(rng, 8), _hex(rng, 8)

    def both(status: int, reason: str, method: str, body_ip: str | None = None) -> None:
        body_b = _sdp(body_ip, 40000 + 2 * (n % 5000), session + 1) if body_ip else ""
        body_a = _sdp(SBC[2], 50000 + 2 * (n % 5000), session + 1) if body_ip else ""
        b.emit(hop_b, leg_b.response(status, reason, method, body_b), reverse=True)
        b.tick(3)
        b.emit(hop_a, leg_a.response(status, reason, method, body_a), reverse=True)

    def ack(leg: _Dialog, hop: _Hop) -> None:
        b.emit(hop, leg.request("ACK", leg.to_uri, to_tag=True))

    if outcome.startswith("failed"):
        status, reason = {
            "failed_404": (404, "Not Found"),
            "failed_408": (408, "Request Timeout"),
            "failed_503": (
                503,
                "Service Unavailable",
            ),
        }[outcome]
        b.tick(32000 if status == 408 else rng.randrange(20, 200))
        both(status, reason, "INVITE")
        b.tick(2)
        ack(leg_b, hop_b)
        ack(leg_a, hop_a)
        return
    b.tick(rng.randrange(50, 400))
    both(180, "Ringing", "INVITE")
    if outcome == "busy":
        b.tick(rng.randrange(500, 3000))
        both(486, "Busy Here", "INVITE")
        b.tick(2)
        ack(leg_b, hop_b)
        ack(leg_a, hop_a)
        return
    if outcome == "cancelled":
        b.tick(rng.randrange(2000, 15000))
        b.emit(hop_a, leg_a.request("CANCEL", leg_a.to_uri))
        b.tick(1)
        b.emit(hop_a, leg_a.response(200, "OK", "CANCEL", tag=False), reverse=True)
        b.emit(hop_b, leg_b.request("CANCEL", leg_b.to_uri))
        b.tick(1)
        b.emit(hop_b, leg_b.response(200, "OK", "CANCEL", tag=False), reverse=True)
        b.tick(2)
        both(487, "Request Terminated", "INVITE")
        b.tick(1)
        ack(leg_b, hop_b)
        ack(leg_a, hop_a)
        return
    b.tick(rng.randrange(2000, 9000))
    both(200, "OK", "INVITE", PROXY[2])
    b.tick(3)
    ack(leg_a, hop_a)
    b.tick(2)
    ack(leg_b, hop_b)
    talk_ms = rng.randrange(5000, 180000)
    b.emit(
        _Hop(PROXY, (MEDIA_IP, 40001), (SBC[2], 30001)),
        _rtcp(rng, a_id),
        at_us=b.now_us + min(talk_ms, 5000) * 1000,
        payload_type=5,
        correlation_id=a_id,
    )
    b.emit(
        _Hop(SBC, ("0.0.0.0", 0), ("0.0.0.0", 0)),
        f"SYSLOG: call {a_id} answered on {SBC[0]}, routed to {PROXY[0]}".encode(),
        payload_type=100,
        correlation_id=a_id,
    )
    b.tick(talk_ms)
    leg_a.cseq = leg_b.cseq = 2
    b.emit(hop_a, leg_a.request("BYE", leg_a.to_uri, to_tag=True))
    b.tick(2)
    b.emit(hop_b, leg_b.request("BYE", leg_b.to_uri, to_tag=True))
    b.tick(20)
    b.emit(hop_b, leg_b.response(200, "OK", "BYE"), reverse=True)
    b.tick(2)
    b.emit(hop_a, leg_a.response(200, "OK", "BYE"), reverse=True)


def _rtcp(rng: random.Random, call_id: str) -> bytes:
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
    del call_id
    return orjson.dumps(doc)


def _register(b: _Builder, n: int) -> None:
    rng = b.rng
    user = f"{rng.randrange(100, 999)}"
    ip = f"{PHONE_NET}{rng.randrange(2, 250)}"
    dialog = _Dialog(
        f"{_hex(rng, 20)}@{ip}", f"sip:{user}@{SBC[2]}", _hex(rng, 8), f"sip:{user}@{SBC[2]}", _hex(rng, 10), ip
    )
    hop = _Hop(SBC, (ip, 5060), (SBC[2], 5060))
    b.emit(hop, dialog.request("REGISTER", f"sip:{SBC[2]}"))
    b.tick(1)
    dialog.to_tag = _hex(rng, 8)
    b.emit(hop, dialog.response(401, "Unauthorized", "REGISTER"), reverse=True)
    b.tick(30)
    dialog.cseq, dialog.branch, dialog.to_tag = 2, _hex(rng, 10), ""
    b.emit(hop, dialog.request("REGISTER", f"sip:{SBC[2]}"))
    b.tick(2)
    dialog.to_tag = _hex(rng, 8)
    b.emit(hop, dialog.response(200, "OK", "REGISTER"), reverse=True)
    b.traffic.scenarios["registration"] += 1
    del n


def _options(b: _Builder) -> None:
    rng = b.rng
    dialog = _Dialog(
        f"{_hex(rng, 16)}@{SBC[2]}", f"sip:ping@{SBC[2]}", _hex(rng, 8), f"sip:{CARRIER_IP}", _hex(rng, 10), SBC[2]
    )
    hop = _Hop(SBC, (SBC[2], 5060), (CARRIER_IP, 5060))
    b.emit(hop, dialog.request("OPTIONS", f"sip:{CARRIER_IP}"))
    b.tick(15)
    dialog.to_tag = _hex(rng, 8)
    b.emit(hop, dialog.response(200, "OK", "OPTIONS"), reverse=True)
    b.traffic.scenarios["options"] += 1


def generate(calls: int, *, seed: int = 1, start_us: int = 1_700_000_000_000_000) -> DemoTraffic:
    """The demo's packets for ``calls`` calls (plus registrations and keep-alives), in time order."""
    rng = random.Random(seed)
    traffic = DemoTraffic()
    b = _Builder(rng, start_us, traffic)
    call_start = start_us
    for n in range(calls):
        b.now_us = call_start
        outcome = rng.choices(OUTCOMES, OUTCOME_WEIGHTS)[0]
        traffic.scenarios[outcome] += 1
        _call(b, outcome, n)
        b.now_us = call_start + 500_000
        if n % 3 == 0:
            _register(b, n)
        if n % 2 == 0:
            _options(b)
        call_start += rng.randrange(200_000, 1_500_000)
    b.finish()
    return traffic


def send(traffic: DemoTraffic, host: str, port: int, *, rate: float, tcp: bool = False) -> float:
    """Send the packets at ``rate`` per second (0: as fast as possible); return the seconds it took."""
    started = time.monotonic()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    step = max(1, int(rate / 100)) if rate > 0 else 256  # packets per 10 ms slot
    if tcp:
        sock = socket.create_connection((host, port), timeout=30)
    else:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.connect((host, port))
    with sock:
        for i in range(0, len(traffic.packets), step):
            chunk = traffic.packets[i : i + step]
            if tcp:
                sock.sendall(b"".join(chunk))
            else:
                for pkt in chunk:
                    sock.send(pkt)
            if rate > 0:
                due = started + (i + len(chunk)) / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        if tcp:
            sock.shutdown(socket.SHUT_WR)
    return time.monotonic() - started


def summary(traffic: DemoTraffic, host: str, port: int, seconds: float, tcp: bool) -> str:
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(traffic.kinds.items()))
    scen = ", ".join(f"{n} {k}" for k, n in sorted(traffic.scenarios.items()))
    return (
        f"sent {len(traffic.packets)} HEP3 packets over {'TCP' if tcp else 'UDP'} to {host}:{port}"
        f" in {seconds:.1f} s: {kinds}\n"
        f"  calls and dialogs: {scen}\n"
        f"  nodes: {SBC[0]} (capture id {SBC[1]}), {PROXY[0]} (capture id {PROXY[1]}); legs linked by X-CID\n"
        f"  first Call-ID to trace: {traffic.call_ids[0] if traffic.call_ids else '-'}"
    )
