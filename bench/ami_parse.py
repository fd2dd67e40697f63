"""AMI framing + parse on one core: wire bytes -> blocks, and on to envelopes.

    .venv/bin/python -m bench.ami_parse [--events N] [--runs 3] [--profile]

The stream is what an Asterisk 13 sends during calls, CRLF-framed as on port 5038: per call
Newchannel x2, Newstate, VarSet x3, Newexten x3, DialBegin, DialEnd, BridgeCreate,
BridgeEnter x2, BridgeLeave x2, BridgeDestroy, Hangup x2 (20 events, ~17 keys each on the
channel events), with distinct ids per call so nothing is served from a cache. It is fed to
:class:`collectors.ami.wire.AmiFramer` in 64 KiB reads, as the socket hands it over.

Two figures, each the median of the runs with the min-max spread:
``framing+parse`` (bytes to blocks with their fields; the issue's target, 50,000 events/s)
and ``+envelope`` (plus dialect, key and the envelope JSON, i.e. the collector's whole CPU
path per event but for panoramisk's message object).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from collectors.ami.dialect import DialectTracker
from collectors.ami.events import envelope_from_fields
from collectors.ami.wire import AmiFramer, Block, encode_block

READ = 65536
TARGET = 50_000


def _channel(call: int, leg: int, event: str, **extra: str) -> dict[str, str]:
    uid = f"ast1-{1_700_000_000 + call}.{2 * call + leg}"
    link = f"ast1-{1_700_000_000 + call}.{2 * call}"
    return {
        "Event": event,
        "Privilege": "call,all",
        "Channel": f"PJSIP/{1000 + leg}-{call:08x}",
        "ChannelState": "6",
        "ChannelStateDesc": "Up",
        "CallerIDNum": "1001",
        "CallerIDName": "Alice",
        "ConnectedLineNum": "2002",
        "ConnectedLineName": "Bob",
        "Language": "en",
        "AccountCode": "",
        "Context": "from-internal",
        "Exten": "2002",
        "Priority": "1",
        "Uniqueid": uid,
        "Linkedid": link,
        **extra,
    }


def _call(call: int) -> list[dict[str, str]]:
    bridge = {"BridgeUniqueid": f"b-{call}", "BridgeType": "basic", "BridgeTechnology": "simple_bridge"}
    return [
        _channel(call, 0, "Newchannel"),
        _channel(call, 0, "VarSet", Variable="SIPCALLID", Value=f"{call:x}-abc@10.0.0.1"),
        _channel(call, 0, "Newexten", Extension="2002", Application="Dial", AppData="PJSIP/2002,30"),
        _channel(call, 1, "Newchannel"),
        {**_channel(call, 0, "DialBegin"), "DestChannel": f"PJSIP/2002-{call:08x}", "DialString": "2002"},
        _channel(call, 1, "Newstate"),
        _channel(call, 1, "VarSet", Variable="BRIDGEPEER", Value=f"PJSIP/1001-{call:08x}"),
        {**_channel(call, 0, "DialEnd"), "DialStatus": "ANSWER"},
        {"Event": "BridgeCreate", "Privilege": "call,all", **bridge},
        {**_channel(call, 0, "BridgeEnter"), **bridge},
        {**_channel(call, 1, "BridgeEnter"), **bridge},
        _channel(call, 0, "Newexten", Extension="h", Application="NoOp", AppData=""),
        _channel(call, 0, "VarSet", Variable="DIALSTATUS", Value="ANSWER"),
        {**_channel(call, 1, "BridgeLeave"), **bridge},
        {**_channel(call, 0, "BridgeLeave"), **bridge},
        {"Event": "BridgeDestroy", "Privilege": "call,all", **bridge},
        _channel(call, 1, "Newexten", Extension="h", Application="Hangup", AppData=""),
        {**_channel(call, 1, "Hangup"), "Cause": "16", "Cause-txt": "Normal Clearing"},
        {**_channel(call, 0, "Hangup"), "Cause": "16", "Cause-txt": "Normal Clearing"},
        {"Event": "Cdr", "Privilege": "cdr,all", "Source": "1001", "Destination": "2002", "UniqueID": f"u{call}"},
    ]


def build_stream(n_events: int) -> bytes:
    """At least ``n_events`` events as one CRLF wire stream, banner first."""
    parts = [b"Asterisk Call Manager/5.0.1\r\n"]
    count = call = 0
    while count < n_events:
        for event in _call(call):
            parts.append(encode_block(event))
            count += 1
        call += 1
    return b"".join(parts)


def _frame(stream: bytes) -> tuple[int, float]:
    framer = AmiFramer()
    events = 0
    start = time.perf_counter()
    for i in range(0, len(stream), READ):
        for item in framer.feed(stream[i : i + READ]):
            if isinstance(item, Block) and item.kind == "event":
                events += 1
    return events, time.perf_counter() - start


def _envelope(stream: bytes) -> tuple[int, float]:
    framer = AmiFramer()
    tracker = DialectTracker("5.0.1")
    events = 0
    received = 1_700_000_000_000_000
    start = time.perf_counter()
    for i in range(0, len(stream), READ):
        for item in framer.feed(stream[i : i + READ]):
            if isinstance(item, Block) and item.kind == "event":
                events += 1
                envelope_from_fields(
                    item.fields,
                    node="ast-1",
                    role="logic",
                    dialect=tracker.label(item.name, item.fields),
                    received_us=received + events,
                    id_parts=("1700000000000000", str(events)),
                    event=item.name,
                )
    return events, time.perf_counter() - start


def run(n: int = 200_000, runs: int = 3) -> dict[str, Any]:
    """Events per second (median of ``runs``) for framing+parse, and with envelopes."""
    stream = build_stream(n)
    _frame(stream[: 256 * 1024])  # warm up
    frame_rates, env_rates = [], []
    events = 0
    for _ in range(runs):
        events, secs = _frame(stream)
        frame_rates.append(events / secs)
        events, secs = _envelope(stream)
        env_rates.append(events / secs)
    return {
        "ami_parse_events_per_sec": statistics.median(frame_rates),
        "min": min(frame_rates),
        "max": max(frame_rates),
        "ami_envelope_events_per_sec": statistics.median(env_rates),
        "envelope_min": min(env_rates),
        "envelope_max": max(env_rates),
        "events": events,
        "bytes_per_event": len(stream) / events,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one envelope run instead")
    args = parser.parse_args(argv)
    if args.profile:
        import cProfile
        import pstats

        stream = build_stream(args.events)
        prof = cProfile.Profile()
        prof.runcall(_envelope, stream)
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        return 0
    res = run(args.events, args.runs)
    print(
        f"ami framing+parse: {res['ami_parse_events_per_sec']:,.0f} events/s median of {res['runs']} "
        f"(spread {res['min']:,.0f}-{res['max']:,.0f}); +envelope: {res['ami_envelope_events_per_sec']:,.0f} events/s "
        f"(spread {res['envelope_min']:,.0f}-{res['envelope_max']:,.0f}); {res['events']:,} events/run, "
        f"{res['bytes_per_event']:.0f} B/event; target {TARGET:,}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
