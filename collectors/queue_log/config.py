"""Configuration of the queue_log collector (``collectors.queue_log`` in the YAML file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from collectors.tail.config import TailConfig


class QueueLogConfig(TailConfig):
    """Asterisk's queue_log: ``epoch|callid|queue|agent|event|data1|...``, one event per line.

    ``timezone`` applies to the DB/realtime layout only (its time is text in local time);
    the file layout's epoch is UTC by definition.
    """

    path: Path = Field(default=Path("/var/log/asterisk/queue_log"), description="The queue_log file.")
