"""Pure core of the queue_sessions processor: queue_log and AMI envelopes in, rows out.

No I/O, no clock: :meth:`QueueCorrelator.feed` takes one envelope,
:meth:`QueueCorrelator.expire` the caller's ``now``.

**Which session an event belongs to.** Events are grouped by (node, queue, callid):
the caller channel's stays in one queue on one Asterisk. Each source (queue_log,
AMI) reports the stays of a channel in order; an entry (ENTERQUEUE,
QueueCallerJoin/Join, a resync's QueueEntry) joins the oldest session of the group
that has no entry from that source yet and that began, by the other source, within
``source_match_secs`` of it — so AMI and queue_log reporting one stay make one
session, and a channel entering the same queue again makes a second one
(``session_id`` ``.../1``). Any other event joins the newest session that its source
has not ended; an event whose stay was never seen entering (the processor started
mid-call, or the entry is fed later) opens an *unanchored* session. A resync's QueueEntry
(the caller is waiting now) joins the newest session of the group still open, else opens one.

**Rows.** A session writes a row each time its content changes once it is anchored
(an entry or a rejection was seen); an unanchored one writes only its final row.
Duplicates (same content: a bus redelivery, a line written twice) change nothing.
``entered_at`` is fixed by the first row (in whole seconds, queue_log's precision, so
AMI and queue_log entries of one stay agree), so every version keeps its ORDER BY key.
Versions grow: ``max(previous + 1, microseconds of the last event)``.

**Time** (:class:`processors.queue_sessions.config.QueueSessionsConfig`), always event
time against a horizon ``min(now, newest event seen + settle_secs + leave_grace_secs)``,
so a replay of old files is not timed out by the wall clock:

- a waiting caller with no event for ``max_wait_secs`` ends as ``lost``, an answered
  one after ``answered_max_secs`` as ``answered_lost`` (ended at its last event);
- an AMI Leave with neither AgentConnect nor QueueCallerAbandon after
  ``leave_grace_secs`` ends as ``exit`` (queue_log, when it comes, says why);
- an ended session whose last event is ``settle_secs`` old gets its *final* row (one
  per session: only final rows feed the SLA rollup), then is kept ``tombstone_secs``
  to absorb late events (counted as ``late``), then forgotten.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import orjson

from processors.queue_sessions.agents import AgentStateRow, AgentTracker
from processors.queue_sessions.config import QueueSessionsConfig
from processors.queue_sessions.events import AgentEvent, CallerEvent, GapEvent, Normalized
from processors.queue_sessions.parse import normalize
from processors.queue_sessions.session import Session, SessionRow, View, dt
from schemas.tables import micros
from schemas.wire import Decoded

Group = tuple[str, str, str]  # node, queue, callid
Output = SessionRow | AgentStateRow


@dataclass(frozen=True, slots=True)
class FeedResult:
    rows: list[Output]
    status: str  # applied, duplicate, late (after the final row; a stale agent change), ignored, source_off
    problem: str | None = None


class QueueCorrelator:
    """Sessions in flight per (node, queue, callid), agent intervals. See the module docstring."""

    def __init__(self, config: QueueSessionsConfig | None = None) -> None:
        self.config = config or QueueSessionsConfig()
        self._groups: dict[Group, list[Session]] = {}
        self._next_ordinal: dict[Group, int] = {}
        self.agents = AgentTracker()
        self.watermark = 0  # newest event time seen (us)
        self.stats: Counter[str] = Counter()

    def __len__(self) -> int:
        return sum(len(s) for s in self._groups.values())

    def sessions(self) -> list[Session]:
        return [s for group in self._groups.values() for s in group]

    # -- restart -------------------------------------------------------------------------------

    def restore(self, checkpoint: str) -> Session:
        """Take back a session from a row's ``checkpoint`` (replaces one held with the same id)."""
        session = Session.from_checkpoint(orjson.loads(checkpoint))
        group = (session.node, session.queue, session.callid)
        sessions = [s for s in self._groups.get(group, []) if s.session_id != session.session_id]
        sessions.append(session)
        sessions.sort(key=lambda s: s.ordinal)
        self._groups[group] = sessions
        self._next_ordinal[group] = max(self._next_ordinal.get(group, 0), session.ordinal + 1)
        self.watermark = max(self.watermark, session.last_ts)
        return session

    # -- feeding -------------------------------------------------------------------------------

    def feed(self, env: Decoded) -> list[Output]:
        """Apply one envelope (anything but queue_log and AMI queue/agent events is ignored)."""
        return self.feed_result(env).rows

    def feed_result(self, env: Decoded) -> FeedResult:
        event, problem = normalize(env)
        if event is None:
            result = FeedResult([], "ignored", problem)
        else:
            result = self.feed_event(event)
            if problem is not None:
                result = FeedResult(result.rows, result.status, problem)
        self.stats[result.status] += 1
        return result

    def feed_event(self, event: Normalized) -> FeedResult:
        if isinstance(event, GapEvent):
            return FeedResult(self._gap(event), "applied")
        if event.source not in self.config.sources:
            return FeedResult([], "source_off")
        if isinstance(event, AgentEvent):
            duplicates, stale = self.agents.duplicates, self.agents.stale
            rows: list[Output] = list(self.agents.feed(event))
            if self.agents.duplicates > duplicates:
                return FeedResult(rows, "duplicate")
            return FeedResult(rows, "late" if self.agents.stale > stale else "applied")
        self.watermark = max(self.watermark, event.ts)
        session = self._route(event)
        if event.fingerprint in session.seen:
            return FeedResult([], "duplicate")
        if session.final:
            return FeedResult([], "late")
        session.seen.append(event.fingerprint)
        if len(session.seen) > self.config.seen_events_max:
            del session.seen[0]
        session.views.setdefault(event.source, View()).apply(event)
        session.timeout_outcome, session.timeout_ts = "", None  # new evidence: expire decides again
        if event.action in ("enter", "reject"):
            session.anchored = True
        row = self._row(session) if session.anchored else None
        return FeedResult([] if row is None else [row], "applied")

    def _route(self, ev: CallerEvent) -> Session:
        group = (ev.node, ev.queue, ev.callid)
        sessions = self._groups.setdefault(group, [])
        for session in sessions:
            if ev.fingerprint in session.seen:
                return session
        window = int(self.config.source_match_secs * 1e6)
        if ev.action in ("enter", "reject") and not ev.resync:
            for session in sessions:
                if self._entry_matches(session, ev, window):
                    return session
        else:
            for session in reversed(sessions):
                view = session.views.get(ev.source)
                open_here = view is None or view.end_ts is None
                if open_here and (ev.resync or session.entered_estimate() <= ev.ts + window):
                    return session
            if sessions:
                newest = sessions[-1]
                end = newest.ended_at()
                if end is not None and ev.ts <= end + window:
                    return newest  # more about a stay this source already ended (or a late copy)
        return self._new_session(group, sessions)

    @staticmethod
    def _entry_matches(session: Session, ev: CallerEvent, window: int) -> bool:
        mine = session.views.get(ev.source)
        if mine is not None and mine.enter_ts is not None:
            return False  # this source already entered this stay
        if mine is not None and mine.end_ts is not None and mine.end_ts + window < ev.ts:
            return False  # this source's stay ended before this entry
        others = [v for name, v in session.views.items() if name != ev.source]
        other_enter = next((v.enter_ts for v in others if v.enter_ts is not None), None)
        if other_enter is not None:
            return abs(other_enter - ev.ts) <= window
        return session.entered_estimate() - window <= ev.ts <= session.first_ts + window

    def _new_session(self, group: Group, sessions: list[Session]) -> Session:
        ordinal = self._next_ordinal.get(group, 0)
        self._next_ordinal[group] = ordinal + 1
        node, queue, callid = group
        session_id = f"{node}/{queue}/{callid}" + (f"/{ordinal}" if ordinal else "")
        session = Session(session_id=session_id, node=node, queue=queue, callid=callid, ordinal=ordinal)
        sessions.append(session)
        return session

    def _gap(self, gap: GapEvent) -> list[Output]:
        out: list[Output] = []
        for session in self.sessions():
            if session.node != gap.node or session.final or session.gap:
                continue
            if session.merged().state == "ended" and gap.since is not None:
                ended = session.ended_at()
                if ended is not None and ended < gap.since:
                    continue
            session.gap = True
            row = self._row(session) if session.anchored else None
            if row is not None:
                out.append(row)
        return out

    # -- rows ----------------------------------------------------------------------------------

    def _row(self, session: Session, *, final: bool = False) -> SessionRow | None:
        m = session.merged()
        content = (
            m.linkedid,
            m.caller,
            m.entered_at,
            m.answered_at,
            m.ended_at,
            m.wait_secs,
            m.talk_secs,
            m.ring_attempts,
            m.ring_secs,
            m.agent,
            m.agent_uniqueid,
            m.position,
            m.original_position,
            m.state,
            m.outcome,
            m.answered,
            m.transfer_target,
            m.exit_key,
            m.sources,
            session.gap,
            final,
        )
        fingerprint = hashlib.blake2b(repr(content).encode(), digest_size=12).hexdigest()
        if fingerprint == session.fingerprint:
            return None
        session.fingerprint = fingerprint
        if session.entered_us is None:
            # Whole seconds (queue_log's precision), so the two sources' entries give the same key.
            session.entered_us = m.entered_at - m.entered_at % 1_000_000
        updated = max(session.last_ts, m.ended_at or 0)
        session.version = max(session.version + 1, updated)
        return SessionRow(
            id=f"{session.session_id}@{session.version}",
            session_id=session.session_id,
            node=session.node,
            queue=session.queue,
            callid=session.callid,
            linkedid=m.linkedid,
            caller=m.caller,
            entered_at=dt(session.entered_us),
            answered_at=None if m.answered_at is None else dt(m.answered_at),
            ended_at=None if m.ended_at is None else dt(m.ended_at),
            wait_secs=m.wait_secs,
            talk_secs=m.talk_secs,
            ring_attempts=min(m.ring_attempts, 65535),
            ring_secs=m.ring_secs,
            agent=m.agent,
            agent_uniqueid=m.agent_uniqueid,
            position=m.position,
            original_position=m.original_position,
            state=m.state,
            outcome=m.outcome,
            answered=m.answered,
            transfer_target=m.transfer_target,
            exit_key=m.exit_key,
            sources=m.sources,
            gap=session.gap,
            final=final,
            version=session.version,
            updated_at=dt(updated),
            checkpoint=orjson.dumps(session).decode(),
        )

    # -- time ----------------------------------------------------------------------------------

    def horizon(self, now: datetime) -> int:
        """The time timeouts are judged against (see the module docstring)."""
        cfg = self.config
        allowance = int((cfg.settle_secs + cfg.leave_grace_secs) * 1e6)
        return min(micros(now), self.watermark + allowance)

    def expire(self, now: datetime) -> list[Output]:
        """Timeouts, AMI exits and final rows due by ``now``; forget old final sessions."""
        cfg = self.config
        horizon = self.horizon(now)
        settle = int(cfg.settle_secs * 1e6)
        forget = settle + int(cfg.tombstone_secs * 1e6)
        out: list[Output] = []
        for group in list(self._groups):
            sessions = self._groups[group]
            keep: list[Session] = []
            for session in sessions:
                last = max(session.last_ts, session.timeout_ts or 0)
                if session.final:
                    if horizon < last + forget:
                        keep.append(session)
                    continue
                keep.append(session)
                if session.terminal() is None and not session.timeout_outcome:
                    self._timeouts(session, horizon)
                    if session.timeout_outcome and session.anchored:
                        row = self._row(session)
                        if row is not None:
                            out.append(row)
                if (session.terminal() is not None or session.timeout_outcome) and horizon >= last + settle:
                    session.final = session.anchored = True
                    row = self._row(session, final=True)
                    if row is not None:
                        out.append(row)
            if keep:
                self._groups[group] = keep
            else:
                del self._groups[group]
                self._next_ordinal.pop(group, None)
        return out

    def _timeouts(self, session: Session, horizon: int) -> None:
        cfg = self.config
        ami = session.views.get("ami")
        answered = session.answered_any()
        left = None if ami is None or answered else ami.left_ts
        if left is not None and horizon >= left + int(cfg.leave_grace_secs * 1e6):
            session.timeout_outcome, session.timeout_ts = "exit", left
            return
        last = session.last_ts
        limit = cfg.answered_max_secs if answered else cfg.max_wait_secs
        if horizon >= last + int(limit * 1e6):
            session.timeout_outcome = "answered_lost" if answered else "lost"
            session.timeout_ts = last
