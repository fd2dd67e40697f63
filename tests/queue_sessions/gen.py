"""Generated queue_log lines and AMI events, one scenario per outcome, as the collectors publish them.

Times are seconds after :data:`T0`. queue_log envelopes carry the line's epoch as ``ts``
and the callid as key; AMI envelopes the event's own time and the Linkedid (else the
Uniqueid) as key, as the collectors' contract says.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from schemas.envelope import AmiEnvelope, QueueLogEnvelope, validate

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
NODE = "ast1"
CALLID = "1709287200.101"
QUEUE = "sales"
AGENT = "Agent/1001"

_ids = itertools.count(1)


def at(secs: float) -> datetime:
    return T0 + timedelta(seconds=secs)


def ql(
    secs: float,
    event: str,
    *data: str,
    callid: str = CALLID,
    queue: str = QUEUE,
    agent: str = "NONE",
    node: str = NODE,
    ts: datetime | None = None,
) -> QueueLogEnvelope:
    when = ts or at(secs)
    env = validate(
        {
            "kind": "queue_log",
            "id": f"ql-{next(_ids)}",
            "node": node,
            "role": "logic",
            "ts": when.isoformat(),
            "received": when.isoformat(),
            "key": callid,
            "body": {"callid": callid, "queue": queue, "agent": agent, "event": event, "data": list(data)},
        }
    )
    assert isinstance(env, QueueLogEnvelope)
    return env


def ami(secs: float, event: str, *, node: str = NODE, dialect: str = "asterisk13", **fields: str) -> AmiEnvelope:
    key = fields.get("Linkedid") or fields.get("Uniqueid") or node
    env = validate(
        {
            "kind": "ami",
            "id": f"ami-{next(_ids)}",
            "node": node,
            "role": "logic",
            "ts": at(secs).isoformat(),
            "received": at(secs).isoformat(),
            "key": key,
            "body": {"event": event, "fields": fields, "dialect": dialect},
        }
    )
    assert isinstance(env, AmiEnvelope)
    return env


# -- queue_log scenarios ----------------------------------------------------------------------


def entered(start: float = 0, *, callid: str = CALLID, queue: str = QUEUE, caller: str = "0612345678") -> Any:
    return ql(start, "ENTERQUEUE", "", caller, "1", callid=callid, queue=queue)


def answered(
    start: float = 0,
    *,
    wait: int = 12,
    talk: int = 60,
    by: str = "COMPLETECALLER",
    rings: int = 0,
    callid: str = CALLID,
    queue: str = QUEUE,
    agent: str = AGENT,
) -> list[Any]:
    """ENTERQUEUE, ``rings`` unanswered rings of 15 s, CONNECT after ``wait``, the end after ``talk``."""
    out = [entered(start, callid=callid, queue=queue)]
    for i in range(rings):
        out.append(ql(start + 1 + i, "RINGNOANSWER", "15000", callid=callid, queue=queue, agent=f"Agent/20{i}"))
    out.append(ql(start + wait, "CONNECT", str(wait), f"{callid}9", "3", callid=callid, queue=queue, agent=agent))
    if by in ("COMPLETECALLER", "COMPLETEAGENT"):
        end = ql(start + wait + talk, by, str(wait), str(talk), "1", callid=callid, queue=queue, agent=agent)
    elif by == "ATTENDEDTRANSFER":
        end = ql(
            start + wait + talk,
            by,
            "BRIDGE",
            "1709287300.7",
            str(wait),
            str(talk),
            "1",
            callid=callid,
            queue=queue,
            agent=agent,
        )
    else:
        end = ql(
            start + wait + talk,
            by,
            "200",
            "from-internal",
            str(wait),
            str(talk),
            "1",
            callid=callid,
            queue=queue,
            agent=agent,
        )
    out.append(end)
    return out


def unanswered(
    start: float = 0,
    *,
    wait: int = 30,
    event: str = "ABANDON",
    callid: str = CALLID,
    queue: str = QUEUE,
    key: str = "5",
) -> list[Any]:
    """ENTERQUEUE, then ABANDON / EXITWITHTIMEOUT / EXITEMPTY / EXITWITHKEY after ``wait`` (position 1 of 1)."""
    data = ["1", "1", str(wait)]
    if event == "EXITWITHKEY":
        data = [key, *data]
    return [entered(start, callid=callid, queue=queue), ql(start + wait, event, *data, callid=callid, queue=queue)]


# -- AMI scenarios ----------------------------------------------------------------------------


def _channel(callid: str, caller: str = "0612345678") -> dict[str, str]:
    return {
        "Channel": f"PJSIP/trunk-{callid[-3:]}",
        "Uniqueid": callid,
        "Linkedid": callid,
        "CallerIDNum": caller,
    }


def ami_answered(
    start: float = 0, *, wait: int = 12, talk: int = 60, callid: str = CALLID, queue: str = QUEUE, lag: float = 0.4
) -> list[AmiEnvelope]:
    """Asterisk 13 names for an answered stay, ``lag`` seconds after the queue_log lines (AMI with timestamps)."""
    ch = _channel(callid)
    member = {"Queue": queue, "MemberName": AGENT, "Interface": AGENT}
    return [
        ami(start + lag, "QueueCallerJoin", Queue=queue, Position="1", Count="1", **ch),
        ami(start + 1 + lag, "AgentCalled", **member, **ch, DestUniqueid=f"{callid}9"),
        ami(
            start + wait + lag,
            "AgentConnect",
            **member,
            **ch,
            HoldTime=str(wait),
            RingTime="3",
            DestUniqueid=f"{callid}9",
        ),
        ami(start + wait + lag + 0.01, "QueueCallerLeave", Queue=queue, Position="1", Count="0", **ch),
        ami(
            start + wait + talk + lag,
            "AgentComplete",
            **member,
            **ch,
            HoldTime=str(wait),
            TalkTime=str(talk),
            Reason="caller",
        ),
    ]


def ami11_answered(start: float = 0, *, wait: int = 12, talk: int = 60, callid: str = CALLID) -> list[AmiEnvelope]:
    """Asterisk 11 names: Join, AgentConnect (Member, BridgedChannel), Leave, AgentComplete; no Linkedid."""
    d = "asterisk11"
    base = {"Queue": QUEUE, "Uniqueid": callid}
    return [
        ami(
            start,
            "Join",
            dialect=d,
            Channel="SIP/trunk-0001",
            CallerIDNum="0612345678",
            Position="1",
            Count="1",
            **base,
        ),
        ami(
            start + wait,
            "AgentConnect",
            dialect=d,
            Channel="SIP/1001-0002",
            Member="SIP/1001",
            MemberName=AGENT,
            HoldTime=str(wait),
            BridgedChannel=f"{callid}9",
            RingTime="2",
            **base,
        ),
        ami(start + wait, "Leave", dialect=d, Channel="SIP/trunk-0001", Count="0", Position="1", **base),
        ami(
            start + wait + talk,
            "AgentComplete",
            dialect=d,
            Channel="SIP/1001-0002",
            Member="SIP/1001",
            MemberName=AGENT,
            HoldTime=str(wait),
            TalkTime=str(talk),
            Reason="agent",
            **base,
        ),
    ]


# -- corpus -----------------------------------------------------------------------------------


def wazo_rows(path: Path) -> list[QueueLogEnvelope]:
    """The queue_log rows of wazo-doc's queue_log.rst (DB layout), in time order."""
    out: list[QueueLogEnvelope] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 10 or not cells[0][:4].isdigit():
            continue
        ts = datetime.fromisoformat(cells[0]).replace(tzinfo=UTC)
        data = cells[5:10]
        while data and not data[-1]:
            data.pop()
        out.append(ql(0, cells[4], *data, callid=cells[1], queue=cells[2], agent=cells[3], node="wazo", ts=ts))
    return sorted(out, key=lambda e: e.ts)


def cacofonisk_events(path: Path, *, node: str = NODE) -> list[AmiEnvelope]:
    """A cacofonisk recording (JSON list of AMI events, no timestamps) 10 ms apart from T0."""
    events = orjson.loads(path.read_bytes())
    out: list[AmiEnvelope] = []
    for i, event in enumerate(events):
        fields = {k: str(v) for k, v in event.items() if k not in ("Event", "content")}
        out.append(ami(i * 0.01, str(event["Event"]), node=node, **fields))
    return out
