"""Soak: ``callscope run`` (embedded) fed complete calls over UDP for minutes; does anything grow?

    make soak | .venv/bin/python -m bench.soak [--minutes 10] [--rate PKT_PER_SEC] [--interval 10]

Starts ``callscope run`` as a process of its own (fresh data directory, OS-given ports) and a
sender process that sends the demo's calls (``callscope.demo.generate``: two legs per call
linked by X-CID, answered/busy/cancelled/failed, RTCP and log lines, registrations, OPTIONS)
at ``--rate`` packets per second, stamped with the current time. The default rate is half of
``e2e_embedded_msgs_per_sec`` in bench/results.json (the measured maximum), else half of the
30,000/s target.

Traffic: a pool of calls is generated once; each cycle of the pool gets Call-IDs of its own
(the first 8 characters of every Call-ID, also where it appears in X-CID, correlation ids and
log lines, become the cycle number) and new times: each call starts at its slot in the cycle
(the calls spread evenly over the cycle's share of the send time) and keeps its own timing
(ringing, talk time up to 3 minutes, 408 after 32 s), so calls overlap as on a busy platform
and the open-leg state fills for about three minutes, then holds. The sender stops at the end
of the soak; calls still open are not finished.

Every ``--interval`` seconds it samples the process RSS (VmRSS), the state gauges of /metrics
(``callscope_processor_state_entries`` per processor, ``callscope_processor_pending_rows``,
``callscope_bus_lag_messages`` summed over groups, rows acknowledged per table) and the
packets sent. At the end, after the pipeline drained, it counts what was stored (``GET
/api/v1/events/stats``: FINAL counts per kind) and reports, over the second half of the run:
the RSS slope (least-squares line, MiB/min), the state and backlog slopes, sent vs stored
(loss), and a verdict: ``flat`` when the RSS slope is within ``--rss-tolerance`` MiB/min, the
state slope within ``--state-tolerance`` of the mean state per minute, the backlog slope
within 1 % of a minute's traffic per minute, and nothing was lost. Written to
bench/soak_results.json and printed.
"""

from __future__ import annotations

import argparse
import heapq
import json
import multiprocessing as mp
import os
import re
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"
OUTPUT = Path(__file__).resolve().parent / "soak_results.json"
TARGET_E2E = 30_000.0
POOL_CALLS = 2000
PREFIX = 8  # characters of each Call-ID that carry the cycle number
KINDS = {1: "sip", 5: "rtcp", 100: "log"}  # HEP payload type -> envelope kind
TABLES = {"sip": "sip_messages", "rtcp": "rtcp", "log": "logs"}
ID_RE = re.compile(rb"[0-9a-f]{12,20}(?:-\d+)?@\d+\.\d+\.\d+\.\d+")
B_LEG_RE = re.compile(rb"-(\d+)@")
RSS_TOLERANCE_MB_PER_MIN = 1.0
STATE_TOLERANCE_PER_MIN = 0.02  # of the mean state
BACKLOG_TOLERANCE = 0.01  # of a minute's traffic, per minute
DRAIN_STALL_SECS = 30.0


# -- traffic -------------------------------------------------------------------------------------


@dataclass
class Template:
    """One packet of the pool and where to patch it: Call-ID prefixes, time, and its call's timing."""

    data: bytes
    kind: str
    id_offsets: list[int]
    ts_offsets: tuple[int, int]  # value offsets of the seconds and microseconds chunks
    group: int
    offset_us: int  # time after its call's first packet


@dataclass
class Pool:
    templates: list[Template]
    groups: int
    kinds: dict[str, int] = field(default_factory=dict)


def _chunks(data: bytes) -> dict[int, tuple[int, int]]:
    """HEP3 chunk type -> (value offset, value length) for vendor-0 chunks."""
    out: dict[int, tuple[int, int]] = {}
    pos, end = 6, min(len(data), struct.unpack_from("!H", data, 4)[0])
    while pos + 6 <= end:
        vendor, ctype, length = struct.unpack_from("!HHH", data, pos)
        if length < 6:
            break
        if vendor == 0:
            out[ctype] = (pos + 6, length - 6)
        pos += length
    return out


def build_pool(calls: int = POOL_CALLS, seed: int = 7) -> Pool:
    """Generate the demo's traffic once and index what each cycle rewrites."""
    from callscope.demo import generate

    traffic = generate(calls, seed=seed, start_us=1_700_000_000_000_000)
    a_legs = {cid.encode(): n for n, cid in enumerate(traffic.call_ids)}
    group_of: dict[bytes, int] = {}
    rows: list[tuple[bytes, str, list[int], tuple[int, int], int, int]] = []
    suffixes: set[bytes] = set()
    for data in traffic.packets:
        chunks = _chunks(data)
        sec_at, usec_at = chunks[9][0], chunks[10][0]
        ts_us = struct.unpack_from("!I", data, sec_at)[0] * 1_000_000 + struct.unpack_from("!I", data, usec_at)[0]
        ptype = data[chunks[11][0]] if 11 in chunks else 1
        ids = [(m.start(), m.group()) for m in ID_RE.finditer(data)]
        if not ids:
            raise RuntimeError("a demo packet without a Call-ID; the soak cannot make it unique per cycle")
        for _, cid in ids:
            suffixes.add(cid[PREFIX:])
        first = ids[0][1]
        if first not in group_of:
            if first in a_legs:
                group_of[first] = a_legs[first]
            elif first.endswith(b"@10.0.0.10") and (m := B_LEG_RE.search(first)):
                group_of[first] = int(m.group(1))
            else:
                group_of[first] = calls + len(group_of)
        rows.append((data, KINDS.get(ptype, "sip"), [at for at, _ in ids], (sec_at, usec_at), group_of[first], ts_us))
    ids_total = len({cid for data in traffic.packets for cid in ID_RE.findall(data)})
    if len(suffixes) != ids_total:
        raise RuntimeError("two Call-IDs of the pool share their suffix; pick another --seed")
    starts: dict[int, int] = {}
    for _, _, _, _, group, ts in rows:
        starts[group] = min(ts, starts.get(group, ts))
    order = {g: rank for rank, g in enumerate(sorted(starts, key=starts.__getitem__))}
    templates = [
        Template(data, kind, offs, ts_at, order[group], ts - starts[group])
        for data, kind, offs, ts_at, group, ts in rows
    ]
    kinds: dict[str, int] = {}
    for t in templates:
        kinds[t.kind] = kinds.get(t.kind, 0) + 1
    return Pool(templates, len(order), kinds)


def patch(t: Template, cycle: int, at_us: int) -> bytes:
    """The template's bytes for ``cycle``: its Call-IDs renumbered, its time ``at_us``."""
    buf = bytearray(t.data)
    prefix = f"{cycle % 16**PREFIX:0{PREFIX}x}".encode()
    for at in t.id_offsets:
        buf[at : at + PREFIX] = prefix
    struct.pack_into("!I", buf, t.ts_offsets[0], at_us // 1_000_000)
    struct.pack_into("!I", buf, t.ts_offsets[1], at_us % 1_000_000)
    return bytes(buf)


def schedule(pool: Pool, cycle: int, base_us: int, window_us: int) -> list[tuple[int, int, int]]:
    """(send time, cycle, template index) for one cycle: calls spread over ``window_us``, own timing kept."""
    step = window_us / max(1, pool.groups)
    return [(base_us + int(t.group * step) + t.offset_us, cycle, i) for i, t in enumerate(pool.templates)]


def sender(port: int, rate: float, secs: float, seed: int, ready: Any, go: Any, sent: Any, stop: Any) -> None:
    """Process target: send the pool's cycles at ``rate`` packets/s for ``secs``; ``sent`` counts per kind."""
    import socket

    pool = build_pool(seed=seed)
    kind_index = {k: i for i, k in enumerate(TABLES)}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    sock.connect(("127.0.0.1", port))
    ready.set()
    go.wait()
    window_us = int(len(pool.templates) / rate * 1_000_000)
    start_us = time.time_ns() // 1000
    end_us = start_us + int(secs * 1_000_000)
    heap: list[tuple[int, int, int]] = []
    next_cycle, next_base = 0, start_us
    counts = [0] * len(TABLES)
    send = sock.send
    while not stop.is_set():
        now_us = time.time_ns() // 1000
        if now_us >= end_us:
            break
        if next_base <= now_us + 1_000_000 and next_base < end_us:
            for item in schedule(pool, next_cycle, next_base, window_us):
                heapq.heappush(heap, item)
            next_cycle, next_base = next_cycle + 1, next_base + window_us
        while heap and heap[0][0] <= now_us:
            at_us, cycle, index = heapq.heappop(heap)
            t = pool.templates[index]
            try:
                send(patch(t, cycle, at_us))
            except OSError:  # a full send buffer: counted as not sent, tried no more
                continue
            counts[kind_index[t.kind]] += 1
        for i, n in enumerate(counts):
            sent[i] = n
        time.sleep(0.001)
    sock.close()


# -- analysis ------------------------------------------------------------------------------------


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares line through the points: (slope, intercept); slope 0 for fewer than 2 distinct xs."""
    n = len(xs)
    if n < 2:
        return 0.0, ys[0] if ys else 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, my
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx


def analyse(
    samples: list[dict[str, Any]],
    *,
    sent: int,
    stored: int,
    rate: float,
    rss_tolerance: float = RSS_TOLERANCE_MB_PER_MIN,
    state_tolerance: float = STATE_TOLERANCE_PER_MIN,
) -> dict[str, Any]:
    """Slopes over the second half of the samples (per minute), loss, and the verdict with its reasons.

    ``samples``: dicts with ``t`` (seconds since the start), ``rss_mb``, ``state`` (entries held
    by the processors) and ``backlog`` (bus lag, messages).
    """
    if not samples:
        return {"verdict": "no samples", "reasons": ["no samples were taken"], "lost": sent - stored}
    half = samples[-1]["t"] / 2
    second = [s for s in samples if s["t"] >= half] or samples[-1:]
    minutes = [s["t"] / 60 for s in second]
    rss_slope, _ = linear_fit(minutes, [s["rss_mb"] for s in second])
    state_slope, _ = linear_fit(minutes, [float(s["state"]) for s in second])
    backlog_slope, _ = linear_fit(minutes, [float(s["backlog"]) for s in second])
    state_mean = sum(s["state"] for s in second) / len(second)
    by_processor = {
        name: round(linear_fit(minutes, [float(s["state_by_processor"].get(name, 0)) for s in second])[0], 1)
        for name in sorted({n for s in second for n in s.get("state_by_processor", {})})
    }
    state_limit = max(10.0, state_tolerance * state_mean)
    backlog_limit = max(10.0, BACKLOG_TOLERANCE * rate * 60)
    lost = sent - stored
    reasons = []
    if rss_slope > rss_tolerance:
        reasons.append(f"RSS grows {rss_slope:.2f} MiB/min (tolerance {rss_tolerance} MiB/min)")
    if state_slope > state_limit:
        growing = ", ".join(f"{k} {v:+.0f}/min" for k, v in by_processor.items() if v >= 1)
        reasons.append(f"state grows {state_slope:.0f} entries/min (tolerance {state_limit:.0f}/min): {growing}")
    if backlog_slope > backlog_limit:
        reasons.append(f"backlog grows {backlog_slope:.0f} msg/min (tolerance {backlog_limit:.0f}/min)")
    if lost:
        reasons.append(f"{lost} of {sent} packets sent were not stored")
    return {
        "verdict": "flat" if not reasons else "not flat",
        "reasons": reasons,
        "second_half_samples": len(second),
        "rss_slope_mb_per_min": round(rss_slope, 3),
        "rss_tolerance_mb_per_min": rss_tolerance,
        "rss_first_mb": samples[0]["rss_mb"],
        "rss_last_mb": samples[-1]["rss_mb"],
        "rss_max_mb": max(s["rss_mb"] for s in samples),
        "state_slope_per_min": round(state_slope, 1),
        "state_tolerance_per_min": round(state_limit, 1),
        "state_mean_second_half": round(state_mean, 1),
        "state_slope_by_processor_per_min": by_processor,
        "backlog_slope_per_min": round(backlog_slope, 1),
        "backlog_tolerance_per_min": round(backlog_limit, 1),
        "sent": sent,
        "stored": stored,
        "lost": lost,
    }


# -- the run -------------------------------------------------------------------------------------


def _metrics(url: str, token: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30).text
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return out


def _by_label(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for (n, labels), value in metrics.items():
        if n == name:
            key = dict(labels).get(label, "")
            out[key] = out.get(key, 0.0) + value
    return out


def rss_mb(pid: int) -> float:
    """Resident set size (VmRSS) of a live process in MiB."""
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def sample(t: float, pid: int, url: str, token: str, sent: list[int]) -> dict[str, Any]:
    from bench.e2e_hep_kafka import metric_sum

    m = _metrics(url, token)
    state = _by_label(m, "callscope_processor_state_entries", "processor")
    pending = _by_label(m, "callscope_processor_pending_rows", "processor")
    lag = _by_label(m, "callscope_bus_lag_messages", "group")
    acked = _by_label(m, "callscope_sink_batch_rows_sum", "table")
    return {
        "t": round(t, 1),
        "rss_mb": round(rss_mb(pid), 1),
        "state": int(sum(state.values())),
        "state_by_processor": {k: int(v) for k, v in state.items()},
        "pending_rows": int(sum(pending.values())),
        "backlog": int(sum(lag.values())),
        "backlog_by_group": {k: int(v) for k, v in lag.items()},
        "acked_rows": {k: int(v) for k, v in acked.items()},
        "dropped": int(metric_sum(m, "callscope_events_dropped_total")),
        "sent": sum(sent),
    }


def default_rate(results: Path = RESULTS) -> tuple[float, str]:
    """Half the measured embedded maximum when bench/results.json has it, else half the target."""
    try:
        measured = float(json.loads(results.read_text())["e2e_embedded_msgs_per_sec"])
    except (OSError, KeyError, ValueError, TypeError):
        return TARGET_E2E / 2, f"half the {TARGET_E2E:,.0f}/s target (no e2e_embedded_msgs_per_sec in {results})"
    return measured / 2, f"half of e2e_embedded_msgs_per_sec {measured:,.0f}/s from {results}"


def run(minutes: float, rate: float, interval: float, *, seed: int = 7, log: Any = None) -> dict[str, Any]:
    """Run the soak; returns the samples and the analysis (without tolerances applied twice)."""
    import httpx

    from bench.e2e_hep import _start
    from bench.hep_traffic import stop_process

    say = log or (lambda _msg: None)
    secs = minutes * 60
    with tempfile.TemporaryDirectory(prefix="callscope-soak-") as tmp:
        data_dir = Path(tmp) / "data"
        proc, url, port = _start(data_dir, {})
        try:
            token = (data_dir / "api-token").read_text().strip()
            ctx = mp.get_context("spawn")
            ready, go, stop = ctx.Event(), ctx.Event(), ctx.Event()
            sent_counts = ctx.Array("q", len(TABLES))
            proc_sender = ctx.Process(
                target=sender, args=(port, rate, secs, seed, ready, go, sent_counts, stop), daemon=True
            )
            proc_sender.start()
            if not ready.wait(300):
                raise RuntimeError("the sender never got ready")
            started = time.monotonic()
            go.set()
            samples: list[dict[str, Any]] = []
            next_at = started
            while proc_sender.is_alive() or not samples:
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
                s = sample(time.monotonic() - started, proc.pid, url, token, sent_counts[:])
                samples.append(s)
                say(
                    f"t={s['t']:>6.0f}s rss={s['rss_mb']:>7.1f} MiB state={s['state']:>7} "
                    f"backlog={s['backlog']:>7} pending={s['pending_rows']:>6} sent={s['sent']:>9}"
                )
                if proc.poll() is not None:
                    raise RuntimeError(f"callscope run exited ({proc.returncode}) during the soak")
            proc_sender.join(30)
            sent = dict(zip(TABLES, sent_counts[:], strict=True))
            # Drain: until the sinks acknowledged as many rows as were sent, or nothing moved for a while.
            last, last_change = -1, time.monotonic()
            while time.monotonic() - last_change < DRAIN_STALL_SECS:
                acked = _by_label(_metrics(url, token), "callscope_sink_batch_rows_sum", "table")
                total = int(sum(acked.get(TABLES[k], 0) for k in TABLES))
                if all(acked.get(TABLES[k], 0) >= n for k, n in sent.items()):
                    break
                if total != last:
                    last, last_change = total, time.monotonic()
                time.sleep(1)
            stats = httpx.get(
                f"{url}/api/v1/events/stats", headers={"Authorization": f"Bearer {token}"}, timeout=120
            ).json()
            stored = {k: int(stats["tables"].get(k, {}).get("events", 0)) for k in TABLES}
            final = sample(time.monotonic() - started, proc.pid, url, token, sent_counts[:])
        finally:
            stop_process(proc)
    return {"samples": samples, "after_drain": final, "sent": sent, "stored": stored}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to send (default 10)")
    parser.add_argument("--rate", type=float, help="packets per second (default: half the measured maximum)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--rss-tolerance", type=float, default=RSS_TOLERANCE_MB_PER_MIN, help="MiB/min")
    parser.add_argument("--state-tolerance", type=float, default=STATE_TOLERANCE_PER_MIN, help="fraction/min")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"JSON results (default {OUTPUT})")
    args = parser.parse_args(argv)
    if args.rate is None:
        rate, why = default_rate()
    else:
        rate, why = args.rate, "--rate"
    if rate <= 0 or args.minutes <= 0 or args.interval <= 0:
        parser.error("--rate, --minutes and --interval must be positive")
    print(
        f"soak: {args.minutes:g} min at {rate:,.0f} packets/s ({why}), a sample every {args.interval:g} s", flush=True
    )
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    loadavg = list(os.getloadavg())
    result = run(args.minutes, rate, args.interval, seed=args.seed, log=lambda m: print(m, flush=True))
    sent, stored = sum(result["sent"].values()), sum(result["stored"].values())
    verdict = analyse(
        result["samples"],
        sent=sent,
        stored=stored,
        rate=rate,
        rss_tolerance=args.rss_tolerance,
        state_tolerance=args.state_tolerance,
    )
    doc = {
        "when": started_at,
        "machine": {"cpus": os.cpu_count(), "loadavg_start": loadavg, "loadavg_end": list(os.getloadavg())},
        "minutes": args.minutes,
        "rate": rate,
        "rate_source": why,
        "interval_secs": args.interval,
        **verdict,
        "sent_by_kind": result["sent"],
        "stored_by_kind": result["stored"],
        "after_drain": result["after_drain"],
        "samples": result["samples"],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(
        f"verdict: {verdict['verdict']}; RSS {verdict.get('rss_first_mb')} -> {verdict.get('rss_last_mb')} MiB, "
        f"slope {verdict.get('rss_slope_mb_per_min')} MiB/min over the second half; "
        f"state slope {verdict.get('state_slope_per_min')}/min (mean {verdict.get('state_mean_second_half')}); "
        f"backlog slope {verdict.get('backlog_slope_per_min')}/min; "
        f"sent {sent:,}, stored {stored:,}, lost {sent - stored:,}"
    )
    for reason in verdict["reasons"]:
        print(f"  {reason}")
    print(f"written {args.output}")
    return 0 if verdict["verdict"] == "flat" else 1


if __name__ == "__main__":
    sys.exit(main())
