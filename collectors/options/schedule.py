"""When each target is probed. Pure: the caller passes the clock.

Every target runs on a fixed grid of its own: ``start + offset + k * interval``. The
offset spreads the targets over the first ``jitter * interval`` seconds; it is derived
from the target's name (a hash), so the same configuration gives the same schedule on
every start and in every test, and one target's position does not move when another is
added. A probe that is still running when its next slot comes skips that slot.
"""

from __future__ import annotations

import hashlib
import math

__all__ = ["next_due", "start_offset"]


def start_offset(name: str, interval_secs: float, jitter: float) -> float:
    """Seconds after start of the first probe of ``name``: in ``[0, jitter * interval_secs)``."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return fraction * jitter * interval_secs


def next_due(due: float, interval_secs: float, now: float) -> float:
    """The first slot of the grid through ``due`` that is later than ``now`` (missed slots are skipped)."""
    following = due + interval_secs
    if following > now:
        return following
    return due + (math.floor((now - due) / interval_secs) + 1) * interval_secs
