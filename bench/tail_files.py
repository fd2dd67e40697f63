"""File collectors' tailing throughput: lines read, parsed and turned into envelope bytes per second.

    .venv/bin/python -m bench.tail_files [--lines 200000] [--runs 3] [--format queue_log|cdr|cel]

For each format, a file of ``lines`` realistic, distinct lines is written to a temporary
directory (queue_log: a mix of ENTERQUEUE, RINGNOANSWER, CONNECT, COMPLETECALLER/AGENT and
ABANDON lines; CDR: cdr_csv with newcdrcolumns, 21 columns, quoted caller names and
comma-bearing lastdata; CEL: the 20-column cel_custom mapping, half the HANGUPs with
Asterisk 12+ JSON extra). Then, per run:

1. ``tailer``: the real :class:`collectors.tail.tailer.Tailer` reads the file from its
   start in blocks, each chunk goes through the format's parser and the envelope encoder
   (:func:`collectors.tail.translate.translate`) and is committed -- what the collector
   does per line, without the bus. This is the figure compared with the issue's target
   (100,000 lines/s). ``tailer_per_cpu_sec`` is the same pass per second of this
   process's CPU time: on a shared machine it shows what one free core does.
2. ``collector``: the whole collector (checkpoints included) publishing to the in-process
   bus while a consumer drains it, timed from start until every line is on the bus.

Prints the median lines/s of the runs with the min-max spread, per format and mode.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from callscope.bus.memory import MemoryBus
from callscope.settings import MemoryBusConfig, Settings, load_settings
from callscope.telemetry import Telemetry, configure_logging
from collectors.cdr.collector import CdrCollector
from collectors.cdr.config import CdrConfig
from collectors.cdr.parse import CdrParser
from collectors.cel.collector import CelCollector
from collectors.cel.config import CelConfig
from collectors.cel.parse import CelParser
from collectors.queue_log.collector import QueueLogCollector
from collectors.queue_log.config import QueueLogConfig
from collectors.queue_log.parse import QueueLogParser
from collectors.tail.checkpoint import CheckpointStore
from collectors.tail.collector import TailCollector
from collectors.tail.config import TailConfig
from collectors.tail.tailer import Tailer
from collectors.tail.translate import EnvelopeMaker, LineParser, translate
from schemas.topics import topic_for

FORMATS = ("queue_log", "cdr", "cel")
TARGET = 100_000
T0 = 1_709_280_000  # 2024-03-01 08:00 UTC


def queue_log_line(i: int) -> str:
    call = f"{T0 + i // 8}.{i}"
    t = T0 + i // 4
    kind = i % 6
    if kind == 0:
        return f"{t}|{call}|support|NONE|ENTERQUEUE||+3314{i % 100000:05d}|{1 + i % 5}"
    if kind == 1:
        return f"{t}|{call}|support|PJSIP/agent-{i % 40:02d}|RINGNOANSWER|{15000 + i % 1000}"
    if kind == 2:
        return f"{t}|{call}|support|PJSIP/agent-{i % 40:02d}|CONNECT|{i % 60}|{T0 + i // 8}.{i + 1}|{i % 20}"
    if kind == 3:
        return f"{t}|{call}|support|PJSIP/agent-{i % 40:02d}|COMPLETECALLER|{i % 60}|{i % 600}|{1 + i % 5}"
    if kind == 4:
        return f"{t}|{call}|sales|PJSIP/agent-{i % 40:02d}|COMPLETEAGENT|{i % 60}|{i % 600}|{1 + i % 5}"
    return f"{t}|{call}|sales|NONE|ABANDON|{1 + i % 5}|{1 + i % 5}|{i % 90}"


def _local(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def cdr_line(i: int) -> str:
    start = T0 + i // 3
    answered = i % 4 != 0
    answer = f'"{_local(start + 5)}"' if answered else ""
    disposition = "ANSWERED" if answered else "NO ANSWER"
    billsec = (i % 300) if answered else 0
    uid = f"{T0 + i // 3}.{i}"
    return (
        f'"acct{i % 7}","10{i % 90:02d}","2{i % 500:03d}","from-internal","""Caller {i % 97}"" <10{i % 90:02d}>",'
        f'"PJSIP/10{i % 90:02d}-{i:08x}","PJSIP/2{i % 500:03d}-{i + 1:08x}","Dial","PJSIP/2{i % 500:03d},30,tT",'
        f'"{_local(start)}",{answer},"{_local(start + 5 + billsec)}",{5 + billsec},{billsec},"{disposition}",'
        f'"DOCUMENTATION","{uid}","sipcallid-{i:x}@10.0.0.{i % 250}","","{uid}",{i}'
    )


_CEL_EVENTS = ("CHAN_START", "ANSWER", "BRIDGE_ENTER", "BRIDGE_EXIT", "HANGUP", "CHAN_END", "LINKEDID_END")


def cel_line(i: int) -> str:
    event = _CEL_EVENTS[i % len(_CEL_EVENTS)]
    extra = ""
    if event == "HANGUP":
        extra = (
            '{""hangupcause"":16,""hangupsource"":""PJSIP/100-0001"",""dialstatus"":""ANSWER""}'
            if i % 2
            else "16,dialplan/builtin,ANSWER"
        )
    linked = f"{T0 + i // 7}.{i - i % 7}"
    return (
        f'"{event}","{T0 + i // 7}.{(i * 7919) % 1_000_000:06d}","Caller {i % 97}",'
        f'"10{i % 90:02d}","10{i % 90:02d}","",'
        f'"2{i % 500:03d}","2{i % 500:03d}","from-internal","PJSIP/10{i % 90:02d}-{i:08x}","Dial",'
        f'"PJSIP/2{i % 500:03d},30","3","","{T0 + i // 7}.{i}","{linked}","","","","{extra}"'
    )


_LINES = {"queue_log": queue_log_line, "cdr": cdr_line, "cel": cel_line}


def _parser(fmt: str) -> LineParser:
    if fmt == "queue_log":
        return QueueLogParser("UTC")
    if fmt == "cdr":
        return CdrParser((), "Europe/Paris")
    return CelParser(timezone="UTC")


def write_file(directory: Path, fmt: str, n: int) -> Path:
    path = directory / fmt
    make = _LINES[fmt]
    with path.open("w") as fh:
        for start in range(0, n, 10_000):
            fh.write("".join(make(i) + "\n" for i in range(start, min(n, start + 10_000))))
    return path


def tail_once(path: Path, fmt: str, work: Path) -> tuple[float, float, int]:
    """(lines per wall second, lines per CPU second, lines) for one pass of tailer + parser + encoder."""
    store = CheckpointStore(work / f"{fmt}-{time.monotonic_ns()}.json")
    config = TailConfig(path=path, checkpoint_interval_secs=3600)
    tailer = Tailer(path, store, config, lambda *_: None)
    parser = _parser(fmt)
    maker = EnvelopeMaker(parser.kind, "pbx1", "logic")
    lines = envelopes = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    tailer.start(time.monotonic())
    while True:
        chunk = tailer.read(time.monotonic())
        if chunk is None:
            break
        out = translate(chunk.lines, parser, maker, time.time_ns() // 1000, component=fmt)
        tailer.commit(chunk, time.monotonic())
        lines += len(chunk.lines)
        envelopes += len(out.envelopes)
        if out.deadletters:
            raise RuntimeError(f"{fmt}: {len(out.deadletters)} lines dead-lettered: {out.reasons}")
    tailer.save(time.monotonic(), force=True)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    tailer.close()
    if envelopes != lines:
        raise RuntimeError(f"{fmt}: {envelopes} envelopes for {lines} lines")
    return lines / elapsed, lines / cpu, lines


async def _collector_once(path: Path, fmt: str, work: Path, n: int) -> float:
    telemetry = Telemetry()
    bus = MemoryBus(MemoryBusConfig(partitions=4, max_bytes_per_partition=512 * 1024 * 1024), telemetry)
    await bus.start()
    topic = topic_for(fmt)
    await bus.ensure_topics([topic])
    consumer = await bus.consumer("bench", [topic])
    settings: Settings = load_settings(None, {"node": "pbx1", "data_dir": str(work / f"data-{time.monotonic_ns()}")})
    common: dict[str, Any] = {"path": path, "enabled": True, "timezone": "UTC", "poll_interval_secs": 0.05}
    collector: TailCollector
    if fmt == "queue_log":
        collector = QueueLogCollector(QueueLogConfig(**common), settings, bus.producer(), telemetry)
    elif fmt == "cdr":
        collector = CdrCollector(CdrConfig(**common), settings, bus.producer(), telemetry)
    else:
        collector = CelCollector(CelConfig(**common), settings, bus.producer(), telemetry)
    stop = asyncio.Event()
    t0 = time.perf_counter()
    task = asyncio.create_task(collector.run(stop))
    seen = 0
    while seen < n:
        records = await consumer.getmany(timeout_ms=50, max_records=100_000)
        seen += len(records)
        if records:
            await consumer.commit({r.tp: r.offset + 1 for r in records})  # frees the bus's memory
        if task.done():
            task.result()
    elapsed = time.perf_counter() - t0
    stop.set()
    await task
    await consumer.close()
    await bus.stop()
    return n / elapsed


def run(n: int = 200_000, runs: int = 3, formats: tuple[str, ...] = FORMATS) -> dict[str, Any]:
    """Median lines/s per format and mode (``tailer``, ``collector``) with the min-max spread."""
    configure_logging("warning")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="callscope-bench-tail-") as tmp:
        work = Path(tmp)
        for fmt in formats:
            path = write_file(work, fmt, n)
            tail_once(path, fmt, work)  # warm the page cache and the parser's caches
            passes = [tail_once(path, fmt, work) for _ in range(runs)]
            rates = [p[0] for p in passes]
            cpu = [p[1] for p in passes]
            out[f"{fmt}_tailer"] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}
            out[f"{fmt}_tailer_per_cpu_sec"] = {"median": statistics.median(cpu), "min": min(cpu), "max": max(cpu)}
            coll = [asyncio.run(_collector_once(path, fmt, work, n)) for _ in range(runs)]
            out[f"{fmt}_collector"] = {"median": statistics.median(coll), "min": min(coll), "max": max(coll)}
    out["lines"] = n
    out["runs"] = runs
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--format", choices=FORMATS, action="append", help="only these formats (repeatable)")
    args = parser.parse_args()
    result = run(args.lines, args.runs, tuple(args.format or FORMATS))
    head = f"{'format / mode':<22} {'median':>12} {'min':>12} {'max':>12}  target"
    print(f"{head}   ({args.lines:,} lines, {args.runs} runs)")
    for key, value in result.items():
        if isinstance(value, dict):
            flag = "ok" if value["median"] >= TARGET else "SHORT"
            print(
                f"{key:<22} {value['median']:>12,.0f} {value['min']:>12,.0f} {value['max']:>12,.0f}  "
                f"{TARGET:,} lines/s [{flag}]"
            )


if __name__ == "__main__":
    main()
