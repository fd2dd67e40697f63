"""Differential check of the C accelerator against the pure-Python reference, input by input.

:func:`compare` runs one input through both paths -- ``decode``, ``parse_fields`` (on the
input and on the decoded payload, with the default and another configuration) and
``envelope_from_hep`` (two configurations; SIP bytes are also wrapped in a HEP3 packet) --
and raises :class:`AssertionError` naming the first difference: values, their types, dict
key order, error classes, reasons and messages all count.

Long runs over the fuzz engine's inputs (see docs/fuzzing.md), for example under
AddressSanitizer (see docs/hep.md)::

    python -m tests.hep.differential --inputs 1000000 [--seed N]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from bench import fuzz
from callscope.settings import NodeConfig, TopologyConfig
from collectors.hep import events, speedups
from collectors.hep.config import HepConfig
from collectors.hep.decode import HepPacket, decode_pure, encode_hep3
from collectors.hep.sip import parse_fields_pure

TOPOLOGY = TopologyConfig(
    nodes=(
        NodeConfig(name="sbc-1", role="sbc", hep_capture_id=2001),
        NodeConfig(name="n1", role="registrar", hep_capture_id=1),
    )
)
CONFIGS = (
    HepConfig(),
    HepConfig(
        auth_key="secret",
        correlation_headers=("X-CID", "x-corr", "call-id"),
        max_packet_bytes=1024,
        capture_id_byteswap=(16777216,),
    ),
)
PARSE_ARGS: tuple[dict[str, Any], ...] = (
    {},
    {"correlation_headers": ("X-CID", "x-cid", "Via", "i"), "max_message_bytes": 600},
    {"correlation_headers": ["user-agent"], "max_message_bytes": 65535},
)
RECEIVED = 1_700_000_000_123_456


def typed(value: Any) -> Any:
    """``value`` with the type of every part spelled out, dict key order kept: equal means identical."""
    if isinstance(value, HepPacket):
        return ("HepPacket", [(f.name, typed(getattr(value, f.name))) for f in dataclasses.fields(value)])
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value).__name__, [typed(v) for v in value])
    return (type(value).__name__, value)


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """What ``fn`` returns (typed) or raises (class, reason, message)."""
    try:
        return ("ok", typed(fn(*args, **kwargs)))
    except Exception as exc:
        return ("raised", type(exc).__name__, getattr(exc, "reason", None), str(exc))


def _same(what: str, data: bytes, pure: Any, fast: Any) -> None:
    if pure != fast:
        raise AssertionError(f"{what} differs on {data[:200]!r}...\n pure: {pure!r}\n    c: {fast!r}")


def native() -> Any:
    """The extension module; :class:`RuntimeError` when the pure path runs."""
    if speedups.native is None:
        raise RuntimeError("the C accelerator is not loaded (not built, or CALLSCOPE_HEP_PURE is set)")
    return speedups.native


def compare(data: bytes) -> None:
    """Run ``data`` through both paths; :class:`AssertionError` at the first difference."""
    c = native()
    pure_pkt = outcome(decode_pure, data)
    _same("decode", data, pure_pkt, outcome(c.decode, data))
    payloads = [data]
    packets: list[HepPacket] = []
    try:
        pkt = c.decode(data)
    except Exception:
        pkt = None
    if pkt is not None:
        packets.append(pkt)
        if pkt.payload and pkt.payload != data:
            payloads.append(pkt.payload)
    elif b"SIP/2.0" in data[:300] and len(data) < 60_000:  # SIP on its own: as a HEP3 packet too
        packets.append(
            HepPacket(3, 2, 17, "10.0.0.1", 5060, "10.0.0.2", 5060, 1_700_000_000, 7, 1, data, 2001, None, None)
        )
        packets[-1].raw = encode_hep3(packets[-1])
    for payload in payloads:
        for kwargs in PARSE_ARGS:
            _same(
                f"parse_fields{kwargs}",
                payload,
                outcome(parse_fields_pure, payload, **kwargs),
                outcome(c.parse_fields, payload, **kwargs),
            )
    for pkt in packets:
        for hep in CONFIGS:
            args = {"topology": TOPOLOGY, "hep": hep, "received_us": RECEIVED, "collector_node": "col"}
            _same(
                f"envelope_from_hep({hep.auth_key}, {hep.correlation_headers})",
                pkt.raw,
                outcome(events.envelope_from_hep_pure, pkt, **args),
                outcome(events.envelope_from_hep, pkt, **args),
            )


def fuzz_inputs(seed: int, count: int) -> Iterable[bytes]:
    """``count`` inputs of the fuzz engine's ``hep`` and ``sip`` targets, alternating chunks."""
    targets = [fuzz.TARGETS["hep"], fuzz.TARGETS["sip"]]
    per_chunk = fuzz.CHUNK
    produced = 0
    for chunk in itertools.count():
        for target in targets:
            for data in fuzz.inputs_for(target, seed, chunk, per_chunk):
                if produced >= count:
                    return
                produced += 1
                yield data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare the C accelerator with the pure path on fuzz inputs.")
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    start = time.monotonic()
    n = 0
    for n, data in enumerate(fuzz_inputs(args.seed, args.inputs), 1):
        compare(data)
        if n % 50_000 == 0:
            print(f"{n:,} inputs identical ({time.monotonic() - start:.0f} s)", file=sys.stderr)
    print(f"{n:,} inputs, pure and C identical, seed {args.seed}, {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
