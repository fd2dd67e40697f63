"""Agent states as intervals: logged in, member of a queue, paused in a queue.

Pure, no clock. :meth:`AgentTracker.feed` applies one :class:`AgentEvent` and returns
the ``agent_states`` rows it opened or closed. Transitions are idempotent (a PAUSE
while paused, an ADDMEMBER while a member change nothing), so queue_log and AMI
reporting the same change give one interval; a change older than the last change of
the same (agent, queue, state) is stale (a late copy from the other source) and
ignored; an event seen before (same content) is a duplicate.

- login / logoff: ``logged_in`` (queue ''). A logoff without a known login but with
  the login time (AGENTLOGOFF data2) writes the closed interval it implies.
- add / remove: ``member`` of a queue; remove also ends a pause there.
- pause / unpause: ``paused`` in a queue, with the reason; for every queue the agent
  is a member of when the event names none (PAUSEALL, UNPAUSEALL, a PAUSE on NONE),
  or on queue '' when none is known. A pause with another reason while paused ends
  the first interval and starts another.
- member (an AMI QueueMember from a resync): makes sure the membership and the pause
  it shows are open.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from processors.queue_sessions.events import AgentEvent
from processors.queue_sessions.session import dt
from schemas.tables import micros

Key = tuple[str, str, str, str]  # node, agent, queue, state
SEEN_PER_AGENT = 64


@dataclass
class Interval:
    node: str
    agent: str
    queue: str
    state: str
    started_us: int
    reason: str = ""
    interface: str = ""
    source: str = ""
    ended_us: int | None = None
    end_reason: str = ""
    version: int = 0

    @property
    def key(self) -> Key:
        return (self.node, self.agent, self.queue, self.state)

    @property
    def id(self) -> str:
        return f"{self.node}/{self.agent}/{self.queue}/{self.state}/{self.started_us}"

    def row(self, ts: int) -> AgentStateRow:
        self.version = max(self.version + 1, ts)
        ended = self.ended_us
        return AgentStateRow(
            id=self.id,
            node=self.node,
            agent=self.agent,
            queue=self.queue,
            state=self.state,
            reason=self.reason,
            interface=self.interface,
            started_at=dt(self.started_us),
            ended_at=None if ended is None else dt(ended),
            duration_secs=None if ended is None else round(max(0, ended - self.started_us) / 1e6, 6),
            end_reason=self.end_reason,
            source=self.source,
            version=self.version,
            updated_at=dt(ended if ended is not None else self.started_us),
        )


@dataclass(frozen=True, slots=True)
class AgentStateRow:
    """One version of an ``agent_states`` row (columns of ``schemas.tables.COLUMNS['agent_states']``)."""

    id: str
    node: str
    agent: str
    queue: str
    state: str
    reason: str
    interface: str
    started_at: datetime
    ended_at: datetime | None
    duration_secs: float | None
    end_reason: str
    source: str
    version: int
    updated_at: datetime

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in AGENT_ROW_FIELDS)


AGENT_ROW_FIELDS = tuple(f.name for f in fields(AgentStateRow))


class AgentTracker:
    """Open intervals per (node, agent, queue, state); see the module docstring."""

    def __init__(self) -> None:
        self._open: dict[Key, Interval] = {}
        self._last_change: dict[Key, int] = {}
        self._seen: dict[tuple[str, str], deque[str]] = {}
        self.duplicates = 0
        self.stale = 0

    def __len__(self) -> int:
        return len(self._open)

    def open_intervals(self) -> list[Interval]:
        return sorted(self._open.values(), key=lambda i: (i.agent, i.queue, i.state))

    def restore(self, row: dict[str, Any]) -> None:
        """Take back an open interval from its stored row (shell restart)."""
        interval = Interval(
            node=str(row["node"]),
            agent=str(row["agent"]),
            queue=str(row["queue"]),
            state=str(row["state"]),
            started_us=micros(row["started_at"]),
            reason=str(row["reason"]),
            interface=str(row["interface"]),
            source=str(row["source"]),
            version=int(row["version"]),
        )
        self._open[interval.key] = interval
        self._last_change[interval.key] = max(self._last_change.get(interval.key, 0), interval.started_us)

    def feed(self, ev: AgentEvent) -> list[AgentStateRow]:
        seen = self._seen.setdefault((ev.node, ev.agent), deque(maxlen=SEEN_PER_AGENT))
        if ev.fingerprint in seen:
            self.duplicates += 1
            return []
        seen.append(ev.fingerprint)
        out: list[AgentStateRow] = []
        action = ev.action
        if action == "login":
            out += self._start(ev, "", "logged_in", interface=ev.interface)
        elif action == "logoff":
            out += self._logoff(ev)
        elif action == "add":
            out += self._start(ev, ev.queue, "member", interface=ev.interface)
            if ev.paused:
                out += self._start(ev, ev.queue, "paused", reason=ev.reason)
        elif action == "remove":
            out += self._end(ev, ev.queue, "paused")
            out += self._end(ev, ev.queue, "member")
        elif action == "member":
            out += self._start(ev, ev.queue, "member", interface=ev.interface)
            if ev.paused is True:
                out += self._start(ev, ev.queue, "paused", reason=ev.reason)
            elif ev.paused is False:
                out += self._end(ev, ev.queue, "paused")
        else:
            for queue in self._queues_for(ev):
                if action == "pause":
                    current = self._open.get((ev.node, ev.agent, queue, "paused"))
                    if current is not None and ev.reason and current.reason != ev.reason:
                        out += self._end(ev, queue, "paused")
                    out += self._start(ev, queue, "paused", reason=ev.reason)
                else:
                    out += self._end(ev, queue, "paused", reason=ev.reason)
        return out

    def _queues_for(self, ev: AgentEvent) -> list[str]:
        if ev.queue:
            return [ev.queue]
        queues = sorted({k[2] for k in self._open if k[0] == ev.node and k[1] == ev.agent and k[3] == "member"})
        if ev.action == "unpause":
            paused = {k[2] for k in self._open if k[0] == ev.node and k[1] == ev.agent and k[3] == "paused"}
            return sorted(paused | set(queues))
        return queues or [""]

    def _fresh(self, key: Key, ts: int) -> bool:
        last = self._last_change.get(key)
        if last is not None and ts < last:
            self.stale += 1
            return False
        self._last_change[key] = ts
        return True

    def _start(
        self, ev: AgentEvent, queue: str, state: str, *, reason: str = "", interface: str = ""
    ) -> list[AgentStateRow]:
        key = (ev.node, ev.agent, queue, state)
        if key in self._open or not self._fresh(key, ev.ts):
            return []
        interval = Interval(ev.node, ev.agent, queue, state, ev.ts, reason, interface, ev.source)
        self._open[key] = interval
        return [interval.row(ev.ts)]

    def _end(self, ev: AgentEvent, queue: str, state: str, *, reason: str = "") -> list[AgentStateRow]:
        key = (ev.node, ev.agent, queue, state)
        interval = self._open.get(key)
        if interval is None or not self._fresh(key, ev.ts):
            return []
        del self._open[key]
        interval.ended_us = max(ev.ts, interval.started_us)
        interval.end_reason = reason
        return [interval.row(ev.ts)]

    def _logoff(self, ev: AgentEvent) -> list[AgentStateRow]:
        key = (ev.node, ev.agent, "", "logged_in")
        if key in self._open:
            return self._end(ev, "", "logged_in", reason=ev.reason)
        if ev.login_secs is None or not self._fresh(key, ev.ts):
            return []
        started = ev.ts - int(ev.login_secs * 1e6)
        interval = Interval(ev.node, ev.agent, "", "logged_in", started, "", ev.interface, ev.source)
        interval.ended_us, interval.end_reason = ev.ts, ev.reason
        return [interval.row(ev.ts)]
