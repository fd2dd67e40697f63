"""Pure core of the health processor: per (node, target) state machines and their aggregate per target.

Per vantage point (``node``) and target, from its probe results in order
(thresholds in :class:`processors.health.config.HealthConfig`):

- ``unknown`` → ``up`` on the first reachable answer (``degraded`` if it is slower than
  the target's ``rtt_degraded_ms``); → ``down`` after ``failures_to_down`` consecutive failures.
- ``up`` → ``degraded`` after ``slow_probes_to_degraded`` consecutive slow answers, or when an
  answer comes back and ``intermittent_failures`` of the last ``intermittent_window_probes``
  probes failed. A run of failures does not pass through ``degraded``: it stays in its state
  until ``failures_to_down`` make it ``down``.
- ``degraded`` → ``up`` after ``successes_to_up`` consecutive good answers (reachable, fast)
  once the intermittent rule no longer holds.
- ``up``/``degraded`` → ``down`` after ``failures_to_down`` consecutive failures; the
  intermittent window starts afresh.
- ``down`` → ``up`` (or ``degraded`` if the last answer was slow) after ``successes_to_up``
  consecutive reachable answers.
- any → ``unknown`` when no result came for the target's stale time (:meth:`HealthCore.expire`).

Flapping: ``flap_transitions`` state changes between known states within ``flap_window_secs``
set it; ``flap_window_secs`` without a change clear it (a row of its own, ``from == to``).

Aggregate per target over the vantage points that have a verdict (not ``unknown``):
``down`` when down from every one, ``partial`` when down from some, ``degraded`` when
degraded from any, ``up``, or ``unknown`` when none has a verdict. A target is flapping
when its aggregate changed ``flap_transitions`` times in the window or any vantage point flaps.

No I/O, no clock: results carry their event time; :meth:`HealthCore.expire` gets the
caller's ``now``. Rows computed from event times are the same whoever computes them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace

from processors.health.config import HealthConfig
from processors.health.policy import Policies, TargetPolicy
from processors.health.results import (
    Ignored,
    Output,
    ProbeResult,
    Stale,
    State,
    TargetState,
    Transition,
)
from processors.health.tracking import Pair, PairView, Target, TargetView

_US = 1_000_000
_NAMES_IN_REASON = 5

_FAILURE_WORDS = {
    "timeout": "timeouts",
    "refused": "refused probes",
    "dns": "DNS failures",
    "tls": "TLS failures",
    "malformed": "malformed answers",
    "unexpected_code": "unexpected answers",
}


def _names(nodes: list[str]) -> str:
    shown = ", ".join(nodes[:_NAMES_IN_REASON])
    return shown + (f" and {len(nodes) - _NAMES_IN_REASON} more" if len(nodes) > _NAMES_IN_REASON else "")


def aggregate(states: Mapping[str, State]) -> tuple[TargetState, str]:
    """The target's state over its vantage points' states, and why."""
    known = {node: s for node, s in states.items() if s != "unknown"}
    if not known:
        return "unknown", "no fresh result from any vantage point"
    down = sorted(n for n, s in known.items() if s == "down")
    if len(down) == len(known):
        return "down", f"down from every vantage point ({_names(down)})"
    if down:
        return "partial", f"down from {_names(down)} ({len(down)} of {len(known)} vantage points)"
    degraded = sorted(n for n, s in known.items() if s == "degraded")
    if degraded:
        return "degraded", f"degraded from {_names(degraded)} ({len(degraded)} of {len(known)} vantage points)"
    return "up", f"up from {len(known)} vantage point{'s' if len(known) > 1 else ''}"


def _caused(t: Transition, cause: ProbeResult | None) -> Transition:
    """The row with what the causing result said (code, RTT, error), when a result caused it."""
    if cause is None:
        return t
    return replace(t, status=cause.status or 0, rtt_ms=cause.rtt_ms, error=cause.error or "", passive=cause.passive)


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _answer(r: ProbeResult) -> str:
    text = f"{r.status or ''} {r.reason or ''}".strip() or "answer"
    return f"{text} in {_ms(r.rtt_ms)} ms" if r.rtt_ms is not None else text


def _failures(count: int, errors: list[str], last: ProbeResult) -> str:
    kinds = Counter(errors)
    if len(kinds) == 1:
        (error,) = kinds
        words = _FAILURE_WORDS.get(error, "failures")
        if error == "unexpected_code" and last.status:
            return f"{count} consecutive {words} (last {_answer(last)})"
        return f"{count} consecutive {words}"
    return f"{count} consecutive failures ({', '.join(f'{e} x{n}' for e, n in sorted(kinds.items()))})"


class HealthCore:
    """Every (node, target) machine and target aggregate; see the module docstring."""

    def __init__(self, config: HealthConfig, policies: Policies) -> None:
        self.config = config
        self.policies = policies
        self._targets: dict[str, Target] = {}
        self._unconfigured = 0
        self._flap_us = int(config.flap_window_secs * _US)
        # A passive result is known when the pinger's transaction ends: up to passive_timeout_secs after
        # its request (the result's time), plus the correlator's two expiry rounds.
        self._passive_delay_us = int((config.passive_timeout_secs + 2 * config.expire_interval_secs) * _US)

    # -- reading -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._targets)

    def target_names(self) -> list[str]:
        return list(self._targets)

    def target(self, name: str) -> TargetView | None:
        t = self._targets.get(name)
        if t is None:
            return None
        pairs = tuple(
            PairView(p.node, p.target, p.kind, p.state, p.since, p.flap.flapping, p.last, p.stale)
            for p in sorted(t.pairs.values(), key=lambda p: p.node)
        )
        return TargetView(t.name, t.kind, t.state, t.since, t.flapping, pairs)

    # -- restoring (shell start) ---------------------------------------------------------------

    def _target_for(self, name: str, kind: str) -> Target:
        t = self._targets.get(name)
        if t is None:
            t = self._targets[name] = Target(name, kind)
            if not self.policies.configured(name):
                self._unconfigured += 1
        return t

    def _pair_for(self, t: Target, node: str, kind: str) -> Pair:
        p = t.pairs.get(node)
        if p is None:
            p = t.pairs[node] = Pair(node, t.name, kind, self.config.intermittent_window_probes)
        return p

    def restore_pair(
        self, node: str, target: str, *, kind: str, state: State, since: int, flapping: bool, changes: Iterable[int]
    ) -> None:
        """Take back a vantage point's stored state (its last row and its recent state changes)."""
        p = self._pair_for(self._target_for(target, kind), node, kind)
        p.state, p.since = state, since
        p.last_ts = max(p.last_ts or since, since)  # a lower bound until restore_last tells the last result
        p.flap.changes.extend(sorted(changes))
        p.flap.flapping = flapping

    def restore_target(
        self, target: str, *, kind: str, state: TargetState, since: int, flapping: bool, changes: Iterable[int]
    ) -> None:
        """Take back a target's aggregate (after its vantage points: the stored flag may be theirs)."""
        t = self._target_for(target, kind)
        t.state, t.since = state, since
        t.flap.changes.extend(sorted(changes))
        t.reported_flapping = flapping
        own = len(t.flap.changes) >= self.config.flap_transitions
        t.flap.flapping = own or (flapping and not any(p.flap.flapping for p in t.pairs.values()))

    def restore_last(self, result: ProbeResult) -> None:
        """Take back the last stored result of a (node, target): its time starts the stale clock."""
        p = self._pair_for(self._target_for(result.target, result.kind), result.node, result.kind)
        p.last, p.last_ts = result, max(p.last_ts or result.ts, result.ts)
        p.remember(result.id)

    # -- feeding -------------------------------------------------------------------------------

    def feed(self, r: ProbeResult) -> list[Output]:
        """Apply one probe result; return the transitions it caused (or why it was ignored)."""
        t = self._targets.get(r.target)
        if t is None:
            if not self.policies.configured(r.target) and self._unconfigured >= self.config.max_targets:
                return [Ignored("target_limit")]
            t = self._target_for(r.target, r.kind)
        p = self._pair_for(t, r.node, r.kind)
        if not p.remember(r.id):
            return [Ignored("duplicate")]
        out: list[Output] = []
        cleared = p.flap.quiet_since(r.ts, self._flap_us)
        if cleared is not None:
            out.append(self._flap_row(p, cleared))
        t.kind = p.kind = r.kind
        if p.last_ts is not None and r.ts < p.last_ts:
            # Overtaken by a newer result (a passive timeout is known passive_timeout_secs after its
            # request, after the answers to the requests that followed it): stored, not judged.
            out.append(Ignored("late"))
            return out
        if p.last_ts is not None:
            p.gap_us = max(r.ts - p.last_ts, p.gap_us * 7 // 8)
        p.last, p.last_ts = r, r.ts
        p.stale = False
        step = self._step(p, r, self.policies(r.target))
        if step is not None:
            out.append(self._change(p, step[0], r.ts, step[1], r))
        t.flap.quiet_since(r.ts, self._flap_us)
        out.extend(self._reaggregate(t, r.ts, r))
        return out

    def _step(self, p: Pair, r: ProbeResult, policy: TargetPolicy) -> tuple[State, str] | None:
        cfg = self.config
        if not r.ok:
            p.fail_streak += 1
            p.fail_errors.append(r.error or "failure")
            del p.fail_errors[: -cfg.failures_to_down]
            p.ok_streak = p.good_streak = p.slow_streak = 0
            p.window.append(True)
            if p.state != "down" and p.fail_streak >= cfg.failures_to_down:
                return "down", _failures(p.fail_streak, p.fail_errors, r)
            return None  # a run of failures waits for down; the intermittent rule judges the next answer
        slow = r.rtt_ms is not None and r.rtt_ms > policy.rtt_degraded_ms
        p.fail_streak = 0
        p.fail_errors.clear()
        p.ok_streak += 1
        p.slow_streak = p.slow_streak + 1 if slow else 0
        p.good_streak = 0 if slow else p.good_streak + 1
        p.window.append(False)
        failed = sum(p.window)
        slow_text = f"rtt {_ms(r.rtt_ms or 0)} ms > {policy.rtt_degraded_ms:g} ms"
        intermittent = f"intermittent: {failed} of the last {len(p.window)} probes failed"
        if p.state == "down":
            if p.ok_streak < cfg.successes_to_up:
                return None
            if slow:
                return "degraded", f"answering again, {slow_text}"
            return "up", f"{p.ok_streak} consecutive answers, last {_answer(r)}"
        if p.state == "unknown":
            if slow:
                return "degraded", slow_text
            if failed >= cfg.intermittent_failures:
                return "degraded", intermittent
            return "up", f"answered {_answer(r)}"
        why: str | None = None
        if p.slow_streak >= cfg.slow_probes_to_degraded:
            why = f"{p.slow_streak} slow answers, {slow_text}" if p.slow_streak > 1 else slow_text
        elif failed >= cfg.intermittent_failures:
            why = intermittent
        if p.state == "up":
            return ("degraded", why) if why is not None else None
        if why is None and p.good_streak >= cfg.successes_to_up:
            return "up", f"{p.good_streak} consecutive good answers, last {_answer(r)}"
        return None

    def _change(self, p: Pair, to: State, at: int, reason: str, cause: ProbeResult | None) -> Transition:
        before = p.state
        if before != "unknown" and to != "unknown":
            p.flap.record(at, self._flap_us, self.config.flap_transitions)
        if to == "down" or before == "down":
            p.window.clear()  # the intermittent rule starts afresh after an outage
        p.state, p.since = to, at
        return _caused(
            Transition("node", p.node, p.target, p.kind, before, to, at, reason, flapping=p.flap.flapping), cause
        )

    def _flap_row(self, p: Pair, at: int) -> Transition:
        reason = f"flapping cleared: no state change for {self.config.flap_window_secs:g} s"
        return Transition("node", p.node, p.target, p.kind, p.state, p.state, at, reason, flapping=False)

    def _reaggregate(self, t: Target, at: int, cause: ProbeResult | None) -> list[Output]:
        state, reason = aggregate({node: p.state for node, p in t.pairs.items()})
        flapping_before = t.reported_flapping
        if state != t.state:
            before = t.state
            if before != "unknown" and state != "unknown":
                t.flap.record(at, self._flap_us, self.config.flap_transitions)
            t.state, t.since = state, at
            t.reported_flapping = t.flapping
            row = Transition("target", "", t.name, t.kind, before, state, at, reason, flapping=t.reported_flapping)
            return [_caused(row, cause)]
        if t.flapping != flapping_before:
            t.reported_flapping = t.flapping
            if t.reported_flapping:
                why = self._flapping_reason(t)
            else:
                why = f"flapping cleared: no state change for {self.config.flap_window_secs:g} s"
            row = Transition("target", "", t.name, t.kind, state, state, at, why, flapping=t.reported_flapping)
            return [_caused(row, cause)]
        return []

    def _flapping_reason(self, t: Target) -> str:
        if t.flap.flapping:
            return f"flapping: {len(t.flap.changes)} state changes within {self.config.flap_window_secs:g} s"
        nodes = sorted(p.node for p in t.pairs.values() if p.flap.flapping)
        return f"flapping from {_names(nodes)}"

    # -- time ----------------------------------------------------------------------------------

    def expire(self, now: int) -> list[Output]:
        """Staleness and quiet flapping by ``now`` (the caller's clock, microseconds)."""
        out: list[Output] = []
        for t in self._targets.values():
            events: list[tuple[int, int, Pair | None]] = []  # (at, order, pair or None for the aggregate)
            for p in t.pairs.values():
                cleared = p.flap.quiet_since(now, self._flap_us)
                if cleared is not None:
                    out.append(self._flap_row(p, cleared))
                    events.append((cleared, 1, None))
                if p.stale or p.last_ts is None:
                    continue
                stale_us = int(self.policies(t.name).stale_secs * _US)
                if p.last is not None and p.last.passive:
                    # the pinger's interval is its own, and its results come late
                    stale_us = max(stale_us, 3 * p.gap_us) + self._passive_delay_us
                if now >= p.last_ts + stale_us:
                    events.append((p.last_ts + stale_us, 0, p))
            cleared = t.flap.quiet_since(now, self._flap_us)
            if cleared is not None:
                events.append((cleared, 1, None))
            for at, _, pair in sorted(events, key=lambda e: (e[0], e[1], e[2].node if e[2] else "")):
                if pair is not None:
                    out.extend(self._go_stale(pair, at))
                out.extend(self._reaggregate(t, at, None))
        return out

    def _go_stale(self, p: Pair, at: int) -> list[Output]:
        p.stale = True
        p.reset()
        out: list[Output] = [Stale(p.node, p.target, p.kind)]
        if p.state != "unknown":
            secs = self.policies(p.target).stale_secs
            out.append(self._change(p, "unknown", at, f"stale: no result for {secs:g} s", None))
        return out
