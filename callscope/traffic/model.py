"""The platform traffic is generated for, its timing knobs, and the plan it turns into.

A :class:`Platform` names the nodes a call crosses: carrier → SBC → proxy → Asterisk
(queues) → agent phones. :class:`Plan` is what generation produces: every item in time
order with its kind, plus the :class:`Summary` of what was generated and what callscope
should make of it (legs per state, queue sessions per outcome).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: Kinds of generated items, as callscope's envelopes name them.
HEP_KINDS = ("sip", "rtcp", "log")
FILE_KINDS = ("cdr", "cel", "queue_log")
KINDS = (*HEP_KINDS, "ami", *FILE_KINDS)


@dataclass(frozen=True)
class Node:
    """A node that captures (HEP capture id and name) or runs Asterisk."""

    name: str
    capture_id: int
    ip: str


@dataclass(frozen=True)
class Platform:
    """Where calls go. ``asterisk`` None: the proxy ends calls itself (the demo's two nodes)."""

    sbc: Node
    proxy: Node
    media: Node
    asterisk: Node | None = None
    carrier_ip: str = "203.0.113.5"
    phone_net: str = "192.168.50."
    queues: tuple[str, ...] = ("sales", "support")
    agents: tuple[str, ...] = ("1001", "1002", "1003", "1004", "1005", "1006")
    scenarios: tuple[tuple[str, int], ...] = ()
    user_agent: str = "callscope-generate"

    @property
    def registrar(self) -> Node:
        """Where phones register: the proxy when there is an Asterisk behind it, else the SBC."""
        return self.proxy if self.asterisk is not None else self.sbc


SBC = Node("sbc1", 101, "10.0.0.10")
PROXY = Node("proxy1", 102, "10.0.0.20")
ASTERISK = Node("ast1", 103, "10.0.0.40")
MEDIA = Node("rtp1", 104, "10.0.0.30")

CALL_OUTCOMES = ("answered", "busy", "cancelled", "failed_404", "failed_408", "failed_503")
QUEUE_OUTCOMES = ("queue_answered", "queue_abandoned", "queue_timeout")

#: The full platform: calls through SBC and proxy to Asterisk, a third of them into queues.
PLATFORM = Platform(
    sbc=SBC,
    proxy=PROXY,
    media=MEDIA,
    asterisk=ASTERISK,
    scenarios=(
        ("answered", 30),
        ("busy", 6),
        ("cancelled", 6),
        ("failed_404", 5),
        ("failed_408", 3),
        ("failed_503", 5),
        ("queue_answered", 25),
        ("queue_abandoned", 12),
        ("queue_timeout", 8),
    ),
)

#: ``callscope demo``: two nodes, the proxy answers; RTCP is captured on the proxy.
DEMO = Platform(
    sbc=SBC,
    proxy=PROXY,
    media=PROXY,
    asterisk=None,
    scenarios=(
        ("answered", 55),
        ("busy", 10),
        ("cancelled", 10),
        ("failed_404", 9),
        ("failed_408", 8),
        ("failed_503", 8),
    ),
    user_agent="callscope-demo",
)

PRESETS = {"platform": PLATFORM, "demo": DEMO}


@dataclass(frozen=True)
class Timing:
    """Durations inside a call, in seconds; ``scale`` multiplies them all (0.05 for a quick test)."""

    talk: tuple[float, float] = (5.0, 120.0)
    ring: tuple[float, float] = (2.0, 9.0)
    queue_wait: tuple[float, float] = (2.0, 40.0)
    queue_timeout: float = 60.0
    agent_ring_timeout: float = 15.0
    invite_timeout: float = 32.0
    scale: float = 1.0

    def draw(self, rng: Any, span: tuple[float, float]) -> int:
        """A duration from ``span`` in microseconds (at least 1 ms)."""
        return max(1000, int(rng.uniform(*span) * self.scale * 1e6))

    def fixed(self, secs: float) -> int:
        return max(1000, int(secs * self.scale * 1e6))


@dataclass
class Summary:
    """What was generated and what callscope should store and correlate from it."""

    seed: int = 0
    start_us: int = 0
    end_us: int = 0
    platform: str = ""
    kinds: Counter[str] = field(default_factory=Counter)
    scenarios: Counter[str] = field(default_factory=Counter)
    leg_states: Counter[str] = field(default_factory=Counter)  # call_legs state per SIP leg
    queue_outcomes: Counter[str] = field(default_factory=Counter)  # queue_sessions outcome
    asterisk_calls: int = 0
    call_ids: list[str] = field(default_factory=list)  # the carrier leg of every call
    multi_leg: dict[str, list[str]] = field(default_factory=dict)  # carrier Call-ID → every leg's Call-ID
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)  # scenario → its first call, expected results

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "start_us": self.start_us,
            "end_us": self.end_us,
            "platform": self.platform,
            "events": sum(self.kinds.values()),
            "kinds": {k: self.kinds.get(k, 0) for k in KINDS},
            "scenarios": dict(sorted(self.scenarios.items())),
            "expected": {
                "legs": sum(self.leg_states.values()),
                "leg_states": dict(sorted(self.leg_states.items())),
                "queue_sessions": sum(self.queue_outcomes.values()),
                "queue_outcomes": dict(sorted(self.queue_outcomes.items())),
                "asterisk_calls": self.asterisk_calls,
            },
            "calls": len(self.call_ids),
            "examples": self.examples,
        }


@dataclass(frozen=True, order=True)
class Item:
    """One generated event: HEP3 bytes (sip/rtcp/log), an AMI event (dict) or a file line (str)."""

    ts_us: int
    seq: int
    kind: str = field(compare=False)
    data: Any = field(compare=False)


@dataclass
class Plan:
    """Generated items in time order and their summary."""

    items: list[Item]
    summary: Summary
