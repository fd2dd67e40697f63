"""Driving a real Tailer over real files in a test: a synchronous harness and writer threads."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from collectors.tail.checkpoint import CheckpointStore
from collectors.tail.config import TailConfig
from collectors.tail.tailer import Tailer


class TailHarness:
    """A Tailer whose every chunk is "delivered" to ``lines`` and committed at once."""

    def __init__(self, path: Path, checkpoint: Path, **config: Any) -> None:
        self.path = path
        self.store = CheckpointStore(checkpoint)
        options: dict[str, Any] = {"rotated_linger_secs": 0.3, "checkpoint_interval_secs": 0, **config}
        self.config = TailConfig(path=path, **options)
        self.events: list[str] = []
        self.lines: list[bytes] = []
        self.oversize: list[bytes] = []
        self.tailer = Tailer(path, self.store, self.config, self._event)

    def _event(self, name: str, message: str, fields: dict[str, Any]) -> None:
        del message, fields
        self.events.append(name)

    def start(self) -> TailHarness:
        self.tailer.start(time.monotonic())
        return self

    def poll(self) -> int:
        """Read and commit until nothing is left for now; return how many lines came."""
        got = 0
        while True:
            chunk = self.tailer.read(time.monotonic())
            if chunk is None:
                self.tailer.save(time.monotonic())
                return got
            self.lines.extend(line for line in chunk.lines if line)
            self.oversize.extend(chunk.oversize)
            got += len(chunk.lines)
            self.tailer.commit(chunk, time.monotonic())
            self.tailer.save(time.monotonic())

    def until(self, done: Callable[[], bool], within: float = 30.0, every: float = 0.01) -> None:
        """Poll until ``done()`` (a deadline, not a fixed sleep)."""
        deadline = time.monotonic() + within
        while True:
            self.poll()
            if done():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not done within {within}s: {self.describe()}")
            time.sleep(every)

    def describe(self) -> str:
        files = [(f.name, f.ino, f.read_pos, f.committed, f.rotated) for f in self.tailer.files()]
        on_disk = sorted((p.name, p.stat().st_ino, p.stat().st_size) for p in self.path.parent.iterdir())
        return f"{len(self.lines)} lines, events {self.events}, open {files}, on disk {on_disk}"

    def settle(self, expected: int, within: float = 30.0) -> None:
        """Poll until ``expected`` lines came and no rotated file is still held open."""
        self.until(lambda: len(self.lines) >= expected and not self.tailer.rotated, within)

    def stop(self) -> None:
        self.tailer.save(time.monotonic(), force=True)
        self.tailer.close()

    def checkpoint(self) -> dict[str, Any]:
        doc: dict[str, Any] = orjson.loads(self.store.file.read_bytes())
        return doc


def line(i: int, width: int = 0) -> bytes:
    """A distinct line (without newline); ``width`` pads it so reads cut lines in the middle."""
    return f"{1_700_000_000 + i // 10}|call-{i:07d}|support|NONE|ENTERQUEUE||{'x' * (width or i % 37)}|1".encode()


def assert_exactly_once(got: list[bytes], n: int, width: int = 0) -> None:
    counts = Counter(got)
    dupes = [k for k, v in counts.items() if v > 1]
    expected = {line(i, width) for i in range(n)}
    missing = expected - set(counts)
    extra = set(counts) - expected
    assert not dupes, f"{len(dupes)} lines read twice, e.g. {dupes[:3]}"
    assert not missing, f"{len(missing)} lines lost, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} unexpected lines, e.g. {sorted(extra)[:3]}"


class Writer(threading.Thread):
    """Appends ``n`` distinct lines to ``path`` the way Asterisk's cdr_csv does: open, append, close.

    With ``keep_open``, it holds its descriptor like a logger and reopens the path only
    when ``reopen`` is set (what ``logger reload`` after a rotation does).
    ``lock`` is held around each write (copytruncate tests hold it around copy + truncate).
    ``gates`` maps a line number to an event the writer waits for before writing that line, so
    a rotation meant to happen during the writes does, however slowly the rotating thread runs.
    """

    def __init__(
        self,
        path: Path,
        n: int,
        *,
        keep_open: bool = False,
        pause_every: int = 25,
        gates: dict[int, threading.Event] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.n = n
        self.keep_open = keep_open
        self.pause_every = pause_every
        self.gates = gates or {}
        self.lock = threading.Lock()
        self.reopen = threading.Event()
        self.written = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if self.keep_open else -1
            for i in range(self.n):
                data = line(i) + b"\n"
                gate = self.gates.get(i)
                if gate is not None and not gate.wait(60):
                    raise TimeoutError(f"line {i}: the rotation it waits for did not happen within 60 s")
                with self.lock:
                    if self.keep_open:
                        if self.reopen.is_set():
                            self.reopen.clear()
                            os.close(fd)
                            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                        os.write(fd, data)
                    else:
                        fd2 = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                        try:
                            os.write(fd2, data)
                        finally:
                            os.close(fd2)
                    self.written = i + 1
                if i % self.pause_every == 0:
                    time.sleep(0.001)
            if self.keep_open:
                os.close(fd)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def wait_written(self, n: int, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while self.written < n:
            if self.error is not None:
                raise self.error
            if time.monotonic() > deadline:
                raise AssertionError(f"writer stuck at {self.written} lines")
            time.sleep(0.001)

    def finish(self) -> None:
        self.join(60)
        if self.error is not None:
            raise self.error
        assert self.written == self.n
