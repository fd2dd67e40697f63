"""Queue SLA figures from ClickHouse: exact from ``queue_sessions FINAL``, fast from the ``queue_sla_15m`` rollup.

The population is the same on both paths: the sessions of one queue that have ended,
put in the interval in which they entered the queue (docs/queues.md has each formula).

- :func:`exact` reads ``queue_sessions FINAL`` (the newest version of every session):
  right at any moment for any range, interval and threshold; its cost grows with the
  rows in the range (and with versions not yet merged).
- :func:`rollup` reads ``queue_sla_15m``, which the materialized view fills from final
  rows only (one per session, see processors/queue_sessions), per 15 minutes: it holds
  every session that ended more than ``settle_secs`` ago.
- :func:`tail` adds what the rollup cannot hold yet: sessions that have ended but have
  no final row, found among the rows updated within ``tail_window_secs`` (a skip index
  on ``updated_at`` keeps this read small).

:func:`compute` answers a request with ``source='rollup'`` (rollup + tail, plus the
exact path for a last partial 15 minutes) when the request lines up with the rollup:
``from`` on a 15-minute boundary, an interval that is a multiple of 15 minutes, and
thresholds within the rollup's histograms (3600 s). ``source='exact'`` always works;
``'auto'`` takes the rollup when it can. Every path returns the same raw figures per
interval (:class:`Figures`), so the derived ratios are computed in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from api.context import QueryStore
from processors.queue_sessions.config import ROLLUP_MAX_THRESHOLD_SECS, Denominator

ROLLUP_STEP_SECS = 900
Source = Literal["auto", "exact", "rollup"]

REJECTED = ("full", "join_empty", "join_unavail", "closed")
_UNANSWERED_NAMED = ("abandoned", "timeout", "exit_empty", "exit_key")

# Aggregates over a subquery with columns e (entered_at), o (outcome), is_answered, wait, talk, has_talk.
_AGGREGATES = f"""
    intDiv(toUnixTimestamp(e) - {{from_s:Int64}}, {{step:Int64}}) AS slot,
    countIf(o NOT IN {REJECTED}) AS offered_n,
    countIf(is_answered) AS answered_n,
    countIf(o = 'abandoned') AS abandoned_n,
    countIf(o = 'abandoned' AND wait < {{short:Float64}}) AS short_abandoned_n,
    countIf(o = 'timeout') AS timed_out_n,
    countIf(o = 'exit_empty') AS exit_empty_n,
    countIf(o = 'exit_key') AS exit_key_n,
    countIf(NOT is_answered AND o NOT IN {REJECTED} AND o NOT IN {_UNANSWERED_NAMED}) AS other_unanswered_n,
    countIf(o IN {REJECTED}) AS rejected_n,
    countIf(is_answered AND wait <= {{threshold:Float64}}) AS answered_within_n,
    sumIf(wait, is_answered) AS wait_answered_sum_n,
    sumIf(talk, is_answered) AS talk_sum_n,
    countIf(is_answered AND has_talk) AS talked_n,
    maxIf(wait, o NOT IN {REJECTED}) AS wait_max_n
"""

_EXACT = f"""
SELECT {_AGGREGATES}
FROM
(
    SELECT entered_at AS e, outcome AS o, answered AS is_answered, ifNull(wait_secs, 0) AS wait,
           ifNull(talk_secs, 0) AS talk, talk_secs IS NOT NULL AS has_talk
    FROM queue_sessions FINAL
    WHERE queue = {{queue:String}} AND entered_at >= {{start:DateTime64(6, 'UTC')}}
      AND entered_at < {{end:DateTime64(6, 'UTC')}} AND outcome != ''
)
GROUP BY slot
SETTINGS do_not_merge_across_partitions_select_final = 1
"""  # noqa: S608 - constant fragments only; values are bound parameters

_TAIL = f"""
SELECT {_AGGREGATES}
FROM
(
    SELECT argMax(entered_at, version) AS e, argMax(outcome, version) AS o, argMax(answered, version) AS is_answered,
           argMax(ifNull(wait_secs, 0), version) AS wait, argMax(ifNull(talk_secs, 0), version) AS talk,
           argMax(talk_secs IS NOT NULL, version) AS has_talk, max(final) AS has_final
    FROM queue_sessions
    WHERE queue = {{queue:String}} AND entered_at >= {{start:DateTime64(6, 'UTC')}}
      AND entered_at < {{end:DateTime64(6, 'UTC')}} AND updated_at >= {{since:DateTime64(6, 'UTC')}}
    GROUP BY session_id
    HAVING NOT has_final AND o != ''
)
GROUP BY slot
"""  # noqa: S608 - constant fragments only; values are bound parameters

_ROLLUP = """
SELECT
    intDiv(toUnixTimestamp(interval_start) - {from_s:Int64}, {step:Int64}) AS slot,
    sum(offered) AS offered_n, sum(answered) AS answered_n, sum(abandoned) AS abandoned_n,
    sum(arraySum((k, c) -> if(k < {short:Float64}, c, 0), abandoned_wait_hist.1, abandoned_wait_hist.2))
        AS short_abandoned_n,
    sum(timed_out) AS timed_out_n, sum(exit_empty) AS exit_empty_n, sum(exit_key) AS exit_key_n,
    sum(other_unanswered) AS other_unanswered_n, sum(rejected) AS rejected_n,
    sum(arraySum((k, c) -> if(k <= {threshold:Float64}, c, 0), answered_wait_hist.1, answered_wait_hist.2))
        AS answered_within_n,
    sum(wait_answered_sum) AS wait_answered_sum_n, sum(talk_sum) AS talk_sum_n, sum(talked) AS talked_n,
    max(wait_max) AS wait_max_n
FROM queue_sla_15m
WHERE queue = {queue:String}
  AND interval_start >= {start_s:DateTime('UTC')} AND interval_start < {end_s:DateTime('UTC')}
GROUP BY slot
"""


@dataclass(slots=True)
class Figures:
    """Raw figures of one interval (sums and counts add; the longest wait is a max)."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    timed_out: int = 0
    exit_empty: int = 0
    exit_key: int = 0
    other_unanswered: int = 0
    rejected: int = 0
    answered_within: int = 0
    wait_answered_sum: float = 0.0
    talk_sum: float = 0.0
    wait_max: float = 0.0
    talked: int = 0  # answered sessions whose talk time is known (AHT's denominator)

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Figures:
        # Spelled out: this runs for thousands of intervals per request.
        return cls(
            int(r["offered_n"]),
            int(r["answered_n"]),
            int(r["abandoned_n"]),
            int(r["short_abandoned_n"]),
            int(r["timed_out_n"]),
            int(r["exit_empty_n"]),
            int(r["exit_key_n"]),
            int(r["other_unanswered_n"]),
            int(r["rejected_n"]),
            int(r["answered_within_n"]),
            float(r["wait_answered_sum_n"]),
            float(r["talk_sum_n"]),
            float(r["wait_max_n"]),
            int(r["talked_n"]),
        )

    def add(self, o: Figures) -> None:
        self.offered += o.offered
        self.answered += o.answered
        self.abandoned += o.abandoned
        self.short_abandoned += o.short_abandoned
        self.timed_out += o.timed_out
        self.exit_empty += o.exit_empty
        self.exit_key += o.exit_key
        self.other_unanswered += o.other_unanswered
        self.rejected += o.rejected
        self.answered_within += o.answered_within
        self.wait_answered_sum += o.wait_answered_sum
        self.talk_sum += o.talk_sum
        self.wait_max = max(self.wait_max, o.wait_max)
        self.talked += o.talked


@dataclass(frozen=True)
class SlaRequest:
    queue: str
    start: datetime
    end: datetime
    interval_secs: int
    threshold_secs: int
    short_abandon_secs: int
    denominator: Denominator
    include_timeouts: bool

    @property
    def start_s(self) -> int:
        return int(self.start.timestamp())

    def rollup_fits(self) -> bool:
        return (
            self.interval_secs % ROLLUP_STEP_SECS == 0
            and self.start_s % ROLLUP_STEP_SECS == 0
            and self.start.microsecond == 0
            and self.threshold_secs <= ROLLUP_MAX_THRESHOLD_SECS
            and self.short_abandon_secs <= ROLLUP_MAX_THRESHOLD_SECS + 1
        )


def derived(f: Figures, req: SlaRequest) -> dict[str, Any]:
    """The figures of one interval as the API shows them (docs/queues.md, "Formulas")."""
    if req.denominator == "answered":
        denominator = f.answered
    elif req.denominator == "answered_abandoned":
        denominator = f.answered + f.abandoned
    else:
        denominator = f.answered + f.abandoned - f.short_abandoned
    if req.include_timeouts:
        denominator += f.timed_out
    return {
        "offered": f.offered,
        "answered": f.answered,
        "abandoned": f.abandoned,
        "short_abandoned": f.short_abandoned,
        "timed_out": f.timed_out,
        "exit_empty": f.exit_empty,
        "exit_key": f.exit_key,
        "other_unanswered": f.other_unanswered,
        "rejected": f.rejected,
        "answered_within_threshold": f.answered_within,
        "service_level_denominator": denominator,
        "service_level": _ratio(f.answered_within, denominator),
        "asa_secs": None if not f.answered else round(f.wait_answered_sum / f.answered, 3),
        "aht_secs": None if not f.talked else round(f.talk_sum / f.talked, 3),
        "max_wait_secs": round(f.wait_max, 3) if f.offered else None,
        "abandon_rate": _ratio(f.abandoned, f.offered),
    }


def _ratio(num: int, den: int) -> float | None:
    return None if den <= 0 else round(num / den, 6)


def _params(req: SlaRequest, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "queue": req.queue,
        "from_s": req.start_s,
        "step": req.interval_secs,
        "short": float(req.short_abandon_secs),
        "threshold": float(req.threshold_secs),
        "start": start,
        "end": end,
        "start_s": start.replace(microsecond=0),
        "end_s": end.replace(microsecond=0),
    }


def _slots(rows: list[dict[str, Any]]) -> dict[int, Figures]:
    return {int(r["slot"]): Figures.from_row(r) for r in rows}


def exact(store: QueryStore, req: SlaRequest, start: datetime, end: datetime) -> dict[int, Figures]:
    """Figures per slot from ``queue_sessions FINAL`` (ended sessions entered in [start, end))."""
    return _slots(store.query(_EXACT, _params(req, start, end)))


def rollup(store: QueryStore, req: SlaRequest, start: datetime, end: datetime) -> dict[int, Figures]:
    """Figures per slot from ``queue_sla_15m`` (final sessions; start and end on 15-minute boundaries)."""
    return _slots(store.query(_ROLLUP, _params(req, start, end)))


def tail(store: QueryStore, req: SlaRequest, start: datetime, end: datetime, *, since: datetime) -> dict[int, Figures]:
    """Figures per slot of the sessions that ended (updated since ``since``) but have no final row yet."""
    return _slots(store.query(_TAIL, {**_params(req, start, end), "since": since}))


def _merge(base: dict[int, Figures], *others: dict[int, Figures]) -> dict[int, Figures]:
    """``base`` with ``others`` added in place (the rollup is the big one; the tail and the edge are small)."""
    for part in others:
        for slot, figures in part.items():
            held = base.get(slot)
            if held is None:
                base[slot] = figures
            else:
                held.add(figures)
    return base


def compute(
    store: QueryStore, req: SlaRequest, *, source: Source, now: datetime, tail_window_secs: float
) -> tuple[str, dict[int, Figures]]:
    """The source used (``'exact'`` or ``'rollup'``) and the figures per slot (slot n starts at
    ``start + n * interval``). Raises ValueError for ``source='rollup'`` on a request the rollup
    cannot answer."""
    fits = req.rollup_fits()
    if source == "rollup" and not fits:
        raise ValueError(
            "the rollup answers only a 'from' on a 15-minute boundary, an interval that is a multiple of 15 minutes "
            f"and thresholds up to {ROLLUP_MAX_THRESHOLD_SECS} s"
        )
    if source == "exact" or not fits:
        return "exact", exact(store, req, req.start, req.end)
    end_s = int(req.end.timestamp())
    aligned_end = datetime.fromtimestamp(end_s - end_s % ROLLUP_STEP_SECS, UTC)
    if aligned_end <= req.start:
        return "exact", exact(store, req, req.start, req.end)
    since = datetime.fromtimestamp(now.timestamp() - tail_window_secs, UTC)
    parts = [rollup(store, req, req.start, aligned_end), tail(store, req, req.start, aligned_end, since=since)]
    if aligned_end < req.end:
        parts.append(exact(store, req, aligned_end, req.end))
    return "rollup", _merge(*parts)


def sla_report(store: QueryStore, req: SlaRequest, *, source: Source, now: datetime, tail_window_secs: float) -> bytes:
    """The JSON body of ``GET /queues/{queue}/sla`` (:class:`api.queue_models.SlaReport`): every interval from
    ``start`` to ``end``, empty ones included, and the total. Raises ValueError as :func:`compute`."""
    used, slots = compute(store, req, source=source, now=now, tail_window_secs=tail_window_secs)
    total = Figures()
    for part in slots.values():
        total.add(part)
    empty = derived(Figures(), req)
    step = timedelta(seconds=req.interval_secs)
    intervals: list[dict[str, Any]] = []
    lo = req.start
    n = 0
    while lo < req.end:
        hi = min(req.end, lo + step)
        held = slots.get(n)
        intervals.append({"start": lo, "end": hi, **(empty if held is None else derived(held, req))})
        lo, n = lo + step, n + 1
    doc = {
        "queue": req.queue,
        "start": req.start,
        "end": req.end,
        "interval_secs": req.interval_secs,
        "threshold_secs": req.threshold_secs,
        "short_abandon_secs": req.short_abandon_secs,
        "denominator": req.denominator,
        "include_timeouts": req.include_timeouts,
        "source": used,
        "total": derived(total, req),
        "intervals": intervals,
    }
    return orjson.dumps(doc, option=orjson.OPT_UTC_Z)
