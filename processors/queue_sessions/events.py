"""The few typed events the session and agent state machines read (parsed by
:mod:`processors.queue_sessions.queue_log` and :mod:`processors.queue_sessions.ami`;
:func:`processors.queue_sessions.parse.normalize` picks the parser).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Literal

SourceName = Literal["queue_log", "ami"]

CallerAction = Literal[
    "enter", "ring_noanswer", "ring_canceled", "connect", "end", "abandon", "exit", "leave", "reject"
]
AgentAction = Literal["login", "logoff", "add", "remove", "pause", "unpause", "member"]


@dataclass(frozen=True, slots=True)
class CallerEvent:
    """Something that happened to one caller in one queue, as one source reported it."""

    source: SourceName
    node: str
    queue: str
    callid: str
    ts: int  # microseconds since the epoch
    action: CallerAction
    fingerprint: str
    outcome: str = ""  # for 'end', 'abandon', 'exit' and 'reject'
    caller: str = ""
    linkedid: str = ""
    agent: str = ""
    agent_uniqueid: str = ""
    hold_secs: float | None = None  # what Asterisk reported as the wait
    talk_secs: float | None = None
    ring_secs: float | None = None
    position: int | None = None
    original_position: int | None = None
    transfer_target: str = ""
    exit_key: str = ""
    resync: bool = False  # an AMI QueueEntry listed by the collector's resync: the caller may be known already


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """A change of an agent's login, membership or pause, as one source reported it."""

    source: SourceName
    node: str
    agent: str
    queue: str  # '' for every queue of the agent (PAUSEALL, logins)
    ts: int
    action: AgentAction
    fingerprint: str
    reason: str = ""
    interface: str = ""
    login_secs: float | None = None  # AGENTLOGOFF: how long the agent was logged in
    paused: bool | None = None  # QueueMember / QueueMemberAdded: paused already


@dataclass(frozen=True, slots=True)
class GapEvent:
    """The AMI collector reconnected: events of ``node`` between ``since`` and ``until`` may be missing."""

    node: str
    ts: int
    since: int | None
    until: int | None


Normalized = CallerEvent | AgentEvent | GapEvent


class Problems:
    __slots__ = ("label",)

    def __init__(self) -> None:
        self.label: str | None = None

    def number(self, text: str | None, *, scale: float = 1.0) -> float | None:
        if text is None or not text.strip():
            return None
        try:
            value = float(text.strip())
        except ValueError:
            self.label = "bad_number"
            return None
        if math.isnan(value) or value < 0 or value > 1e9:  # NaN, negative, absurd
            self.label = "bad_number"
            return None
        return value * scale

    def integer(self, text: str | None) -> int | None:
        value = self.number(text)
        if value is None:
            return None
        if value > 65535:
            self.label = "bad_number"
            return None
        return int(value)


@dataclass(frozen=True, slots=True)
class Base:
    """What every event of one input shares."""

    source: SourceName
    node: str
    queue: str
    callid: str
    ts: int
    fingerprint: str
    linkedid: str = ""

    def make(self, action: CallerAction, **fields: Any) -> CallerEvent:
        values: dict[str, Any] = {
            "source": self.source,
            "node": self.node,
            "queue": self.queue,
            "callid": self.callid,
            "ts": self.ts,
            "fingerprint": self.fingerprint,
            "linkedid": self.linkedid,
        }
        values.update(fields)
        return CallerEvent(action=action, **values)


def fingerprint(*parts: str) -> str:
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).hexdigest()
