"""The processors alone: SIP envelopes of complete calls put on their bus, until stored.

    .venv/bin/python bench/processors_sip.py [--messages 100000] [--runs 3] [--rate 0] [--kafka]

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

With ``--kafka`` the runtime's bus is a real broker (one started for the bench, as
``bench/bus_kafka.py`` does, or ``--kafka-bootstrap``'s), each run on topics' ends and a
consumer-group prefix of its own: the processors as the processor role runs them, with the
Kafka consumers' share of the work and without the collector's.

Each run is a process of its own (chDB allows one data directory per process).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

from bench import hep_traffic
from bench.e2e_hep_kafka import commit_at_end
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


def _producer_process(bootstrap: str, n: int, started: Any) -> None:
    """Process target: build ``n`` records, set ``started``, put them on the broker as fast as it can."""
    records = _records(n)
    started.set()
    asyncio.run(_produce(bootstrap, records))


async def _produce(bootstrap: str, records: list[tuple[bytes, bytes]]) -> None:
    """Put ``records`` on the broker's SIP topic."""
    from callscope.bus.kafka import KafkaBus
    from callscope.settings import KafkaConfig
    from schemas.topics import ALL_TOPICS

    bus = KafkaBus(KafkaConfig(bootstrap_servers=bootstrap), Telemetry())
    await bus.start()
    try:
        await bus.ensure_topics(ALL_TOPICS)
        producer = bus.producer()
        for i in range(0, len(records), STEP):
            await producer.send_many(topic_for("sip"), records[i : i + STEP])
        await producer.flush()
    finally:
        await bus.stop()


async def _run(n: int, rate: float, bootstrap: str | None) -> dict[str, Any]:
    from callscope.bus.envelopes import SHARED
    from callscope.runtime import Runtime

    records = [] if bootstrap else _records(n)
    with tempfile.TemporaryDirectory(prefix="bench-processors-") as data_dir:
        overrides: dict[str, Any] = {"data_dir": data_dir, "api": {"listen": "127.0.0.1:0"}}
        if bootstrap:
            # A group prefix of its own, committed at the topics' ends before this run's records go
            # on: the processors read exactly them.
            prefix = f"bench-{uuid.uuid4().hex[:12]}"
            overrides["bus"] = {"kind": "kafka", "kafka": {"bootstrap_servers": bootstrap}}
            overrides["processors"] = {"group_prefix": prefix}
            await asyncio.to_thread(commit_at_end, bootstrap, prefix)
        settings = load_settings(None, overrides)
        telemetry = Telemetry(node=settings.node)
        runtime = Runtime(settings, telemetry, role="processor")
        runtime.open_resources()
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        await runtime.ready.wait()
        sender = None
        if bootstrap:  # another process puts the records on the broker, faster than they are processed
            ctx = mp.get_context("spawn")  # as the other benches: no fork of a process running chDB's threads
            started = ctx.Event()
            sender = ctx.Process(target=_producer_process, args=(bootstrap, n, started), daemon=True)
            sender.start()
            await asyncio.to_thread(started.wait)
        cpu0, wall0, loop0 = _cpu(), time.monotonic(), time.thread_time()
        if not bootstrap:
            producer = runtime._producer
            assert producer is not None
            topic = topic_for("sip")
            for i in range(0, n, STEP):
                await producer.send_many(topic, records[i : i + STEP])
                await asyncio.sleep(max(0.0, wall0 + (i + STEP) / rate - time.monotonic()) if rate else 0)
        while _stored(telemetry) < n:  # noqa: ASYNC110 - a counter the sinks move: nothing to wait on
            await asyncio.sleep(0.05)
        cpu1, wall1, loop1 = _cpu(), time.monotonic(), time.thread_time()
        stop.set()
        await task
        if sender is not None:
            sender.join()
    return {
        "msgs_per_sec": round(n / (wall1 - wall0)),
        "cpu_us_per_msg": round((cpu1 - cpu0) / n * 1e6, 1),
        "loop_thread_us_per_msg": round((loop1 - loop0) / n * 1e6, 1),
        "decoded_per_msg": round(SHARED.misses / n, 2),
    }


def _one(n: int, rate: float, bootstrap: str | None) -> dict[str, Any]:
    gc.set_threshold(100_000, 50, 1000)  # what ``callscope run`` sets
    configure_logging("warning", "console")
    return asyncio.run(_run(n, rate, bootstrap))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=0.0, help="envelopes put per second (0: as fast as it can)")
    parser.add_argument("--kafka", action="store_true", help="a real broker as the bus (one started for the bench)")
    parser.add_argument("--kafka-bootstrap", help="a real broker as the bus: this one")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a run, in its own process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(_one(args.messages, args.rate, args.kafka_bootstrap)))
        return 0
    if args.kafka and not args.kafka_bootstrap:
        from tests.kafka.broker import KafkaBroker

        with KafkaBroker() as broker:
            return _runs(args.messages, args.runs, args.rate, broker.bootstrap)
    return _runs(args.messages, args.runs, args.rate, args.kafka_bootstrap)


def _runs(n: int, count: int, rate: float, bootstrap: str | None) -> int:
    runs = []
    one = [sys.executable, "-m", "bench.processors_sip", "--one", "--messages", str(n), "--rate", str(rate)]
    if bootstrap:
        one += ["--kafka-bootstrap", bootstrap]
    for _ in range(count):
        out = subprocess.run(
            one,
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), flush=True)
    bus = "Kafka" if bootstrap else "in-process bus"
    print(f"processors_sip: {n:,} SIP messages per run on the {bus}, {count} runs, median (min-max)")
    for name in ("msgs_per_sec", "cpu_us_per_msg", "loop_thread_us_per_msg", "decoded_per_msg"):
        values = [r[name] for r in runs]
        print(f"  {name:24s} {statistics.median(values):10,.1f} ({min(values):,.1f}-{max(values):,.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
