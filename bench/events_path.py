"""CPU per SIP record on the events path, the previous code against the current one in the same run.

    .venv/bin/python bench/events_path.py [--records 20000] [--runs 7] [--batch-rows 5000] [--insert]

The records are realistic SIP traffic: ``callscope.traffic`` plans calls (INVITE with SDP,
provisionals, answers, ACK, BYE, REGISTER, OPTIONS ...) as HEP3 packets, which go through the
HEP collector's own translation (``collectors.hep.events.envelope_from_hep``) into the envelope
bytes the bus carries. Each stage is timed single-threaded in CPU time (``time.process_time``)
per record, the previous implementation and the current one alternately, ``--runs`` times each;
a figure is the median of the runs (the minimum beside it). The stages:

- ``decode``: record bytes -> validated envelope (what ``EnvelopeCache`` does on a miss, i.e. for
  the first processor that reads a record);
- ``row``: validated envelope -> row tuple of ``sip_messages`` (``schemas.tables.row_for``);
- ``route``: the whole of ``processors.events.route.route`` (cache, decode, topic check, row);
- ``arrow``: rows -> pyarrow table in ``--batch-rows`` batches (``callscope.store.arrow.to_arrow``),
  per row, with the column types of the migrated table in a fresh embedded engine;
- ``insert`` (with ``--insert``): the engine's insert of those tables (current code only; the
  process's CPU time, engine threads included).

"Previous" is the code before the events path was reworked, kept below as ``_previous_*``: the
TypeAdapter's ``validate_json``, the body column from ``model_dump_json``, the SIP columns read as
attributes, ``micros`` per timestamp, a frozen dataclass per row; for ``arrow``, pyarrow's own
conversion of the row tuples (``to_arrow`` writes them into Arrow buffers in C when its extension is
built, ``callscope.store.arrow.PATH``). The run checks that both give the same rows and the same
Arrow tables before it times anything.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from callscope.bus import envelopes
from callscope.bus.envelopes import EnvelopeCache
from callscope.settings import StoreConfig, TopologyConfig
from callscope.store.arrow import to_arrow
from callscope.store.client import Store
from callscope.store.migrations import apply_migrations
from collectors.hep.config import HepConfig
from collectors.hep.decode import decode as decode_hep
from collectors.hep.events import envelope_from_hep
from processors.events.route import Row, route
from schemas.envelope import ENVELOPE_ADAPTER
from schemas.tables import _TYPED, COLUMNS, TABLES, _AttrView, micros, row_for
from schemas.topics import topic_for

TABLE = TABLES["sip"]
TOPIC = topic_for("sip")
START_US = 1_760_000_000_000_000
GC_THRESHOLDS = (100_000, 50, 1000)  # what ``callscope run`` sets


def sip_records(n: int, *, seed: int = 7) -> list[bytes]:
    """``n`` envelope records of generated SIP traffic, as the HEP collector writes them."""
    from callscope.traffic.generate import Stream

    topology, hep = TopologyConfig(), HepConfig()
    out: list[bytes] = []
    for item in Stream(seed=seed, start_us=START_US, duration_secs=86_400.0, rate=2000.0):
        if item.kind != "sip":
            continue
        _, _, value = envelope_from_hep(
            decode_hep(item.data), topology=topology, hep=hep, received_us=item.ts_us + 350, collector_node="bench"
        )
        out.append(value)
        if len(out) >= n:
            break
    return out


# -- the previous implementation -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PreviousRow:
    table: str
    values: tuple[Any, ...]
    id: str
    node: str = ""


def _previous_sip_model(b: Any) -> tuple[Any, ...]:
    src, dst = b.src, b.dst
    return (
        b.call_id or "",
        bool(b.is_request),
        b.method or "",
        b.status or 0,
        b.reason or "",
        b.cseq or 0,
        b.from_user or "",
        b.to_user or "",
        b.from_tag or "",
        b.to_tag or "",
        src.ip or "",
        src.port or 0,
        dst.ip or "",
        dst.port or 0,
        b.transport or "udp",
        b.correlation_id or "",
        b.capture_id or 0,
        b.user_agent or "",
        b.raw or "",
    )


def _previous_row_for(env: Any) -> tuple[str, tuple[Any, ...]]:
    kind: str = env.kind
    body = env.body
    typed = _previous_sip_model(body) if kind == "sip" else _TYPED[kind](_AttrView(body.__dict__))
    body_json = body.model_dump_json(exclude={"raw"}) if kind == "sip" else body.model_dump_json()
    return TABLES[kind], (env.id, env.node, env.role, micros(env.ts), micros(env.received), env.key, body_json, *typed)


class _PreviousCache:
    """EnvelopeCache.decode as it was (the TypeAdapter's validate_json on a miss)."""

    def __init__(self, adapter: TypeAdapter[Any], max_entries: int = 8192) -> None:
        self._adapter = adapter
        self._items: OrderedDict[bytes, Any] = OrderedDict()
        self.max_entries = max_entries

    def decode(self, value: bytes) -> Any:
        items = self._items
        env = items.get(value)
        if env is not None:
            return env
        env = self._adapter.validate_json(value)
        if len(items) >= self.max_entries:
            items.popitem(last=False)
        items[value] = env
        return env


def _previous_route(topic: str, value: bytes, cache: _PreviousCache) -> _PreviousRow | str:
    try:
        env = cache.decode(value)
    except ValueError:
        return "envelope"
    if topic_for(env.kind) != topic:
        return "wrong_topic"
    table, values = _previous_row_for(env)
    return _PreviousRow(table, values, env.id, env.node)


def _previous_to_arrow(schema: Any, rows: Sequence[Sequence[Any]]) -> Any:
    import pyarrow as pa  # type: ignore[import-untyped]

    return pa.Table.from_struct_array(pa.array(rows, pa.struct(list(schema))))


# -- timing ------------------------------------------------------------------------------------------


def _per_item_us(work: Callable[[], object], items: int) -> float:
    started = time.process_time()
    work()
    return (time.process_time() - started) / items * 1e6


def _figure(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3)}


def _each(function: Callable[[Any], object], items: Sequence[Any]) -> None:
    for item in items:
        function(item)


def _time_stages(
    timed: Callable[[str, Callable[[], object], int], None],
    values: list[bytes],
    old_envs: list[Any],
    new_envs: list[Any],
    batches: list[list[tuple[Any, ...]]],
    schema: Any,
    previous: TypeAdapter[Any],
    *,
    current_first: bool,
) -> None:
    """One run of every stage, previous and current back to back (``current_first`` says which goes first)."""
    n, rows = len(values), sum(map(len, batches))
    old_cache, new_cache = _PreviousCache(previous), EnvelopeCache()
    stages: list[tuple[str, Callable[[], object], Callable[[], object], int]] = [
        ("decode", lambda: _each(previous.validate_json, values), lambda: _each(envelopes.validate_json, values), n),
        ("row", lambda: _each(_previous_row_for, old_envs), lambda: _each(row_for, new_envs), n),
        (
            "route",
            lambda: _each(lambda v: _previous_route(TOPIC, v, old_cache), values),
            lambda: _each(lambda v: route(TOPIC, v, new_cache), values),
            n,
        ),
        (
            "arrow",
            lambda: _each(lambda b: _previous_to_arrow(schema, b), batches),
            lambda: _each(lambda b: to_arrow(schema, b, False), batches),
            rows,
        ),
    ]
    for stage, old, new, items in stages:
        pair = [(f"{stage}_previous", old), (f"{stage}_current", new)]
        for name, work in reversed(pair) if current_first else pair:
            timed(name, work, items)


def run(
    records: int = 20_000, runs: int = 7, batch_rows: int = 5000, *, insert: bool = False, data_dir: str | None = None
) -> dict[str, Any]:
    """Measure every stage, previous and current alternately; return the figures (µs per record)."""
    values = sip_records(records)
    previous = ENVELOPE_ADAPTER

    # Same results first: rows, then Arrow tables.
    old_envs = [previous.validate_json(v) for v in values]
    new_envs = [EnvelopeCache().decode(v) for v in values]
    old_rows = [_previous_row_for(e)[1] for e in old_envs]
    new_rows = [row_for(e)[1] for e in new_envs]
    if old_rows != new_rows:
        raise RuntimeError("the current row_for differs from the previous one")
    for value, old_row in zip(values[:2000], old_rows, strict=False):
        out = route(TOPIC, value, EnvelopeCache())
        if not isinstance(out, Row) or out.values != old_row:
            raise RuntimeError("route() differs from the previous row")
    batches = [new_rows[i : i + batch_rows] for i in range(0, len(new_rows), batch_rows)]
    times: dict[str, list[float]] = {}
    thresholds = gc.get_threshold()

    def timed(name: str, work: Callable[[], object], items: int) -> None:
        times.setdefault(name, []).append(_per_item_us(work, items))

    with tempfile.TemporaryDirectory(prefix="callscope-bench-") as tmp:
        directory = Path(data_dir) if data_dir else Path(tmp) / "chdb"
        config = StoreConfig(dsn=f"chdb://{directory}", database=f"bench_events_{int(time.time())}")
        with Store.open(config) as store:
            apply_migrations(store, config)
            names = list(COLUMNS[TABLE])
            schema = store._arrow_schema(TABLE, names, store._load_wire_types(TABLE))
            if schema is None:
                raise RuntimeError(f"no Arrow schema for {TABLE}")
            for batch in batches:
                if not _previous_to_arrow(schema, batch).equals(to_arrow(schema, batch, False)):
                    raise RuntimeError("the current to_arrow differs from the previous one")

            gc.collect()
            gc.freeze()  # the prepared inputs are not garbage to rescan on every collection
            gc.set_threshold(*GC_THRESHOLDS)
            try:
                for run_no in range(runs):
                    _time_stages(
                        timed, values, old_envs, new_envs, batches, schema, previous, current_first=bool(run_no % 2)
                    )
            finally:
                gc.set_threshold(*thresholds)
                gc.unfreeze()
            if insert:
                settings = {**store._insert_settings}
                for run_no in range(runs):
                    tables = [to_arrow(schema, b, False) for b in batches]
                    started = time.process_time()
                    for i, table in enumerate(tables):
                        token = f"bench-{run_no}-{i}"
                        store._insert_arrow(TABLE, names, table, {**settings, "insert_deduplication_token": token})
                    times.setdefault("insert_current", []).append((time.process_time() - started) / len(new_rows) * 1e6)
            store.command(f"DROP DATABASE {config.database} SYNC")

    figures = {name: _figure(v) for name, v in times.items()}
    return {
        "bench": "events_path",
        "records": len(values),
        "runs": runs,
        "batch_rows": batch_rows,
        "record_bytes_avg": round(sum(map(len, values)) / len(values)),
        "us_per_record": figures,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--batch-rows", type=int, default=5000)
    parser.add_argument("--insert", action="store_true", help="also time the engine's insert (current code)")
    parser.add_argument("--data-dir", default=None, help="engine directory (default: a temporary one)")
    args = parser.parse_args(argv)
    res = run(args.records, args.runs, args.batch_rows, insert=args.insert, data_dir=args.data_dir)
    figures = res["us_per_record"]
    print(
        f"events_path: {res['records']:,} SIP records (avg {res['record_bytes_avg']} B), {res['runs']} runs, "
        f"CPU µs per record, median (min)"
    )
    print(f"{'stage':8s} {'previous':>16s} {'current':>16s} {'current/previous':>17s}")
    for stage in ("decode", "row", "route", "arrow", "insert"):
        old, new = figures.get(f"{stage}_previous"), figures.get(f"{stage}_current")
        if new is None:
            continue
        old_text = f"{old['median']:7.2f} ({old['min']:6.2f})" if old else f"{'-':>16s}"
        ratio = f"{new['median'] / old['median']:17.2f}" if old else f"{'-':>17s}"
        print(f"{stage:8s} {old_text:>16s} {new['median']:7.2f} ({new['min']:6.2f}) {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
