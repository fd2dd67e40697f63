"""``callscope replay``: recorded input through the same parsers as live traffic.

Two destinations:

- a running instance (``--to URL --token TOKEN``): envelopes are streamed to
  ``POST /api/v1/ingest`` in bounded requests;
- a one-shot embedded pipeline on ``--data-dir``: in-process bus, the events
  processor, the store; returns once everything replayed is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from callscope.formats import FORMATS, Format, Item, detect
from callscope.settings import Settings
from callscope.telemetry import Telemetry
from schemas.errors import CallscopeError, ConfigError
from schemas.topics import DEADLETTER, deadletter_record, topic_for

INGEST_BATCH_LINES = 5000
INGEST_BATCH_BYTES = 4 * 1024 * 1024


class ReplayError(CallscopeError):
    """The destination refused the replay (bad token, server error)."""


@dataclass
class ReplayResult:
    files: int = 0
    accepted: int = 0
    deadlettered: int = 0


def resolve_formats(paths: Sequence[Path], name: str | None) -> list[tuple[Path, Format]]:
    out = []
    for path in paths:
        if not path.is_file():
            raise ConfigError([("FILE", f"{path}: no such file")])
        if name is not None:
            if name not in FORMATS:
                raise ConfigError([("--format", f"unknown format {name!r}; known: {', '.join(sorted(FORMATS))}")])
            out.append((path, FORMATS[name]))
            continue
        fmt = detect(path)
        if fmt is None:
            raise ConfigError([("--format", f"{path}: cannot tell the format from the content; name it with --format")])
        out.append((path, fmt))
    return out


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def _items(files: list[tuple[Path, Format]], node: str, role: str, progress: Progress) -> Iterator[Item]:
    total = sum(p.stat().st_size for p, _ in files)
    task = progress.add_task("replay", total=total)
    for path, fmt in files:
        progress.update(task, description=f"{path.name} ({fmt.name})")
        for item in fmt.read(path, node=node, role=role):
            progress.advance(task, len(item.raw) + 1)
            yield item
    progress.update(task, completed=total)


def replay_to_api(
    files: list[tuple[Path, Format]], url: str, token: str, *, node: str, role: str, show_progress: bool = True
) -> ReplayResult:
    """Stream the files' envelopes to a running instance's ingest endpoint."""
    result = ReplayResult(files=len(files))
    endpoint = url.rstrip("/") + "/api/v1/ingest"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    batch: list[bytes] = []
    size = 0
    with httpx.Client(timeout=120) as client, _progress(show_progress) as progress:

        def send() -> None:
            nonlocal size
            if not batch:
                return
            try:
                resp = client.post(endpoint, content=b"\n".join(batch) + b"\n", headers=headers)
            except httpx.TransportError as exc:
                raise ReplayError(f"cannot reach {endpoint}: {exc}") from None
            if resp.status_code != 200:
                raise ReplayError(f"ingest refused the batch: HTTP {resp.status_code} {resp.text[:200]}")
            doc = resp.json()
            result.accepted += int(doc.get("accepted", 0))
            result.deadlettered += int(doc.get("deadlettered", 0))
            batch.clear()
            size = 0

        for item in _items(files, node, role, progress):
            # Lines that failed locally are sent as they are: the server dead-letters
            # them with its reason, so the running instance keeps the record.
            line = item.envelope if item.envelope is not None else item.raw
            batch.append(line)
            size += len(line) + 1
            if len(batch) >= INGEST_BATCH_LINES or size >= INGEST_BATCH_BYTES:
                send()
        send()
    return result


async def replay_embedded(
    files: list[tuple[Path, Format]], settings: Settings, telemetry: Telemetry, *, show_progress: bool = True
) -> ReplayResult:
    """Run a one-shot embedded pipeline and push the files through it; return when stored."""
    from callscope.runtime import Runtime

    result = ReplayResult(files=len(files))
    runtime = Runtime(settings, telemetry, role="processor")
    runtime.open_resources()
    stop = asyncio.Event()
    run_task = asyncio.create_task(runtime.run(stop))
    ready = asyncio.create_task(runtime.ready.wait())
    await asyncio.wait([run_task, ready], return_when=asyncio.FIRST_COMPLETED)
    if run_task.done():
        ready.cancel()
        run_task.result()
    bus = runtime.bus
    assert bus is not None
    producer = bus.producer()
    try:
        with _progress(show_progress) as progress:
            for item in _items(files, settings.node, settings.role, progress):
                if item.envelope is not None and item.kind is not None:
                    await producer.send(topic_for(item.kind), item.envelope, item.key.encode())
                    result.accepted += 1
                else:
                    err = item.error
                    await producer.send(
                        DEADLETTER,
                        deadletter_record(
                            component="replay",
                            reason=err.reason if err else "decode",
                            detail=str(err) if err else "",
                            raw=item.raw,
                            node=settings.node,
                        ),
                        None,
                    )
                    result.deadlettered += 1
        await producer.flush()
        group = f"{settings.processors.group_prefix}.events"
        from schemas.topics import ALL_TOPICS

        while True:
            lag = await bus.lag(group, ALL_TOPICS)
            if sum(lag.values()) == 0:
                break
            if run_task.done():
                run_task.result()
            await asyncio.sleep(0.05)
    finally:
        await producer.close()
        stop.set()
        await run_task
    return result
