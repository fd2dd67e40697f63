"""Bridge membership as time spans, so the order events arrive in does not matter.

A channel's stay in a bridge is a span ``[entered, left]`` (``left`` None while it
stays; ``entered`` None when the leave was read before the enter). Who shared a bridge
with whom, and for how long, is computed from overlapping spans, not from the
membership at the moment an event is read: a ``BridgeEnter`` that reaches the processor
after the peer's ``BridgeLeave`` (another partition) still finds the peer.
"""

from __future__ import annotations

Span = list[int | None]  # [entered, left]


def enter(spans: list[Span], ts: int) -> bool:
    """Record an enter at ``ts``; False when it changes nothing (already inside at ts)."""
    for span in spans:
        entered, left = span
        if entered is None and left is not None and left >= ts:
            span[0] = ts
            return True
        if entered is not None and entered <= ts and (left is None or left > ts):
            return False
        if entered == ts:
            return False
    spans.append([ts, None])
    spans.sort(key=lambda s: s[0] if s[0] is not None else -1)
    return True


def leave(spans: list[Span], ts: int) -> bool:
    """Record a leave at ``ts``; False when it changes nothing."""
    best: Span | None = None
    for span in spans:
        entered, left = span
        if left is None and (entered is None or entered <= ts) and (best is None or (best[0] or -1) < (entered or -1)):
            best = span
        elif left == ts:
            return False
    if best is not None:
        best[1] = ts
        return True
    spans.append([None, ts])
    return True


def inside(spans: list[Span], ts: int) -> bool:
    """In the bridge at ``ts`` (an enter at ts counts)."""
    return any((e is not None and e <= ts) and (left is None or left > ts) for e, left in spans)


def is_open(spans: list[Span]) -> bool:
    return any(left is None and e is not None for e, left in spans)


def close_all(spans: list[Span], ts: int) -> bool:
    """Leave at ``ts`` whatever is open (a hangup); True when something was open."""
    changed = False
    for span in spans:
        if span[1] is None and span[0] is not None and span[0] <= ts:
            span[1] = ts
            changed = True
    return changed


def _clip(spans: list[Span], end: int) -> list[tuple[int, int]]:
    out = []
    for entered, left in spans:
        if entered is None:
            continue
        stop = end if left is None else left
        if stop > entered:
            out.append((entered, stop))
        elif stop == entered:
            out.append((entered, entered))
    return out


def overlap(mine: list[Span], others: list[list[Span]], end: int) -> tuple[int | None, int]:
    """(first moment shared with another member, total time shared) of ``mine`` against ``others``."""
    own = _clip(mine, end)
    theirs = sorted(iv for spans in others for iv in _clip(spans, end))
    merged: list[tuple[int, int]] = []
    for start, stop in theirs:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    first: int | None = None
    total = 0
    for a, b in own:
        for c, d in merged:
            lo, hi = max(a, c), min(b, d)
            if lo < hi:
                first = lo if first is None else min(first, lo)
                total += hi - lo
    return first, total
