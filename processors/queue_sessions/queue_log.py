"""queue_log lines -> typed queue events (pure).

:func:`parse_queue_log` returns ``(event, problem)``: the event (``None`` for lines that are
not about a caller's stay or an agent, such as QUEUESTART or CONFIGRELOAD) and a short,
bounded problem label when the line was malformed (a number that is not one, a caller
event without a queue or callid). A malformed number leaves that field unset.

Data fields (Asterisk's app_queue; docs/queues.md):

=================  =================================================================
ENTERQUEUE         url, callerid, original position
CONNECT            holdtime (s), the agent channel's uniqueid, ringtime (s)
COMPLETECALLER     holdtime, talktime, original position (COMPLETEAGENT the same)
TRANSFER           extension, context, holdtime, talktime, original position
BLINDTRANSFER      extension, context, holdtime, talktime, original position
ATTENDEDTRANSFER   method, data, holdtime, talktime, original position
ABANDON            position, original position, waittime (s)
EXITWITHTIMEOUT    position, original position, waittime (EXITEMPTY the same)
EXITWITHKEY        key, position, original position, waittime
RINGNOANSWER       ringtime (ms) (RINGCANCELED the same)
AGENTLOGOFF        channel, logintime (s); AGENTCALLBACKLOGOFF: exten@context, logintime, reason
PAUSE / UNPAUSE    reason (PAUSEALL / UNPAUSEALL: every queue of the agent)
=================  =================================================================
"""

from __future__ import annotations

from processors.queue_sessions.events import (
    AgentAction,
    AgentEvent,
    Base,
    CallerAction,
    CallerEvent,
    Normalized,
    Problems,
    fingerprint,
)
from schemas.envelope import QueueLogEnvelope
from schemas.tables import micros

NONE_VALUES = frozenset({"", "NONE"})

# queue_log events that end a stay, with their outcome
_QL_END = {
    "COMPLETECALLER": "completed_caller",
    "COMPLETEAGENT": "completed_agent",
    "TRANSFER": "transferred",
    "BLINDTRANSFER": "transferred",
    "ATTENDEDTRANSFER": "transferred",
}
_QL_EXIT = {"EXITWITHTIMEOUT": "timeout", "EXITEMPTY": "exit_empty", "LEAVEEMPTY": "exit_empty"}
_QL_REJECT = {"FULL": "full", "JOINEMPTY": "join_empty", "JOINUNAVAIL": "join_unavail", "CLOSED": "closed"}
_QL_AGENT = frozenset(
    {
        "ADDMEMBER",
        "REMOVEMEMBER",
        "PAUSE",
        "UNPAUSE",
        "PAUSEALL",
        "UNPAUSEALL",
        "AGENTLOGIN",
        "AGENTLOGOFF",
        "AGENTCALLBACKLOGIN",
        "AGENTCALLBACKLOGOFF",
    }
)
#: AMI event names (lower case) this processor reads; everything else is skipped before validation.


def parse_queue_log(env: QueueLogEnvelope) -> tuple[Normalized | None, str | None]:
    b = env.body
    event = b.event.strip().upper()
    data = [d.strip() for d in b.data]

    def d(i: int) -> str:
        return data[i] if i < len(data) else ""

    ts = micros(env.ts)
    queue = b.queue.strip()
    agent = b.agent.strip()
    fp = fingerprint("queue_log", str(ts), b.callid, queue, agent, event, *data)
    p = Problems()
    if event in _QL_AGENT:
        if agent.upper() in NONE_VALUES:
            return None, "missing_agent"
        q = "" if queue.upper() in NONE_VALUES or event.endswith("ALL") else queue
        action: AgentAction
        reason, interface, login = "", "", None
        if event in ("AGENTLOGIN", "AGENTCALLBACKLOGIN"):
            action, interface = "login", d(0)
        elif event in ("AGENTLOGOFF", "AGENTCALLBACKLOGOFF"):
            action, interface, login = "logoff", d(0), p.number(d(1))
            reason = d(2) if event == "AGENTCALLBACKLOGOFF" else ""
        elif event == "ADDMEMBER":
            action = "add"
        elif event == "REMOVEMEMBER":
            action = "remove"
        elif event.startswith("PAUSE"):
            action, reason = "pause", d(0)
        else:
            action, reason = "unpause", d(0)
        if action in ("add", "remove") and not q:
            return None, "missing_queue"
        return AgentEvent("queue_log", env.node, agent, q, ts, action, fp, reason, interface, login), p.label
    callid = b.callid.strip()
    kind = _caller_kind(event)
    if kind is None:
        return None, None  # QUEUESTART, CONFIGRELOAD, SYSCOMPAT, AGENTDUMP, DID, INFO ...
    if not queue or queue.upper() in NONE_VALUES:
        return None, "missing_queue"
    if callid.upper() in NONE_VALUES:
        return None, "missing_callid"
    member = "" if agent.upper() in NONE_VALUES else agent
    base = Base("queue_log", env.node, queue, callid, ts, fp)
    ev: CallerEvent
    if kind == "enter":
        ev = base.make("enter", caller=d(1), original_position=p.integer(d(2)))
    elif kind == "ring":
        action_r: CallerAction = "ring_noanswer" if event == "RINGNOANSWER" else "ring_canceled"
        ev = base.make(action_r, agent=member, ring_secs=p.number(d(0), scale=0.001))
    elif kind == "connect":
        ev = base.make(
            "connect",
            agent=member,
            hold_secs=p.number(d(0)),
            agent_uniqueid=d(1),
            ring_secs=p.number(d(2)),
        )
    elif kind == "end":
        if event in ("COMPLETECALLER", "COMPLETEAGENT"):
            hold, talk, opos, target = d(0), d(1), d(2), ""
        elif event == "ATTENDEDTRANSFER":
            hold, talk, opos, target = d(2), d(3), d(4), ":".join(x for x in (d(0), d(1)) if x)
        else:
            hold, talk, opos, target = d(2), d(3), d(4), "@".join(x for x in (d(0), d(1)) if x)
        ev = base.make(
            "end",
            outcome=_QL_END[event],
            agent=member,
            hold_secs=p.number(hold),
            talk_secs=p.number(talk),
            original_position=p.integer(opos),
            transfer_target=target,
        )
    elif kind == "reject":
        ev = base.make("reject", outcome=_QL_REJECT[event])
    else:  # abandon / exit
        key = ""
        fields = data
        if event == "EXITWITHKEY":
            key, fields = d(0), data[1:]
        position = p.integer(fields[0] if fields else "")
        original = p.integer(fields[1] if len(fields) > 1 else "")
        wait = p.number(fields[2] if len(fields) > 2 else "")
        outcome = {"ABANDON": "abandoned", "EXITWITHKEY": "exit_key"}.get(event) or _QL_EXIT[event]
        ev = base.make(
            "abandon" if event == "ABANDON" else "exit",
            outcome=outcome,
            hold_secs=wait,
            position=position,
            original_position=original,
            exit_key=key,
        )
    return ev, p.label


def _caller_kind(event: str) -> str | None:
    if event == "ENTERQUEUE":
        return "enter"
    if event in ("RINGNOANSWER", "RINGCANCELED"):
        return "ring"
    if event == "CONNECT":
        return "connect"
    if event in _QL_END:
        return "end"
    if event == "ABANDON" or event in _QL_EXIT or event == "EXITWITHKEY":
        return "abandon"
    if event in _QL_REJECT:
        return "reject"
    return None
