"""``callscope demo``: realistic HEP3 traffic so a newcomer sees data within a minute.

A preset of :mod:`callscope.traffic` (``DEMO``): an SBC (``sbc1``, capture id 101, 10.0.0.10)
in front of a proxy (``proxy1``, capture id 102, 10.0.0.20) that ends the calls itself. Each
call has two legs with their own Call-IDs, linked by an ``X-CID`` header on the inner leg.
The mix: answered calls (INVITE/100/180/200/ACK/BYE/200 with SDP, an RTCP report as JSON
with the Call-ID as correlation id, and a log line), busy (486), cancelled
(CANCEL/200/487/ACK), failed (404, 408, 503), registrations (REGISTER 401 then 200) and
OPTIONS keep-alives. ``callscope generate`` runs the whole platform (Asterisk, queues,
AMI and files).

:func:`generate` is pure: the same seed and start time give the same packets. The CLI
sends them over UDP (or one TCP connection) to 127.0.0.1 unless told another host.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from callscope.traffic import DEMO
from callscope.traffic import generate as generate_plan
from callscope.traffic.sinks import HepSender

SBC = (DEMO.sbc.name, DEMO.sbc.capture_id, DEMO.sbc.ip)
PROXY = (DEMO.proxy.name, DEMO.proxy.capture_id, DEMO.proxy.ip)


@dataclass
class DemoTraffic:
    """Packets to send, in time order, and what they are."""

    packets: list[bytes] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)  # sip / rtcp / log
    scenarios: Counter[str] = field(default_factory=Counter)  # answered, busy, ..., registration, options
    call_ids: list[str] = field(default_factory=list)


def generate(calls: int, *, seed: int = 1, start_us: int = 1_700_000_000_000_000) -> DemoTraffic:
    """The demo's packets for ``calls`` calls (plus registrations and keep-alives), in time order."""
    plan = generate_plan(seed=seed, start_us=start_us, calls=calls, platform=DEMO, platform_name="demo")
    return DemoTraffic(
        packets=[item.data for item in plan.items],
        kinds=Counter(plan.summary.kinds),
        scenarios=Counter(plan.summary.scenarios),
        call_ids=list(plan.summary.call_ids),
    )


def send(traffic: DemoTraffic, host: str, port: int, *, rate: float, tcp: bool = False) -> float:
    """Send the packets at ``rate`` per second (0: as fast as possible); return the seconds it took."""
    started = time.monotonic()
    with HepSender(host, port, tcp=tcp) as sender:
        step = max(1, int(rate / 100)) if rate > 0 else 256  # packets per 10 ms slot
        for i in range(0, len(traffic.packets), step):
            chunk = traffic.packets[i : i + step]
            sender.send(chunk)
            if rate > 0:
                delay = started + (i + len(chunk)) / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
    return time.monotonic() - started


def summary(traffic: DemoTraffic, host: str, port: int, seconds: float, tcp: bool) -> str:
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(traffic.kinds.items()))
    scen = ", ".join(f"{n} {k}" for k, n in sorted(traffic.scenarios.items()))
    return (
        f"sent {len(traffic.packets)} HEP3 packets over {'TCP' if tcp else 'UDP'} to {host}:{port}"
        f" in {seconds:.1f} s: {kinds}\n"
        f"  calls and dialogs: {scen}\n"
        f"  nodes: {SBC[0]} (capture id {SBC[1]}), {PROXY[0]} (capture id {PROXY[1]}); legs linked by X-CID\n"
        f"  first Call-ID to trace: {traffic.call_ids[0] if traffic.call_ids else '-'}"
    )
