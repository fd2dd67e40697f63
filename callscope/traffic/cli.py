"""``callscope generate``: seeded platform traffic sent as HEP, served as AMI and written as Asterisk files."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import orjson

from callscope.traffic.ami_server import AmiServer, AmiWaitTimeout
from callscope.traffic.generate import Stream
from callscope.traffic.model import KINDS, PRESETS, Summary, Timing
from callscope.traffic.sinks import FILE_NAMES, FileSink, HepSender, Progress, play

SECRET_ENV = "CALLSCOPE_GENERATE_AMI_SECRET"  # noqa: S105 - the variable's name, not a secret


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _start(text: str) -> int:
    """Epoch seconds or an ISO-8601 time (UTC when it names no zone), in microseconds."""
    try:
        return int(float(text) * 1_000_000)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected epoch seconds or an ISO-8601 time, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.now().astimezone().tzinfo).astimezone()
    return int(moment.timestamp() * 1_000_000)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="callscope generate",
        description="Generate seeded traffic of a VoIP platform (carrier, SBC, proxy, Asterisk with queues, "
        "agent phones) and send it: HEP over UDP/TCP, AMI served to callscope's AMI collector, "
        "queue_log/Master.csv/CEL lines appended to files. The same seed and --start give the same events.",
    )
    p.add_argument("--hep", type=_address, metavar="HOST:PORT", help="send SIP, RTCP and log lines as HEP3 here")
    p.add_argument("--tcp", action="store_true", help="HEP over one TCP connection instead of UDP")
    p.add_argument("--ami-listen", type=_address, metavar="HOST:PORT", help="serve AMI here (port 0: any free port)")
    p.add_argument("--ami-username", default="callscope", help="the AMI login to accept (default callscope)")
    p.add_argument("--ami-secret", help=f"the AMI secret to accept (default: ${SECRET_ENV}, else 'callscope')")
    p.add_argument(
        "--ami-wait-secs", type=float, default=60.0, help="wait this long for the collector to log in (default 60)"
    )
    p.add_argument("--files", type=Path, metavar="DIR", help=f"append {', '.join(FILE_NAMES.values())} lines here")
    p.add_argument("--preset", choices=sorted(PRESETS), default="platform", help="platform to model (default platform)")
    p.add_argument("--rate", type=float, default=100.0, help="events per second (default 100; 0 = as fast as possible)")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--calls", type=int, help="number of calls (default 50 unless --duration)")
    stop.add_argument("--duration", type=float, metavar="SECS", help="start calls for this many seconds")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--start", type=_start, help="time of the first event: epoch seconds or ISO-8601 (default now)")
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply talk, ring and queue times (default 1; 0.05 makes calls of seconds)",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (it is off anyway when stderr is not a TTY)"
    )
    p.add_argument("--summary-json", type=Path, metavar="PATH", help="write the summary as JSON here")
    p.add_argument("--dry-run", action="store_true", help="generate and summarise, send nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.rate < 0:
        parser.error("--rate must be 0 or more")
    if args.calls is not None and args.calls < 1:
        parser.error("--calls must be at least 1")
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration must be more than 0")
    if args.time_scale <= 0:
        parser.error("--time-scale must be more than 0")
    if not (args.hep or args.ami_listen or args.files or args.dry_run):
        parser.error("give at least one of --hep, --ami-listen, --files (or --dry-run)")
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130
    except (OSError, AmiWaitTimeout) as exc:
        print(f"callscope generate: {exc}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace) -> int:
    ami: AmiServer | None = None
    if args.ami_listen:
        secret = args.ami_secret or os.environ.get(SECRET_ENV) or "callscope"
        host, port = args.ami_listen
        ami = await AmiServer(username=args.ami_username, secret=secret, host=host, port=port).start()
        print(f"ami: listening on {host}:{ami.port} (user {args.ami_username})", flush=True)
    try:
        if ami is not None:
            await ami.wait_logged_in(within=args.ami_wait_secs)
            print("ami: collector logged in", flush=True)
        start_us = args.start if args.start is not None else time.time_ns() // 1000
        calls = args.calls if args.calls is not None or args.duration is not None else 50
        stream = Stream(
            seed=args.seed,
            start_us=start_us,
            calls=calls,
            duration_secs=args.duration,
            rate=args.rate or None,
            platform=PRESETS[args.preset],
            timing=Timing(scale=args.time_scale),
            platform_name=args.preset,
        )
        sent: dict[str, int] = {}
        seconds = 0.0
        if args.dry_run:
            for _ in stream:
                pass
        else:
            seconds, sent = await _send(args, stream, ami, start_us)
        if args.summary_json:
            args.summary_json.write_bytes(orjson.dumps(stream.summary.as_dict(), option=orjson.OPT_INDENT_2))
        print(_text(stream.summary, sent, seconds, dry_run=args.dry_run), flush=True)
        return 0
    finally:
        if ami is not None:
            await ami.close()


async def _send(
    args: argparse.Namespace, stream: Stream, ami: AmiServer | None, start_us: int
) -> tuple[float, dict[str, int]]:
    hep = HepSender(*args.hep, tcp=args.tcp) if args.hep else None
    files = FileSink(args.files) if args.files else None
    progress = Progress(lambda: stream.fraction, enabled=not args.no_progress)
    started = time.monotonic()
    try:
        # Items follow the clock only when their times are now (no --start in the past or future).
        follow = args.start is None
        sent = await play(
            stream,
            start_us=start_us,
            rate=args.rate,
            hep=hep,
            ami=ami,
            files=files,
            follow_clock=follow and args.rate > 0,
            on_progress=progress.update,
        )
    finally:
        progress.close()
        if hep is not None:
            hep.close()
        if files is not None:
            files.close()
    return time.monotonic() - started, sent


def _text(summary: Summary, sent: dict[str, int], seconds: float, *, dry_run: bool) -> str:
    doc = summary.as_dict()
    kinds = ", ".join(f"{doc['kinds'][k]} {k}" for k in KINDS)
    expected = doc["expected"]
    lines = [
        f"{'generated' if dry_run else 'sent'} {doc['events']} events"
        + ("" if dry_run else f" in {seconds:.1f} s ({sum(sent.values())} to the sinks given)")
        + f": {kinds}",
        "  scenarios: " + ", ".join(f"{n} {k}" for k, n in doc["scenarios"].items()),
        f"  expected: {expected['legs']} SIP legs ("
        + ", ".join(f"{n} {k}" for k, n in expected["leg_states"].items())
        + f"), {expected['queue_sessions']} queue sessions ("
        + ", ".join(f"{n} {k}" for k, n in expected["queue_outcomes"].items())
        + f"), {expected['asterisk_calls']} Asterisk calls",
    ]
    for scenario, example in doc["examples"].items():
        if len(example["legs"]) >= 3:
            lines.append(f"  trace a call ({scenario}): {example['call_id']} (legs {', '.join(example['legs'])})")
            break
    return "\n".join(lines)
