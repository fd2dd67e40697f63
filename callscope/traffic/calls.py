"""Scenarios: multi-leg calls (direct and through queues), registrations, OPTIONS keep-alives.

A call from the carrier crosses the SBC (leg A, Call-ID A, captured by the SBC), goes on to
the proxy and Asterisk (leg B, its own Call-ID with ``X-CID: A``, captured by the proxy and
by Asterisk), and Asterisk dials an agent phone (leg C, captured by Asterisk; tied to B by
the linkedid of the channels whose ``SIPCALLID`` AMI reports). Without an Asterisk (the
demo platform) the proxy ends leg B itself. Failures (404, 408, 503) are answered by the
proxy. Every leg's expected ``call_legs`` state goes into the summary. Queue calls are in
:mod:`callscope.traffic.queue`, the shared pieces in :mod:`callscope.traffic.legs`.
"""

from __future__ import annotations

from callscope.traffic.asterisk import AsteriskCall
from callscope.traffic.builder import Builder, Hop
from callscope.traffic.legs import Call, Leg, agent_leg, answer_both, both_ringing, media
from callscope.traffic.queue import queue_call
from callscope.traffic.sip import Dialog, hex_id, sdp

FAILURES = {
    "failed_404": (404, "Not Found"),
    "failed_408": (408, "Request Timeout"),
    "failed_503": (503, "Service Unavailable"),
}


def _caller(b: Builder) -> str:
    return f"+3491{b.rng.randrange(1000000, 9999999)}"


#: What asterisk_calls should conclude for the Asterisk call of each scenario (Asterisk answers queue calls).
ASTERISK_OUTCOMES = {
    "answered": "completed",
    "busy": "busy",
    "cancelled": "cancelled",
    "queue_answered": "completed",
    "queue_abandoned": "completed",
    "queue_timeout": "completed",
}


def call(b: Builder, outcome: str, n: int) -> None:
    """One call of ``outcome`` (a key of the platform's scenario mix) starting at ``b.now_us``.

    The first call of each scenario is kept in the summary's ``examples`` with what callscope
    should make of it: every leg's state, the Asterisk call's outcome, the queue session's.
    """
    b.closed_legs, b.queue_outcome = [], ""
    _call(b, outcome, n)
    if outcome not in b.summary.examples:
        first = b.summary.call_ids[-1]
        closed = dict(b.closed_legs)
        legs = {cid: closed[cid] for cid in b.summary.multi_leg[first]}  # A, B, then the agent legs
        example: dict[str, object] = {"call_id": first, "legs": legs}
        if b.platform.asterisk is not None and outcome in ASTERISK_OUTCOMES:
            example["asterisk_outcome"] = ASTERISK_OUTCOMES[outcome]
        if b.queue_outcome:
            example["queue_outcome"] = b.queue_outcome
        b.summary.examples[outcome] = example


def _call(b: Builder, outcome: str, n: int) -> None:
    p, rng = b.platform, b.rng
    caller = _caller(b)
    queue = outcome.startswith("queue_")
    callee = (
        (f"8{p.queues.index(rng.choice(p.queues)):02d}" if queue else rng.choice(p.agents))
        if p.asterisk
        else f"{rng.randrange(100, 999)}"
    )
    a_id = f"{hex_id(rng, 16)}@{p.carrier_ip}"
    b_id = f"{hex_id(rng, 12)}-{n}@{p.sbc.ip}"
    b.summary.call_ids.append(a_id)
    b.summary.multi_leg[a_id] = [a_id, b_id]
    b.summary.scenarios[outcome] += 1
    agent = p.user_agent
    leg_a = Leg(
        b,
        Dialog(
            a_id,
            f"sip:{caller}@{p.carrier_ip}",
            hex_id(rng, 8),
            f"sip:{callee}@{p.sbc.ip}",
            hex_id(rng, 10),
            p.carrier_ip,
            agent,
        ),
        [Hop(p.sbc, (p.carrier_ip, 5060), (p.sbc.ip, 5060))],
    )
    hops_b = [Hop(p.proxy, (p.sbc.ip, 5060), (p.proxy.ip, 5060))]
    to_asterisk = p.asterisk is not None and outcome not in FAILURES
    if to_asterisk:
        assert p.asterisk is not None
        hops_b.append(Hop(p.asterisk, (p.proxy.ip, 5060), (p.asterisk.ip, 5060)))
    far_ip = p.asterisk.ip if to_asterisk and p.asterisk else p.proxy.ip
    leg_b = Leg(
        b,
        Dialog(
            b_id,
            f"sip:{caller}@{p.sbc.ip}",
            hex_id(rng, 8),
            f"sip:{callee}@{far_ip}",
            hex_id(rng, 10),
            p.sbc.ip,
            agent,
            f"X-CID: {a_id}",
        ),
        hops_b,
    )
    session = rng.randrange(10**9)
    port = 2 * (n % 5000)
    leg_a.invite(sdp(p.carrier_ip, 20000 + port, session))
    b.tick(2)
    leg_b.invite(sdp(p.sbc.ip, 30000 + port, session))
    answer_b = sdp(far_ip, 40000 + port, session + 1)
    answer_a = sdp(p.sbc.ip, 50000 + port, session + 1)

    if outcome in FAILURES:
        status, reason = FAILURES[outcome]
        b.wait(b.timing.fixed(b.timing.invite_timeout) if status == 408 else rng.randrange(20, 200) * 1000)
        leg_b.fail(status, reason)
        leg_a.fail(status, reason)
        return
    c = Call(b, outcome, n, caller, callee, leg_a, leg_b, answer_a, answer_b)
    if p.asterisk is None:
        _proxy_ends(c)
        return
    c.ast = AsteriskCall(b, p.asterisk)
    c.inbound = c.ast.channel(p.proxy.name, caller, callee, "queues" if queue else "from-proxy", b_id)
    if queue:
        queue_call(c)
    else:
        _direct_call(c)


def _proxy_ends(c: Call) -> None:
    b, outcome, leg_a, leg_b, answer_a, answer_b = c.b, c.outcome, c.leg_a, c.leg_b, c.answer_a, c.answer_b
    rng = b.rng
    b.tick(rng.randrange(50, 400))
    both_ringing(leg_a, leg_b)
    if outcome == "busy":
        b.wait(b.timing.draw(rng, b.timing.ring))
        leg_b.fail(486, "Busy Here")
        leg_a.fail(486, "Busy Here")
        return
    if outcome == "cancelled":
        b.wait(b.timing.draw(rng, b.timing.ring))
        leg_a.cancel()
        leg_b.cancel()
        leg_b.fail(487, "Request Terminated")
        leg_a.fail(487, "Request Terminated")
        return
    b.wait(b.timing.draw(rng, b.timing.ring))
    answer_both(leg_a, leg_b, answer_a, answer_b)
    talk = b.timing.draw(rng, b.timing.talk)
    media(b, leg_a, talk, node_note=b.platform.proxy.name)
    b.wait(talk)
    leg_a.bye_from_caller()
    leg_b.bye_from_caller()


def _direct_call(c: Call) -> None:
    b, outcome, leg_a, leg_b, answer_a, answer_b = c.b, c.outcome, c.leg_a, c.leg_b, c.answer_a, c.answer_b
    ast, inbound, caller, ext, n = c.ast, c.inbound, c.caller, c.callee, c.n
    assert ast is not None
    assert inbound is not None
    rng = b.rng
    leg_c, agent = agent_leg(b, ast, caller, ext, n)
    both_ringing(leg_a, leg_b)
    b.wait(b.timing.draw(rng, b.timing.ring))
    if outcome == "busy":
        leg_c.fail(486, "Busy Here")
        ast.dial_end(inbound, agent, "BUSY")
        ast.hangup(agent, 17, "BUSY")
        leg_b.fail(486, "Busy Here")
        leg_a.fail(486, "Busy Here")
        ast.hangup(inbound, 17, "BUSY")
        ast.end(dst=ext, dstchannel=agent.name, lastapp="Dial", lastdata=f"PJSIP/{ext},30", disposition="BUSY")
        return
    if outcome == "cancelled":
        leg_a.cancel()
        leg_b.cancel()
        leg_c.cancel()
        leg_c.fail(487, "Request Terminated")
        ast.dial_end(inbound, agent, "CANCEL")
        ast.hangup(agent, 16, "CANCEL")
        leg_b.fail(487, "Request Terminated")
        leg_a.fail(487, "Request Terminated")
        ast.hangup(inbound, 0, "CANCEL")
        ast.end(dst=ext, dstchannel=agent.name, lastapp="Dial", lastdata=f"PJSIP/{ext},30", disposition="NO ANSWER")
        return
    leg_c.reply(200, "OK", sdp(leg_c.hops[0].dst[0], 16000 + 2 * (n % 5000), rng.randrange(10**9)))
    leg_c.ack()
    ast.state(agent, "Up")
    ast.dial_end(inbound, agent, "ANSWER")
    ast.state(inbound, "Up")
    answer_both(leg_a, leg_b, answer_a, answer_b)
    ast.bridge(inbound, agent)
    talk = b.timing.draw(rng, b.timing.talk)
    media(b, leg_a, talk, node_note=ast.node.name)
    b.wait(talk)
    leg_a.bye_from_caller()
    leg_b.bye_from_caller()
    ast.unbridge(inbound, agent)
    ast.hangup(inbound, 16, "ANSWER")
    leg_c.bye_from_caller()
    ast.hangup(agent, 16, "ANSWER")
    ast.end(dst=ext, dstchannel=agent.name, lastapp="Dial", lastdata=f"PJSIP/{ext},30", disposition="ANSWERED")


def register(b: Builder) -> None:
    """A phone registers: REGISTER, 401 with a challenge, REGISTER with credentials, 200."""
    p, rng = b.platform, b.rng
    node = p.registrar
    user = f"{rng.randrange(100, 999)}"
    ip = f"{p.phone_net}{rng.randrange(2, 250)}"
    d = Dialog(
        f"{hex_id(rng, 20)}@{ip}",
        f"sip:{user}@{node.ip}",
        hex_id(rng, 8),
        f"sip:{user}@{node.ip}",
        hex_id(rng, 10),
        ip,
        p.user_agent,
    )
    hop = Hop(node, (ip, 5060), (node.ip, 5060))
    b.sip(hop, d.request("REGISTER", f"sip:{node.ip}"))
    b.tick(1)
    d.to_tag = hex_id(rng, 8)
    b.sip(hop, d.response(401, "Unauthorized", "REGISTER"), reverse=True)
    b.tick(30)
    d.cseq, d.branch, d.to_tag = 2, hex_id(rng, 10), ""
    b.sip(hop, d.request("REGISTER", f"sip:{node.ip}"))
    b.tick(2)
    d.to_tag = hex_id(rng, 8)
    b.sip(hop, d.response(200, "OK", "REGISTER"), reverse=True)
    b.summary.scenarios["registration"] += 1


def options(b: Builder, n: int) -> None:
    """A keep-alive: the SBC pings the carrier, or (with an Asterisk) the proxy pings Asterisk."""
    p, rng = b.platform, b.rng
    node, target = p.sbc, p.carrier_ip
    if p.asterisk is not None and n % 4 == 2:
        node, target = p.proxy, p.asterisk.ip
    d = Dialog(
        f"{hex_id(rng, 16)}@{node.ip}",
        f"sip:ping@{node.ip}",
        hex_id(rng, 8),
        f"sip:{target}",
        hex_id(rng, 10),
        node.ip,
        p.user_agent,
    )
    hop = Hop(node, (node.ip, 5060), (target, 5060))
    b.sip(hop, d.request("OPTIONS", f"sip:{target}"))
    b.tick(15)
    d.to_tag = hex_id(rng, 8)
    b.sip(hop, d.response(200, "OK", "OPTIONS"), reverse=True)
    b.summary.scenarios["options"] += 1
