"""Envelopes -> typed queue events: the parser for each kind (pure, no state)."""

from __future__ import annotations

from processors.queue_sessions.ami import AMI_EVENTS, parse_ami
from processors.queue_sessions.events import Normalized
from processors.queue_sessions.queue_log import parse_queue_log
from schemas.envelope import AmiEnvelope, QueueLogEnvelope
from schemas.wire import Decoded

__all__ = ["AMI_EVENTS", "normalize"]


def normalize(env: Decoded) -> tuple[Normalized | None, str | None]:
    """The typed event of a queue_log or AMI envelope (``None`` when it is not a queue or agent event),
    and a problem label when the input was malformed."""
    if isinstance(env, QueueLogEnvelope):
        return parse_queue_log(env)
    if isinstance(env, AmiEnvelope):
        return parse_ami(env)
    return None, None
