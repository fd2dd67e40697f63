"""Run every benchmark under bench/ and print one table; also write bench/results.json.

Figures are medians over repeated runs with the min-max spread beside them, all
measured in this one invocation. ``--quick`` shrinks the sizes (and says so).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    ami_parse,
    bus_kafka,
    bus_memory,
    e2e_hep,
    e2e_hep_kafka,
    hep_decode,
    options_probe,
    sink_chdb,
    tail_files,
)

RESULTS = Path(__file__).resolve().parent / "results.json"


def _row(name: str, unit: str, median: float, low: float, high: float, size: str, target: float) -> dict[str, Any]:
    return {
        "name": name,
        "unit": unit,
        "median": round(median),
        "min": round(low),
        "max": round(high),
        "size": size,
        "target": target,
        "meets_target": median >= target,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, a minute or two")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kafka-bootstrap", help="use this broker instead of starting one")
    args = parser.parse_args(argv)
    n_bus = 50_000 if args.quick else 200_000
    n_kafka = 50_000 if args.quick else 200_000
    n_rows = 100_000 if args.quick else 300_000
    n_packets = 50_000 if args.quick else 200_000
    n_e2e = 20_000 if args.quick else 100_000
    n_trace = 1_000_000 if args.quick else 10_000_000

    rows: list[dict[str, Any]] = []
    mem = [bus_memory.run(n_bus)["msgs_per_sec"] for _ in range(args.runs)]
    rows.append(
        _row("bus_memory_msgs_per_sec", "msg/s", statistics.median(mem), min(mem), max(mem), f"{n_bus} x 1 KB", 100_000)
    )
    kafka = bus_kafka.run(n_kafka, args.kafka_bootstrap, runs=args.runs)
    e2e = kafka["end_to_end"]
    rows.append(
        _row("bus_kafka_msgs_per_sec", "msg/s", e2e["median"], e2e["min"], e2e["max"], f"{n_kafka} x ~1 KB", 50_000)
    )
    sink = sink_chdb.run(n_rows, runs=args.runs)
    rows.append(
        _row(
            "sink_rows_per_sec",
            "rows/s",
            sink["rows_per_sec"],
            sink["rows_per_sec_min"],
            sink["rows_per_sec_max"],
            f"{n_rows} sip_messages rows",
            150_000,
        )
    )

    hep = hep_decode.run(n_packets, runs=args.runs)
    rows.append(
        _row("hep_decode_pps", "pkt/s", hep["hep_decode_pps"], hep["min"], hep["max"], f"{n_packets} packets", 100_000)
    )
    ami = ami_parse.run(n_packets, runs=args.runs)
    rows.append(
        _row(
            "ami_parse_events_per_sec",
            "event/s",
            ami["ami_parse_events_per_sec"],
            ami["min"],
            ami["max"],
            f"{n_packets} AMI events, framing+parse",
            ami_parse.TARGET,
        )
    )
    n_lines = 100_000 if args.quick else 300_000
    tail = tail_files.run(n_lines, runs=args.runs)
    for fmt in tail_files.FORMATS:
        t = tail[f"{fmt}_tailer"]
        rows.append(
            _row(
                f"tail_{fmt}_lines_per_sec",
                "line/s",
                t["median"],
                t["min"],
                t["max"],
                f"{n_lines} lines: read+parse+envelope",
                tail_files.TARGET,
            )
        )
    e2e = e2e_hep.run(n_e2e, 30_000.0)
    rate = float(e2e["e2e_embedded_msgs_per_sec"])
    rows.append(_row("e2e_embedded_msgs_per_sec", "msg/s", rate, rate, rate, f"{n_e2e} HEP packets, 1 run", 30_000))
    extra: dict[str, Any] = {
        **{
            f"tail_{fmt}_{mode}": round(tail[f"{fmt}_{mode}"]["median"])
            for fmt in tail_files.FORMATS
            for mode in ("tailer_per_cpu_sec", "collector")
        },
        "ami_envelope_events_per_sec": round(ami["ami_envelope_events_per_sec"]),
        "e2e_embedded_lost": e2e["e2e_embedded_lost"],
        "embedded_process_rss_mb": e2e["collector_rss_mb"],
    }
    # Through real Kafka: `callscope run --role collector` and `--role processor` as two processes.
    kafka_e2e = e2e_hep_kafka.run(n_e2e, [20_000.0], args.kafka_bootstrap, runs=args.runs)["rates"][0]
    rows.append(
        _row(
            "e2e_kafka_msgs_per_sec",
            "msg/s",
            kafka_e2e["e2e_kafka_msgs_per_sec"],
            kafka_e2e["min"],
            kafka_e2e["max"],
            f"{n_e2e} HEP packets, 20,000/s offered, collector+processor roles",
            20_000,
        )
    )
    extra.update(
        e2e_kafka_lost=kafka_e2e["lost_max"],
        collector_role_rss_mb=kafka_e2e["collector_rss_mb"],
        processor_role_rss_mb=kafka_e2e["processor_rss_mb"],
    )
    options = options_probe.run(2000, 5.0 if args.quick else 10.0)
    probes = float(options["load"]["probes_per_sec"])
    rows.append(_row("options_probes_per_sec", "probe/s", probes, probes, probes, "2,000/s offered, UDP, 1 run", 2000))
    extra.update(
        options_rtt_median_ms=round(options["load"]["median_ms"], 3),
        options_baseline_rtt_median_ms=round(options["baseline"]["median_ms"], 3),
        options_rtt_overhead_ms=round(options["overhead_load_ms"], 3),
        options_failed=options["load"]["failed"],
    )
    # The trace benchmark owns a chDB directory of its own: run it in its own process.
    code = f"import json, bench.trace as t; print(json.dumps(t.run({n_trace})))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    trace = json.loads(proc.stdout.strip().splitlines()[-1])
    extra.update(trace_p99_ms=trace["trace_p99_ms"], trace_stored_messages=n_trace, ladder_ms=trace["ladder_ms"])
    # The queue SLA benchmark seeds a chDB directory of its own too: its own process as well.
    n_sla = 200_000 if args.quick else 1_000_000
    code = f"import json, bench.queue_sla as q; print(json.dumps(q.run({n_sla})))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    sla = json.loads(proc.stdout.strip().splitlines()[-1])
    extra.update(
        queue_sla_api_p50_ms=sla["api_p50_ms"],
        queue_sla_api_p99_ms=sla["api_p99_ms"],
        queue_sla_exact_p50_ms=sla["exact_p50_ms"],
        queue_sla_sessions=n_sla,
    )

    print(f"{'benchmark':<26} {'median':>12} {'min':>12} {'max':>12}  {'target':>9}  size")
    for r in rows:
        flag = "ok" if r["meets_target"] else "SHORT"
        print(
            f"{r['name']:<26} {r['median']:>12,} {r['min']:>12,} {r['max']:>12,}  {r['target']:>9,.0f}  "
            f"{r['size']} [{flag}]"
        )
    for key, value in extra.items():
        print(f"{key:<26} {value}")
    doc = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "quick": args.quick,
        "runs": args.runs,
        **{r["name"]: r["median"] for r in rows},
        **extra,
        "details": rows,
        "kafka": kafka,
    }
    RESULTS.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"written {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
