"""Time text in and out for the file formats. Pure: no clock.

- :func:`ts_text` writes the envelope's time format (``2024-01-02T03:04:05.123456Z``).
- :class:`LocalTimes` reads ``YYYY-MM-DD HH:MM:SS[.ffffff]`` written in a given zone (CDR
  dates, CEL with a ``dateformat``, the queue_log table of a realtime/DB set-up) into
  microseconds since the epoch. Lines arrive in time order, so the epoch of each minute is
  cached (a zone's offset changes on a minute boundary); the cache is bounded.
- :func:`epoch_us` reads ``1335310195.513823`` or ``1341343640`` (CEL eventtime, queue_log).
"""

from __future__ import annotations

import re
import time
import zoneinfo
from datetime import datetime

from schemas.errors import DecodeError

_DIGITS3 = tuple(f"{i:03d}" for i in range(1000))
_SECONDS: dict[int, str] = {}
_CACHE_MAX = 4096
_LOCAL = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?", re.ASCII)
_EPOCH = re.compile(r"(\d{1,11})(?:\.(\d{1,6}))?", re.ASCII)
_MAX_US = 253402300799 * 1_000_000  # 9999-12-31T23:59:59Z


def ts_text(ts_us: int) -> str:
    """``2024-01-02T03:04:05.123456Z`` for microseconds since the epoch."""
    sec, usec = divmod(ts_us, 1_000_000)
    text = _SECONDS.get(sec)
    if text is None:
        if not 0 <= ts_us <= _MAX_US:
            raise DecodeError(f"time {ts_us} us is out of range", reason="time")
        text = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
        if len(_SECONDS) >= 64:
            _SECONDS.clear()
        _SECONDS[sec] = text
    return f"{text}{_DIGITS3[usec // 1000]}{_DIGITS3[usec % 1000]}Z"


_MINUTES_B: dict[int, bytes] = {}
_DIGITS2_B = tuple(f"{i:02d}.".encode() for i in range(60))
_DIGITS3_B = tuple(d.encode() for d in _DIGITS3)


def ts_bytes(ts_us: int) -> bytes:
    """:func:`ts_text` as ASCII bytes (what the envelope encoder joins); minutes are cached."""
    minute, rest = divmod(ts_us, 60_000_000)
    head = _MINUTES_B.get(minute)
    if head is None:
        head = ts_text(minute * 60_000_000)[:17].encode()  # 2024-01-02T03:04:
        if len(_MINUTES_B) >= 256:
            _MINUTES_B.clear()
        _MINUTES_B[minute] = head
    sec, usec = divmod(rest, 1_000_000)
    return head + _DIGITS2_B[sec] + _DIGITS3_B[usec // 1000] + _DIGITS3_B[usec % 1000] + b"Z"


def epoch_us(text: str) -> int | None:
    """``1335310195.513823`` -> 1335310195513823; None when ``text`` is not epoch seconds."""
    sec, _, frac = text.partition(".")  # the usual epoch.usec without a regex
    if (
        0 < len(sec) <= 11
        and 0 < len(frac) <= 6
        and sec.isascii()
        and sec.isdigit()
        and frac.isascii()
        and frac.isdigit()
    ):
        return int(sec) * 1_000_000 + int(frac.ljust(6, "0"))
    m = _EPOCH.fullmatch(text)
    if m is None:
        return None
    frac = m.group(2)
    usec = int(frac.ljust(6, "0")) if frac else 0
    return int(m.group(1)) * 1_000_000 + usec


class LocalTimes:
    """``YYYY-MM-DD HH:MM:SS[.ffffff]`` in one zone -> microseconds since the epoch.

    ``zone`` is ``local`` (this machine's zone, as the C library sees it), ``UTC`` or an IANA
    name. In a repeated hour (end of summer time) the first occurrence is taken.
    """

    __slots__ = ("_minutes", "_zone", "zone")

    def __init__(self, zone: str = "local") -> None:
        self.zone = zone
        self._zone: zoneinfo.ZoneInfo | None = None
        if zone == "UTC":
            self._zone = zoneinfo.ZoneInfo("UTC")
        elif zone != "local":
            self._zone = zoneinfo.ZoneInfo(zone)
        self._minutes: dict[str, int] = {}

    def parse(self, text: str) -> int | None:
        """Microseconds since the epoch, or None when ``text`` is not such a date."""
        if len(text) == 19 and text[16] == ":":  # the usual whole seconds, in a minute seen before
            base = self._minutes.get(text[:16])
            sec_text = text[17:]
            if base is not None and sec_text.isascii() and sec_text.isdigit() and int(sec_text) <= 60:
                return (base + int(sec_text)) * 1_000_000
        m = _LOCAL.fullmatch(text)
        if m is None:
            return None
        minute = text[:16]
        base = self._minutes.get(minute)
        if base is None:
            base = self._minute(m)
            if len(self._minutes) >= _CACHE_MAX:
                self._minutes.clear()
            self._minutes[minute] = base
        seconds = int(m.group(6))
        if seconds > 60:
            return None
        frac = m.group(7)
        usec = int(frac.ljust(6, "0")) if frac else 0
        return (base + seconds) * 1_000_000 + usec

    def _minute(self, m: re.Match[str]) -> int:
        year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
        try:
            naive = datetime(year, month, day, hour, minute)  # the zone is applied below
        except ValueError:
            raise DecodeError(f"no such date {m.group(0)!r}", reason="time") from None
        if self._zone is None:
            return int(naive.timestamp())  # naive: the machine's local time
        return int(naive.replace(tzinfo=self._zone).timestamp())
