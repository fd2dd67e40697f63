"""Throughput of the in-process bus: 1 KB messages produced and consumed (with commits) at once.

    .venv/bin/python bench/bus_memory.py [--messages N] [--runs 3] [--mode send_many|send|both]

Prints messages per second as the median of the runs with their spread. One run
is: a producer task writes N messages keyed over 10,000 Call-IDs to a 4-partition
topic while a consumer task in one group reads them in batches of up to 5,000 and
commits after each batch, so trimming and (with an 8 MiB budget per partition)
backpressure are part of what is measured. The clock stops when the consumer has
read the last message.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any, Literal

from callscope.bus.base import TopicPartition
from callscope.bus.memory import MemoryBus
from callscope.settings import MemoryBusConfig
from callscope.telemetry import Telemetry

TOPIC = "bench.bus_memory"
PARTITIONS = 4
KEYS = 10_000
BUDGET_BYTES = 8 * 1024 * 1024
Mode = Literal["send_many", "send"]


async def _run(n_messages: int, value_bytes: int, batch: int, mode: Mode) -> dict[str, Any]:
    bus = MemoryBus(MemoryBusConfig(partitions=PARTITIONS, max_bytes_per_partition=BUDGET_BYTES), Telemetry())
    await bus.start()
    await bus.ensure_topics([TOPIC])
    consumer = await bus.consumer("bench", [TOPIC])
    producer = bus.producer()
    value = b"x" * value_bytes
    keys = [f"{i:08x}@bench.callscope".encode() for i in range(KEYS)]
    items: list[tuple[bytes | None, bytes]] = [(keys[i % KEYS], value) for i in range(n_messages)]
    batches = [items[i : i + batch] for i in range(0, n_messages, batch)]
    tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]

    async def produce() -> None:
        if mode == "send_many":
            for chunk in batches:
                await producer.send_many(TOPIC, chunk)
        else:
            for key, val in items:
                await producer.send(TOPIC, val, key)
        await producer.flush()

    async def consume() -> int:
        got = 0
        while got < n_messages:
            records = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if not records:
                raise RuntimeError(f"consumer starved after {got} of {n_messages} messages")
            last: dict[int, int] = {}
            for r in records:
                last[r.partition] = r.offset
            await consumer.commit({tps[p]: offset + 1 for p, offset in last.items()})
            got += len(records)
        return got

    started = time.perf_counter()
    _, received = await asyncio.gather(produce(), consume())
    seconds = time.perf_counter() - started
    retained = sum(bus.partition_stats(TOPIC, p).retained_bytes for p in range(PARTITIONS))
    await producer.close()
    await consumer.close()
    await bus.stop()
    if received != n_messages or retained:
        raise RuntimeError(f"received {received} of {n_messages}, {retained} bytes left uncommitted")
    return {
        "name": f"bus_memory.{mode}",
        "messages": n_messages,
        "value_bytes": value_bytes,
        "seconds": seconds,
        "msgs_per_sec": n_messages / seconds,
        "mib_per_sec": n_messages * value_bytes / seconds / 2**20,
    }


def run(n_messages: int, *, value_bytes: int = 1024, batch: int = 500, mode: Mode = "send_many") -> dict[str, Any]:
    """One run; returns name, messages, seconds, msgs_per_sec, mib_per_sec."""
    return asyncio.run(_run(n_messages, value_bytes, batch, mode))


def summarize(results: list[dict[str, Any]]) -> str:
    rates = [r["msgs_per_sec"] for r in results]
    median = statistics.median(rates)
    spread = (max(rates) - min(rates)) / median * 100
    first = results[0]
    return (
        f"{first['name']}: {first['messages']:,} x {first['value_bytes']} B, {len(rates)} runs: "
        f"median {median:,.0f} msg/s ({median * first['value_bytes'] / 2**20:,.0f} MiB/s), "
        f"min {min(rates):,.0f}, max {max(rates):,.0f}, spread {spread:.1f}%"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mode", choices=["send_many", "send", "both"], default="both")
    args = parser.parse_args(argv)
    modes: list[Mode] = ["send_many", "send"] if args.mode == "both" else [args.mode]
    for mode in modes:
        print(summarize([run(args.messages, mode=mode) for _ in range(args.runs)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
