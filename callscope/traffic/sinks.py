"""Where generated items go: HEP over UDP or TCP, an AMI peer, Asterisk's files; and the pacing.

:func:`play` sends a plan's items in time order. Each item is due at the later of its own
time (relative to the plan's start, so timestamps move with the clock) and ``index / rate``
(so the rate is never exceeded); ``rate`` 0 sends as fast as the sinks take it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import IO

from callscope.traffic.ami_server import AmiServer
from callscope.traffic.model import HEP_KINDS, Item

#: File names under ``--files DIR``, as Asterisk names them.
FILE_NAMES = {"queue_log": "queue_log", "cdr": "Master.csv", "cel": "cel-custom.csv"}


class HepSender:
    """HEP packets to HOST:PORT over UDP, or over one TCP connection."""

    def __init__(self, host: str, port: int, *, tcp: bool = False) -> None:
        self.tcp = tcp
        self.refused = 0  # UDP datagrams the peer's host refused (ICMP port unreachable): HEP is fire-and-forget
        if tcp:
            self.sock = socket.create_connection((host, port), timeout=30)
        else:
            self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.connect((host, port))

    def send(self, packets: Iterable[bytes]) -> None:
        if self.tcp:
            self.sock.sendall(b"".join(packets))
        else:
            for packet in packets:
                try:
                    self.sock.send(packet)
                except ConnectionRefusedError:
                    self.refused += 1

    def close(self) -> None:
        if self.tcp:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
        self.sock.close()

    def __enter__(self) -> HepSender:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class FileSink:
    """Appends queue_log, CDR (Master.csv) and CEL lines to files in one directory."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.paths = {kind: directory / name for kind, name in FILE_NAMES.items()}
        self._files: dict[str, IO[str]] = {}

    def write(self, kind: str, line: str) -> None:
        f = self._files.get(kind)
        if f is None:
            f = self._files[kind] = self.paths[kind].open("a", encoding="utf-8", newline="")
        f.write(line + "\n")

    def flush(self) -> None:
        for f in self._files.values():
            f.flush()

    def close(self) -> None:
        for f in self._files.values():
            f.close()


class Progress:
    """A one-line progress bar on a terminal (nothing when ``stream`` is not a TTY or ``enabled`` is False).

    ``fraction`` says how far the plan got (calls started, or time of the planned duration).
    """

    def __init__(self, fraction: Callable[[], float], *, enabled: bool = True, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.fraction = fraction
        self.started = time.monotonic()
        self.done = 0
        self._last = 0.0

    def update(self, done: int, *, force: bool = False) -> None:
        self.done = done
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        elapsed = max(1e-6, now - self.started)
        part = min(1.0, max(0.0, self.fraction()))
        width = 30
        filled = int(width * part)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {part * 100:5.1f}% {done} events"
            f" {done / elapsed:8.1f}/s {elapsed:6.0f}s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.update(self.done, force=True)
            self.stream.write("\n")
            self.stream.flush()


async def play(
    items: Iterable[Item],
    *,
    start_us: int,
    rate: float,
    hep: HepSender | None = None,
    ami: AmiServer | None = None,
    files: FileSink | None = None,
    follow_clock: bool = True,
    on_progress: Callable[[int], None] | None = None,
    batch_max: int = 1000,
) -> dict[str, int]:
    """Send ``items`` to the sinks given (items of a kind without a sink are skipped); returns sent per kind.

    Items due by now leave together (a late slot is caught up, not lost), in order across sinks.
    """
    sent: dict[str, int] = {}
    t0 = time.monotonic()
    packets: list[bytes] = []
    batch = 0

    def flush() -> None:
        nonlocal packets, batch
        if packets and hep is not None:
            hep.send(packets)
        packets = []
        if files is not None:
            files.flush()
        batch = 0

    for i, item in enumerate(items):
        due = (item.ts_us - start_us) / 1e6 if follow_clock else 0.0
        if rate > 0:
            due = max(due, i / rate)
        delay = t0 + due - time.monotonic()
        if delay > 0 or batch >= batch_max:
            flush()
            if on_progress is not None:
                on_progress(i)
            delay = t0 + due - time.monotonic()
            await asyncio.sleep(max(0.0, delay))
        batch += 1
        kind = item.kind
        if kind in HEP_KINDS:
            if hep is None:
                continue
            packets.append(item.data)
        elif kind == "ami":
            if ami is None:
                continue
            if packets and hep is not None:  # keep the order across sinks
                hep.send(packets)
                packets = []
            await ami.send(item.data)
        else:
            if files is None:
                continue
            files.write(kind, item.data)
        sent[kind] = sent.get(kind, 0) + 1
    flush()
    if on_progress is not None:
        on_progress(sum(sent.values()))
    return sent
