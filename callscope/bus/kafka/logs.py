"""aiokafka's own log lines, throttled per kind.

While a broker is away, aiokafka's clients log every failed connection, metadata request,
fetch and heartbeat: one processor process wrote about 450 lines a second during the broker
fault test (tests/faults/test_kafka_faults.py), burying callscope's own warnings. The first
line of a kind (logger and message template) passes; repeats of it pass at most once per
interval, saying how many were held back meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

THROTTLE_SECS = 10.0
_MAX_KINDS = 1000  # templates remembered; aiokafka has a few dozen


class RepeatThrottle(logging.Filter):
    """Passes a record when its (logger, template) was not passed within ``interval_secs``."""

    def __init__(self, interval_secs: float = THROTTLE_SECS, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_secs = interval_secs
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # kind -> (last passed, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, str(record.msg))
        now = self._clock()
        with self._lock:
            seen = self._seen.get(kind)
            if seen is not None and now - seen[0] < self.interval_secs:
                self._seen[kind] = (seen[0], seen[1] + 1)
                return False
            if len(self._seen) >= _MAX_KINDS:
                self._seen.clear()
            self._seen[kind] = (now, 0)
            held, since = (seen[1], now - seen[0]) if seen is not None else (0, 0.0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {since:.0f} s]"
        return True


_THROTTLE = RepeatThrottle()


def throttle_aiokafka_logs() -> None:
    """Put the throttle on every aiokafka logger (idempotent; a logger filter does not see its children)."""
    for name in list(logging.Logger.manager.loggerDict):
        if name == "aiokafka" or name.startswith("aiokafka."):
            logger = logging.getLogger(name)
            if _THROTTLE not in logger.filters:
                logger.addFilter(_THROTTLE)
