"""Running the distributed pipeline as separate processes on a real broker, for the Kafka fault tests.

``callscope run --role collector`` (HEP over UDP onto Kafka) and ``callscope run --role processor``
(Kafka into its own embedded store) are started the way an operator starts them, on OS-given
ports, and counted ready once their banner is out and ``/readyz`` answers 200. A test can
SIGKILL a role and start another on the same data directory, pace HEP traffic over UDP from a
thread, read each role's ``/metrics``, wait until every processor group has committed the end
of every topic, and count the store afterwards in a child process (chDB runs one data
directory per process, and the test process may already hold another).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.e2e_hep_kafka import processor_groups as groups
from tests.cli_process import HEP_LINE
from tests.faults.counts import Stored

START_TIMEOUT_SECS = 180.0
HTTP_TIMEOUT_SECS = 10.0

Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def kafka_env(bootstrap: str, group_prefix: str, **extra: str) -> dict[str, str]:
    """Environment for a role on ``bootstrap`` with consumer groups of its own."""
    return dict(
        os.environ,
        CALLSCOPE_LOG__LEVEL="info",
        CALLSCOPE_BUS__KIND="kafka",
        CALLSCOPE_BUS__KAFKA__BOOTSTRAP_SERVERS=bootstrap,
        CALLSCOPE_BUS__KAFKA__CONNECT_BACKOFF_MAX_SECS="1",
        CALLSCOPE_PROCESSORS__GROUP_PREFIX=group_prefix,
        **extra,
    )


def new_group_prefix(what: str) -> str:
    return f"fault-{what}-{uuid.uuid4().hex[:8]}"


@dataclass
class Role:
    """One ``callscope run --role ...`` process, its health/metrics URL and its HEP port."""

    name: str
    proc: subprocess.Popen[str]
    url: str
    hep_port: int | None
    stderr_path: Path
    banner: list[str] = field(default_factory=list)

    def metrics(self) -> Metrics:
        text = httpx.get(f"{self.url}/metrics", timeout=HTTP_TIMEOUT_SECS).text
        out: Metrics = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
        return out

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, object]]:
        """The role's JSON log lines (structlog on stderr)."""
        out: list[dict[str, object]] = []
        for line in self.stderr_path.read_bytes().splitlines():
            if line.startswith(b"{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no lock release but the kernel's."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._close_pipe()

    def stop(self, timeout_secs: float = 90.0) -> int:
        """SIGTERM and wait for a clean exit; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_secs)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._close_pipe()
                raise AssertionError(f"{self.name} did not stop within {timeout_secs:.0f} s") from None
        self._close_pipe()
        return self.proc.returncode

    def close(self) -> None:
        """Make sure the process is gone (cleanup path)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()


def _read_lines(stream: object, lines: queue.Queue[str | None]) -> None:
    assert hasattr(stream, "readline")
    try:
        for line in iter(stream.readline, ""):
            lines.put(line)
    except ValueError:  # closed under us
        pass
    lines.put(None)


def start_role(role: str, data_dir: Path, env: dict[str, str], *extra: str) -> Role:
    """Start one role on OS-given ports; returns once the banner is out and ``/readyz`` answers 200."""
    args = [sys.executable, "-m", "callscope.cli", "run", "--role", role, "--data-dir", str(data_dir)]
    args += ["--api-listen", "127.0.0.1:0"]
    if role == "collector":
        args += ["--hep-listen", "127.0.0.1:0"]
    args += list(extra)
    data_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = data_dir.parent / f"{data_dir.name}-{role}-{time.monotonic_ns()}.stderr"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True, name=f"{role}-stdout").start()
    banner: list[str] = []
    url: str | None = None
    port: int | None = None
    deadline = time.monotonic() + START_TIMEOUT_SECS
    running = Role(role, proc, "", None, stderr_path, banner)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{role}: no banner within {START_TIMEOUT_SECS:.0f} s: {running.stderr()[-2000:]}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = proc.wait(10)
                raise AssertionError(f"{role} exited during start-up ({code}): {running.stderr()[-3000:]}")
            banner.append(line)
            if line.strip().startswith("http:"):
                url = line.split()[1]
            if m := HEP_LINE.search(line):
                port = int(m.group(1))
            if "stop with Ctrl-C" in line:
                break
        if url is None or (role == "collector" and port is None):
            raise AssertionError(f"{role}: no http/hep line in the banner: {banner}")
        running.url, running.hep_port = url, port
        while True:  # readiness over HTTP (bus and store checks), not from the log
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    return running
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{role}: /readyz never answered 200")
            time.sleep(0.1)
    except BaseException:
        running.close()
        raise


# -- Kafka side --------------------------------------------------------------------------------


def _quiet_aiokafka() -> None:
    # Coordinator lookups on a fresh broker are retried by aiokafka and logged at ERROR each time.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def group_topics(processor: Role, group_prefix: str, timeout_secs: float = 60.0) -> dict[str, tuple[str, ...]]:
    """The topics each processor group of ``group_prefix`` reads, from the processor's lag gauges.

    The runtime measures each group's lag on the topics that group consumes
    (``callscope_bus_lag_messages{group, topic}``); it does so right after the group started.
    """
    found: dict[str, set[str]] = {}

    def complete() -> bool:
        found.clear()
        for name, labels in processor.metrics():
            if name == "callscope_bus_lag_messages":
                lab = dict(labels)
                if lab["group"].startswith(f"{group_prefix}."):
                    found.setdefault(lab["group"], set()).add(lab["topic"])
        return set(found) >= set(groups(group_prefix))

    wait_for("every processor group's lag gauge", complete, timeout_secs)
    return {group: tuple(sorted(topics)) for group, topics in found.items()}


async def _lag(bootstrap: str, topics: dict[str, tuple[str, ...]], timeout_secs: float) -> dict[str, int]:
    from callscope.bus.kafka import KafkaBus
    from callscope.settings import KafkaConfig
    from callscope.telemetry import Telemetry

    bus = KafkaBus(KafkaConfig(bootstrap_servers=bootstrap, connect_timeout_secs=30), Telemetry())
    await bus.start()
    try:
        deadline = time.monotonic() + timeout_secs
        while True:
            left: dict[str, int] = {}
            for group, group_topics in topics.items():
                lag = await bus.lag(group, group_topics)
                total = sum(lag.values()) if lag else 1
                if total:
                    left[group] = total
            if not left or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.3)
    finally:
        await bus.stop()


async def _committed(bootstrap: str, group: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(meta.offset for meta in offsets.values() if meta.offset >= 0)


def committed(bootstrap: str, group: str) -> int:
    """Sum of ``group``'s committed offsets over every partition: how far it has acknowledged in total."""
    _quiet_aiokafka()
    return asyncio.run(_committed(bootstrap, group))


def wait_drained(bootstrap: str, topics: dict[str, tuple[str, ...]], timeout_secs: float = 90.0) -> dict[str, int]:
    """Wait until every group committed the end of the topics it reads (``topics``, see :func:`group_topics`).

    Returns the lag left per group (empty: drained). Processors commit only after the store
    acknowledged, so zero lag means stored.
    """
    _quiet_aiokafka()
    return asyncio.run(_lag(bootstrap, topics, timeout_secs))


# -- HEP over UDP ------------------------------------------------------------------------------


def udp_socket_drops(port: int) -> int:
    """Datagrams the kernel dropped on the UDP socket bound to 127.0.0.1:``port`` (``/proc/net/udp``)."""
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local:
            return int(fields[-1])
    raise AssertionError(f"no UDP socket on 127.0.0.1:{port}")


class UdpSender(threading.Thread):
    """Sends packets to 127.0.0.1:``port`` at ``rate`` per second from a thread; ``sent`` counts progress.

    It sends the first ``until`` packets (all by default) and waits there; :meth:`release` moves
    the limit on. Pacing restarts at a release, so a pause never turns into a burst.
    """

    SLOT_SECS = 0.01

    def __init__(self, port: int, packets: Sequence[bytes], rate: float, until: int | None = None) -> None:
        super().__init__(name="hep-udp-sender", daemon=True)
        self.port = port
        self.packets = packets
        self.rate = rate
        self.sent = 0
        self.error: BaseException | None = None
        self._until = len(packets) if until is None else min(until, len(packets))
        self._cond = threading.Condition()
        self._cancelled = False

    @property
    def done(self) -> bool:
        """Every packet up to the current limit is sent."""
        return self.sent >= self._until

    def release(self, until: int | None = None) -> None:
        with self._cond:
            self._until = len(self.packets) if until is None else min(until, len(self.packets))
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def run(self) -> None:
        per_slot = max(1, int(self.rate * self.SLOT_SECS))
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.connect(("127.0.0.1", self.port))
                base, base_sent = time.monotonic(), 0
                while self.sent < len(self.packets):
                    if self.sent >= self._until:
                        with self._cond:
                            while self.sent >= self._until and not self._cancelled:
                                self._cond.wait()
                        base, base_sent = time.monotonic(), self.sent
                    if self._cancelled:
                        return
                    for pkt in self.packets[self.sent : min(self.sent + per_slot, self._until)]:
                        sock.send(pkt)
                        self.sent += 1
                    delay = base + (self.sent - base_sent) / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
        except BaseException as exc:
            self.error = exc


def wait_for(what: str, check: Callable[[], bool], timeout_secs: float, interval_secs: float = 0.2) -> float:
    """Poll ``check()`` until it is true; returns the seconds it took. Fails the test with ``what`` on timeout."""
    started = time.monotonic()
    deadline = started + timeout_secs
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_secs:.0f} s waiting for {what}")
        time.sleep(interval_secs)
    return time.monotonic() - started


# -- the store, counted in a child process -----------------------------------------------------

_COUNT_SCRIPT = """
import json, sys
from dataclasses import asdict
from callscope.settings import StoreConfig
from callscope.store.client import Store
from tests.faults.counts import stored

spec = json.load(sys.stdin)
store = Store.open(StoreConfig(dsn=spec["dsn"], database=spec["database"]))
try:
    out = {
        "stored": {name: asdict(stored(store, table, where)) for name, (table, where) in spec["stored"].items()},
        "queries": {name: store.query(sql) for name, sql in spec["queries"].items()},
    }
finally:
    store.close()
json.dump(out, sys.stdout, default=str)
"""


@dataclass(frozen=True)
class Counted:
    stored: dict[str, Stored]
    queries: dict[str, list[dict[str, object]]]


def count_store(
    data_dir: Path,
    stored: dict[str, tuple[str, str]],
    queries: dict[str, str] | None = None,
    *,
    database: str = "callscope",
) -> Counted:
    """Open the embedded store of a stopped processor in a child process and count it.

    ``stored`` maps a name to ``(table, where)`` for :func:`tests.faults.counts.stored`;
    ``queries`` maps a name to SQL whose rows come back as dicts. The child also proves that
    the directory's lock was released by the processor that held it.
    """
    spec = {
        "dsn": f"chdb://{(data_dir / 'chdb').resolve()}",
        "database": database,
        "stored": stored,
        "queries": queries or {},
    }
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _COUNT_SCRIPT],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=repo,
        env=dict(os.environ, PYTHONPATH=str(repo)),
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"counting the store in {data_dir} failed ({proc.returncode}): {proc.stderr[-3000:]}")
    doc = json.loads(proc.stdout)
    return Counted(
        stored={name: Stored(**value) for name, value in doc["stored"].items()},
        queries=doc["queries"],
    )
