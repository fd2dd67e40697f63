"""Throughput of the Kafka bus with ~1 KB SIP envelopes, through a real broker.

    python -m bench.bus_kafka                       # starts its own broker (tests/kafka/broker.py)
    python -m bench.bus_kafka --bootstrap HOST:PORT -n 200000

Three figures, each the median of ``--runs`` runs (after one smaller warm-up run that
is not counted, for the broker's JIT): produce (``send`` until ``flush`` returned),
consume (a fresh group reads what was produced) and end to end (a joined consumer reads
while the producer sends). ``run()`` is what ``make bench`` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from callscope.bus.kafka import KafkaBus
from callscope.settings import KafkaConfig
from callscope.telemetry import Telemetry, configure_logging
from schemas.bodies import Endpoint, SipBody
from schemas.envelope import SipEnvelope, encode, event_id

PARTITIONS = 4
DISTINCT_ENVELOPES = 2000
# The shipped defaults: lz4 (through cramjam; aiokafka's gzip runs at level 9 in Python
# and halves throughput here), 1 MiB batches, 5 ms linger.
BENCH_CONFIG: dict[str, Any] = {
    "compression": "lz4",
    "max_batch_bytes": 1024 * 1024,
    "linger_ms": 5,
    "partitions": PARTITIONS,
}


def sample_envelopes(count: int = DISTINCT_ENVELOPES) -> list[tuple[bytes, bytes]]:
    """``count`` distinct (key, value) pairs: INVITEs of as many calls, about 1 KB each."""
    base = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    out: list[tuple[bytes, bytes]] = []
    for i in range(count):
        call_id = f"{uuid.UUID(int=i).hex[:20]}@pc33.atlanta.example.com"
        raw = (
            f"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds{i}\r\n"
            f"Max-Forwards: 70\r\nTo: Bob <sip:bob@biloxi.example.com>\r\n"
            f"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 314159 INVITE\r\nContact: <sip:alice@pc33.atlanta.example.com>\r\n"
            f"Content-Length: 0\r\n\r\n"
        )
        ts = base + timedelta(milliseconds=i)
        body = SipBody(
            src=Endpoint(ip="10.0.0.1", port=5060),
            dst=Endpoint(ip="10.0.0.2", port=5060),
            is_request=True,
            method="INVITE",
            call_id=call_id,
            cseq=314159,
            from_user="alice",
            from_tag="1928301774",
            to_user="bob",
            via_branch=f"z9hG4bK776asdhds{i}",
            user_agent="Bench/1.0",
            raw=raw,
        )
        env = SipEnvelope(
            kind="sip",
            id=event_id("sip", "sbc1", raw, ts.isoformat()),
            node="sbc1",
            role="sbc",
            ts=ts,
            received=ts,
            key=call_id,
            body=body,
        )
        out.append((call_id.encode(), encode(env)))
    return out


async def _read(bus: KafkaBus, group: str, topic: str, count: int, started: asyncio.Event | None = None) -> float:
    consumer = await bus.consumer(group, [topic])
    try:
        if started is not None:
            started.set()
        got = 0
        t0 = time.perf_counter()
        while got < count:
            got += len(await consumer.getmany(timeout_ms=500, max_records=20_000))
        return time.perf_counter() - t0
    finally:
        await consumer.close()


async def _produce(bus: KafkaBus, topic: str, items: list[tuple[bytes, bytes]], count: int) -> float:
    producer = bus.producer()
    t0 = time.perf_counter()
    for i in range(count):
        key, value = items[i % len(items)]
        await producer.send(topic, value, key)
    await producer.flush()
    elapsed = time.perf_counter() - t0
    await producer.close()
    return elapsed


async def _one_run(
    bootstrap: str, n: int, items: list[tuple[bytes, bytes]], config: dict[str, Any]
) -> dict[str, float]:
    bus = KafkaBus(KafkaConfig(bootstrap_servers=bootstrap, **config), Telemetry())
    await bus.start()
    try:
        tag = uuid.uuid4().hex[:8]
        topic, e2e_topic = f"bench.bus.{tag}", f"bench.bus.e2e.{tag}"
        await bus.ensure_topics([topic, e2e_topic])

        produce_secs = await _produce(bus, topic, items, n)
        consume_secs = await _read(bus, f"bench-{tag}", topic, n)

        joined = asyncio.Event()
        reader = asyncio.create_task(_read(bus, f"bench-e2e-{tag}", e2e_topic, n, joined))
        await joined.wait()
        t0 = time.perf_counter()
        await _produce(bus, e2e_topic, items, n)
        await reader
        e2e_secs = time.perf_counter() - t0
    finally:
        await bus.stop()
    return {"produce": n / produce_secs, "consume": n / consume_secs, "end_to_end": n / e2e_secs}


async def _bench(bootstrap: str, n_messages: int, runs: int, config: dict[str, Any]) -> dict[str, Any]:
    items = sample_envelopes()
    await _one_run(bootstrap, max(1000, n_messages // 5), items, config)  # warm-up, not counted
    results = [await _one_run(bootstrap, n_messages, items, config) for _ in range(runs)]
    summary: dict[str, Any] = {
        "messages": n_messages,
        "runs": runs,
        "value_bytes": round(statistics.mean(len(v) for _, v in items)),
        "config": config,
    }
    for name in ("produce", "consume", "end_to_end"):
        rates = [r[name] for r in results]
        summary[name] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "runs": rates}
    return summary


def run(n_messages: int, bootstrap: str | None, runs: int = 3, compression: str | None = None) -> dict[str, Any]:
    """Benchmark the Kafka bus; starts a throw-away broker when ``bootstrap`` is None."""
    config = dict(BENCH_CONFIG)
    if compression is not None:
        config["compression"] = compression
    if bootstrap is not None:
        result = asyncio.run(_bench(bootstrap, n_messages, runs, config))
        result["bootstrap"] = bootstrap
        return result
    from tests.kafka.broker import KafkaBroker

    with KafkaBroker() as broker:
        result = asyncio.run(_bench(broker.bootstrap, n_messages, runs, config))
        result["bootstrap"] = "own broker"
    return result


def _report(result: dict[str, Any]) -> str:
    lines = [
        f"kafka bus: {result['messages']} messages of ~{result['value_bytes']} B, "
        f"median of {result['runs']} runs (spread min-max), config {result['config']}"
    ]
    for name in ("produce", "consume", "end_to_end"):
        r = result[name]
        lines.append(f"  {name:<11} {r['median']:>9,.0f} msg/s   ({r['min']:,.0f} - {r['max']:,.0f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bus_kafka", description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--messages", type=int, default=200_000, help="messages per run (default 200000)")
    parser.add_argument("--runs", type=int, default=3, help="counted runs (default 3)")
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument(
        "--compression", choices=["none", "gzip", "snappy", "lz4", "zstd"], help="override (default lz4)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    configure_logging(level="warning", fmt="console")
    result = run(args.messages, args.bootstrap, args.runs, args.compression)
    print(json.dumps(result, indent=2) if args.json else _report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
