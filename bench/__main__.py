"""Run every benchmark under bench/, print one table and write it as JSON (bench/results.json).

    make bench | make bench-quick | callscope bench [--quick] [--runs 3] [--only a,b] [--output PATH]

Each benchmark runs in a process of its own (the chDB engine allows one data directory per
process, and one benchmark's memory does not weigh on the next). A figure is the median of
``--runs`` runs, with the min and max beside it, its target and whether it meets it, and the
size of the work. Comparisons are ratios of figures measured in this one invocation. The
sizes are fixed per mode (printed, and written under ``sizes``); a figure that misses its
target is flagged SHORT, never made to pass by shrinking the work. ``--quick`` runs smaller
sizes, meant to finish in under five minutes on two quiet cores; its trace and SLA figures are
at 1/10 and 1/5 of the sizes the targets name, and say so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"
MARK = "BENCH-RESULT "
KAFKA_BENCHES = ("bus_kafka", "e2e_kafka")

FULL: dict[str, Any] = {
    "hep_decode_packets": 200_000,
    "bus_memory_messages": 200_000,
    "ami_events": 200_000,
    "tail_lines": 300_000,
    "sink_rows": 300_000,
    "fuzz_inputs": 10_000_000,
    "options_rate": 2500,  # offered above the 2,000/s target, so the figure can show it is met
    "options_secs": 10.0,
    "e2e_messages": 100_000,
    "e2e_embedded_rate": 30_000.0,
    "e2e_kafka_rate": 20_000.0,
    "e2e_kafka_alone_runs": 0,  # 0: as many as --runs
    "bus_kafka_messages": 200_000,
    "trace_messages": 10_000_000,
    "trace_lookups": 300,
    "sla_sessions": 1_000_000,
    "sla_requests": 150,
}
QUICK: dict[str, Any] = {
    **FULL,
    "hep_decode_packets": 50_000,
    "bus_memory_messages": 50_000,
    "ami_events": 50_000,
    "tail_lines": 50_000,
    "sink_rows": 100_000,
    "fuzz_inputs": 200_000,
    "options_secs": 2.0,
    "e2e_messages": 10_000,
    "e2e_kafka_alone_runs": 1,
    "bus_kafka_messages": 50_000,
    "trace_messages": 1_000_000,
    "sla_sessions": 200_000,
    "sla_requests": 45,
}


def figure(
    median: float, low: float, high: float, runs: int, *, unit: str, target: float, op: str, size: str
) -> dict[str, Any]:
    """One figure: the median of ``runs`` runs, its spread, its target (``>=``, ``<=`` or ``==``) and its size."""
    meets = {">=": median >= target, "<=": median <= target, "==": median == target}[op]
    return {
        "median": round(median, 2),
        "min": round(low, 2),
        "max": round(high, 2),
        "runs": runs,
        "unit": unit,
        "target": target,
        "op": op,
        "meets_target": bool(meets),
        "size": size,
    }


def from_values(values: list[float], **kw: Any) -> dict[str, Any]:
    return figure(statistics.median(values), min(values), max(values), len(values), **kw)


def loss(values: list[int], size: str) -> dict[str, Any]:
    """A loss figure: the worst run is what counts (its median is the largest loss of any run)."""
    worst = max(values)
    return figure(worst, min(values), worst, len(values), unit="msg", target=0, op="==", size=size)


# -- the benchmarks (each runs in its own process) ---------------------------------------------

Result = dict[str, Any]  # {"figures": {key: figure}, "info": {...}}


def b_hep_decode(s: dict[str, Any], runs: int, _bootstrap: str | None) -> Result:
    from bench import hep_decode

    n = s["hep_decode_packets"]
    r, pure = hep_decode.run_both(n, runs=runs)  # the collector's path and the pure reference, runs alternating
    size = f"{n:,} packets/run, one core (decode + SIP parse + envelope, {r['path']} path)"
    fig = figure(r["hep_decode_pps"], r["min"], r["max"], runs, unit="pkt/s", target=100_000, op=">=", size=size)
    info = {
        "mix_bytes_avg": round(r["mix_bytes_avg"]),
        "hep_decode_path": r["path"],
        "hep_decode_pure_pps": pure["hep_decode_pps"],
        "hep_decode_vs_pure": round(r["hep_decode_pps"] / pure["hep_decode_pps"], 2),
    }
    return {"figures": {"hep_decode_pps": fig}, "info": info}


def b_bus_memory(s: dict[str, Any], runs: int, _bootstrap: str | None) -> Result:
    from bench import bus_memory

    n = s["bus_memory_messages"]
    rates = [bus_memory.run(n)["msgs_per_sec"] for _ in range(runs)]
    size = f"{n:,} x 1 KiB/run"
    fig = from_values(rates, unit="msg/s", target=100_000, op=">=", size=size)
    return {"figures": {"bus_memory_msgs_per_sec": fig}, "info": {}}


def b_ami(s: dict[str, Any], runs: int, _bootstrap: str | None) -> Result:
    from bench import ami_parse

    n = s["ami_events"]
    r = ami_parse.run(n, runs=runs)
    size = f"{n:,} AMI events/run, framing + parse"
    fig = figure(
        r["ami_parse_events_per_sec"],
        r["min"],
        r["max"],
        runs,
        unit="event/s",
        target=ami_parse.TARGET,
        op=">=",
        size=size,
    )
    env = figure(
        r["ami_envelope_events_per_sec"],
        r["envelope_min"],
        r["envelope_max"],
        runs,
        unit="event/s",
        target=ami_parse.TARGET,
        op=">=",
        size=f"{n:,} AMI events/run, framing + parse + envelope",
    )
    return {"figures": {"ami_parse_events_per_sec": fig, "ami_envelope_events_per_sec": env}, "info": {}}


def b_tail(s: dict[str, Any], runs: int, _bootstrap: str | None) -> Result:
    from bench import tail_files

    n = s["tail_lines"]
    r = tail_files.run(n, runs=runs)
    figures = {}
    for fmt in tail_files.FORMATS:
        t = r[f"{fmt}_tailer"]
        figures[f"tail_{fmt}_lines_per_sec"] = figure(
            t["median"],
            t["min"],
            t["max"],
            runs,
            unit="line/s",
            target=tail_files.TARGET,
            op=">=",
            size=f"{n:,} lines/run: read + parse + envelope",
        )
    info = {f"tail_{fmt}_collector_lines_per_sec": round(r[f"{fmt}_collector"]["median"]) for fmt in tail_files.FORMATS}
    return {"figures": figures, "info": info}


def b_sink(s: dict[str, Any], runs: int, _bootstrap: str | None) -> Result:
    from bench import sink_chdb

    n = s["sink_rows"]
    r = sink_chdb.run(n, runs=runs)
    size = f"{n:,} sip_messages rows/run into chDB"
    fig = figure(
        r["rows_per_sec"],
        r["rows_per_sec_min"],
        r["rows_per_sec_max"],
        runs,
        unit="row/s",
        target=150_000,
        op=">=",
        size=size,
    )
    return {"figures": {"sink_rows_per_sec": fig}, "info": {"row_build_per_sec": r["row_build_per_sec"]}}


def b_fuzz(s: dict[str, Any], _runs: int, _bootstrap: str | None) -> Result:
    from bench import fuzz  # type: ignore[attr-defined,unused-ignore]

    n = s["fuzz_inputs"]
    r: dict[str, Any] = fuzz.run(n, workers=2, seed=1)
    size = f"{r['fuzz_inputs']:,} inputs, 2 workers, seed 1"
    crashes = int(r["fuzz_crashes"])
    return {
        "figures": {"fuzz_crashes": figure(crashes, crashes, crashes, 1, unit="crash", target=0, op="==", size=size)},
        "info": {
            "fuzz_inputs": r["fuzz_inputs"],
            "fuzz_inputs_per_sec": r.get("fuzz_inputs_per_sec"),
            "fuzz_targets": r.get("targets"),
        },
    }


PROBES_TARGET = 2000  # issue 5: one process probes 2,000 targets per second


def b_options(s: dict[str, Any], runs: int, _bootstrap: str | None) -> Result:
    from bench import options_probe

    rate, secs = s["options_rate"], s["options_secs"]
    results = [options_probe.run(rate, secs) for _ in range(runs)]
    probes = [r["load"]["probes_per_sec"] for r in results]
    ratios = [r["load"]["median_ms"] / r["baseline"]["median_ms"] for r in results]
    overhead = [r["overhead_load_ms"] for r in results]
    size = f"{rate:,}/s offered for {secs:g} s/run over UDP"
    return {
        "figures": {
            "probes_per_sec": from_values(probes, unit="probe/s", target=PROBES_TARGET, op=">=", size=size),
            "options_rtt_overhead_ms": from_values(
                overhead, unit="ms", target=1.0, op="<=", size=f"{size}; prober median RTT - bare ping-pong median"
            ),
        },
        "info": {
            "options_rtt_median_ms": round(statistics.median(r["load"]["median_ms"] for r in results), 3),
            "options_baseline_rtt_median_ms": round(statistics.median(r["baseline"]["median_ms"] for r in results), 3),
            "options_failed_max": max(r["load"]["failed"] for r in results),
        },
        "ratios": {"options_rtt_vs_bare_pingpong": round(statistics.median(ratios), 3)},
    }


def b_e2e_embedded(s: dict[str, Any], runs: int, _bootstrap: str | None) -> Result:
    from bench import e2e_hep

    n, rate = s["e2e_messages"], s["e2e_embedded_rate"]
    results, raw = [], []
    for _ in range(runs):  # alternating: every processor, then the raw path alone (events), in the same minutes
        results.append(e2e_hep.run(n, rate))
        raw.append(e2e_hep.run(n, rate, processors=["events"]))
    size = f"{n:,} HEP packets/run offered at {rate:,.0f}/s into `callscope run`"
    rss = [r["collector_rss_mb"] for r in results]
    return {
        "figures": {
            "e2e_embedded_msgs_per_sec": from_values(
                [r["e2e_embedded_msgs_per_sec"] for r in results], unit="msg/s", target=30_000, op=">=", size=size
            ),
            "e2e_embedded_lost": loss([r["e2e_embedded_lost"] for r in results], size),
        },
        "info": {
            "embedded_process_rss_mb": statistics.median(rss),
            # how busy the machine's CPUs were (1.0: both cores throughout): well under 1 while the rate is short
            # means one interpreter's lock, not the machine, is what limits the embedded process
            "e2e_embedded_machine_cpu_busy": statistics.median(r["machine_cpu_busy"] for r in results),
            # the raw path alone (collector, bus, sip_messages; no correlation): the embedded rate's ceiling
            "e2e_embedded_raw_path_msgs_per_sec": statistics.median(r["e2e_embedded_msgs_per_sec"] for r in raw),
            "e2e_embedded_runs": results,
            "e2e_embedded_raw_path_runs": raw,
        },
    }


def b_bus_kafka(s: dict[str, Any], runs: int, bootstrap: str | None) -> Result:
    from bench import bus_kafka

    n = s["bus_kafka_messages"]
    r = bus_kafka.run(n, bootstrap, runs=runs)
    e2e = r["end_to_end"]
    size = f"{n:,} x ~{r['value_bytes']} B/run, produce -> consume on a real broker"
    fig = figure(e2e["median"], e2e["min"], e2e["max"], runs, unit="msg/s", target=50_000, op=">=", size=size)
    info = {f"bus_kafka_{k}_msgs_per_sec": round(r[k]["median"]) for k in ("produce", "consume")}
    return {"figures": {"bus_kafka_msgs_per_sec": fig}, "info": info}


def b_e2e_kafka(s: dict[str, Any], runs: int, bootstrap: str | None) -> Result:
    from bench import e2e_hep_kafka

    n, rate = s["e2e_messages"], s["e2e_kafka_rate"]
    full = e2e_hep_kafka.run(n, [rate], bootstrap, runs)["rates"][0]
    alone_runs = s["e2e_kafka_alone_runs"] or runs
    alone = e2e_hep_kafka.run(n, [rate], bootstrap, alone_runs, collector_only=True)["rates"][0]
    size = f"{n:,} HEP packets/run offered at {rate:,.0f}/s, collector and processor roles"
    details = full["details"]
    return {
        "figures": {
            "e2e_kafka_msgs_per_sec": figure(
                full["e2e_kafka_msgs_per_sec"],
                full["min"],
                full["max"],
                runs,
                unit="msg/s",
                target=20_000,
                op=">=",
                size=size,
            ),
            "e2e_kafka_lost": loss([d["e2e_kafka_lost"] for d in details], size),
            "collector_rss_mb": from_values(
                [d["collector_rss_mb"] for d in details],
                unit="MiB",
                target=200,
                op="<=",
                size=f"peak RSS of `callscope run --role collector` at {rate:,.0f}/s",
            ),
        },
        "info": {
            "processor_rss_mb": full["processor_rss_mb"],
            "collector_alone_msgs_per_sec": alone["e2e_kafka_msgs_per_sec"],
            "collector_alone_runs": alone_runs,
            "collector_alone_lost_max": alone["lost_max"],
            "e2e_kafka_drain_secs": full["drain_secs"],
            # the whole machine, broker and sender included (1.0: both cores throughout)
            "e2e_kafka_machine_cpu_busy": statistics.median(d["machine_cpu_busy"] for d in details),
        },
        "ratios": {
            "e2e_kafka_vs_collector_alone": round(full["e2e_kafka_msgs_per_sec"] / alone["e2e_kafka_msgs_per_sec"], 3)
        },
    }


def b_trace(s: dict[str, Any], runs: int, _bootstrap: str | None) -> Result:
    from bench import trace

    n, lookups = s["trace_messages"], s["trace_lookups"]
    r = trace.run(n, lookups, runs=runs)
    size = f"{r['messages']:,} stored SIP messages, {lookups} lookups in {runs} groups"
    p99s, ladders = r["trace_p99_runs_ms"], r["ladder_runs_ms"]
    note = "" if r["messages"] >= 10_000_000 else " (target is stated at 10M messages)"
    return {
        "figures": {
            "trace_p99_ms": from_values(p99s, unit="ms", target=50, op="<=", size=size + note),
            "ladder_ms": from_values(ladders, unit="ms", target=20, op="<=", size="200-message call: model + SVG"),
        },
        "info": {
            "trace_stored_messages": r["messages"],
            "trace_p50_ms": r["trace_p50_ms"],
            "trace_seed_secs": r["seed_secs"],
        },
    }


def b_sla(s: dict[str, Any], runs: int, _bootstrap: str | None) -> Result:
    from bench import queue_sla

    n, requests = s["sla_sessions"], s["sla_requests"]
    r = queue_sla.run(n, requests, groups=min(runs, requests))
    note = "" if n >= 1_000_000 else " (target is stated at 1M sessions)"
    size = f"p99 of GET /queues/sales/sla, 30 days, {n:,} sessions, {requests} requests in {runs} groups{note}"
    return {
        "figures": {"sla_query_ms": from_values(r["api_p99_runs_ms"], unit="ms", target=200, op="<=", size=size)},
        "info": {
            "sla_sessions": n,
            "sla_api_p50_ms": r["api_p50_ms"],
            "sla_rollup_equals_exact": r["rollup_equals_exact"],
        },
    }


BENCHMARKS: dict[str, Callable[[dict[str, Any], int, str | None], Result]] = {
    "hep_decode": b_hep_decode,
    "bus_memory": b_bus_memory,
    "ami": b_ami,
    "tail": b_tail,
    "sink": b_sink,
    "fuzz": b_fuzz,
    "options": b_options,
    "e2e_embedded": b_e2e_embedded,
    "bus_kafka": b_bus_kafka,
    "e2e_kafka": b_e2e_kafka,
    "trace": b_trace,
    "sla": b_sla,
}


# -- the parent: one process per benchmark, one table --------------------------------------------


def run_child(name: str, quick: bool, runs: int, bootstrap: str | None) -> Result:
    """Run one benchmark in a fresh interpreter; its result is the line after ``MARK`` on stdout."""
    args = [sys.executable, "-m", "bench", "--child", name, "--runs", str(runs)]
    args += ["--quick"] if quick else []
    args += ["--kafka-bootstrap", bootstrap] if bootstrap else []
    proc = subprocess.run(args, stdout=subprocess.PIPE, text=True, check=False, cwd=RESULTS.parent.parent)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            result: Result = json.loads(line[len(MARK) :])
            return result
    return {"error": f"exit status {proc.returncode}, no result (see the output above)"}


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.2f}"


def table(doc: dict[str, Any]) -> str:
    """The printed table: one line per figure, then ratios, errors and the sizes."""
    lines = [
        f"callscope bench ({'quick' if doc['quick'] else 'full'}), {doc['machine']['cpus']} CPUs, "
        f"load {doc['machine']['loadavg_start'][0]:.2f} at start, {doc['elapsed_secs']:.0f} s",
        f"{'figure':<30} {'median':>10} {'min':>10} {'max':>10} {'runs':>4}  {'target':>10}  {'':5}  size",
    ]
    for key, f in doc["figures"].items():
        flag = "ok" if f["meets_target"] else "SHORT"
        lines.append(
            f"{key:<30} {_fmt(f['median']):>10} {_fmt(f['min']):>10} {_fmt(f['max']):>10} {f['runs']:>4}  "
            f"{f['op'] + ' ' + _fmt(f['target']):>10}  {flag:<5}  {f['unit']}, {f['size']}"
        )
    for key, value in doc["ratios"].items():
        lines.append(f"ratio {key:<24} {value}")
    for key in ("trace_stored_messages", "fuzz_inputs"):
        if key in doc:
            lines.append(f"{key:<30} {doc[key]:,}")
    for name, error in doc["errors"].items():
        lines.append(f"ERROR {name}: {error}")
    return "\n".join(lines)


def collect(names: list[str], quick: bool, runs: int, bootstrap: str | None) -> dict[str, Any]:
    """Run ``names`` (one process each); a Kafka broker is started once for those that need one."""
    sizes = QUICK if quick else FULL
    started = time.monotonic()
    doc: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_start": list(os.getloadavg()),
        },
        "quick": quick,
        "runs": runs,
        "sizes": sizes,
        "benchmarks": names,
        "figures": {},
        "ratios": {},
        "info": {},
        "errors": {},
        "secs": {},
    }
    broker = None
    if bootstrap is None and any(n in KAFKA_BENCHES for n in names):
        from tests.kafka.broker import KafkaBroker

        broker = KafkaBroker()
        broker.start()
        bootstrap = broker.bootstrap
    try:
        for name in names:
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            result = run_child(name, quick, runs, bootstrap)
            doc["secs"][name] = round(time.monotonic() - t0, 1)
            print(f"[bench] {name} done in {doc['secs'][name]} s", file=sys.stderr, flush=True)
            if "error" in result:
                doc["errors"][name] = result["error"]
                continue
            doc["figures"].update(result["figures"])
            doc["info"].update(result.get("info", {}))
            doc["ratios"].update(result.get("ratios", {}))
    finally:
        if broker is not None:
            broker.close()
    figs = doc["figures"]
    if "e2e_embedded_msgs_per_sec" in figs and "hep_decode_pps" in figs:
        ratio = figs["e2e_embedded_msgs_per_sec"]["median"] / figs["hep_decode_pps"]["median"]
        doc["ratios"]["e2e_embedded_vs_hep_decode"] = round(ratio, 3)
    for key in ("trace_stored_messages", "fuzz_inputs"):
        if key in doc["info"]:
            doc[key] = doc["info"][key]
    for key, f in figs.items():
        doc[key] = f["median"]  # the required keys, at the top level
    doc["machine"]["loadavg_end"] = list(os.getloadavg())
    doc["elapsed_secs"] = round(time.monotonic() - started, 1)
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="callscope bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole run in under five minutes")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the figure is their median (default 3)")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    parser.add_argument("--kafka-bootstrap", help="use this Kafka broker instead of starting one")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.child:
        sizes = QUICK if args.quick else FULL
        result = BENCHMARKS[args.child](sizes, args.runs, args.kafka_bootstrap)
        print(MARK + json.dumps(result, default=str), flush=True)
        return 0
    names = list(BENCHMARKS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    sizes = QUICK if args.quick else FULL
    print(
        f"sizes ({'quick' if args.quick else 'full'}, {args.runs} runs each): "
        + ", ".join(f"{k}={v:,}" for k, v in sizes.items()),
        flush=True,
    )
    doc = collect(names, args.quick, args.runs, args.kafka_bootstrap)
    print(table(doc))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    print(f"written {args.output}")
    return 1 if doc["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
