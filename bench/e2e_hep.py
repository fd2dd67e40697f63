"""End to end: HEP over UDP into ``callscope run`` (embedded), until stored in sip_messages.

    .venv/bin/python bench/e2e_hep.py [--messages N] [--rate PER_SEC] [--processors events,...]

Starts ``callscope run`` in a subprocess on OS-given ports (API and HEP), starts a sender
process that blasts N distinct HEP3/SIP packets at a fixed rate, then polls
the rows of ``sip_messages`` the store acknowledged (``/metrics``) until they reach N (or stop
growing for 15 s), then confirms the count with ``GET /api/v1/events/stats`` (a count with
``FINAL`` over every raw table: polling it every 250 ms slowed the inserts it waits for). Prints and returns:

- ``e2e_embedded_msgs_per_sec``: N stored / seconds from the first packet sent to the last stored;
- ``e2e_embedded_lost``: sent - stored; ``kernel_drops``: how many of them the kernel dropped on a
  full socket receive buffer (the host's UDP RcvbufErrors counter over the run);
- ``collector_rss_mb``: the peak RSS (VmHWM) of the whole embedded ``callscope run`` process
  (collector, processors and chDB; the collector role alone: bench/e2e_hep_kafka.py);
- ``send_secs``: how long sending took (the offered rate is N / send_secs);
- ``cpu_us_per_msg``: CPU time (user + system) of the ``callscope run`` process from the first
  packet sent to the last stored, per stored message: the cost, whatever the machine's load;
- ``call_legs_rows_per_call``: ``call_legs`` row versions the store acknowledged per call sent;
- ``machine_cpu_busy``: how busy the whole machine's CPUs were over the same window, every process
  included (the sender too): 1.0 is every core busy all the time (``/proc/stat``);
- ``processors``: what ran (``--processors``, ``processors.enabled``; default all). With
  ``--processors events`` the run measures the raw path alone: collector, bus and ``sip_messages``
  rows, no correlation; the embedded ceiling whatever the correlators cost.

The traffic is complete calls (``bench/hep_traffic.py``: 7 messages each, phases about a
second apart).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench import hep_traffic

API_LINE = re.compile(r"api:\s+(http://127\.0\.0\.1:\d+)")
HEP_LINE = re.compile(r"hep:\s+\S+ 127\.0\.0\.1:(\d+)")
ACK_LINE = re.compile(r'^callscope_sink_batch_rows_sum\{table="sip_messages"\} (\S+)$', re.MULTILINE)
LEG_ROWS_LINE = re.compile(r'^callscope_sink_batch_rows_sum\{table="call_legs"\} (\S+)$', re.MULTILINE)
STALL_SECS = 15.0


def _start(data_dir: Path, env_extra: dict[str, str]) -> tuple[subprocess.Popen[str], str, int]:
    env = dict(os.environ, CALLSCOPE_LOG__LEVEL="warning", **env_extra)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "callscope.cli",
            "run",
            "--data-dir",
            str(data_dir),
            "--api-listen",
            "127.0.0.1:0",
            "--hep-listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    url = port = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"callscope run exited early ({proc.wait()})")
        if m := API_LINE.search(line):
            url = m.group(1)
        if m := HEP_LINE.search(line):
            port = int(m.group(1))
        if "stop with Ctrl-C" in line:
            break
    if url is None or port is None:
        proc.kill()
        raise RuntimeError("no api/hep line in the banner")
    while httpx.get(f"{url}/readyz", timeout=5).status_code != 200:  # readiness over HTTP
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("/readyz never answered 200")
        time.sleep(0.1)
    return proc, url, port


def _acknowledged(url: str, token: str, line: re.Pattern[str] = ACK_LINE) -> int:
    """Rows of a table (sip_messages) the store acknowledged, from /metrics (cheap: no query on the tables)."""
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30).text
    match = line.search(text)
    return int(float(match.group(1))) if match else 0


def _stored(url: str, token: str) -> int:
    doc = httpx.get(f"{url}/api/v1/events/stats", headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    return int(doc["tables"].get("sip", {}).get("events", 0))


def run(
    n: int = 100_000,
    rate: float = 30_000.0,
    *,
    env_extra: dict[str, str] | None = None,
    processors: Sequence[str] | None = None,
) -> dict[str, Any]:
    """One run; returns the figures (see the module docstring). ``processors``: run only these (with ``events``)."""
    env = dict(env_extra or {})
    if processors:
        if "events" not in processors:
            raise ValueError("the run counts the rows the events processor stores: name events among --processors")
        env["CALLSCOPE_PROCESSORS__ENABLED"] = json.dumps(list(processors))
    with tempfile.TemporaryDirectory(prefix="bench-e2e-hep-") as tmp:
        data_dir = Path(tmp) / "data"
        proc, url, port = _start(data_dir, env)
        try:
            token = (data_dir / "api-token").read_text().strip()
            ctx = mp.get_context("spawn")
            ready, go, result = ctx.Event(), ctx.Event(), ctx.Value("d", 0.0)
            sender = ctx.Process(target=hep_traffic.sender, args=(port, n, rate, os.getpid(), ready, go, result))
            sender.start()
            ready.wait(300)
            cpu0 = hep_traffic.cpu_secs(proc.pid)
            kernel0 = hep_traffic.udp_rcvbuf_errors()
            busy0 = busy_at_change = hep_traffic.machine_busy_secs()
            started = time.monotonic()
            go.set()
            stored, last_change, last_value = 0, time.monotonic(), -1
            while stored < n:
                time.sleep(0.25)
                # Poll the sink's acknowledged-rows counter; count the table (FINAL over every raw
                # table, which holds the engine while inserts wait) only once the counter says done.
                stored = _acknowledged(url, token)
                if stored >= n:
                    stored = _stored(url, token)
                if stored != last_value:
                    last_value, last_change = stored, time.monotonic()
                    busy_at_change = hep_traffic.machine_busy_secs()
                elif time.monotonic() - last_change > STALL_SECS and not sender.is_alive():
                    break
            if stored >= n:
                last_change, busy_at_change = time.monotonic(), hep_traffic.machine_busy_secs()
            elapsed = last_change - started
            cpu = hep_traffic.cpu_secs(proc.pid) - cpu0
            kernel_drops = hep_traffic.udp_rcvbuf_errors() - kernel0
            leg_rows = _acknowledged(url, token, LEG_ROWS_LINE)
            sender.join(60)
            return {
                "messages": n,
                "offered_rate": rate,
                "send_secs": round(result.value, 2),
                "e2e_embedded_msgs_per_sec": round(stored / elapsed) if elapsed > 0 else 0,
                "e2e_embedded_lost": n - stored,
                "kernel_drops": kernel_drops,
                "collector_rss_mb": round(hep_traffic.peak_rss_mb(proc.pid), 1),
                "cpu_us_per_msg": round(cpu / max(stored, 1) * 1e6, 1),
                "call_legs_rows_per_call": round(leg_rows / max(1, -(-n // len(hep_traffic.CALL))), 2),
                "machine_cpu_busy": hep_traffic.busy_fraction(busy_at_change - busy0, elapsed),
                "processors": list(processors) if processors else "all",
            }
        finally:
            hep_traffic.stop_process(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=30_000.0, help="packets per second offered")
    parser.add_argument(
        "--processors",
        metavar="NAME,...",
        help="run only these processors (processors.enabled; events among them): e.g. events for the raw path alone",
    )
    args = parser.parse_args(argv)
    processors = [p for p in args.processors.split(",") if p] if args.processors else None
    try:
        result = run(args.messages, args.rate, processors=processors)
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
