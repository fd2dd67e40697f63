"""A real single-node Apache Kafka broker (KRaft) for tests, without Docker.

The broker's jars come from Maven Central through ``tests/kafka/pom.xml``; they are
copied once into the git-ignored ``.cache/kafka/libs`` (a marker file, written after
a complete download, holds the pom's hash: a half download or a changed pom is fetched
again). Each :class:`KafkaBroker` gets its own temporary directory (config, data, log)
and loopback ports handed out by the OS, and counts as started only once a Kafka client
has fetched cluster metadata from it.

Command line (what ``make kafka`` runs)::

    python -m tests.kafka.broker      # prints KAFKA_BOOTSTRAP=127.0.0.1:PORT, Ctrl-C stops
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = Path(__file__).resolve().with_name("pom.xml")
CACHE_DIR = REPO_ROOT / ".cache" / "kafka"
LIBS_DIR = CACHE_DIR / "libs"
MARKER = CACHE_DIR / "libs.complete"

READY_TIMEOUT_SECS = 90.0
STOP_TIMEOUT_SECS = 20.0
HEAP_OPTS = ("-Xmx384m", "-Xms128m")

PROBE_THREAD = "kafka-readiness-probe"
INSTALL_HINT = "apt-get install openjdk-17-jre-headless maven"


class KafkaToolMissing(RuntimeError):
    """java or mvn is not installed: the broker cannot be had on this machine."""


class KafkaBrokerError(RuntimeError):
    """The broker did not format, start or answer in time."""


# Runs java and SIGTERMs it as soon as our end of its stdin pipe closes: on stop(), and also
# when this Python process dies without cleaning up, so no broker outlives its test run.
# The guard exits with java's status when java exits by itself.
_GUARD = """
exec 3<&0
"$0" "$@" </dev/null 3<&- &
child=$!
( read -r _unused || true; kill -TERM "$child" 2>/dev/null ) <&3 &
exec 3<&-
wait "$child"
"""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS considers free right now (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise KafkaToolMissing(f"java not found (Kafka 4 needs Java 17+): {INSTALL_HINT}")
    return found


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


@contextlib.contextmanager
def _download_lock() -> Iterator[None]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / "libs.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_libs() -> Path:
    """Download the broker's jars once; later calls reuse them. Returns the libs directory."""
    digest = _pom_digest()
    if MARKER.is_file() and MARKER.read_text().strip() == digest:
        return LIBS_DIR
    with _download_lock():
        if MARKER.is_file() and MARKER.read_text().strip() == digest:
            return LIBS_DIR  # another process finished it while we waited
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaToolMissing(f"mvn not found (needed once to fetch the Kafka jars): {INSTALL_HINT}")
        MARKER.unlink(missing_ok=True)
        shutil.rmtree(LIBS_DIR, ignore_errors=True)
        cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={LIBS_DIR}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-4000:]
            raise KafkaBrokerError(f"fetching the Kafka jars failed ({' '.join(cmd)}):\n{tail}")
        if not any(LIBS_DIR.glob("kafka_2.13-*.jar")):
            raise KafkaBrokerError(f"maven ran but {LIBS_DIR} holds no kafka_2.13 jar")
        MARKER.write_text(digest + "\n")
    return LIBS_DIR


def _cluster_id() -> str:
    # Kafka's Uuid text form: URL-safe base64 of 16 bytes, no padding.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


class _QuietProbe(logging.Filter):
    """Drops aiokafka's "Unable connect" lines from the readiness probe: refusals are expected there."""

    def filter(self, record: logging.LogRecord) -> bool:
        return threading.current_thread().name != PROBE_THREAD


for _name in ("aiokafka", "aiokafka.client", "aiokafka.conn", "aiokafka.admin.client", "aiokafka.cluster"):
    logging.getLogger(_name).addFilter(_QuietProbe())


async def _metadata_ready(bootstrap: str, timeout_secs: float) -> bool:
    """One metadata fetch through a real client; True when the broker lists itself."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=max(1000, int(timeout_secs * 1000)))
    try:
        async with asyncio.timeout(timeout_secs):
            await admin.start()
            cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except Exception:
        return False
    finally:
        await admin.close()


def probe_metadata(bootstrap: str, timeout_secs: float = 5.0) -> bool:
    """Blocking metadata probe; safe to call from inside a running event loop (own thread)."""
    result: list[bool] = [False]

    def target() -> None:
        result[0] = asyncio.run(_metadata_ready(bootstrap, timeout_secs))

    thread = threading.Thread(target=target, name=PROBE_THREAD, daemon=True)
    thread.start()
    thread.join(timeout_secs + 5.0)
    return result[0]


class KafkaBroker:
    """One KRaft broker+controller on 127.0.0.1 with its own temporary directory.

    ``start()`` formats storage on first use and waits until a client fetches metadata;
    ``stop()`` ends the process but keeps ports and data, so ``start()``/``restart()``
    brings the same broker back; ``close()`` (or leaving the ``with`` block) also
    removes the temporary directory.
    """

    def __init__(
        self, *, ready_timeout_secs: float = READY_TIMEOUT_SECS, heap_opts: tuple[str, ...] = HEAP_OPTS
    ) -> None:
        self.ready_timeout_secs = ready_timeout_secs
        self.heap_opts = heap_opts
        self.port = 0
        self.controller_port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._formatted = False

    # -- properties ---------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        if not self.port:
            raise KafkaBrokerError("broker was never started")
        return f"127.0.0.1:{self.port}"

    @property
    def workdir(self) -> Path:
        if self._dir is None:
            raise KafkaBrokerError("broker was never started")
        return self._dir

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the broker (formatting storage the first time) and wait until it serves metadata."""
        if self.running:
            return
        java = java_executable()
        libs = ensure_libs()
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="callscope-kafka-"))
            self.port = free_port()
            self.controller_port = free_port()
            while self.controller_port == self.port:
                self.controller_port = free_port()
            self._write_config()
        classpath = f"{libs}/*"
        if not self._formatted:
            self._format(java, classpath)
        cmd = [
            java,
            *self.heap_opts,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self.workdir / "server.properties"),
        ]
        with self.log_path.open("ab") as log:
            log.write(f"\n=== starting: {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                ["sh", "-c", _GUARD, *cmd],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if it lingers. Ports and data are kept."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # the guard sends SIGTERM to java
        try:
            proc.wait(STOP_TIMEOUT_SECS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def restart(self) -> None:
        """Stop if running, then start again on the same ports with the same data."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and remove the temporary directory."""
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self._formatted = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # -- internals ----------------------------------------------------------------------------

    def _write_config(self) -> None:
        d = self.workdir
        (d / "data").mkdir()
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(d / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # A restarted broker re-registers only once its old session expired (default 9 s).
            "broker.session.timeout.ms": "2000",
            "broker.heartbeat.interval.ms": "500",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.flush.interval.messages": "9223372036854775807",
        }
        (d / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (d / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.out.type = Console\n"
            "appender.out.name = STDOUT\n"
            "appender.out.layout.type = PatternLayout\n"
            "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.out.ref = STDOUT\n"
            "logger.kafka.name = kafka\n"
            "logger.kafka.level = INFO\n"
            "logger.apache.name = org.apache.kafka\n"
            "logger.apache.level = INFO\n"
        )

    def _format(self, java: str, classpath: str) -> None:
        cmd = [
            java,
            *self.heap_opts,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={_cluster_id()}",  # "=": an id may start with "-"
            f"--config={self.workdir / 'server.properties'}",
        ]
        with self.log_path.open("ab") as log:
            log.write(f"=== formatting: {' '.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, check=False, timeout=120
            )
        if proc.returncode != 0:
            raise KafkaBrokerError(f"formatting Kafka storage failed (exit {proc.returncode}):\n{self.log_tail()}")
        self._formatted = True

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_secs
        delay = 0.1
        while True:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                self._proc = None
                raise KafkaBrokerError(
                    f"Kafka broker exited during start-up (exit {code}); log {self.log_path}:\n{self.log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise KafkaBrokerError(
                    f"Kafka broker on {self.bootstrap} served no metadata within {self.ready_timeout_secs:.0f} s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if probe_metadata(self.bootstrap, timeout_secs=min(5.0, max(0.5, remaining))):
                return
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.kafka.broker",
        description="Run a single-node Apache Kafka broker (KRaft) on 127.0.0.1 in the foreground until Ctrl-C.",
    )
    parser.parse_args(argv)
    broker = KafkaBroker()
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        broker.start()
    except KafkaToolMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        broker.close()
        return 2
    except KafkaBrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        broker.close()
        return 1
    try:
        print(f"KAFKA_BOOTSTRAP={broker.bootstrap}", flush=True)
        print(f"# log: {broker.log_path}  (Ctrl-C stops the broker and removes its data)", file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            if not broker.running:
                print(f"error: the broker exited; log tail:\n{broker.log_tail()}", file=sys.stderr)
                return 1
    finally:
        broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
