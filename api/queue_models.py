"""Response models of the queue and agent routes (:mod:`api.routes.queues`), as documented in OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from processors.queue_sessions.config import Denominator


class QueueSummary(BaseModel):
    name: str
    waiting: int
    talking: int
    longest_wait_secs: float | None
    members: int
    paused_members: int
    last_entered_at: datetime | None


class QueueList(BaseModel):
    count: int
    queues: list[QueueSummary]


class SlaFigures(BaseModel):
    offered: int
    answered: int
    abandoned: int
    short_abandoned: int
    timed_out: int
    exit_empty: int
    exit_key: int
    other_unanswered: int
    rejected: int
    answered_within_threshold: int
    service_level_denominator: int
    service_level: float | None
    asa_secs: float | None
    aht_secs: float | None
    max_wait_secs: float | None
    abandon_rate: float | None


class SlaInterval(SlaFigures):
    start: datetime
    end: datetime


class SlaReport(BaseModel):
    queue: str
    start: datetime
    end: datetime
    interval_secs: int
    threshold_secs: int
    short_abandon_secs: int
    denominator: Denominator
    include_timeouts: bool
    source: Literal["exact", "rollup"]
    total: SlaFigures
    intervals: list[SlaInterval]


class QueueSession(BaseModel):
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
    sources: list[str]
    gap: bool
    final: bool


class SessionPage(BaseModel):
    queue: str
    count: int
    sessions: list[QueueSession]
    next: str | None = None
    next_cursor: str | None = None


class AgentQueue(BaseModel):
    queue: str
    member: bool
    member_since: datetime | None
    paused: bool
    paused_since: datetime | None
    pause_reason: str


class AgentCall(BaseModel):
    queue: str
    session_id: str
    callid: str
    caller: str
    answered_at: datetime | None


class AgentState(BaseModel):
    agent: str
    nodes: list[str]
    logged_in: bool
    logged_in_since: datetime | None
    interface: str
    paused: bool
    queues: list[AgentQueue]
    on_call: AgentCall | None
    calls_answered: int
    talk_secs: float
    last_call_at: datetime | None


class AgentList(BaseModel):
    count: int
    stats_from: datetime
    agents: list[AgentState]


class AgentInterval(BaseModel):
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


class AgentHistory(BaseModel):
    agent: str
    count: int
    intervals: list[AgentInterval]
    next: str | None = None
    next_cursor: str | None = None
