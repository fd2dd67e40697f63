"""Property tests: on any input, only our DecodeError family escapes the HEP/SIP/envelope path.

CI runs a few hundred examples per property. For long runs (see docs/fuzzing.md)::

    python -m tests.hep.test_fuzz --long 10000000 [--seed N]

mutates valid HEP/SIP packets (truncation, bit flips, length lies, Content-Length lies,
chunk splicing) and reports the count and every crash (an exception that is not a
DecodeError) with the input in hex.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import struct
import sys
import time
import traceback

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callscope.settings import NodeConfig, TopologyConfig
from collectors.hep.config import HepConfig
from collectors.hep.decode import HepPacket, decode, encode_hep3, frame_stream
from collectors.hep.events import envelope_from_hep
from collectors.hep.sdp import parse_vq_report, summarize
from collectors.hep.sip import parse
from schemas.errors import DecodeError
from tests.hep import BYE, INVITE, OPTIONS, REGISTER, RINGING, RTCP_JSON

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOPOLOGY = TopologyConfig(nodes=(NodeConfig(name="n1", role="sbc", hep_capture_id=1),))
HEP = HepConfig(capture_id_byteswap=(16777216,))
SIP_SEEDS = [INVITE, RINGING, BYE, REGISTER, OPTIONS]


def _seed_packets() -> list[bytes]:
    out = []
    for i, (payload, ptype) in enumerate([*[(s, 1) for s in SIP_SEEDS], (RTCP_JSON, 5), (b"log line", 100)]):
        pkt = HepPacket(
            3,
            2,
            17,
            "10.0.0.1",
            5060,
            "10.0.0.2",
            5060,
            1_700_000_000,
            i,
            payload_type=ptype,
            payload=payload,
            capture_id=1,
            auth_key=b"k",
            correlation_id="c@h",
            vlan=3,
        )
        out.append(encode_hep3(pkt, compress=i % 3 == 0))
    v2 = struct.pack("!BBBBHH", 2, 16, 2, 17, 5060, 5062) + bytes([10, 0, 0, 4, 10, 0, 0, 5])
    out.append(v2 + struct.pack("<IIHH", 1571254062, 44436, 1, 0) + OPTIONS)
    return out


HEP_SEEDS = _seed_packets()


def run_one(data: bytes) -> None:
    """The whole per-packet path; only DecodeError may escape."""
    try:
        pkt = decode(data)
        envelope_from_hep(pkt, topology=TOPOLOGY, hep=HEP, received_us=1_700_000_000_000_000, collector_node="c")
    except DecodeError:
        pass
    with contextlib.suppress(DecodeError):
        parse(data)


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        if op == 0 and buf:  # truncate
            del buf[rng.randrange(len(buf)) :]
        elif op == 1 and buf:  # bit flips
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(buf))
                buf[i] ^= 1 << rng.randrange(8)
        elif op == 2 and len(buf) >= 6:  # lie in the HEP3 total length or a chunk length
            pos = 4 if rng.random() < 0.5 else rng.randrange(0, len(buf) - 1)
            struct.pack_into("!H", buf, pos, rng.choice([0, 1, 5, 6, 7, 0xFFFF, rng.randrange(0x10000)]))
        elif op == 3:  # Content-Length lies
            idx = buf.find(b"Content-Length: ")
            if idx >= 0:
                end = buf.find(b"\r\n", idx)
                value = rng.choice(
                    [b"", b"-1", b"4294967296", b"99999999999999999999", b"x", str(rng.randrange(5000)).encode()]
                )
                buf[idx + 16 : end if end > 0 else idx + 16] = value
        elif op == 4 and buf:  # insert random bytes
            i = rng.randrange(len(buf) + 1)
            buf[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 5 and buf:  # duplicate a slice (chunk splicing)
            i = rng.randrange(len(buf))
            j = min(len(buf), i + rng.randint(1, 64))
            buf[rng.randrange(len(buf) + 1) : 0] = buf[i:j]
        elif op == 6:  # oversize a header
            idx = buf.find(rng.choice([b"Call-ID: ", b"Reason: ", b"Via: ", b"From: "]))
            if idx >= 0:
                buf[idx + 5 : idx + 5] = b"A" * rng.choice([1100, 9000])
        elif op == 7 and buf:  # interesting bytes
            i = rng.randrange(len(buf))
            buf[i] = rng.choice([0, 0xFF, 0x0A, 0x0D, 0x3A, 0x20, 0x09, 0x80, 0xC3])
    return bytes(buf)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    run_one(data)
    run_one(b"HEP3" + data)


@FUZZ
@given(st.sampled_from(HEP_SEEDS), st.randoms(use_true_random=False))
def test_mutated_hep_packets(seed: bytes, rng: random.Random) -> None:
    run_one(mutate(rng, seed))


@FUZZ
@given(st.sampled_from(SIP_SEEDS), st.randoms(use_true_random=False))
def test_mutated_sip_messages(seed: bytes, rng: random.Random) -> None:
    run_one(mutate(rng, seed))


@FUZZ
@given(st.text(max_size=2000))
def test_sdp_and_vq_parsers_never_raise(text: str) -> None:
    summarize(text)
    parse_vq_report(text)


@FUZZ
@given(st.lists(st.sampled_from(HEP_SEEDS[:-1]), max_size=5), st.binary(max_size=64), st.integers(1, 300))
def test_frame_stream_on_arbitrary_splits(packets: list[bytes], junk: bytes, step: int) -> None:
    stream = b"".join(packets) + junk
    buf = bytearray()
    got: list[bytes] = []
    try:
        for i in range(0, len(stream), step):
            buf += stream[i : i + step]
            got += frame_stream(buf)
    except DecodeError:
        assert junk  # only the junk can be bad
    assert got[: len(packets)] == packets[: len(got)]


def long_run(count: int, seed: int, report_every: int = 500_000) -> int:
    """Run ``count`` mutated inputs; return the number of crashes."""
    rng = random.Random(seed)
    seeds = HEP_SEEDS + SIP_SEEDS
    crashes = 0
    seen: set[str] = set()
    start = time.monotonic()
    for i in range(1, count + 1):
        data = mutate(rng, rng.choice(seeds)) if rng.random() < 0.97 else rng.randbytes(rng.randint(0, 64))
        try:
            run_one(data)
        except Exception as exc:
            crashes += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            sig = f"{type(exc).__name__} at {where.filename}:{where.lineno}"
            if sig not in seen:
                seen.add(sig)
                print(f"CRASH {sig}: {exc!r}\n  input={data.hex()}", flush=True)
        if i % report_every == 0:
            rate = i / (time.monotonic() - start)
            print(f"{i} inputs, {crashes} crashes, {rate:.0f}/s", flush=True)
    elapsed = time.monotonic() - start
    print(
        f"done: {count} inputs in {elapsed:.0f} s ({count / elapsed:.0f}/s), seed {seed}, {crashes} crashes, "
        f"{len(seen)} distinct",
        flush=True,
    )
    return crashes


def atheris_main(argv: list[str]) -> None:  # pragma: no cover - optional, needs `pip install atheris`
    """Coverage-guided fuzzing with atheris (libFuzzer); extra arguments go to libFuzzer."""
    import importlib
    import inspect

    atheris = importlib.import_module("atheris")
    # only our code: instrument_all() takes minutes
    for name in ("decode", "packet", "encode", "framing", "sip", "sip_headers", "sdp", "events"):
        module = importlib.import_module(f"collectors.hep.{name}")
        for _, func in inspect.getmembers(module, inspect.isfunction):
            if func.__module__ == module.__name__:
                atheris.instrument_func(func)

    def one_input(data: bytes) -> None:
        run_one(data)

    atheris.Setup([sys.argv[0], *argv], one_input)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Long mutation fuzzing of the HEP/SIP decode path.")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--long", type=int, metavar="N", help="number of mutated inputs")
    mode.add_argument("--atheris", action="store_true", help="run atheris; pass libFuzzer options after --")
    parser.add_argument("--seed", type=int, default=1)
    args, rest = parser.parse_known_args(argv)
    if args.atheris:
        atheris_main([a for a in rest if a != "--"])
        return 0
    return 1 if long_run(args.long, args.seed) else 0


if __name__ == "__main__":
    sys.exit(main())
