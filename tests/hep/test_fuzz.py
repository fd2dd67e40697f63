"""Property tests: on any input, only our DecodeError family escapes the HEP/SIP/envelope path.

CI runs a few hundred examples per property. The mutation engine (and its seeds) is
:mod:`bench.fuzz`, shared with the long runs of every parser (see docs/fuzzing.md)::

    python -m tests.hep.test_fuzz --long 10000000 [--seed N]      # HEP + SIP targets only
    python -m bench.fuzz --inputs 10000000 --workers 2 [--seed N]  # every target

and the coverage-guided mode (``--atheris``, needs ``pip install atheris``) fuzzes the same
per-packet path.
"""

from __future__ import annotations

import argparse
import random
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import fuzz
from bench.fuzz import hep_packet_path as run_one
from bench.fuzz import mutate
from collectors.hep.decode import frame_stream
from collectors.hep.sdp import parse_vq_report, summarize
from schemas.errors import DecodeError
from tests.hep import BYE, INVITE, OPTIONS, REGISTER, RINGING

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SIP_SEEDS = [INVITE, RINGING, BYE, REGISTER, OPTIONS, *fuzz.SIP_SAMPLES]
HEP_SEEDS = fuzz.TARGETS["hep"].samples  # HEP3 (some zlib), RTCP JSON, log, keep-alive, HEPv2, HEPv1
HEP3_SEEDS = [s for s in HEP_SEEDS if s[:4] == b"HEP3"]


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
@given(st.lists(st.sampled_from(HEP3_SEEDS), max_size=5), st.binary(max_size=64), st.integers(1, 300))
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
    mode.add_argument("--long", type=int, metavar="N", help="number of mutated inputs (bench.fuzz, hep and sip)")
    mode.add_argument("--atheris", action="store_true", help="run atheris; pass libFuzzer options after --")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    args, rest = parser.parse_known_args(argv)
    if args.atheris:
        atheris_main([a for a in rest if a != "--"])
        return 0
    return fuzz.main(
        ["--inputs", str(args.long), "--seed", str(args.seed), "--workers", str(args.workers), "--targets", "hep,sip"]
    )


if __name__ == "__main__":
    sys.exit(main())
