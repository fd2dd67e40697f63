"""End to end through real Kafka: HEP over UDP -> ``--role collector`` -> Kafka -> ``--role processor``.

    .venv/bin/python -m bench.e2e_hep_kafka [--messages N] [--rate R ...] [--runs K] [--kafka-bootstrap H:P]
        [--processor-replicas N]

Starts a throw-away broker (``tests/kafka/broker.py``, as ``bench/bus_kafka.py`` does) unless
``--kafka-bootstrap`` names one. Per run: ``callscope run --role collector`` (HEP and its
/metrics on OS-given ports, no store) and ``callscope run --role processor`` (embedded chDB
in its own data directory), both on a consumer-group prefix of their own. The processor's
groups are first committed at the topics' current ends, so a run never reads what an earlier
run (or anything else on a shared broker) left on the topics. A sender process then blasts
N distinct HEP3/SIP packets at the offered rate (``bench/hep_traffic.py``, the same traffic
as ``bench/e2e_hep.py``), and the processor's /metrics is polled until its sink acknowledged
N ``sip_messages`` rows (or the count stops growing for 15 s after sending ended). With
``--processor-replicas N``, N processor processes join the same consumer groups and Kafka splits the
partitions between them, as between a deployment's replicas (each has its own embedded store here:
their rows and CPU seconds add up).

Per run it reports: messages/s end to end (first packet sent -> last row acknowledged), lost
(sent - stored) and where they went (kernel UDP receive-buffer drops, the collector's
``callscope_events_dropped_total``, its ``callscope_hep_packets_total`` published count),
the collector's and the processor's peak RSS (VmHWM) and CPU seconds, the collector's RSS
(VmRSS) and Kafka producer backlog (``callscope_bus_buffered_messages``) at every poll
(``collector_rss_trace``) and the largest backlog seen, the largest consumer
lag seen and how long the pipeline needed after the sender finished (``drain_secs``: the
processor draining its lag when it is the bottleneck), and how busy the whole machine's CPUs were
over the run (``machine_cpu_busy``, broker and sender included; 1.0 is every core busy throughout).
With several ``--rate`` values, ``full_rate`` names the highest rate every run of which lost nothing,
and the collector RSS there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import hep_traffic
from bench.e2e_hep import HEP_LINE
from callscope.settings import PROCESSOR_NAMES  # the groups the processor role joins: "<group_prefix>.<name>"

STALL_SECS = 15.0
POLL_SECS = 0.5
START_TIMEOUT_SECS = 180.0


@dataclass
class Role:
    """One ``callscope run --role ...`` subprocess and its health/metrics URL."""

    name: str
    proc: subprocess.Popen[str]
    url: str
    hep_port: int | None
    stderr_path: Path

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(f"{self.url}/metrics", timeout=30).text
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
        return out

    def stop(self) -> None:
        hep_traffic.stop_process(self.proc)


def metric_sum(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in metrics.items() if n == name and want <= set(lab))


def rss_mb(pid: int) -> float:
    """The resident set size (VmRSS) of a live process in MiB; NaN once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_role(role: str, data_dir: Path, env: dict[str, str]) -> Role:
    """Start one role on OS-given ports; ready once the banner is out and /readyz answers 200."""
    args = [sys.executable, "-m", "callscope.cli", "run", "--role", role, "--data-dir", str(data_dir)]
    args += ["--api-listen", "127.0.0.1:0"]
    if role == "collector":
        args += ["--hep-listen", "127.0.0.1:0"]
    data_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = data_dir.parent / f"{data_dir.name}.stderr"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    assert proc.stdout is not None
    url = port = None
    deadline = time.monotonic() + START_TIMEOUT_SECS
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{role} exited early ({proc.wait()}): {stderr_path.read_text()[-2000:]}")
        if line.strip().startswith("http:"):
            url = line.split()[1]
        if m := HEP_LINE.search(line):
            port = int(m.group(1))
        if "stop with Ctrl-C" in line:
            break
    running = Role(role, proc, url or "", port, stderr_path)
    if url is None or (role == "collector" and port is None):
        running.stop()
        raise RuntimeError(f"{role}: no http/hep line in the banner")
    while httpx.get(f"{url}/readyz", timeout=5).status_code != 200:  # readiness over HTTP
        if time.monotonic() > deadline:
            running.stop()
            raise RuntimeError(f"{role}: /readyz never answered 200")
        time.sleep(0.1)
    return running


async def _commit_at_end(bootstrap: str, groups: list[str]) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from callscope.bus.kafka import KafkaBus
    from callscope.settings import KafkaConfig
    from callscope.telemetry import Telemetry
    from schemas.topics import ALL_TOPICS

    # A fresh broker answers "coordinator not available" until its offsets topic exists; aiokafka
    # retries and logs each attempt at ERROR.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    bus = KafkaBus(KafkaConfig(bootstrap_servers=bootstrap), Telemetry())
    await bus.start()
    try:
        await bus.ensure_topics(ALL_TOPICS)  # as every role does at start
        tps = [TopicPartition(t, p) for t in ALL_TOPICS for p in range(await bus.partitions_for(t))]
    finally:
        await bus.stop()
    for group in groups:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            await consumer.commit({tp: ends[tp] for tp in tps})
        finally:
            await consumer.stop()


def processor_groups(group_prefix: str) -> list[str]:
    """The consumer groups the processor role joins under ``group_prefix``."""
    return [f"{group_prefix}.{name}" for name in PROCESSOR_NAMES]


def commit_at_end(bootstrap: str, group_prefix: str) -> None:
    """Commit every processor group of ``group_prefix`` at the topics' ends: a run reads only its own traffic,
    not what earlier runs (or other tests on a shared broker) left on the topics."""
    asyncio.run(_commit_at_end(bootstrap, processor_groups(group_prefix)))


@contextmanager
def pipeline(tmp: Path, bootstrap: str, *, processors: int = 1) -> Iterator[tuple[Role, list[Role], str]]:
    """A collector and ``processors`` processor replicas (0: none) on ``bootstrap``, on a group prefix of their own.

    Replicas join the same consumer groups, so Kafka splits each topic's partitions between them, as it does
    for a deployment's replicas; each has an embedded store of its own (the rows they store add up)."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        CALLSCOPE_LOG__LEVEL="warning",
        CALLSCOPE_BUS__KIND="kafka",
        CALLSCOPE_BUS__KAFKA__BOOTSTRAP_SERVERS=bootstrap,
        CALLSCOPE_PROCESSORS__GROUP_PREFIX=prefix,
    )
    from callscope.telemetry import configure_logging

    configure_logging(level="warning", fmt="console")
    commit_at_end(bootstrap, prefix)
    roles: list[Role] = []
    try:
        roles.append(start_role("collector", tmp / "collector", env))
        for i in range(processors):
            name = "processor" if i == 0 else f"processor{i + 1}"
            roles.append(start_role("processor", tmp / name, env))
            roles[-1].name = name
        yield roles[0], roles[1:], prefix
    finally:
        for role in reversed(roles):
            role.stop()


def one_run(bootstrap: str, n: int, rate: float, *, collector_only: bool = False, replicas: int = 1) -> dict[str, Any]:
    """One run at one offered rate; the figures of the module docstring.

    ``collector_only``: no processor; the run ends when the collector published every packet
    (handed to its Kafka producer), so the collector's own ceiling shows without a processor
    sharing the CPUs. ``replicas``: processor processes otherwise (their rows and CPU seconds add up;
    the RSS is the largest one's).
    """
    with (
        tempfile.TemporaryDirectory(prefix="bench-e2e-hep-kafka-") as tmp,
        pipeline(Path(tmp), bootstrap, processors=0 if collector_only else replicas) as (
            collector,
            processors,
            prefix,
        ),
    ):
        roles = [collector, *processors]
        processor = processors[0] if processors else None
        assert collector.hep_port is not None
        ctx = mp.get_context("spawn")
        ready, go, result = ctx.Event(), ctx.Event(), ctx.Value("d", 0.0)
        args = (collector.hep_port, n, rate, os.getpid(), ready, go, result)
        sender = ctx.Process(target=hep_traffic.sender, args=args)
        sender.start()
        if not ready.wait(300):
            raise RuntimeError("the sender process never got ready")
        cpu0 = {r.name: hep_traffic.cpu_secs(r.proc.pid) for r in roles}
        rss0 = rss_mb(collector.proc.pid)
        trace: list[tuple[float, float, int]] = []  # (secs since go, collector VmRSS MiB, its bus buffer)
        kernel0 = hep_traffic.udp_rcvbuf_errors()
        busy0 = busy_at_change = hep_traffic.machine_busy_secs()
        started = time.monotonic()
        go.set()
        stored = published = 0
        last_change = published_change = started
        max_lag = 0.0
        send_done_at: float | None = None
        stored_at_send_end = published_at_send_end = 0
        while (stored if processor is not None else published) < n:
            time.sleep(POLL_SECS)
            pms = [p.metrics() for p in processors]
            cm = collector.metrics()
            now = time.monotonic()
            value = int(sum(metric_sum(pm, "callscope_sink_batch_rows_sum", table="sip_messages") for pm in pms))
            for pm in pms:  # each replica measures the whole group's lag
                lag = metric_sum(pm, "callscope_bus_lag_messages", group=f"{prefix}.events", topic="callscope.sip")
                max_lag = max(max_lag, lag)
            if value != stored:
                stored, last_change = value, now
                busy_at_change = hep_traffic.machine_busy_secs()
            trace.append(
                (
                    round(now - started, 1),
                    round(rss_mb(collector.proc.pid), 1),
                    int(metric_sum(cm, "callscope_bus_buffered_messages")),
                )
            )
            value = int(metric_sum(cm, "callscope_hep_packets_total", transport="all", result="published"))
            if value != published:
                published, published_change = value, now
            if send_done_at is None and not sender.is_alive():
                send_done_at = now
                stored_at_send_end, published_at_send_end = stored, published
            if processor is None and published != stored:
                stored, last_change = published, published_change
                busy_at_change = hep_traffic.machine_busy_secs()
            if send_done_at is not None and now - last_change > STALL_SECS:
                break
        finished = last_change
        if send_done_at is None:  # done before the sender was seen to finish: nothing was behind
            stored_at_send_end, published_at_send_end = stored, published
        sender.join(60)
        cm = collector.metrics()
        pms = [p.metrics() for p in processors]
        kernel_drops = hep_traffic.udp_rcvbuf_errors() - kernel0
        cpu = {r.name: round(hep_traffic.cpu_secs(r.proc.pid) - cpu0[r.name], 1) for r in roles}
        rss = {r.name: round(hep_traffic.peak_rss_mb(r.proc.pid), 1) for r in roles}
        elapsed = finished - started
        return {
            "messages": n,
            "offered_rate": rate,
            "send_secs": round(result.value, 2),
            "e2e_kafka_msgs_per_sec": round(stored / elapsed) if elapsed > 0 else 0,
            "e2e_kafka_lost": n - stored,
            "kernel_udp_rcvbuf_drops": kernel_drops,
            "collector_received": int(metric_sum(cm, "callscope_events_received_total", component="hep")),
            "collector_published": int(
                metric_sum(cm, "callscope_hep_packets_total", transport="all", result="published")
            ),
            # first packet sent -> last one the collector handed to the Kafka producer (0.5 s polls)
            "collector_msgs_per_sec": round(published / (published_change - started)) if published else 0,
            "collector_dropped": int(metric_sum(cm, "callscope_events_dropped_total")),
            "published_at_send_end": published_at_send_end,
            "stored_at_send_end": stored_at_send_end,
            "drain_secs": round(finished - send_done_at, 2) if send_done_at is not None else None,
            "max_sip_lag": int(max_lag),
            "call_legs_rows_written": int(
                sum(metric_sum(pm, "callscope_sink_batch_rows_sum", table="call_legs") for pm in pms)
            ),
            "collector_rss_mb": rss["collector"],
            "collector_rss_at_go_mb": round(rss0, 1),
            "collector_max_buffered": max((b for _, _, b in trace), default=0),
            # collector VmRSS and producer backlog (callscope_bus_buffered_messages) at each 0.5 s poll
            "collector_rss_trace": trace,
            "processor_rss_mb": max((rss[p.name] for p in processors), default=0.0),
            "collector_cpu_secs": cpu["collector"],
            "processor_cpu_secs": round(sum(cpu[p.name] for p in processors), 1),
            "processor_replicas": len(processors),
            # sip_messages rows each replica stored (their partitions' share)
            "processor_rows": [
                int(metric_sum(pm, "callscope_sink_batch_rows_sum", table="sip_messages")) for pm in pms
            ],
            # the whole machine over the same window, broker and sender included: 1.0 is every core busy throughout
            "machine_cpu_busy": hep_traffic.busy_fraction(busy_at_change - busy0, elapsed),
            "loadavg_1m": os.getloadavg()[0],
        }


def _summary(rate: float, runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    rates = [r["e2e_kafka_msgs_per_sec"] for r in runs]
    return {
        "offered_rate": rate,
        "runs": len(runs),
        "e2e_kafka_msgs_per_sec": med("e2e_kafka_msgs_per_sec"),
        "min": min(rates),
        "max": max(rates),
        "lost_max": max(r["e2e_kafka_lost"] for r in runs),
        "collector_msgs_per_sec": med("collector_msgs_per_sec"),
        "collector_dropped_max": max(r["collector_dropped"] + r["kernel_udp_rcvbuf_drops"] for r in runs),
        "max_sip_lag": med("max_sip_lag"),
        "collector_rss_mb": med("collector_rss_mb"),
        "processor_rss_mb": med("processor_rss_mb"),
        "drain_secs": med("drain_secs") if all(r["drain_secs"] is not None for r in runs) else None,
        "details": runs,
    }


def bench(
    bootstrap: str, n: int, rates: list[float], runs: int, *, collector_only: bool = False, replicas: int = 1
) -> dict[str, Any]:
    per_rate = [
        _summary(
            rate, [one_run(bootstrap, n, rate, collector_only=collector_only, replicas=replicas) for _ in range(runs)]
        )
        for rate in rates
    ]
    clean = [s for s in per_rate if s["lost_max"] == 0]
    full = max(clean, key=lambda s: s["offered_rate"]) if clean else None
    return {
        "messages": n,
        "rates": per_rate,
        "full_rate": None
        if full is None
        else {
            "offered_rate": full["offered_rate"],
            "e2e_kafka_msgs_per_sec": full["e2e_kafka_msgs_per_sec"],
            "collector_rss_mb": full["collector_rss_mb"],
            "processor_rss_mb": full["processor_rss_mb"],
        },
        "cpus": os.cpu_count(),
        "collector_only": collector_only,
        "processor_replicas": 0 if collector_only else replicas,
    }


def run(
    n: int,
    rates: list[float],
    bootstrap: str | None = None,
    runs: int = 3,
    *,
    collector_only: bool = False,
    replicas: int = 1,
) -> dict[str, Any]:
    """Benchmark; starts a throw-away broker when ``bootstrap`` is None."""
    if bootstrap is not None:
        return {
            **bench(bootstrap, n, rates, runs, collector_only=collector_only, replicas=replicas),
            "bootstrap": bootstrap,
        }
    from tests.kafka.broker import KafkaBroker

    with KafkaBroker() as broker:
        result = bench(broker.bootstrap, n, rates, runs, collector_only=collector_only, replicas=replicas)
        return {**result, "bootstrap": "own broker"}


def _report(result: dict[str, Any]) -> str:
    replicas = result["processor_replicas"]
    path = (
        "collector -> Kafka (no processor)"
        if result["collector_only"]
        else f"collector -> Kafka -> processor ({replicas} replica{'s' if replicas > 1 else ''})"
    )
    lines = [f"e2e HEP -> {path}, {result['messages']} messages per run"]
    for s in result["rates"]:
        lines.append(
            f"  offered {s['offered_rate']:>8,.0f}/s: {s['e2e_kafka_msgs_per_sec']:>8,.0f} msg/s "
            f"({s['min']:,}-{s['max']:,}, {s['runs']} runs), lost max {s['lost_max']}, "
            f"collector {s['collector_msgs_per_sec']:,.0f} msg/s, "
            f"collector RSS {s['collector_rss_mb']} MB, processor RSS {s['processor_rss_mb']} MB, "
            f"drain {s['drain_secs']} s"
        )
    full = result["full_rate"]
    lines.append(
        "  full rate (highest with 0 loss): none"
        if full is None
        else f"  full rate (highest with 0 loss): {full['offered_rate']:,.0f}/s, "
        f"collector RSS {full['collector_rss_mb']} MB"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.e2e_hep_kafka", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000, help="packets per run (default 100000)")
    parser.add_argument(
        "--rate", type=float, action="append", help="packets/s offered; repeat for several (default 20000)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per rate (default 3)")
    parser.add_argument("--kafka-bootstrap", help="use this broker instead of starting one")
    parser.add_argument(
        "--collector-only", action="store_true", help="no processor: measure HEP -> collector -> Kafka alone"
    )
    parser.add_argument(
        "--processor-replicas",
        type=int,
        default=1,
        metavar="N",
        help="processor processes in the same consumer groups, splitting the partitions (default 1)",
    )
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = parser.parse_args(argv)
    if args.processor_replicas < 1:
        parser.error("--processor-replicas must be at least 1 (--collector-only runs none)")
    result = run(
        args.messages,
        args.rate or [20_000.0],
        args.kafka_bootstrap,
        args.runs,
        collector_only=args.collector_only,
        replicas=args.processor_replicas,
    )
    print(json.dumps(result, indent=2) if args.json else _report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
