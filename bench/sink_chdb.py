"""Insert throughput of BatchSink into the embedded engine (chDB): sip_messages rows.

    .venv/bin/python bench/sink_chdb.py [--rows 300000] [--runs 3] [--batch-rows 50000] [--data-dir DIR]
        [--compare]

One run: N SIP envelopes (a ~600-byte INVITE each, distinct Call-IDs, as the bus
carries them) are turned into rows with ``schemas.tables.row_from_dict`` (timed
on its own: "row building"), then added to a BatchSink on ``sip_messages`` (the
real table from the migrations, with its codecs and skip index); a full batch is
flushed in a task while adding goes on (one flush at a time). The clock stops
when the last flush returned, i.e. the engine acknowledged every row. Prints
rows per second as the median of the runs with their spread. Each run writes into a fresh database of one
fresh data directory (chDB allows one directory per process).

The store inserts through its chDB fast path (rows into Arrow buffers, see :mod:`callscope.store.arrow`);
``--compare`` also times clickhouse-connect's path (``Store.fast_insert = False``) in
the same process, run for run alternately, and prints both (the machine's load
varies: only a same-run comparison means much).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from callscope.settings import StoreConfig
from callscope.store.client import Store
from callscope.store.migrations import apply_migrations
from callscope.store.sink import BatchSink
from callscope.telemetry import Telemetry
from schemas.envelope import event_id
from schemas.tables import COLUMNS, TABLES, row_from_dict

TABLE = TABLES["sip"]
ROW_BYTES = 1200  # what the bus message of such an event weighs, for the byte bound

_SIP = (
    "INVITE sip:{callee}@sbc1.example.net SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.1.2.3:5060;branch=z9hG4bK{branch};rport\r\n"
    "Max-Forwards: 70\r\n"
    'From: "Alice" <sip:{caller}@carrier.example.com>;tag={tag}\r\n'
    "To: <sip:{callee}@sbc1.example.net>\r\n"
    "Call-ID: {call_id}\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:{caller}@10.1.2.3:5060>\r\n"
    "User-Agent: Carrier-SBC 4.2\r\n"
    "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, REFER\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 180\r\n"
    "\r\n"
    "v=0\r\no=- 3712 3712 IN IP4 10.1.2.3\r\ns=-\r\nc=IN IP4 10.1.2.3\r\nt=0 0\r\n"
    "m=audio 30000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def sip_envelopes(n_rows: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """Decoded sip envelopes as the bus delivers them (orjson dicts), distinct Call-IDs."""
    out: list[dict[str, Any]] = []
    base = int(time.time()) - 3600  # recent: rows older than the table TTL are dropped by merges
    for i in range(n_rows):
        call_id = f"{seed:02d}{i:010d}-7d1f0b2c9a@10.1.2.3"
        caller = f"+4930{i % 1_000_000:07d}"
        callee = f"+4989{(i * 7) % 1_000_000:07d}"
        tag = f"{i * 2654435761 % 2**32:08x}"
        raw = _SIP.format(callee=callee, caller=caller, tag=tag, call_id=call_id, branch=f"{i:012x}")
        second, micro = divmod(i, 1000)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + second)) + f".{micro * 1000:06d}Z"
        out.append(
            {
                "v": 1,
                "kind": "sip",
                "id": event_id("sip", "sbc1", call_id, str(seed)),
                "node": "sbc1",
                "role": "sbc",
                "ts": ts,
                "received": ts,
                "key": call_id,
                "body": {
                    "src": {"ip": "10.1.2.3", "port": 5060},
                    "dst": {"ip": "10.9.0.1", "port": 5060},
                    "transport": "udp",
                    "capture_id": 2001,
                    "capture_name": None,
                    "correlation_id": None,
                    "is_request": True,
                    "method": "INVITE",
                    "status": None,
                    "reason": None,
                    "call_id": call_id,
                    "cseq": 1,
                    "from_user": caller,
                    "from_tag": tag,
                    "to_user": callee,
                    "to_tag": None,
                    "via_branch": f"z9hG4bK{i:012x}",
                    "user_agent": "Carrier-SBC 4.2",
                    "headers": {},
                    "raw": raw,
                },
            }
        )
    return out


async def _one_run(store: Store, rows: list[tuple[Any, ...]], batch_rows: int) -> float:
    """Add every row to a BatchSink; return the seconds until the last flush returned.

    Like a processor that keeps consuming while the previous batch is written: a
    due sink is flushed in a task (one at a time) while adding continues.
    """
    sink = BatchSink(
        store,
        TABLE,
        COLUMNS[TABLE],
        max_rows=batch_rows,
        max_bytes=512 * 1024 * 1024,
        max_age_secs=60.0,
        telemetry=Telemetry(node="bench"),
    )
    written = 0
    flushing: asyncio.Task[int] | None = None
    started = time.perf_counter()
    for row in rows:
        sink.add(row, ROW_BYTES)
        if sink.queued_rows >= batch_rows:
            if flushing is not None:
                written += await flushing
            flushing = asyncio.create_task(sink.flush())
            await asyncio.sleep(0)  # let the flush take its batch
    if flushing is not None:
        written += await flushing
    written += await sink.flush()
    elapsed = time.perf_counter() - started
    if written != len(rows):
        raise RuntimeError(f"wrote {written} of {len(rows)} rows")
    return elapsed


def run(
    n_rows: int = 300_000,
    data_dir: str | None = None,
    *,
    runs: int = 3,
    batch_rows: int = 50_000,
    fast_insert: bool = True,
) -> dict[str, Any]:
    """Measure; return the figures (``rows_per_sec`` is the median of ``runs``).

    ``fast_insert=False`` times clickhouse-connect's insert path instead of the chDB fast path.
    """
    with tempfile.TemporaryDirectory(prefix="callscope-bench-") as tmp:
        directory = Path(data_dir) if data_dir else Path(tmp) / "chdb"
        rates: list[float] = []
        build_rates: list[float] = []
        raw_bytes = 0.0
        for i in range(runs):
            config = StoreConfig(dsn=f"chdb://{directory}", database=f"bench_{int(time.time())}_{i}")
            with Store.open(config) as store:
                store.fast_insert = store.fast_insert and fast_insert
                apply_migrations(store, config)
                envelopes = sip_envelopes(n_rows, seed=i)
                raw_bytes = sum(len(e["body"]["raw"]) for e in envelopes) / n_rows
                t = time.perf_counter()
                rows = [row_from_dict("sip", env)[1] for env in envelopes]
                build_rates.append(n_rows / (time.perf_counter() - t))
                del envelopes
                gc.collect()
                gc.freeze()  # the prepared rows are input, not garbage to rescan on every collection
                try:
                    elapsed = asyncio.run(_one_run(store, rows, batch_rows))
                finally:
                    gc.unfreeze()
                stored = store.query(f"SELECT count() AS n, uniqExact(id) AS ids FROM {TABLE}")[0]
                if stored["n"] != n_rows or stored["ids"] != n_rows:
                    raise RuntimeError(f"stored {stored} after writing {n_rows} rows")
                store.command(f"DROP DATABASE {config.database} SYNC")
            rates.append(n_rows / elapsed)
    return {
        "bench": "sink_chdb",
        "rows": n_rows,
        "runs": runs,
        "batch_rows": batch_rows,
        "raw_bytes_per_row": round(raw_bytes),
        "rows_per_sec": round(statistics.median(rates)),
        "rows_per_sec_min": round(min(rates)),
        "rows_per_sec_max": round(max(rates)),
        "row_build_per_sec": round(statistics.median(build_rates)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=50_000)
    parser.add_argument("--data-dir", default=None, help="chDB data directory (default: a temporary one)")
    parser.add_argument(
        "--compare", action="store_true", help="also time clickhouse-connect's insert path, alternating runs"
    )
    args = parser.parse_args()
    if not args.compare:
        _print("sink_chdb", run(args.rows, args.data_dir, runs=args.runs, batch_rows=args.batch_rows))
        return
    results: dict[str, list[dict[str, Any]]] = {"fast": [], "clickhouse-connect": []}
    with tempfile.TemporaryDirectory(prefix="callscope-bench-") as tmp:
        directory = args.data_dir or str(Path(tmp) / "chdb")  # one engine directory per process
        for i in range(args.runs):
            order = (("fast", True), ("clickhouse-connect", False))
            for label, fast in order if i % 2 == 0 else order[::-1]:
                results[label].append(run(args.rows, directory, runs=1, batch_rows=args.batch_rows, fast_insert=fast))
    for label, figures in results.items():
        rates = [f["rows_per_sec"] for f in figures]
        merged = dict(figures[0])
        merged.update(
            runs=len(rates),
            rows_per_sec=round(statistics.median(rates)),
            rows_per_sec_min=min(rates),
            rows_per_sec_max=max(rates),
            row_build_per_sec=round(statistics.median(f["row_build_per_sec"] for f in figures)),
        )
        _print(f"sink_chdb[{label}]", merged)


def _print(name: str, r: dict[str, Any]) -> None:
    spread = (r["rows_per_sec_max"] - r["rows_per_sec_min"]) / 2
    print(
        f"{name}: {r['rows_per_sec']:,} rows/s (median of {r['runs']}, ±{spread:,.0f}; "
        f"min {r['rows_per_sec_min']:,}, max {r['rows_per_sec_max']:,}) "
        f"inserting {r['rows']:,} sip_messages rows (~{r['raw_bytes_per_row']} B raw SIP each) "
        f"in batches of {r['batch_rows']:,}; row building alone {r['row_build_per_sec']:,} rows/s"
    )


if __name__ == "__main__":
    main()
