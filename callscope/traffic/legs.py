"""The pieces calls are made of: a SIP leg across its capture hops, the call in progress, shared steps."""

from __future__ import annotations

from dataclasses import dataclass

from callscope.traffic.asterisk import AsteriskCall, Channel
from callscope.traffic.builder import Builder, Hop
from callscope.traffic.sip import LOG, RTCP_JSON, Dialog, hex_id, rtcp_report, sdp


@dataclass
class Leg:
    """A dialog and the hops that captured it, caller side first."""

    b: Builder
    dialog: Dialog
    hops: list[Hop]
    state: str = ""
    bye_cseq: int = 2

    def fwd(self, payload: bytes) -> None:
        for hop in self.hops:
            self.b.sip(hop, payload)
            self.b.tick(1)

    def back(self, payload: bytes) -> None:
        for hop in reversed(self.hops):
            self.b.sip(hop, payload, reverse=True)
            self.b.tick(1)

    def invite(self, body: str) -> None:
        self.fwd(self.dialog.request("INVITE", body=body))
        self.back(self.dialog.response(100, "Trying", "INVITE", tag=False))
        self.dialog.to_tag = hex_id(self.b.rng, 8)

    def reply(self, status: int, reason: str, body: str = "") -> None:
        self.back(self.dialog.response(status, reason, "INVITE", body))

    def ack(self, *, answered: bool = True) -> None:
        """The ACK: a transaction of its own after a 2xx (new branch), part of the INVITE's after a failure."""
        d = self.dialog
        if answered:
            d.branch = hex_id(self.b.rng, 10)
        self.fwd(d.request("ACK", to_tag=True))

    def fail(self, status: int, reason: str) -> None:
        self.reply(status, reason)
        self.ack(answered=False)
        self.close("cancelled" if status == 487 else "failed")

    def cancel(self) -> None:
        d = self.dialog
        self.fwd(d.request("CANCEL"))
        self.back(d.response(200, "OK", "CANCEL", tag=False))

    def bye_from_caller(self) -> None:
        d = self.dialog
        d.cseq, d.branch = self.bye_cseq, hex_id(self.b.rng, 10)
        self.fwd(d.request("BYE", to_tag=True))
        self.back(d.response(200, "OK", "BYE"))
        self.close("completed")

    def bye_from_callee(self, contact_host: str) -> None:
        d = self.dialog
        branch = hex_id(self.b.rng, 10)
        self.back(d.request_from_callee("BYE", contact_host, cseq=1, branch=branch))
        self.fwd(d.response(200, "OK", "BYE", cseq=1, branch=branch, via_host=contact_host, callee_side=True))
        self.close("completed")

    def close(self, state: str) -> None:
        self.state = state
        self.b.summary.leg_states[state] += 1
        self.b.closed_legs.append((self.dialog.call_id, state))


@dataclass
class Call:
    """One call in progress: its legs so far, the SDP answers, and the Asterisk side once it has one."""

    b: Builder
    outcome: str
    n: int
    caller: str
    callee: str
    leg_a: Leg
    leg_b: Leg
    answer_a: str
    answer_b: str
    ast: AsteriskCall | None = None
    inbound: Channel | None = None


def both_ringing(leg_a: Leg, leg_b: Leg) -> None:
    leg_b.reply(180, "Ringing")
    leg_a.reply(180, "Ringing")


def answer_both(leg_a: Leg, leg_b: Leg, answer_a: str, answer_b: str) -> None:
    """The 200 with SDP on leg B then leg A, and the ACKs."""
    leg_b.reply(200, "OK", answer_b)
    leg_a.reply(200, "OK", answer_a)
    leg_a.ack()
    leg_b.ack()


def media(b: Builder, leg_a: Leg, talk_us: int, *, node_note: str) -> None:
    """An RTCP report (rtpengine: HEP type 5 JSON, the Call-ID as correlation id) and a log line."""
    p = b.platform
    a_id = leg_a.dialog.call_id
    b.hep(
        p.media,
        (p.media.ip, 40001 + 2 * (len(b.summary.call_ids) % 5000)),
        (p.carrier_ip, 20001),
        rtcp_report(b.rng),
        RTCP_JSON,
        correlation_id=a_id,
        at_us=b.now_us + min(talk_us, 5_000_000),
    )
    b.hep(
        p.sbc,
        ("0.0.0.0", 0),
        ("0.0.0.0", 0),
        f"SYSLOG: call {a_id} answered on {p.sbc.name}, routed to {node_note}".encode(),
        LOG,
        correlation_id=a_id,
    )


def agent_leg(b: Builder, ast: AsteriskCall, caller: str, ext: str, n: int) -> tuple[Leg, Channel]:
    """Asterisk dials an agent phone: the channel, its AMI, and the INVITE of leg C."""
    p, rng = b.platform, b.rng
    assert p.asterisk is not None
    phone_ip = f"{p.phone_net}{10 + p.agents.index(ext)}"
    c_id = f"{hex_id(rng, 14)}@{p.asterisk.ip}"
    leg = Leg(
        b,
        Dialog(
            c_id,
            f"sip:{caller}@{p.asterisk.ip}",
            hex_id(rng, 8),
            f"sip:{ext}@{phone_ip}",
            hex_id(rng, 10),
            p.asterisk.ip,
            "Asterisk PBX 20.5.0",
        ),
        [Hop(p.asterisk, (p.asterisk.ip, 5060), (phone_ip, 5060))],
    )
    chan = ast.channel(ext, caller, ext, "agents", c_id)
    assert ast.caller is not None
    ast.dial_begin(ast.caller, chan)
    b.tick(1)
    leg.invite(sdp(p.asterisk.ip, 10000 + 2 * (n % 5000), rng.randrange(10**9)))
    b.tick(rng.randrange(30, 300))
    leg.reply(180, "Ringing")
    ast.state(chan, "Ringing")
    b.summary.multi_leg[next(reversed(b.summary.multi_leg))].append(c_id)
    return leg, chan
