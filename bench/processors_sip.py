"""The processors alone: SIP envelopes of complete calls put on the in-process bus, until stored.

    .venv/bin/python bench/processors_sip.py [--messages 100000] [--runs 3] [--rate 0]

Where ``bench/e2e_hep.py`` measures the whole embedded process (UDP intake, the HEP collector and
the processors), this one leaves the collector out: the envelopes are made beforehand from
``bench.hep_traffic``'s calls (7 messages each, phases about a second apart) through the
collector's own translation, then a :class:`callscope.runtime.Runtime` of role ``processor``
(in-process bus, every processor, embedded chDB in a temporary directory) reads them from its
bus while this process puts them there, 500 at a time (as fast as it can, or at ``--rate``
per second). A run ends when the ``sip_messages`` rows the store acknowledged reach the count.
Each run prints and the summary gives, median (min–max):

- ``msgs_per_sec``: messages stored per second, from the first put to the last acknowledged;
- ``cpu_us_per_msg``: the process's CPU time (every thread: the event loop, chDB's, the
  sinks' workers) per message;
- ``loop_thread_us_per_msg``: the CPU time of the thread that runs the event loop, where every
  processor's Python runs: its rate caps the processors (one interpreter thread).

Each run is a process of its own (chDB allows one data directory per process).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench import hep_traffic
from callscope.settings import TopologyConfig, load_settings
from callscope.telemetry import Telemetry, configure_logging
from collectors.hep.config import HepConfig
from collectors.hep.decode import decode as decode_hep
from collectors.hep.events import envelope_from_hep
from schemas.topics import topic_for

STEP = 500  # envelopes per put


def _records(n: int) -> list[tuple[bytes, bytes]]:
    topology, hep = TopologyConfig(), HepConfig()
    out = []
    now_us = int(time.time() * 1e6)
    for packet in hep_traffic.packets(n, seed=now_us % 100_000):
        _, key, value = envelope_from_hep(
            decode_hep(packet), topology=topology, hep=hep, received_us=now_us, collector_node="bench"
        )
        out.append((key.encode(), value))
    return out


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _stored(telemetry: Telemetry) -> float:
    for metric in telemetry.sink_batch_rows.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum") and sample.labels.get("table") == "sip_messages":
                return float(sample.value)
    return 0.0


async def _run(n: int, rate: float) -> dict[str, Any]:
    from callscope.runtime import Runtime

    records = _records(n)
    with tempfile.TemporaryDirectory(prefix="bench-processors-") as data_dir:
        settings = load_settings(None, {"data_dir": data_dir, "api": {"listen": "127.0.0.1:0"}})
        telemetry = Telemetry(node=settings.node)
        runtime = Runtime(settings, telemetry, role="processor")
        runtime.open_resources()
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        await runtime.ready.wait()
        producer = runtime._producer
        assert producer is not None
        topic = topic_for("sip")
        cpu0, wall0, loop0 = _cpu(), time.monotonic(), time.thread_time()
        for i in range(0, n, STEP):
            await producer.send_many(topic, records[i : i + STEP])
            await asyncio.sleep(max(0.0, wall0 + (i + STEP) / rate - time.monotonic()) if rate else 0)
        while _stored(telemetry) < n:  # noqa: ASYNC110 - a counter the sinks move: nothing to wait on
            await asyncio.sleep(0.05)
        cpu1, wall1, loop1 = _cpu(), time.monotonic(), time.thread_time()
        stop.set()
        await task
    return {
        "msgs_per_sec": round(n / (wall1 - wall0)),
        "cpu_us_per_msg": round((cpu1 - cpu0) / n * 1e6, 1),
        "loop_thread_us_per_msg": round((loop1 - loop0) / n * 1e6, 1),
    }


def _one(n: int, rate: float) -> dict[str, Any]:
    gc.set_threshold(100_000, 50, 1000)  # what ``callscope run`` sets
    configure_logging("warning", "console")
    return asyncio.run(_run(n, rate))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=0.0, help="envelopes put per second (0: as fast as it can)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a run, in its own process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(_one(args.messages, args.rate)))
        return 0
    runs = []
    one = [sys.executable, "-m", "bench.processors_sip", "--one"]
    one += ["--messages", str(args.messages), "--rate", str(args.rate)]
    for _ in range(args.runs):
        out = subprocess.run(
            one,
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), flush=True)
    print(f"processors_sip: {args.messages:,} SIP messages per run, {args.runs} runs, median (min-max)")
    for name in ("msgs_per_sec", "cpu_us_per_msg", "loop_thread_us_per_msg"):
        values = [r[name] for r in runs]
        print(f"  {name:24s} {statistics.median(values):10,.1f} ({min(values):,.1f}-{max(values):,.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
