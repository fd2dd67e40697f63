"""Rotation storms: queue_log and Master.csv rotated every 100-300 ms while thousands of lines a second are written.

A writer thread per file appends distinct, realistic lines (queue_log: whole caller stays,
ENTERQUEUE ... CONNECT ... COMPLETECALLER/COMPLETEAGENT, ABANDON, EXITWITHTIMEOUT; Master.csv:
cdr_csv rows of every disposition) and rotates the file itself, tens of times per test:

- ``rename``: logrotate's default (``create``) and Asterisk's ``logger rotate``: the older
  copies shift (``.1`` -> ``.2`` ..., the oldest is deleted), the file is renamed to ``.1``
  and a new one created. The queue_log writer keeps its descriptor like Asterisk's logger
  and reopens the path a few milliseconds later, so lines still land in the renamed file;
  the CDR writer opens, appends and closes per row like cdr_csv.
- ``copytruncate``: the file is copied to ``.1`` and truncated in place. The writer does the
  copy and the truncation while it holds its own write lock (it writes nothing in between).
  logrotate's copytruncate cannot do that: lines written between its copy and its
  truncation are in neither file, and no reader can recover them, so a storm with that
  window could not prove anything about the tailer.
- ``mixed``: each rotation picks one of the two at random.

The tailers run inside the real embedded pipeline (:class:`callscope.runtime.Runtime`,
role ``all``: in-process bus, processors, chDB). At the end every line is stored exactly
once in ``queue_log`` and ``cdr``, the checkpoints name the file at the path at its end,
and the queue sessions and CDR dispositions per outcome are as written.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from callscope.runtime import Runtime
from callscope.settings import StoreConfig, load_settings
from callscope.store.client import Store
from callscope.telemetry import Telemetry
from collectors.tail.checkpoint import CheckpointStore, checkpoint_file
from tests.faults.counts import assert_exactly_once, stored
from tests.faults.storm_writer import Mode

pytestmark = pytest.mark.slow

STORM_SECS = 6.0
FAST = {
    "poll_interval_secs": 0.02,
    "checkpoint_interval_secs": 0.2,
    "rotated_linger_secs": 0.5,
    "timezone": "UTC",
    "node": "pbx1",
}
ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------- the pipeline
def _tail_events(telemetry: Telemetry) -> dict[str, float]:
    return {
        f"{s.labels['component']}:{s.labels['event']}": s.value
        for m in telemetry.registry.collect()
        if m.name == "callscope_tail_file_events"
        for s in m.samples
        if s.name.endswith("_total")
    }


async def _until(check: Any, within: float, what: Any, every: float = 0.25) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        got = await asyncio.to_thread(check)
        if got:
            return got
        if loop.time() > deadline:
            raise AssertionError(f"{what() if callable(what) else what}: not done within {within}s")
        await asyncio.sleep(every)


def metric(telemetry: Telemetry, name: str, **labels: str) -> float:
    return telemetry.registry.get_sample_value(name, labels) or 0.0


def file_event(telemetry: Telemetry, component: str, event: str) -> int:
    return int(metric(telemetry, "callscope_tail_file_events_total", component=component, event=event))


def _count(store: Store, table: str) -> int:
    return int(store.query(f"SELECT count() AS n FROM {table} FINAL")[0]["n"])


@pytest.mark.parametrize("mode", ["rename", "copytruncate", "mixed"])
async def test_rotation_storm_loses_and_doubles_nothing(
    mode: Mode, store: Store, store_config: StoreConfig, tmp_path: Path
) -> None:
    logs = tmp_path / "asterisk"
    logs.mkdir()
    qlog, cdr = logs / "queue_log", logs / "Master.csv"
    qlog.touch()
    cdr.touch()
    settings = load_settings(
        None,
        {
            "node": "collector1",
            "data_dir": str(tmp_path / "data"),
            "topology": {"nodes": [{"name": "pbx1", "role": "logic"}]},
            "api": {"listen": "127.0.0.1:0"},
            "store": {"dsn": store_config.dsn, "database": store_config.database, "batch_max_age_secs": 0.2},
            "processors": {"poll_timeout_ms": 50},
            "collectors": {
                "hep": {"enabled": False},
                "queue_log": {"enabled": True, "path": str(qlog), **FAST},
                "cdr": {"enabled": True, "path": str(cdr), **FAST},
            },
        },
    )
    telemetry = Telemetry(node="collector1")
    runtime = Runtime(settings, telemetry)
    runtime.open_resources()
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    ready = asyncio.create_task(runtime.ready.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.faults.storm_writer",
        mode,
        str(STORM_SECS),
        str(logs),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        out, _ = await asyncio.wait_for(writer.communicate(), STORM_SECS + 60)
        assert writer.returncode == 0, f"the storm writer failed ({writer.returncode})"
        report = orjson.loads(out)
        ql_written, cdr_written = report["queue_log"], report["cdr"]
        await _until(
            lambda: _count(store, "queue_log") >= ql_written["lines"],
            60,
            lambda: (
                f"queue_log: {_count(store, 'queue_log')} of {ql_written['lines']} lines stored; "
                f"{_tail_events(telemetry)}"
            ),
        )
        await _until(
            lambda: _count(store, "cdr") >= cdr_written["lines"],
            60,
            lambda: f"cdr: {_count(store, 'cdr')} of {cdr_written['lines']} rows stored; {_tail_events(telemetry)}",
        )

        def caught_up() -> bool:
            # Read to the end, and every rotated file and copy finished and closed: a file is held
            # for finishing when a new one is at the path (rotated), when the path is gone
            # (disappeared), or when found beside it (copy_recovered, rotation_recovered).
            starts = ("rotated", "disappeared", "copy_recovered", "rotation_recovered")
            return all(
                metric(telemetry, "callscope_tail_lag_bytes", component=c) == 0
                and file_event(telemetry, c, "rotated_finished") == sum(file_event(telemetry, c, e) for e in starts)
                for c in ("queue_log", "cdr")
            )

        await _until(caught_up, 30, lambda: f"tailers caught up ({_tail_events(telemetry)})", every=0.1)
    finally:
        if writer.returncode is None:
            writer.kill()
            await writer.wait()
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 60)
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]

    # Every line stored exactly once.
    ql_result, cdr_result = stored(store, "queue_log"), stored(store, "cdr")
    assert_exactly_once(ql_result, ql_written["lines"])
    assert_exactly_once(cdr_result, cdr_written["lines"])
    # The dispositions and the caller stays per outcome are as written.
    dispositions = store.query("SELECT disposition, count() AS n FROM cdr FINAL GROUP BY disposition")
    assert {r["disposition"]: r["n"] for r in dispositions} == cdr_written["outcomes"]
    sessions = store.query(
        "SELECT outcome, count() AS n FROM queue_sessions FINAL WHERE state = 'ended' GROUP BY outcome"
    )
    assert {r["outcome"]: int(r["n"]) for r in sessions} == ql_written["outcomes"]
    # The checkpoints name the file now at the path, read to its end, and no rotated file left open.
    for name, path in (("queue_log", qlog), ("cdr", cdr)):
        checkpoint = CheckpointStore(checkpoint_file(settings.data_dir / "checkpoints", name, path)).load()
        assert checkpoint is not None
        st = path.stat()
        assert [(m.inode, m.offset) for m in checkpoint.files] == [(st.st_ino, st.st_size)], (name, checkpoint)
    events = _tail_events(telemetry)
    for c, written in (("queue_log", ql_written), ("cdr", cdr_written)):
        rotations = written["rotations"]
        assert sum(rotations.values()) >= 15, (c, rotations)  # tens of rotations: a storm
        if mode == "rename":  # each rename noticed at the path (a new file, or none), or its file found beside it
            assert (
                file_event(telemetry, c, "rotated")
                + file_event(telemetry, c, "disappeared")
                + file_event(telemetry, c, "rotation_recovered")
                == rotations["rename"]
            ), (c, rotations, events)
        if mode == "copytruncate":
            assert file_event(telemetry, c, "truncated") >= 1, events
            assert file_event(telemetry, c, "rotated") == 0, events
    storm = ql_written["secs"]
    print(
        f"\n{mode}: storm {storm:.1f}s; queue_log {ql_written['lines']} lines ({ql_written['lines'] / storm:.0f}/s, "
        f"{sum(ql_written['outcomes'].values())} stays, rotations {ql_written['rotations']}, "
        f"redelivered {ql_result.redelivered}); cdr {cdr_written['lines']} rows "
        f"({cdr_written['lines'] / storm:.0f}/s, rotations {cdr_written['rotations']}, "
        f"redelivered {cdr_result.redelivered}); file events {events}"
    )
