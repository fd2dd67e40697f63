"""A real Prometheus (Debian's ``prometheus`` 2.42) and its ``promtool`` for the tests.

:func:`start_prometheus` writes a configuration (scrape and evaluation interval, the scrape
targets, ``rule_files`` pointing at the repository's rule files as they are), checks it with
``promtool check config``, starts ``prometheus`` on 127.0.0.1 with ``--web.listen-address
127.0.0.1:0`` (the OS picks the port; Prometheus logs the address it bound, the only place it
says so), keeps its TSDB in the work directory, and waits until ``/-/ready`` answers 200.
Failures quote its log. The caller stops it (:meth:`Prometheus.stop`, also a context manager).

A missing binary raises :class:`tests.peers.harness.PeerMissing` naming the package to install;
tests skip on it outside CI and fail under ``CI=true``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from tests.peers.harness import LOOPBACK, PeerFailed, PeerMissing, PeerProcess, start_process

#: Debian package that ships both binaries (tests/system-deps.sh installs it).
PACKAGE = "prometheus"
_LISTENING = re.compile(r'msg="Listening on" address=(127\.0\.0\.1:\d+)')


def require(binary: str) -> str:
    """Path of ``prometheus`` or ``promtool``, or :class:`PeerMissing` naming the package."""
    path = shutil.which(binary)
    if path is None:
        raise PeerMissing(
            f"{binary} not installed: run `sudo bash tests/system-deps.sh` (or apt-get install {PACKAGE})"
        )
    return path


@dataclass(frozen=True)
class PromtoolResult:
    argv: list[str]
    returncode: int
    output: str  # stdout and stderr

    def describe(self) -> str:
        return f"$ {' '.join(self.argv)}\nexit {self.returncode}\n{self.output[-6000:]}"


def promtool(*args: str, stdin: bytes | None = None, cwd: Path | None = None, timeout: float = 120) -> PromtoolResult:
    """Run ``promtool ARGS``; never raises on a non-zero exit (the caller asserts)."""
    argv = [require("promtool"), *args]
    proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, check=False, cwd=cwd)
    output = (proc.stdout + proc.stderr).decode(errors="replace")
    return PromtoolResult(argv, proc.returncode, output)


def write_config(
    path: Path,
    *,
    targets: Sequence[str],
    rule_files: Sequence[Path],
    interval_secs: float = 1.0,
    job: str = "callscope",
    metrics_path: str = "/metrics",
) -> Path:
    """A prometheus.yml scraping ``targets`` (``host:port``) every ``interval_secs`` and evaluating
    ``rule_files`` (absolute paths, used as they are) at the same interval."""
    interval = _duration(interval_secs)
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(p.resolve()) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "metrics_path": metrics_path, "static_configs": [{"targets": list(targets)}]}
        ],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _duration(secs: float) -> str:
    ms = round(secs * 1000)
    if ms <= 0:
        raise ValueError(f"interval must be positive, got {secs}")
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


@dataclass
class Prometheus:
    process: PeerProcess
    url: str
    config_path: Path

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        self.process.stop()

    def describe(self) -> str:
        return self.process.describe()

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; the ``data`` of a successful answer, else :class:`PeerFailed`."""
        resp = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        doc = resp.json()
        if resp.status_code != 200 or doc.get("status") != "success":
            raise PeerFailed(f"GET /api/v1/{path} {params}: {resp.status_code} {resp.text[-2000:]}")
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector: ``[{"metric": {...}, "value": [ts, "v"]}, ...]``."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing), as ``/api/v1/alerts`` lists them."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def targets_health(self) -> list[str]:
        """``health`` of every active scrape target (``up``, ``down``, ``unknown``)."""
        return [t["health"] for t in self.api("targets")["activeTargets"]]

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float, interval: float = 0.25) -> float:
        """Poll ``check`` until true; return the seconds it took, or fail quoting the log."""
        start = time.monotonic()
        while not check():
            if not self.process.alive():
                raise PeerFailed(f"prometheus exited while waiting for {what}: {self.describe()}")
            if time.monotonic() - start > timeout:
                raise PeerFailed(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(interval)
        return time.monotonic() - start


def start_prometheus(
    workdir: Path,
    *,
    targets: Sequence[str],
    rule_files: Sequence[Path],
    interval_secs: float = 1.0,
    ready_timeout: float = 30.0,
) -> Prometheus:
    """Start Prometheus on an OS-given port of 127.0.0.1; ready once ``/-/ready`` answers 200."""
    binary = require("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(
        workdir / "prometheus.yml", targets=targets, rule_files=rule_files, interval_secs=interval_secs
    )
    check = promtool("check", "config", str(config))
    if check.returncode != 0:
        raise PeerFailed(f"promtool rejected the test's configuration:\n{check.describe()}")
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address={LOOPBACK}:0",
        "--log.level=info",
    ]
    process = start_process("prometheus", argv, workdir)
    try:
        url = _wait_ready(process, ready_timeout)
    except BaseException:
        process.stop()
        raise
    return Prometheus(process, url, config)


def _wait_ready(process: PeerProcess, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    url: str | None = None
    while time.monotonic() < deadline:
        if not process.alive():
            raise PeerFailed(f"prometheus exited at start: {process.describe()}")
        if url is None:
            # The bound address is in the log only; readiness itself is asked over HTTP below.
            match = _LISTENING.search(process.log_tail(100_000))
            if match:
                url = f"http://{match.group(1)}"
        if url is not None:
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
        time.sleep(0.05)
    raise PeerFailed(f"prometheus not ready within {timeout:.0f} s (url {url}): {process.describe()}")
