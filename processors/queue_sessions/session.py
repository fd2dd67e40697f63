"""One caller's stay in one queue: what each source said, and the row both together give.

A :class:`Session` keeps one :class:`View` per source (``queue_log``, ``ami``): each
view is that source's own account, built from its events in any order (the earliest
entry, connect and end win, so a line fed late changes nothing that an earlier one
set). :meth:`Session.merged` combines the views into the row's values: for each
column the queue_log value when it has one, else the AMI one; counts take the larger
of the two (the same ring is reported by both). Everything here survives a JSON round
trip (the row's ``checkpoint``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from processors.queue_sessions.events import CallerEvent
from schemas.tables import from_micros

PREFERENCE = ("queue_log", "ami")
ANSWERED_OUTCOMES = frozenset({"completed_caller", "completed_agent", "transferred", "answered_lost"})
REJECTED_OUTCOMES = frozenset({"full", "join_empty", "join_unavail", "closed"})
TIMEOUT_OUTCOMES = frozenset({"lost", "answered_lost", "exit"})

dt = from_micros  # microseconds since the epoch -> aware UTC datetime


def _min(a: int | None, b: int) -> int:
    return b if a is None or b < a else a


@dataclass
class View:
    """One source's account of a stay (times in microseconds)."""

    first_ts: int = 0
    last_ts: int = 0
    enter_ts: int | None = None
    caller: str = ""
    linkedid: str = ""
    original_position: int | None = None
    position: int | None = None
    connect_ts: int | None = None
    agent: str = ""
    agent_uniqueid: str = ""
    wait_secs: float | None = None  # Asterisk's hold/wait time
    talk_secs: float | None = None
    rings: int = 0  # unanswered rings (RINGNOANSWER, RINGCANCELED, AgentRingNoAnswer)
    ring_secs: float = 0.0
    connect_ring_secs: float | None = None
    end_ts: int | None = None
    outcome: str = ""
    transfer_target: str = ""
    exit_key: str = ""
    left_ts: int | None = None  # AMI QueueCallerLeave / Leave

    def apply(self, ev: CallerEvent) -> None:
        ts = ev.ts
        self.first_ts = ts if not self.first_ts else min(self.first_ts, ts)
        self.last_ts = max(self.last_ts, ts)
        self.caller = self.caller or ev.caller
        self.linkedid = self.linkedid or ev.linkedid
        if ev.original_position is not None and self.original_position is None:
            self.original_position = ev.original_position
        action = ev.action
        if action == "enter":
            self.enter_ts = _min(self.enter_ts, ts)
            if ev.position is not None and self.position is None:
                self.position = ev.position
        elif action in ("ring_noanswer", "ring_canceled"):
            self.rings += 1
            self.ring_secs += ev.ring_secs or 0.0
        elif action == "connect":
            if self.connect_ts is None or ts < self.connect_ts:
                self.connect_ts = ts
                self.agent = ev.agent or self.agent
                self.agent_uniqueid = ev.agent_uniqueid or self.agent_uniqueid
                self.connect_ring_secs = ev.ring_secs
                if ev.hold_secs is not None:
                    self.wait_secs = ev.hold_secs
        elif action == "leave":
            self.left_ts = _min(self.left_ts, ts)
            if ev.position is not None:
                self.position = ev.position
        else:  # end, abandon, exit, reject
            if action == "reject":
                self.enter_ts = _min(self.enter_ts, ts)
            if self.end_ts is None or ts < self.end_ts:
                self.end_ts, self.outcome = ts, ev.outcome
                self.transfer_target, self.exit_key = ev.transfer_target, ev.exit_key
                if ev.position is not None:
                    self.position = ev.position
            self.agent = self.agent or ev.agent
            if ev.hold_secs is not None and (self.wait_secs is None or action != "end"):
                self.wait_secs = ev.hold_secs
            if ev.talk_secs is not None:
                self.talk_secs = ev.talk_secs

    @property
    def answered(self) -> bool:
        return self.connect_ts is not None or self.outcome in ANSWERED_OUTCOMES

    def entered_estimate(self) -> int:
        """When this source says (or implies) the caller entered the queue."""
        if self.enter_ts is not None:
            return self.enter_ts
        wait = int((self.wait_secs or 0) * 1e6)
        if self.connect_ts is not None:
            return self.connect_ts - wait
        if self.end_ts is not None:
            talk = int((self.talk_secs or 0) * 1e6) if self.outcome in ANSWERED_OUTCOMES else 0
            return self.end_ts - talk - wait
        return self.first_ts


@dataclass
class Merged:
    """The columns of a session row that come from its events (see 0009_queue_sessions.sql)."""

    linkedid: str
    caller: str
    entered_at: int
    answered_at: int | None
    ended_at: int | None
    wait_secs: float | None
    talk_secs: float | None
    ring_attempts: int
    ring_secs: float
    agent: str
    agent_uniqueid: str
    position: int | None
    original_position: int | None
    state: str
    outcome: str
    answered: bool
    transfer_target: str
    exit_key: str
    sources: tuple[str, ...]


@dataclass
class Session:
    """In-flight state of one stay. ``entered_us`` is fixed by the first row written."""

    session_id: str
    node: str
    queue: str
    callid: str
    ordinal: int = 0
    views: dict[str, View] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    entered_us: int | None = None
    anchored: bool = False  # an entry (or a rejection) was seen: rows may be written before the end
    timeout_outcome: str = ""  # 'lost', 'answered_lost', 'exit': set by expire, cleared by any event
    timeout_ts: int | None = None
    gap: bool = False
    final: bool = False
    version: int = 0
    fingerprint: str = ""

    @classmethod
    def from_checkpoint(cls, data: dict[str, Any]) -> Session:
        views = {name: View(**v) for name, v in (data.pop("views", None) or {}).items()}
        return cls(**data, views=views)

    def ordered_views(self) -> list[View]:
        return [self.views[s] for s in PREFERENCE if s in self.views]

    @property
    def last_ts(self) -> int:
        return max((v.last_ts for v in self.views.values()), default=0)

    @property
    def first_ts(self) -> int:
        return min((v.first_ts for v in self.views.values()), default=0)

    def terminal(self) -> View | None:
        """The preferred view that reported how the stay ended."""
        return next((v for v in self.ordered_views() if v.end_ts is not None), None)

    def answered_any(self) -> bool:
        return any(v.answered for v in self.views.values())

    def entered_estimate(self) -> int:
        enter = _pick(self.ordered_views(), "enter_ts")
        if enter is not None:
            return int(enter)
        return min((v.entered_estimate() for v in self.views.values()), default=0)

    def ended_at(self) -> int | None:
        end = self.terminal()
        if end is not None:
            return end.end_ts
        return self.timeout_ts if self.timeout_outcome else None

    def merged(self) -> Merged:
        views = self.ordered_views()
        end = self.terminal()
        entered = self.entered_us if self.entered_us is not None else self.entered_estimate()
        if end is not None:
            outcome, ended = end.outcome, end.end_ts
        elif self.timeout_outcome:
            outcome, ended = self.timeout_outcome, self.timeout_ts
        else:
            outcome, ended = "", None
        connect = _pick(views, "connect_ts")
        answered_at = None if connect is None else int(connect)
        talk_reported = _pick(views, "talk_secs")
        if answered_at is None and outcome in ANSWERED_OUTCOMES and ended is not None:
            answered_at = ended - int(float(talk_reported or 0) * 1e6)
        answered = answered_at is not None
        if outcome in REJECTED_OUTCOMES:
            wait: float | None = 0.0
        else:
            wait_reported = _pick(views, "wait_secs")
            if wait_reported is not None:
                wait = float(wait_reported)
            elif answered_at is not None:
                wait = _secs(answered_at - entered)
            elif ended is not None:
                wait = _secs(ended - entered)
            else:
                wait = None
        talk: float | None = None
        if ended is not None and answered_at is not None and outcome != "answered_lost":
            talk = float(talk_reported) if talk_reported is not None else _secs(ended - answered_at)
        state = "ended" if outcome else ("talking" if answered else "waiting")
        return Merged(
            linkedid=str(_pick(views, "linkedid") or ""),
            caller=str(_pick(views, "caller") or ""),
            entered_at=entered,
            answered_at=answered_at,
            ended_at=ended,
            wait_secs=wait,
            talk_secs=talk,
            ring_attempts=max((v.rings + (v.connect_ts is not None) for v in views), default=0),
            ring_secs=round(max((v.ring_secs + (v.connect_ring_secs or 0.0) for v in views), default=0.0), 6),
            agent=str(_pick(views, "agent") or ""),
            agent_uniqueid=str(_pick(views, "agent_uniqueid") or ""),
            position=_int_or_none(_pick(views, "position")),
            original_position=_int_or_none(_pick(views, "original_position")),
            state=state,
            outcome=outcome,
            answered=answered,
            transfer_target=end.transfer_target if end is not None else "",
            exit_key=end.exit_key if end is not None else "",
            sources=tuple(sorted(self.views)),
        )


def _pick(views: list[View], name: str) -> Any:
    for view in views:
        value = getattr(view, name)
        if value is not None and value != "":
            return value
    return None


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _secs(delta_us: int) -> float:
    return round(max(0, delta_us) / 1e6, 6)


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One version of a ``queue_sessions`` row (columns of ``schemas.tables.COLUMNS['queue_sessions']``)."""

    id: str
    session_id: str
    node: str
    queue: str
    callid: str
    linkedid: str
    caller: str
    entered_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    wait_secs: float | None
    talk_secs: float | None
    ring_attempts: int
    ring_secs: float
    agent: str
    agent_uniqueid: str
    position: int | None
    original_position: int | None
    state: str
    outcome: str
    answered: bool
    transfer_target: str
    exit_key: str
    sources: tuple[str, ...]
    gap: bool
    final: bool
    version: int
    updated_at: datetime
    checkpoint: str

    def values(self) -> tuple[Any, ...]:
        return tuple(list(v) if type(v) is tuple else v for v in map(self.__getattribute__, SESSION_ROW_FIELDS))

    def golden(self) -> dict[str, Any]:
        """The row's content without bookkeeping (for tests and comparisons)."""
        return {
            name: getattr(self, name)
            for name in SESSION_ROW_FIELDS
            if name not in ("id", "version", "updated_at", "checkpoint")
        }


SESSION_ROW_FIELDS = tuple(f.name for f in fields(SessionRow))
