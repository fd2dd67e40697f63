"""Pure generation: a seed, a start time and a platform in, items in time order out (no I/O, no clock)."""

from __future__ import annotations

import random
from collections.abc import Iterator

from callscope.traffic.builder import Builder
from callscope.traffic.calls import call, options, register
from callscope.traffic.model import PLATFORM, Item, Plan, Platform, Summary, Timing


class Stream:
    """Calls (with registrations every third call and keep-alives every second), streamed in time order.

    ``calls`` stops after that many calls; ``duration_secs`` stops starting calls after that
    long. ``rate`` (events per second) spaces the calls so the plan carries about that many
    events per second of its own time; without it calls start 0.2-1.5 s apart (the demo).
    The same arguments always give byte-identical items. :attr:`summary` grows while the
    stream is read and is complete once it is exhausted; :attr:`fraction` says how far it got.
    """

    def __init__(
        self,
        *,
        seed: int,
        start_us: int,
        calls: int | None = None,
        duration_secs: float | None = None,
        rate: float | None = None,
        platform: Platform = PLATFORM,
        timing: Timing | None = None,
        platform_name: str = "platform",
    ) -> None:
        if calls is None and duration_secs is None:
            raise ValueError("give calls or duration_secs")
        self.seed, self.start_us, self.calls, self.rate = seed, start_us, calls, rate
        self.end_us = None if duration_secs is None else start_us + int(duration_secs * 1e6)
        self.platform, self.timing = platform, timing or Timing()
        self.summary = Summary(seed=seed, start_us=start_us, platform=platform_name)
        self.calls_started = 0
        self.call_start_us = start_us

    @property
    def fraction(self) -> float:
        """How much of the plan's calls have been started (0..1)."""
        if self.calls is not None:
            return min(1.0, self.calls_started / max(1, self.calls))
        assert self.end_us is not None
        return min(1.0, (self.call_start_us - self.start_us) / max(1, self.end_us - self.start_us))

    def __iter__(self) -> Iterator[Item]:
        rng = random.Random(self.seed)
        summary = self.summary
        b = Builder(rng, self.start_us, self.platform, self.timing, summary)
        names = [name for name, _ in self.platform.scenarios]
        weights = [weight for _, weight in self.platform.scenarios]
        n = 0
        last = self.start_us
        while (self.calls is None or n < self.calls) and (self.end_us is None or self.call_start_us < self.end_us):
            before = sum(summary.kinds.values())
            start = self.call_start_us
            b.now_us = start
            call(b, rng.choices(names, weights)[0], n)
            b.now_us = start + 500_000
            if n % 3 == 0:
                register(b)
            if n % 2 == 0:
                options(b, n)
            if self.rate:
                produced = sum(summary.kinds.values()) - before
                self.call_start_us += max(1, int(produced / self.rate * rng.uniform(0.5, 1.5) * 1e6))
            else:
                self.call_start_us += rng.randrange(200_000, 1_500_000)
            n += 1
            self.calls_started = n
            # Nothing later starts before the next call does: what is older can go.
            for item in b.drain(self.call_start_us):
                last = item.ts_us
                yield item
        for item in b.drain():
            last = item.ts_us
            yield item
        summary.end_us = last


def generate(
    *,
    seed: int,
    start_us: int,
    calls: int | None = None,
    duration_secs: float | None = None,
    rate: float | None = None,
    platform: Platform = PLATFORM,
    timing: Timing | None = None,
    platform_name: str = "platform",
) -> Plan:
    """The whole plan at once (see :class:`Stream`)."""
    stream = Stream(
        seed=seed,
        start_us=start_us,
        calls=calls,
        duration_secs=duration_secs,
        rate=rate,
        platform=platform,
        timing=timing,
        platform_name=platform_name,
    )
    items = list(stream)
    return Plan(items, stream.summary)
