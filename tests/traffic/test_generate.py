"""Generated traffic: deterministic, parseable by callscope's own parsers, distinct, consistent, paced."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter

import orjson
import pytest

from callscope.traffic import DEMO, Timing, generate
from callscope.traffic.sinks import HepSender, play
from collectors.ami.wire import Block, encode_block, parse_wire
from collectors.cdr.parse import CdrParser
from collectors.cel.parse import CelParser
from collectors.hep.decode import decode
from collectors.hep.sip import parse as parse_sip
from collectors.queue_log.parse import QueueLogParser
from schemas.errors import DecodeError

START = 1_700_000_000_000_000


def test_same_seed_same_bytes_other_seed_differs() -> None:
    a = generate(seed=5, start_us=START, calls=40, rate=50)
    b = generate(seed=5, start_us=START, calls=40, rate=50)
    assert [(i.ts_us, i.kind, i.data) for i in a.items] == [(i.ts_us, i.kind, i.data) for i in b.items]
    assert a.summary.as_dict() == b.summary.as_dict()
    c = generate(seed=6, start_us=START, calls=40, rate=50)
    assert [i.data for i in c.items] != [i.data for i in a.items]
    later = generate(seed=5, start_us=START + 3_600_000_000, calls=40, rate=50)
    assert later.items[0].ts_us == a.items[0].ts_us + 3_600_000_000


def test_every_item_parses_and_is_distinct() -> None:
    plan = generate(seed=11, start_us=START, calls=120, rate=80)
    by_kind: dict[str, list[object]] = {}
    for item in plan.items:
        by_kind.setdefault(item.kind, []).append(item.data)
    assert Counter({k: len(v) for k, v in by_kind.items()}) == +plan.summary.kinds
    # HEP: decodes, SIP parses, RTCP is JSON; no two packets alike (the pipeline dedupes by content).
    hep_kind = {1: "sip", 5: "rtcp", 100: "log"}
    packets = [p for k in ("sip", "rtcp", "log") for p in by_kind[k] if isinstance(p, bytes)]
    assert len(packets) == sum(plan.summary.kinds[k] for k in ("sip", "rtcp", "log"))
    assert len(set(packets)) == len(packets)
    for raw in packets:
        pkt = decode(raw)
        assert pkt.capture_id in {101, 102, 103, 104}
        kind = hep_kind[pkt.payload_type]
        if kind == "sip":
            msg = parse_sip(pkt.payload)
            assert msg.call_id
        elif kind == "rtcp":
            assert orjson.loads(pkt.payload)["report_blocks"]
            assert pkt.correlation_id in plan.summary.call_ids
    # AMI: through the wire framing, every block an event.
    wire = b"Asterisk Call Manager/5.0.1\r\n" + b"".join(encode_block(e) for e in by_kind["ami"])  # type: ignore[arg-type]
    blocks = [x for x in parse_wire(wire) if not isinstance(x, str)]
    events = [x for x in blocks if isinstance(x, Block)]
    assert len(events) == len(by_kind["ami"])
    assert all(e.kind == "event" for e in events)
    assert len({orjson.dumps(e) for e in by_kind["ami"]}) == len(by_kind["ami"])
    # Files: the collectors' parsers take every line.
    for kind, parser in (
        ("queue_log", QueueLogParser("UTC")),
        ("cdr", CdrParser(timezone="UTC")),
        ("cel", CelParser(timezone="UTC")),
    ):
        lines = [str(x) for x in by_kind[kind]]
        assert len(set(lines)) == len(lines), kind
        results = list(parser.parse_many(lines))
        assert not [r for r in results if isinstance(r, DecodeError) or r is None], kind


def test_the_summary_matches_what_the_items_say() -> None:
    plan = generate(seed=2, start_us=START, calls=150, rate=100)
    s = plan.summary
    queue_events = Counter(str(i.data).split("|")[4] for i in plan.items if i.kind == "queue_log")
    assert queue_events["ENTERQUEUE"] == sum(s.queue_outcomes.values())
    assert queue_events["ABANDON"] == s.queue_outcomes["abandoned"]
    assert queue_events["EXITWITHTIMEOUT"] == s.queue_outcomes["timeout"]
    assert queue_events["CONNECT"] == s.queue_outcomes["completed_caller"] + s.queue_outcomes["completed_agent"]
    assert s.kinds["cdr"] == s.asterisk_calls
    invites = {
        (m.call_id, m.from_tag)
        for i in plan.items
        if i.kind == "sip"
        for m in [parse_sip(decode(i.data).payload)]
        if m.is_request and m.method == "INVITE"
    }
    assert len(invites) == sum(s.leg_states.values())
    # Every multi-leg call names legs that exist, and calls through Asterisk have three legs or more.
    call_ids = {cid for cid, _ in invites}
    assert all(set(legs) <= call_ids for legs in s.multi_leg.values())
    assert any(len(legs) >= 3 for legs in s.multi_leg.values())
    times = [i.ts_us for i in plan.items]
    assert times == sorted(times)


def test_demo_preset_keeps_two_nodes() -> None:
    plan = generate(seed=1, start_us=START, calls=30, platform=DEMO, platform_name="demo")
    assert {decode(i.data).capture_id for i in plan.items} == {101, 102}
    assert set(plan.summary.kinds) <= {"sip", "rtcp", "log"}


def test_time_scale_shortens_calls() -> None:
    slow = generate(seed=4, start_us=START, calls=30, rate=50)
    quick = generate(seed=4, start_us=START, calls=30, rate=50, timing=Timing(scale=0.02))
    assert quick.summary.end_us - START < slow.summary.end_us - START


def test_pacing_honours_the_rate() -> None:
    plan = generate(seed=9, start_us=START, calls=25, rate=400, timing=Timing(scale=0.01))
    items = [i for i in plan.items if i.kind in ("sip", "rtcp", "log")][:600]
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.settimeout(5)
    with rx, HepSender("127.0.0.1", rx.getsockname()[1]) as sender:
        started = time.monotonic()
        sent = asyncio.run(play(items, start_us=START, rate=400, hep=sender, follow_clock=False))
        took = time.monotonic() - started
        got = 0
        while got < len(items):
            rx.recv(65535)
            got += 1
    assert sent["sip"] + sent.get("rtcp", 0) + sent.get("log", 0) == len(items)
    # 600 events at 400/s: 1.5 s; never faster than the rate, and not much slower on a busy machine.
    assert took >= (len(items) - 1) / 400 - 0.05
    assert took < (len(items) / 400) * 3 + 1


@pytest.mark.parametrize("argv", [["--calls", "0", "--dry-run"], ["--calls", "3"], ["--hep", "nohost", "--calls", "2"]])
def test_cli_refuses_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from callscope.traffic.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "callscope generate" in capsys.readouterr().err


def test_cli_dry_run_writes_the_summary(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    from callscope.traffic.cli import main

    out = Path(str(tmp_path)) / "summary.json"
    assert main(["--dry-run", "--calls", "12", "--seed", "4", "--start", "1700000000", "--summary-json", str(out)]) == 0
    doc = orjson.loads(out.read_bytes())
    plan = generate(seed=4, start_us=START, calls=12, rate=100)
    assert doc == orjson.loads(orjson.dumps(plan.summary.as_dict()))
    assert f"generated {doc['events']} events" in capsys.readouterr().out


def test_streaming_gives_the_whole_plan_in_order() -> None:
    from callscope.traffic.generate import Stream

    stream = Stream(seed=8, start_us=START, calls=60, rate=100)
    assert stream.fraction == 0.0
    streamed = list(stream)
    assert stream.fraction == 1.0
    plan = generate(seed=8, start_us=START, calls=60, rate=100)
    assert [(i.ts_us, i.data) for i in streamed] == [(i.ts_us, i.data) for i in plan.items]
    assert stream.summary.as_dict() == plan.summary.as_dict()


def test_duration_bounds_the_call_starts() -> None:
    plan = generate(seed=3, start_us=START, duration_secs=20, rate=50, timing=Timing(scale=0.05))
    starts = [int(decode(i.data).ts_us) for i in plan.items if i.kind == "sip" and b"INVITE sip:" in i.data[:400]]
    assert starts
    assert max(starts) < START + 21_000_000
    # ~50 events per second of plan time while calls start (the last calls finish after).
    events_in_window = sum(1 for i in plan.items if i.ts_us < START + 20_000_000)
    assert 500 <= events_in_window <= 1500


def test_progress_bar_only_on_a_terminal() -> None:
    import io

    from callscope.traffic.sinks import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    part = [0.5]
    tty = Tty()
    bar = Progress(lambda: part[0], stream=tty)
    bar.update(100, force=True)
    part[0] = 1.0
    bar.update(200)  # within 0.1 s of the last: not drawn
    bar.close()  # drawn at the end whatever the time
    assert " 50.0% 100 events" in tty.getvalue()
    assert "100.0% 200 events" in tty.getvalue()
    assert "[" + "#" * 30 + "]" in tty.getvalue()
    assert tty.getvalue().endswith("\n")
    off = Tty()
    Progress(lambda: 0.5, stream=off, enabled=False).update(100, force=True)
    plain = io.StringIO()
    Progress(lambda: 0.5, stream=plain).update(100, force=True)
    assert off.getvalue() == plain.getvalue() == ""


def test_udp_to_a_closed_port_does_not_stop_the_sender() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with HepSender("127.0.0.1", port) as sender:
        for _ in range(5):
            sender.send([b"HEP3"])
            time.sleep(0.01)
    assert sender.refused >= 1


def test_old_import_path_is_the_same_server() -> None:
    from callscope.traffic.ami_server import AmiServer
    from tests.ami.server import AmiServer as Old

    assert Old is AmiServer


def test_same_bytes_in_another_process() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import hashlib, orjson\n"
        "from callscope.traffic import generate\n"
        f"plan = generate(seed=21, start_us={START}, calls=40, rate=100)\n"
        "h = hashlib.sha256()\n"
        "for i in plan.items:\n"
        "    d = i.data if isinstance(i.data, bytes) else orjson.dumps(i.data)\n"
        "    h.update(str(i.ts_us).encode() + i.kind.encode() + d)\n"
        "print(h.hexdigest())\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, PYTHONHASHSEED=str(seed)),
        ).stdout.strip()
        for seed in (1, 2)
    }
    assert len(digests) == 1
