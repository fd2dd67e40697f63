"""Queue calls: Asterisk answers, the caller waits; answered by an agent, abandoned, or timed out.

AMI (app_queue's caller and agent events) and queue_log tell the same story with the same
waits, talk times and member names, so callscope merges them into one queue session.
"""

from __future__ import annotations

from callscope.traffic.builder import Builder
from callscope.traffic.legs import Call, agent_leg, answer_both, media
from callscope.traffic.sip import sdp


def queue_call(c: Call) -> None:
    """Asterisk answers, the caller waits in a queue; answered, abandoned or timed out."""
    b, outcome, leg_a, leg_b, answer_a, answer_b = c.b, c.outcome, c.leg_a, c.leg_b, c.answer_a, c.answer_b
    ast, inbound, caller, n = c.ast, c.inbound, c.caller, c.n
    assert ast is not None
    assert inbound is not None
    p, rng, t = b.platform, b.rng, b.timing
    queue = p.queues[int(leg_b.dialog.to_uri.split(":")[1].split("@")[0][1:])]
    uid = inbound.uniqueid
    b.tick(rng.randrange(20, 80))
    ast.state(inbound, "Up")
    answer_both(leg_a, leg_b, answer_a, answer_b)
    entered = b.now_us
    ast.ami("QueueCallerJoin", inbound, Queue=queue, Position="1", Count="1")
    ast.queue_log(uid, queue, "NONE", "ENTERQUEUE", "", caller, "1")
    wait = t.fixed(t.queue_timeout) if outcome == "queue_timeout" else t.draw(rng, t.queue_wait)
    agents = rng.sample(p.agents, 2)
    if outcome == "queue_answered" or rng.random() < 0.5:
        # One agent rings out first (RINGNOANSWER), inside the wait.
        b.wait(min(wait // 3, t.fixed(2)))
        leg_x, chan_x = agent_leg(b, ast, caller, agents[0], n)
        ast.ami(
            "AgentCalled",
            inbound,
            Queue=queue,
            MemberName=f"PJSIP/{agents[0]}",
            Interface=f"PJSIP/{agents[0]}",
            **chan_x.fields("Dest"),
        )
        ring = min(t.fixed(t.agent_ring_timeout), max(1000, wait // 3))
        b.wait(ring)
        leg_x.cancel()
        leg_x.fail(487, "Request Terminated")
        ast.dial_end(inbound, chan_x, "NOANSWER")
        ast.ami(
            "AgentRingNoAnswer",
            inbound,
            Queue=queue,
            MemberName=f"PJSIP/{agents[0]}",
            Interface=f"PJSIP/{agents[0]}",
            RingTime=str(ring // 1000),
            **chan_x.fields("Dest"),
        )
        ast.queue_log(uid, queue, f"PJSIP/{agents[0]}", "RINGNOANSWER", str(ring // 1000))
        ast.hangup(chan_x, 19, "NOANSWER")
    remaining = max(1000, entered + wait - b.now_us)
    if outcome == "queue_abandoned":
        b.wait(remaining)
        held = (b.now_us - entered) // 1_000_000
        leg_a.bye_from_caller()
        leg_b.bye_from_caller()
        ast.ami("QueueCallerAbandon", inbound, Queue=queue, Position="1", OriginalPosition="1", HoldTime=str(held))
        ast.ami("QueueCallerLeave", inbound, Queue=queue, Position="1", Count="0")
        ast.queue_log(uid, queue, "NONE", "ABANDON", "1", "1", str(held))
        ast.hangup(inbound, 16)
        ast.end(
            dst=leg_b.dialog.to_uri.split(":")[1].split("@")[0],
            dstchannel="",
            lastapp="Queue",
            lastdata=queue,
            disposition="ANSWERED",
        )
        _queue_done(b, "abandoned")
        return
    if outcome == "queue_timeout":
        b.wait(remaining)
        held = (b.now_us - entered) // 1_000_000
        ast.ami("QueueCallerLeave", inbound, Queue=queue, Position="1", Count="0")
        ast.queue_log(uid, queue, "NONE", "EXITWITHTIMEOUT", "1", "1", str(held))
        ast.hangup(inbound, 16)
        leg_b.bye_from_callee(p.asterisk.ip if p.asterisk else p.proxy.ip)
        leg_a.bye_from_callee(p.sbc.ip)
        ast.end(
            dst=leg_b.dialog.to_uri.split(":")[1].split("@")[0],
            dstchannel="",
            lastapp="Queue",
            lastdata=queue,
            disposition="ANSWERED",
        )
        _queue_done(b, "timeout")
        return
    # Answered by the second agent.
    b.wait(max(1000, remaining // 2))
    ring_start = b.now_us
    leg_c, agent = agent_leg(b, ast, caller, agents[1], n)
    member = f"PJSIP/{agents[1]}"
    ast.ami("AgentCalled", inbound, Queue=queue, MemberName=member, Interface=member, **agent.fields("Dest"))
    b.wait(t.draw(rng, t.ring) // 3)
    leg_c.reply(200, "OK", sdp(leg_c.hops[0].dst[0], 16000 + 2 * (n % 5000), rng.randrange(10**9)))
    leg_c.ack()
    ast.state(agent, "Up")
    ast.dial_end(inbound, agent, "ANSWER")
    held = (b.now_us - entered) // 1_000_000
    ring_secs = (b.now_us - ring_start) // 1_000_000
    ast.ami("QueueCallerLeave", inbound, Queue=queue, Position="1", Count="0")
    ast.ami(
        "AgentConnect",
        inbound,
        Queue=queue,
        MemberName=member,
        Interface=member,
        HoldTime=str(held),
        RingTime=str(ring_secs),
        **agent.fields("Dest"),
    )
    ast.queue_log(uid, queue, member, "CONNECT", str(held), agent.uniqueid, str(ring_secs))
    ast.bridge(inbound, agent)
    talk = t.draw(rng, t.talk)
    media(b, leg_a, talk, node_note=f"{ast.node.name} queue {queue}")
    b.wait(talk)
    talked = talk // 1_000_000
    by_caller = rng.random() < 0.6
    if by_caller:
        leg_a.bye_from_caller()
        leg_b.bye_from_caller()
        ast.unbridge(inbound, agent)
        ast.ami(
            "AgentComplete",
            inbound,
            Queue=queue,
            MemberName=member,
            Interface=member,
            HoldTime=str(held),
            TalkTime=str(talked),
            Reason="caller",
            **agent.fields("Dest"),
        )
        ast.queue_log(uid, queue, member, "COMPLETECALLER", str(held), str(talked), "1")
        ast.hangup(inbound, 16, "ANSWER")
        leg_c.bye_from_caller()
        ast.hangup(agent, 16, "ANSWER")
    else:
        leg_c.bye_from_callee(leg_c.hops[0].dst[0])
        ast.unbridge(agent, inbound)
        ast.ami(
            "AgentComplete",
            inbound,
            Queue=queue,
            MemberName=member,
            Interface=member,
            HoldTime=str(held),
            TalkTime=str(talked),
            Reason="agent",
            **agent.fields("Dest"),
        )
        ast.queue_log(uid, queue, member, "COMPLETEAGENT", str(held), str(talked), "1")
        ast.hangup(agent, 16, "ANSWER")
        leg_b.bye_from_callee(p.asterisk.ip if p.asterisk else p.proxy.ip)
        leg_a.bye_from_callee(p.sbc.ip)
        ast.hangup(inbound, 16, "ANSWER")
    ast.end(
        dst=leg_b.dialog.to_uri.split(":")[1].split("@")[0],
        dstchannel=agent.name,
        lastapp="Queue",
        lastdata=queue,
        disposition="ANSWERED",
    )
    _queue_done(b, "completed_caller" if by_caller else "completed_agent")


def _queue_done(b: Builder, outcome: str) -> None:
    b.summary.queue_outcomes[outcome] += 1
    b.queue_outcome = outcome
