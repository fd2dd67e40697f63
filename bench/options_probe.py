"""OPTIONS prober throughput and RTT overhead against a local UDP responder in another process.

    .venv/bin/python -m bench.options_probe [--rate 2000] [--secs 10]

1. Starts a minimal SIP responder (a plain blocking UDP socket answering every OPTIONS with
   ``200 OK``) as a separate process, so the prober's figures do not share its CPU time.
2. Baseline: a bare UDP ping-pong against that responder (one blocking socket, one request
   at a time, the same request bytes the prober sends): median and p99 RTT.
3. Light load: the OptionsCollector (in-process bus) probes 100 targets once a second for a
   few seconds; median RTT as the prober reports it (``rtt_ms`` in the envelopes).
4. Sustained load: ``rate`` targets x interval 2 s, spread over the whole interval
   (jitter 1.0), for ``secs`` seconds: results published per second, median and p99 RTT,
   skipped slots, failed probes, the prober process's CPU share.

Prints probes/s, the RTT figures and the overhead (prober median - baseline median) at
both loads; the targets are 2,000 probes/s and an overhead of at most 1 ms at the median.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import orjson

_SERVER = b"bench-responder"
_KEEP = (b"via:", b"from", b"to: ", b"to:<", b"call", b"cseq")


def serve() -> None:
    """The responder: one blocking socket, answer every request with 200 OK (runs in its own process)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    recvfrom, sendto = sock.recvfrom, sock.sendto
    while True:
        data, addr = recvfrom(65535)
        head = data.partition(b"\r\n\r\n")[0].split(b"\r\n")
        kept = b"\r\n".join(line for line in head[1:] if line[:4].lower() in _KEEP)
        sendto(b"SIP/2.0 200 OK\r\n" + kept + b"\r\nServer: " + _SERVER + b"\r\nContent-Length: 0\r\n\r\n", addr)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def baseline(port: int, n: int = 2000) -> dict[str, float]:
    """Bare ping-pong RTT in ms (median, p99) with the prober's own request bytes."""
    from collectors.options.message import build_request, new_ids

    rtts: list[float] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2)
        local = sock.getsockname()
        for i in range(n + 100):
            request = build_request(
                request_uri=f"sip:t{i}@127.0.0.1:{port}",
                transport="udp",
                local=local,
                ids=new_ids(),
                cseq=1,
                from_uri="sip:callscope@bench",
            )
            start = time.monotonic()
            sock.sendto(request, ("127.0.0.1", port))
            sock.recvfrom(65535)
            if i >= 100:  # the first 100 warm up
                rtts.append((time.monotonic() - start) * 1000)
    return {"median_ms": statistics.median(rtts), "p99_ms": _percentile(rtts, 0.99)}


async def _probe_load(port: int, targets: int, interval: float, secs: float) -> dict[str, Any]:
    from callscope.bus.memory import MemoryBus
    from callscope.settings import MemoryBusConfig, load_settings
    from callscope.telemetry import Telemetry, configure_logging
    from collectors.options.collector import OptionsCollector
    from schemas.topics import ALL_TOPICS

    settings = load_settings(
        None,
        {
            "node": "bench",
            "log": {"level": "warning"},
            "collectors": {
                "options": {
                    "interval_secs": interval,
                    "timeout_secs": min(2.0, interval),
                    "jitter": 1.0,
                    "max_concurrency": 10_000,
                    "targets": [{"name": f"t{i:05d}", "uri": f"sip:t{i}@127.0.0.1:{port}"} for i in range(targets)],
                }
            },
        },
    )
    configure_logging("warning", "console")
    telemetry = Telemetry(node="bench")
    bus = MemoryBus(MemoryBusConfig(max_bytes_per_partition=1024 * 1024 * 1024), telemetry)
    await bus.start()
    await bus.ensure_topics(ALL_TOPICS)
    consumer = await bus.consumer("bench", ["callscope.options"])
    collector = OptionsCollector(settings.collectors.options, settings, bus.producer(), telemetry)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    await collector.ready.wait()
    await asyncio.sleep(interval)  # the first round ramps up over one interval (jitter 1.0)

    def sent() -> float:
        labels = {"component": "options", "kind": "options"}
        return telemetry.registry.get_sample_value("callscope_events_sent_total", labels) or 0.0

    before, cpu_before, wall_before = sent(), _cpu(), time.monotonic()
    await asyncio.sleep(secs)
    after, cpu_after, wall_after = sent(), _cpu(), time.monotonic()
    stop.set()
    await task
    records = []
    while batch := await consumer.getmany(timeout_ms=100, max_records=100_000):
        records.extend(batch)
    await consumer.close()
    await bus.stop()
    bodies = [orjson.loads(r.value)["body"] for r in records]
    rtts = [b["rtt_ms"] for b in bodies if b["rtt_ms"] is not None]
    wall = wall_after - wall_before
    return {
        "probes_per_sec": (after - before) / wall,
        "results": len(bodies),
        "failed": sum(1 for b in bodies if b["error"] is not None),
        "retransmissions": telemetry.registry.get_sample_value("callscope_options_retransmissions_total"),
        "skipped": telemetry.registry.get_sample_value("callscope_options_skipped_total"),
        "median_ms": statistics.median(rtts),
        "p99_ms": _percentile(rtts, 0.99),
        "cpu_share": (cpu_after - cpu_before) / wall,
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(rate: int = 2000, secs: float = 10.0) -> dict[str, Any]:
    """All figures of one run (see the module docstring)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.options_probe", "--serve"],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        base = baseline(port)
        light = asyncio.run(_probe_load(port, targets=100, interval=1.0, secs=3.0))
        interval = 2.0
        load = asyncio.run(_probe_load(port, targets=int(rate * interval), interval=interval, secs=secs))
        after = baseline(port, 1000)
    finally:
        proc.kill()
        proc.wait()
    return {
        "rate_offered": rate,
        "baseline": base,
        "baseline_after": after,
        "light": light,
        "load": load,
        "overhead_light_ms": light["median_ms"] - base["median_ms"],
        "overhead_load_ms": load["median_ms"] - base["median_ms"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=2000, help="probes per second offered (default 2000)")
    parser.add_argument("--secs", type=float, default=10.0, help="measured seconds at that rate (default 10)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0
    res = run(args.rate, args.secs)
    base, light, load = res["baseline"], res["light"], res["load"]
    print(
        f"options_probe: {load['probes_per_sec']:,.0f} probes/s sustained (offered {args.rate:,}/s for "
        f"{args.secs:g} s; {load['failed']} failed, {load['skipped']:.0f} skipped, "
        f"{load['retransmissions']:.0f} retransmissions, prober CPU {load['cpu_share']:.0%}); target 2,000"
    )
    print(
        f"  rtt at {args.rate:,}/s: median {load['median_ms']:.3f} ms, p99 {load['p99_ms']:.3f} ms; "
        f"at 100/s: median {light['median_ms']:.3f} ms, p99 {light['p99_ms']:.3f} ms"
    )
    print(
        f"  bare UDP ping-pong: median {base['median_ms']:.3f} ms, p99 {base['p99_ms']:.3f} ms "
        f"(after the load: median {res['baseline_after']['median_ms']:.3f} ms)"
    )
    print(
        f"  overhead at the median: {res['overhead_load_ms']:+.3f} ms at {args.rate:,}/s, "
        f"{res['overhead_light_ms']:+.3f} ms at 100/s; target <= 1 ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
