"""CPU of the processor role's fetching: five consumer groups of one process read one topic.

    python -m bench.kafka_groups                    # starts its own broker (tests/kafka/broker.py)
    python -m bench.kafka_groups --bootstrap HOST:PORT -n 100000 --runs 5

The records (~1.3 KB SIP envelopes, lz4) are produced once; then, alternating in one run, five
fresh groups read all of them with a fetch per group (``shared_fetch: false``) and through the
process's shared fetch (``shared_fetch: true``). The figure is this process's CPU time (user +
system, the broker is another process) per record delivered to one group, from the groups joining
to the last record: the median of ``--runs`` per mode, and the ratio of the medians. The machine
may be busy with other work; CPU per record and the same-run ratio are what compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

from bench.bus_kafka import BENCH_CONFIG, sample_envelopes
from callscope.bus.kafka import KafkaBus, KafkaConsumer
from callscope.settings import KafkaConfig
from callscope.telemetry import Telemetry, configure_logging

GROUPS = 5  # events, call_legs, registrations, media_quality, health read the SIP topic
POLL_MAX_RECORDS = 5000  # ProcessorConfig.poll_max_records


async def _drain(consumer: KafkaConsumer, count: int) -> None:
    got = 0
    while got < count:
        got += len(await consumer.getmany(timeout_ms=500, max_records=POLL_MAX_RECORDS))


async def _read_all(bootstrap: str, topic: str, count: int, shared: bool) -> dict[str, float]:
    """Five new groups read ``count`` records; this process's CPU per record and group, and the wall time."""
    bus = KafkaBus(KafkaConfig(bootstrap_servers=bootstrap, shared_fetch=shared, **BENCH_CONFIG), Telemetry())
    await bus.start()
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        tag = uuid.uuid4().hex[:8]
        consumers = await asyncio.gather(*(bus.consumer(f"bench-{tag}-{i}", [topic]) for i in range(GROUPS)))
        await asyncio.gather(*(_drain(c, count) for c in consumers))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        fetched = bus.shared_fetch.fetched if bus.shared_fetch is not None else None
    finally:
        await bus.stop()
    result = {"cpu_us_per_record_group": cpu / (count * GROUPS) * 1e6, "wall_secs": wall}
    if fetched is not None:
        result["fetched_per_record"] = fetched / count
    return result


async def _produce(bootstrap: str, count: int) -> str:
    bus = KafkaBus(KafkaConfig(bootstrap_servers=bootstrap, **BENCH_CONFIG), Telemetry())
    await bus.start()
    try:
        topic = f"bench.groups.{uuid.uuid4().hex[:8]}"
        await bus.ensure_topics([topic])
        items = sample_envelopes()
        producer = bus.producer()
        await producer.send_many(topic, [items[i % len(items)] for i in range(count)])
        await producer.close()
    finally:
        await bus.stop()
    return topic


async def _bench(bootstrap: str, count: int, runs: int) -> dict[str, Any]:
    topic = await _produce(bootstrap, count)
    await _read_all(bootstrap, topic, min(count, 10_000), shared=False)  # warm-up, not counted
    samples: dict[str, list[dict[str, float]]] = {"per_group": [], "shared": []}
    for _ in range(runs):
        for mode, results in samples.items():  # alternating, so both modes see the same background load
            results.append(await _read_all(bootstrap, topic, count, shared=mode == "shared"))
    summary: dict[str, Any] = {"records": count, "groups": GROUPS, "runs": runs}
    for mode, results in samples.items():
        cpu = [r["cpu_us_per_record_group"] for r in results]
        summary[mode] = {
            "cpu_us_per_record_group": statistics.median(cpu),
            "min": min(cpu),
            "max": max(cpu),
            "wall_secs": statistics.median(r["wall_secs"] for r in results),
        }
        if "fetched_per_record" in results[0]:
            summary[mode]["fetched_per_record"] = statistics.median(r["fetched_per_record"] for r in results)
    summary["shared_vs_per_group"] = (
        summary["shared"]["cpu_us_per_record_group"] / summary["per_group"]["cpu_us_per_record_group"]
    )
    return summary


def run(count: int, bootstrap: str | None, runs: int) -> dict[str, Any]:
    """Run the comparison; starts a throw-away broker when ``bootstrap`` is None."""
    if bootstrap is not None:
        return asyncio.run(_bench(bootstrap, count, runs))
    from tests.kafka.broker import KafkaBroker

    with KafkaBroker() as broker:
        return asyncio.run(_bench(broker.bootstrap, count, runs))


def _report(result: dict[str, Any]) -> str:
    lines = [f"{result['groups']} groups x {result['records']:,} records, median of {result['runs']} runs (min-max)"]
    for mode in ("per_group", "shared"):
        r = result[mode]
        lines.append(
            f"  {mode:<10} {r['cpu_us_per_record_group']:6.2f} us CPU per record and group "
            f"({r['min']:.2f}-{r['max']:.2f}), {r['wall_secs']:.1f} s wall"
        )
    lines.append(
        f"  shared / per_group: {result['shared_vs_per_group']:.2f}; "
        f"the shared fetch fetched each record {result['shared']['fetched_per_record']:g} times"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kafka_groups", description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--records", type=int, default=100_000, help="records in the topic (default 100000)")
    parser.add_argument("--runs", type=int, default=3, help="counted runs per mode (default 3)")
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    configure_logging(level="warning", fmt="console")
    result = run(args.records, args.bootstrap, args.runs)
    print(json.dumps(result, indent=2) if args.json else _report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
