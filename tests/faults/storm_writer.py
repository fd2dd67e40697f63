"""The writer of the rotation storms (tests/faults/test_rotation_storms.py), run as a process of its own.

``python -m tests.faults.storm_writer MODE SECS DIR`` writes ``DIR/queue_log`` and
``DIR/Master.csv`` for SECS seconds, rotating both (MODE: rename, copytruncate, mixed), and
prints one JSON document: per file the lines written, the outcomes written (queue_sessions
outcomes for queue_log, dispositions for Master.csv) and the rotations done. A process of
its own keeps the writer's pace off the pipeline's interpreter lock.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import orjson

Mode = Literal["rename", "copytruncate", "mixed"]

EPOCH0 = 1_764_150_000  # queue_log and CDR times start here and advance about one second per 25 lines
KEEP = 40  # rotated copies kept (logrotate's ``rotate 40``): older ones are deleted
ROTATE_EVERY = (0.1, 0.3)
LINES_PER_SEC = {"queue_log": 3000, "cdr": 1500}


# ---------------------------------------------------------------------------- generated content
def queue_stays(seed: int) -> Iterator[tuple[list[bytes], str]]:
    """Whole caller stays as queue_log writes them, each with its outcome (as queue_sessions names it)."""
    rng = random.Random(seed)
    queues = ("support", "sales", "billing")
    outcomes = ("completed_caller", "completed_agent", "abandoned", "timeout")
    n = 0
    while True:
        t = EPOCH0 + n // 8
        callid = f"{t}.{n}"
        queue = queues[n % len(queues)]
        agent = f"PJSIP/{2000 + n % 17}"
        outcome = outcomes[rng.randrange(len(outcomes))]
        caller = f"0{rng.randrange(100_000_000, 999_999_999)}"
        lines = [f"{t}|{callid}|{queue}|NONE|ENTERQUEUE||{caller}|1"]
        wait = rng.randrange(1, 40)
        if rng.random() < 0.3:
            lines.append(f"{t + 1}|{callid}|{queue}|PJSIP/{3000 + n % 11}|RINGNOANSWER|{rng.randrange(1000, 15000)}")
        end = t + wait
        if outcome in ("completed_caller", "completed_agent"):
            talk = rng.randrange(5, 600)
            lines.append(f"{end}|{callid}|{queue}|{agent}|CONNECT|{wait}|{t}.{n + 900_000}|{rng.randrange(1, 9)}")
            event = "COMPLETECALLER" if outcome == "completed_caller" else "COMPLETEAGENT"
            lines.append(f"{end + talk}|{callid}|{queue}|{agent}|{event}|{wait}|{talk}|1")
        elif outcome == "abandoned":
            lines.append(f"{end}|{callid}|{queue}|NONE|ABANDON|1|1|{wait}")
        else:
            lines.append(f"{end}|{callid}|{queue}|NONE|EXITWITHTIMEOUT|1|1|{wait}")
        yield [line.encode() for line in lines], outcome
        n += 1


def _cdr_time(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def cdr_rows(seed: int) -> Iterator[tuple[list[bytes], str]]:
    """cdr_csv rows with uniqueid and userfield (18 columns), each with its disposition."""
    rng = random.Random(seed)
    dispositions = ("ANSWERED", "NO ANSWER", "BUSY", "FAILED")
    n = 0
    while True:
        t = EPOCH0 + n // 25
        disposition = dispositions[rng.randrange(len(dispositions))]
        src, dst = str(1000 + n % 97), str(2000 + n % 53)
        duration = rng.randrange(1, 900)
        answered = disposition == "ANSWERED"
        billsec = duration - rng.randrange(0, min(duration, 20)) if answered else 0
        answer = f'"{_cdr_time(t + duration - billsec)}"' if answered else ""
        name = rng.choice(("Alice", 'Bob "the builder"', "Chloé", "Dan"))
        clid = '"' + f'"{name}" <{src}>'.replace('"', '""') + '"'
        uid = f"{t}.{n}"
        row = (
            f'"","{src}","{dst}","from-internal",{clid},"PJSIP/{src}-{n:08x}","PJSIP/{dst}-{n + 1:08x}",'
            f'"Dial","PJSIP/{dst},30","{_cdr_time(t)}",{answer},"{_cdr_time(t + duration)}",'
            f'{duration},{billsec},"{disposition}","DOCUMENTATION","{uid}","call-{n}@pbx1"'
        )
        yield [row.encode()], disposition
        n += 1


# ---------------------------------------------------------------------------- the writer
@dataclass(eq=False)
class StormWriter(threading.Thread):
    """Writes ``items`` to ``path`` at ``rate`` lines a second for ``secs`` and rotates it every 100-300 ms."""

    path: Path
    items: Iterator[tuple[list[bytes], str]]
    mode: Mode
    rate: int
    secs: float
    keep_open: bool
    seed: int
    lines: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    rotations: Counter[str] = field(default_factory=Counter)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        threading.Thread.__init__(self, daemon=True, name=f"storm-{self.path.name}")
        self.rng = random.Random(self.seed)
        self.lock = threading.Lock()  # held around every write and around copy + truncate
        self.fd = -1
        self.reopen_at: float | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            if self.fd >= 0:
                os.close(self.fd)

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _write(self, data: bytes) -> None:
        with self.lock:
            if self.keep_open:
                if self.fd < 0:
                    self.fd = self._open()
                os.write(self.fd, data)
            else:
                fd = self._open()
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)

    def _run(self) -> None:
        start = time.monotonic()
        next_rotation = start + self.rng.uniform(*ROTATE_EVERY)
        while True:
            now = time.monotonic()
            if now - start >= self.secs:
                return
            if self.reopen_at is not None and now >= self.reopen_at:  # ``logger reload`` after a rename
                with self.lock:
                    os.close(self.fd)
                    self.fd = self._open()
                self.reopen_at = None
            if now >= next_rotation:
                self._rotate()
                next_rotation = now + self.rng.uniform(*ROTATE_EVERY)
            due = int((now - start) * self.rate)
            while self.lines < due:  # whole stays / rows, each line one write(2) like Asterisk's
                batch, outcome = next(self.items)
                for line in batch:
                    self._write(line + b"\n")
                self.lines += len(batch)
                self.outcomes[outcome] += 1
            time.sleep(0.002)

    def _shift(self) -> Path:
        """logrotate's numbered copies: ``.5`` -> ``.6`` ..., the one beyond KEEP deleted; returns ``.1``."""
        oldest = self.path.with_name(f"{self.path.name}.{KEEP}")
        with contextlib.suppress(FileNotFoundError):
            oldest.unlink()
        for i in range(KEEP - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.rename(
                    self.path.with_name(f"{self.path.name}.{i}"), self.path.with_name(f"{self.path.name}.{i + 1}")
                )
        return self.path.with_name(f"{self.path.name}.1")

    def _rotate(self) -> None:
        kind = self.mode if self.mode != "mixed" else self.rng.choice(("rename", "copytruncate"))
        if not self.path.exists():
            return
        first = self._shift()
        if kind == "rename":
            if self.reopen_at is not None:  # the previous reopen is still due: do it now
                with self.lock:
                    os.close(self.fd)
                    self.fd = self._open()
                self.reopen_at = None
            os.rename(self.path, first)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644))  # logrotate's ``create``
            if self.keep_open and self.fd >= 0:
                self.reopen_at = time.monotonic() + self.rng.uniform(0.0, 0.03)  # lines still land in .1
        else:
            with self.lock:  # nothing is written between the copy and the truncation
                shutil.copyfile(self.path, first)
                os.truncate(self.path, 0)
        self.rotations[kind] += 1

    def finish(self) -> None:
        self.join(60)
        assert not self.is_alive(), "writer did not stop"
        if self.error is not None:
            raise self.error


def main(argv: list[str]) -> int:
    secs, directory = float(argv[1]), Path(argv[2])
    modes: dict[str, Mode] = {"rename": "rename", "copytruncate": "copytruncate", "mixed": "mixed"}
    mode = modes[argv[0]]
    seed = {"rename": 1, "copytruncate": 2, "mixed": 3}[mode]
    writers = {
        "queue_log": StormWriter(
            directory / "queue_log",
            queue_stays(seed),
            mode,
            LINES_PER_SEC["queue_log"],
            secs,
            True,
            seed,
        ),
        "cdr": StormWriter(
            directory / "Master.csv",
            cdr_rows(seed),
            mode,
            LINES_PER_SEC["cdr"],
            secs,
            False,
            seed + 100,
        ),
    }
    began = time.monotonic()
    for w in writers.values():
        w.start()
    for w in writers.values():
        w.finish()
    took = time.monotonic() - began
    report = {
        name: {"lines": w.lines, "outcomes": dict(w.outcomes), "rotations": dict(w.rotations), "secs": took}
        for name, w in writers.items()
    }
    sys.stdout.buffer.write(orjson.dumps(report) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
