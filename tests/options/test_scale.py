"""10,000 targets: the config loads, and one round runs against a local responder without fd exhaustion."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
import yaml

from callscope.settings import load_settings
from collectors.options.collector import OptionsCollector
from tests.options.conftest import BusKit, closed_port
from tests.options.responder import SipResponder

pytestmark = pytest.mark.slow  # 6-10 s here

N = 10_000
DEAD = 100  # of them, a port where nothing listens


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_ten_thousand_targets_one_round(tmp_path: Path, bus_kit: BusKit, responder: SipResponder) -> None:
    dead = closed_port()
    targets = [
        {
            "name": f"sub-{i:05d}",
            "uri": f"sip:{i}@127.0.0.1:{dead if i < DEAD else responder.udp_port}",
            "kind": "subscriber",
        }
        for i in range(N)
    ]
    path = tmp_path / "big.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "node": "probe-1",
                "collectors": {
                    "options": {
                        "interval_secs": 600,
                        "timeout_secs": 5,
                        "jitter": 0.005,  # first round spread over 3 s
                        "t1_ms": 100,
                        "targets": targets,
                    }
                },
            }
        )
    )
    started = time.monotonic()
    settings = load_settings(path)
    load_secs = time.monotonic() - started
    options = settings.collectors.options
    assert len(options.targets) == N
    assert load_secs < 30

    fds_before = _open_fds()
    collector = OptionsCollector(options, settings, bus_kit.bus.producer(), bus_kit.telemetry)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    peak_fds = fds_before
    peak_inflight = 0.0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    try:
        while len(bus_kit.records) < N and loop.time() < deadline:
            assert not task.done(), task
            bus_kit.records.extend(await bus_kit.consumer.getmany(timeout_ms=50, max_records=20_000))
            peak_fds = max(peak_fds, _open_fds())
            peak_inflight = max(
                peak_inflight, bus_kit.telemetry.registry.get_sample_value("callscope_options_inflight") or 0
            )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    await bus_kit.drain()
    bodies = [orjson.loads(r.value)["body"] for r in bus_kit.records]
    assert len(bodies) == N  # one round: every target once, none twice
    assert len({b["target"] for b in bodies}) == N
    outcomes = Counter(b["error"] for b in bodies)
    assert outcomes == {None: N - DEAD, "refused": DEAD}
    assert peak_fds - fds_before < 50  # two UDP sockets and the DNS-free path, not one fd per target
    assert 0 < peak_inflight <= options.max_concurrency
