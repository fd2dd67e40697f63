"""AMI queue and agent events -> typed queue events (pure).

:func:`parse_ami` returns ``(event, problem)`` as
:func:`processors.queue_sessions.queue_log.parse_queue_log` does; the collector's
``CallscopeGap`` marker becomes a :class:`GapEvent`.

Asterisk 13+ names (QueueCallerJoin, QueueCallerLeave, QueueCallerAbandon,
AgentConnect, AgentComplete, AgentRingNoAnswer, QueueMemberAdded/Removed/Pause,
AgentLogin/Logoff) and Asterisk 11 ones (Join, Leave, QueueMemberPaused,
Agentlogin/Agentlogoff); keys are matched case-insensitively. QueueCallerAbandon's
HoldTime is a duration (whatever the documentation says), AgentConnect's RingTime
is in seconds, AgentRingNoAnswer's in milliseconds.
"""

from __future__ import annotations

from processors.queue_sessions.events import (
    AgentAction,
    AgentEvent,
    Base,
    CallerEvent,
    GapEvent,
    Normalized,
    Problems,
    fingerprint,
)
from schemas.envelope import AmiEnvelope
from schemas.tables import micros

AMI_EVENTS = frozenset(
    {
        "queuecallerjoin",
        "join",
        "queueentry",
        "queuecallerleave",
        "leave",
        "queuecallerabandon",
        "agentconnect",
        "agentcomplete",
        "agentringnoanswer",
        "queuememberadded",
        "queuememberremoved",
        "queuememberpause",
        "queuememberpaused",
        "queuemember",
        "agentlogin",
        "agentlogoff",
        "callscopegap",
    }
)
_AMI_COMPLETE_REASON = {"caller": "completed_caller", "agent": "completed_agent", "transfer": "transferred"}


def parse_ami(env: AmiEnvelope) -> tuple[Normalized | None, str | None]:
    name = env.body.event.strip().lower()
    if name not in AMI_EVENTS:
        return None, None
    f = {k.lower(): v.strip() for k, v in env.body.fields.items()}
    ts = micros(env.ts)
    if name == "callscopegap":
        return GapEvent(env.node, ts, _iso_micros(f.get("since")), _iso_micros(f.get("until"))), None
    fp = fingerprint("ami", str(ts), name, *(f"{k}={v}" for k, v in sorted(f.items())))
    p = Problems()
    queue = f.get("queue", "")
    if name.startswith(("queuemember", "agentlog")):
        return _ami_agent(env, name, f, ts=ts, fp=fp, p=p)
    if not queue:
        return None, "missing_queue"
    callid = f.get("uniqueid", "")
    if not callid:
        return None, "missing_callid"
    base = Base("ami", env.node, queue, callid, ts, fp, f.get("linkedid", ""))
    member = f.get("membername") or f.get("agentname") or f.get("interface") or f.get("member", "")
    ev: CallerEvent
    if name in ("queuecallerjoin", "join", "queueentry"):
        wait = p.number(f.get("wait")) if name == "queueentry" else None
        ev = base.make(
            "enter",
            ts=ts - int((wait or 0) * 1e6),
            caller=f.get("calleridnum", ""),
            original_position=p.integer(f.get("position")) if name != "queueentry" else None,
            position=p.integer(f.get("position")) if name == "queueentry" else None,
            resync=name == "queueentry",
        )
    elif name in ("queuecallerleave", "leave"):
        ev = base.make("leave", position=p.integer(f.get("position")))
    elif name == "queuecallerabandon":
        ev = base.make(
            "abandon",
            outcome="abandoned",
            hold_secs=p.number(f.get("holdtime")),
            position=p.integer(f.get("position")),
            original_position=p.integer(f.get("originalposition")),
        )
    elif name == "agentconnect":
        ev = base.make(
            "connect",
            agent=member,
            hold_secs=p.number(f.get("holdtime")),
            ring_secs=p.number(f.get("ringtime")),
            agent_uniqueid=f.get("destuniqueid") or f.get("bridgedchannel", ""),
        )
    elif name == "agentcomplete":
        reason = f.get("reason", "").lower()
        ev = base.make(
            "end",
            outcome=_AMI_COMPLETE_REASON.get(reason, "completed_caller"),
            agent=member,
            hold_secs=p.number(f.get("holdtime")),
            talk_secs=p.number(f.get("talktime")),
        )
    else:  # agentringnoanswer
        ev = base.make(
            "ring_noanswer",
            agent=member,
            ring_secs=p.number(f.get("ringtime"), scale=0.001),
        )
    return ev, p.label


def _ami_agent(
    env: AmiEnvelope, name: str, f: dict[str, str], *, ts: int, fp: str, p: Problems
) -> tuple[Normalized | None, str | None]:
    queue = f.get("queue", "")
    if name in ("agentlogin", "agentlogoff"):
        agent = f.get("agent", "")
        if not agent:
            return None, "missing_agent"
        if "/" not in agent:
            agent = f"Agent/{agent}"  # queue_log's name for a chan_agent / app_agent_pool agent
        if name == "agentlogin":
            return AgentEvent("ami", env.node, agent, "", ts, "login", fp, interface=f.get("channel", "")), None
        login = p.number(f.get("logintime"))
        return AgentEvent("ami", env.node, agent, "", ts, "logoff", fp, login_secs=login), p.label
    agent = f.get("membername") or f.get("name") or f.get("interface") or f.get("location", "")
    interface = f.get("interface") or f.get("location") or f.get("stateinterface", "")
    if not agent:
        return None, "missing_agent"
    if not queue:
        return None, "missing_queue"
    paused_text = f.get("paused", "")
    paused = None if not paused_text else paused_text.lower() in ("1", "yes", "true")
    reason = f.get("pausedreason") or f.get("reason", "")
    action: AgentAction
    if name == "queuememberadded":
        action = "add"
    elif name == "queuememberremoved":
        action = "remove"
    elif name == "queuemember":
        action = "member"
    else:
        if paused is None:
            return None, "missing_paused"
        action = "pause" if paused else "unpause"
    return AgentEvent("ami", env.node, agent, queue, ts, action, fp, reason, interface, None, paused), p.label


def _iso_micros(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return micros(text)
    except (ValueError, TypeError):
        return None
