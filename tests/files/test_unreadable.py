"""An unreadable file (permissions): reported once, retried, read in full once readable.

The tailer runs in a child process on real files whose mode the test changes. Root reads
any file through its CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH capabilities, so when the
test runs as root the child drops those two from its bounding set before it starts
(``prctl(PR_CAPBSET_DROP)``): it stays root, owner of the files, and mode 000 denies it.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson

from tests.files.tailing import assert_exactly_once, line

REPO = Path(__file__).resolve().parents[2]


def _append(path: Path, start: int, stop: int) -> None:
    with path.open("ab") as fh:
        fh.write(b"".join(line(i) + b"\n" for i in range(start, stop)))


_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def _drop_file_capabilities() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


class _Child:
    def __init__(self, log: Path, checkpoint: Path, expected: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.files.unreadable_child", str(log), str(checkpoint), str(expected)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_drop_file_capabilities if os.geteuid() == 0 else None,  # noqa: PLW1509 - no threads here
        )
        self.status: dict[str, Any] = {"lines": [], "events": [], "polls": 0}

    def until(self, done: Callable[[dict[str, Any]], bool], within: float = 60.0) -> dict[str, Any]:
        """Read status lines until ``done(status)`` (deadline, not a sleep)."""
        stdout: IO[bytes] | None = self.proc.stdout
        assert stdout is not None
        deadline = time.monotonic() + within
        while not done(self.status):
            if time.monotonic() > deadline:
                raise AssertionError(f"child status {self.status}")
            raw = stdout.readline()
            if not raw:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise AssertionError(f"child exited {self.proc.wait()}: {err[-2000:]}")
            self.status = orjson.loads(raw)
        return self.status

    def close(self) -> int:
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


def test_unreadable_file_is_reported_once_and_read_when_readable(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    _append(log, 0, 10)
    log.chmod(0o000)
    child = _Child(log, tmp_path / "checkpoints" / "queue_log.json", expected=25)
    try:
        first = child.until(lambda s: "unreadable" in s["events"])
        child.until(lambda s: s["polls"] >= first["polls"] + 10)  # retried many times ...
        assert child.status["events"].count("unreadable") == 1  # ... reported once
        assert child.status["lines"] == []
        log.chmod(0o644)
        child.until(lambda s: len(s["lines"]) >= 10)
        assert "readable" in child.status["events"]
        # A rotation to a new file that is unreadable at first: the old one is finished,
        # the new one waited for.
        _append(log, 10, 15)
        os.rename(log, tmp_path / "queue_log.1")
        _append(log, 15, 25)
        log.chmod(0o000)
        child.until(lambda s: s["events"].count("unreadable") == 2 and len(s["lines"]) >= 15)
        log.chmod(0o644)
        child.until(lambda s: len(s["lines"]) >= 25)
        assert child.close() == 0
    finally:
        child.close()
    assert_exactly_once([x.encode() for x in child.status["lines"]], 25)
