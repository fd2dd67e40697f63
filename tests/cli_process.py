"""Running `callscope run` as a subprocess the way a user does, for end-to-end tests.

The process gets an OS-given API port (``--api-listen 127.0.0.1:0``); the test
reads the banner for the URL and probes ``/healthz`` over HTTP for readiness.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import orjson

CLI = [sys.executable, "-m", "callscope.cli"]
API_LINE = re.compile(r"api:\s+(http://127\.0\.0\.1:\d+)")
HEP_LINE = re.compile(r"hep:\s+\S+ 127\.0\.0\.1:(\d+)")


@dataclass
class Running:
    proc: subprocess.Popen[str]
    url: str
    data_dir: Path
    stdout_lines: list[str]
    stderr_path: Path

    @property
    def hep_port(self) -> int | None:
        """The HEP collector's bound port (UDP and TCP), read from the banner."""
        for line in self.stdout_lines:
            match = HEP_LINE.search(line)
            if match:
                return int(match.group(1))
        return None

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    @property
    def token(self) -> str:
        return (self.data_dir / "api-token").read_text().strip()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


def start(data_dir: Path, *extra: str, env_extra: dict[str, str] | None = None) -> Running:
    env = dict(os.environ, CALLSCOPE_LOG__LEVEL="warning", **(env_extra or {}))
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    stderr_path = data_dir.parent / f"stderr-{time.monotonic_ns()}.log"
    with stderr_path.open("wb") as err_file:
        proc = _popen(data_dir, extra, env, err_file)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    url = None
    while not lines or "stop with Ctrl-C" not in lines[-1]:
        line = proc.stdout.readline()
        if not line:
            code = proc.wait()
            proc.stdout.close()
            raise AssertionError(f"callscope run exited early ({code}): {stderr_path.read_text()[-2000:]}")
        lines.append(line)
        match = API_LINE.search(line)
        if match:
            url = match.group(1)
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("no banner within 120 s")
    assert url is not None
    run = Running(proc, url, data_dir, lines, stderr_path)
    # Readiness is probed over HTTP, not read from the log.
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            run.close()
            raise AssertionError("/healthz never answered")
        time.sleep(0.05)
    return run


def _popen(data_dir: Path, extra: tuple[str, ...], env: dict[str, str], err_file: IO[bytes]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "callscope.cli",
            "run",
            "--data-dir",
            str(data_dir),
            "--api-listen",
            "127.0.0.1:0",
            # the HEP collector on an OS-given port too, unless the test names one
            *(() if "--hep-listen" in extra else ("--hep-listen", "127.0.0.1:0")),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=err_file,
        text=True,
        env=env,
    )


def ndjson(docs: list[dict[str, object]]) -> bytes:
    return b"\n".join(orjson.dumps(d) for d in docs) + b"\n"


def ingest(run: Running, body: bytes, timeout: float = 30) -> httpx.Response:
    """POST ``body`` (NDJSON envelopes) to the running process's ``/api/v1/ingest`` with its token."""
    headers = {**run.headers(), "Content-Type": "application/x-ndjson"}
    return httpx.post(f"{run.url}/api/v1/ingest", content=body, headers=headers, timeout=timeout)


def wait_count(run: Running, kind: str, expected: int) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        doc: dict[str, object] = httpx.get(f"{run.url}/api/v1/events/stats", headers=run.headers(), timeout=10).json()
        tables = doc["tables"]
        assert isinstance(tables, dict)
        if tables.get(kind, {}).get("events", 0) >= expected or time.monotonic() > deadline:
            return doc
        time.sleep(0.1)
