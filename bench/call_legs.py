"""CPU per SIP message of the call-legs correlator, the previous code against the current one in the same run.

    .venv/bin/python bench/call_legs.py [--messages 70000] [--runs 7] [--write-every 5000] [--base main]

The messages are complete calls of ``bench.hep_traffic`` (INVITE with SDP, 100, 180, 200 with
SDP, ACK, BYE, 200), through the HEP collector's own translation into envelope bytes and read as
the processors read them (``callscope.bus.envelopes.read``: msgspec structs). Each run feeds them
to a fresh :class:`~processors.call_legs.correlator.LegCorrelator`, ``touch`` per message and,
every ``--write-every`` messages (a write of the shell), ``rows`` with the shell's conversion
into value tuples (``leg_rows``). ``touch`` and ``rows`` are timed separately in CPU time
(``time.process_time``), as µs per message; a figure is the median of ``--runs`` runs (the
minimum beside it). "Previous" is ``processors/call_legs/correlator.py`` as it is in the git
revision ``--base``, loaded as a module; the two run alternately. The run checks that both give
the same rows, links, checkpoints and expiry before it times anything.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from bench import hep_traffic
from callscope.bus.envelopes import read
from callscope.settings import TopologyConfig
from collectors.hep.config import HepConfig
from collectors.hep.decode import decode as decode_hep
from collectors.hep.events import envelope_from_hep
from processors.call_legs import correlator as current
from processors.call_legs.config import CallLegsConfig

GC_THRESHOLDS = (100_000, 50, 1000)  # what ``callscope run`` sets
ROOT = Path(__file__).resolve().parent.parent
PATH = "processors/call_legs/correlator.py"


def previous_module(base: str = "main") -> ModuleType:
    """The correlator module as it is in git revision ``base`` (a module of its own name)."""
    source = subprocess.run(["git", "show", f"{base}:{PATH}"], cwd=ROOT, check=True, capture_output=True).stdout
    name = "_previous_call_legs_correlator"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, f"{base}:{PATH}", "exec"), module.__dict__)
    return module


def envelopes(n: int, *, seed: int = 5) -> list[Any]:
    """``n`` SIP envelopes of complete calls, as a processor reads them."""
    topology, hep = TopologyConfig(), HepConfig()
    out = []
    for packet in hep_traffic.packets(n, seed=seed):
        pkt = decode_hep(packet)
        received = pkt.ts_sec * 1_000_000 + pkt.ts_usec + 350
        _, _, value = envelope_from_hep(pkt, topology=topology, hep=hep, received_us=received, collector_node="b")
        out.append(read(value))
    return out


def _values(module: ModuleType, outputs: Sequence[Any]) -> list[tuple[str, str, tuple[Any, ...]]]:
    """``processors.call_legs.app.leg_rows`` against ``module``'s row classes."""
    out: list[tuple[str, str, tuple[Any, ...]]] = []
    for o in outputs:
        if isinstance(o, module.LegRow):
            out.append(("call_legs", o.leg_id, o.values()))
        else:
            out.append(("call_links", o.id, o.values()))
    return out


def _comparable(rows: list[tuple[str, str, tuple[Any, ...]]]) -> list[tuple[str, str, tuple[Any, ...]]]:
    """Rows as plain tuples, arrays as tuples (revisions before 2026-11-26 gave lists), each ``call_legs``
    checkpoint parsed, without the ``fingerprint`` key those revisions wrote."""
    out = []
    for table, key, values in rows:
        plain = tuple(tuple(v) if isinstance(v, list) else v for v in values)
        if table != "call_legs":
            out.append((table, key, plain))
            continue
        checkpoint = orjson.loads(values[-1])
        checkpoint.pop("fingerprint", None)
        out.append((table, key, (*plain[:-1], checkpoint)))
    return out


def replay(module: ModuleType, envs: Sequence[Any], every: int) -> tuple[list[Any], list[Any], list[Any]]:
    """Links, rows (value tuples, checkpoints parsed: :func:`_comparable`) and expiry rows of ``envs``
    through ``module``'s correlator."""
    c = module.LegCorrelator(CallLegsConfig())
    links: list[Any] = []
    rows: list[Any] = []
    for i, env in enumerate(envs):
        links.extend(_values(module, c.touch(env)))
        if i % every == every - 1:
            rows.extend(_values(module, c.rows()))
    expired = _values(module, c.expire(datetime(2100, 1, 1, tzinfo=UTC)))
    return links, _comparable(rows), _comparable(expired)


def _one_run(module: ModuleType, envs: Sequence[Any], every: int) -> tuple[float, float]:
    """CPU µs per message of ``touch`` and of ``rows`` (with ``values``) over ``envs``."""
    c = module.LegCorrelator(CallLegsConfig())
    touch, rows = c.touch, c.rows
    row_class = module.LegRow
    clock = time.process_time
    touch_s = rows_s = 0.0
    for start in range(0, len(envs), every):
        chunk = envs[start : start + every]
        t0 = clock()
        for env in chunk:
            touch(env)
        t1 = clock()
        out = [("call_legs", o.leg_id, o.values()) for o in rows() if isinstance(o, row_class)]
        t2 = clock()
        touch_s += t1 - t0
        rows_s += t2 - t1
        del out
    n = len(envs)
    return touch_s / n * 1e6, rows_s / n * 1e6


def _figure(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3)}


def run(messages: int = 70_000, runs: int = 7, every: int = 5000, base: str = "main") -> dict[str, Any]:
    envs = envelopes(messages)
    previous = previous_module(base)
    if replay(previous, envs, every) != replay(current, envs, every):
        raise RuntimeError("the current correlator's output differs from the previous one")
    times: dict[str, list[float]] = {}
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        for run_no in range(runs):
            pair: list[tuple[str, ModuleType]] = [("previous", previous), ("current", current)]
            for name, module in reversed(pair) if run_no % 2 else pair:
                gc.collect()
                t, r = _one_run(module, envs, every)
                times.setdefault(f"touch_{name}", []).append(t)
                times.setdefault(f"rows_{name}", []).append(r)
                times.setdefault(f"total_{name}", []).append(t + r)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    return {
        "bench": "call_legs",
        "messages": len(envs),
        "runs": runs,
        "write_every": every,
        "base": base,
        "us_per_message": {name: _figure(v) for name, v in times.items()},
        "ratios": {
            stage: round(
                statistics.median(
                    c / p for c, p in zip(times[f"{stage}_current"], times[f"{stage}_previous"], strict=True)
                ),
                3,
            )
            for stage in ("touch", "rows", "total")
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=70_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write-every", type=int, default=5000)
    parser.add_argument("--base", default="main", help="git revision of the previous correlator")
    args = parser.parse_args(argv)
    res = run(args.messages, args.runs, args.write_every, args.base)
    figures: dict[str, dict[str, float]] = res["us_per_message"]
    print(
        f"call_legs: {res['messages']:,} SIP messages, rows every {res['write_every']}, {res['runs']} runs, "
        f"previous = {res['base']}, CPU µs per message, median (min)"
    )
    print(f"{'stage':6s} {'previous':>16s} {'current':>16s} {'current/previous':>17s}")
    for stage in ("touch", "rows", "total"):
        old, new = figures[f"{stage}_previous"], figures[f"{stage}_current"]
        print(
            f"{stage:6s} {old['median']:7.2f} ({old['min']:6.2f}) {new['median']:7.2f} ({new['min']:6.2f})"
            f" {res['ratios'][stage]:17.2f}"
        )
    print("(current/previous: the median of the runs' ratios)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
