"""The C accelerator (collectors/hep/_speedups.c) gives exactly what the pure-Python path gives.

Every comparison is :func:`tests.hep.differential.compare`: ``decode``, ``parse_fields`` and
``envelope_from_hep`` on both paths, results typed and ordered, errors by class, reason and
message. Inputs: the corpus's HEP vectors and captures, the benchmark mix, the traffic and
demo generators, hypothesis-built and mutated messages, and the fuzz engine's inputs.

Outside CI the tests skip when the extension is not built; with ``CI=true`` they fail.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import fuzz
from bench.hep_decode import HEP as BENCH_HEP
from bench.hep_decode import TOPOLOGY as BENCH_TOPOLOGY
from bench.hep_decode import build_mix
from callscope import demo
from callscope.traffic import generate
from collectors.hep import decode as decode_module
from collectors.hep import events, sip, speedups
from collectors.hep.decode import HepPacket, decode_pure
from collectors.hep.pcap import PcapReader
from schemas.errors import DecodeError
from tests.ci import unavailable
from tests.corpus import CORPUS, require
from tests.hep import BYE, INVITE, OPTIONS, REGISTER, RINGING
from tests.hep.differential import compare

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def _native() -> None:
    if speedups.native is None:
        forced = os.environ.get(speedups.PURE_ENV, "") not in ("", "0")
        reason = f"{speedups.PURE_ENV} is set" if forced else "the C accelerator is not built (python hatch_build.py)"
        unavailable(reason)


def test_the_collector_path_is_the_accelerator() -> None:
    assert speedups.PATH == "c"
    assert decode_module.decode is speedups.native.decode  # type: ignore[union-attr]
    assert sip.parse_fields is speedups.native.parse_fields  # type: ignore[union-attr]
    assert events.envelope_from_hep is not events.envelope_from_hep_pure


def test_the_accelerator_reads_the_common_packets_itself() -> None:
    """Not a wrapper that always hands over: with the fallbacks made to fail, the bench mix still decodes."""
    native = speedups.native
    assert native is not None

    def refuse(*args: object, **kwargs: object) -> HepPacket:
        raise AssertionError("handed to the Python path")

    mix = build_mix(3)
    try:
        native.configure_decode(HepPacket, refuse)
        packets = [native.decode(raw) for raw in mix]
    finally:
        native.configure_decode(HepPacket, decode_pure)
    sip_packets = [p for p in packets if p.payload_type == 1]
    assert len(sip_packets) == 36
    for pkt in sip_packets:
        ts_us = 1_700_000_000_000_007
        events.ts_text(ts_us)  # the seconds' text is cached: no call back into Python
        args = (pkt.payload, ("x-cid",), 65535, 1, "id", "n", "r", ts_us, ts_us, "10.0.0.1", 1, "10.0.0.2", 2)
        done = native.sip_envelope(*args, "udp", None, None, None)
        assert done is not None
        head = b'{"v":1,"kind":"sip","id":"id","node":"n","role":"r","ts":"2023-11-14T22:13:20.000007Z"'
        assert done[1].startswith(head)
    native.configure_decode(HepPacket, refuse)
    try:
        with pytest.raises(AssertionError, match="handed to the Python path"):
            native.decode(b"\x02" + mix[0][1:])  # not HEP3: the Python path's
    finally:
        native.configure_decode(HepPacket, decode_pure)


def _corpus_files(*patterns: str) -> list[Path]:
    require(CORPUS)
    files = sorted({p for pattern in patterns for p in CORPUS.glob(pattern) if p.is_file()})
    assert files, patterns
    return files


def test_corpus_hep_vectors() -> None:
    files = _corpus_files("**/hep_vectors/*")
    for path in files:
        data = path.read_bytes()
        compare(data)
        for cut in (6, len(data) // 2, len(data) - 1):  # and truncated
            compare(data[:cut])


def _capture_payloads() -> Iterator[bytes]:
    for path in _corpus_files("**/*.pcap", "**/*.pcapng"):
        try:
            with path.open("rb") as fh:
                for packet in PcapReader(fh):
                    if packet.payload:
                        yield packet.payload
        except DecodeError:
            continue  # the payloads read before a capture's damaged part were compared


def test_corpus_captures() -> None:
    """Every transport payload of every capture: HEP packets, SIP messages (also wrapped in HEP3), RTP ..."""
    n = 0
    sip_messages = 0
    for payload in _capture_payloads():
        compare(payload)
        n += 1
        sip_messages += b"SIP/2.0" in payload[:300]
    assert n > 1000
    assert sip_messages > 300


def test_bench_mix_envelopes() -> None:
    for raw in build_mix(40):
        compare(raw)
    mix = build_mix(2)
    args: dict[str, Any] = {"topology": BENCH_TOPOLOGY, "hep": BENCH_HEP, "received_us": 1, "collector_node": "c"}
    fast = [events.envelope_from_hep(decode_module.decode(raw), **args) for raw in mix]
    pure = [events.envelope_from_hep_pure(decode_pure(raw), **args) for raw in mix]
    assert fast == pure
    assert {kind for kind, _, _ in fast} == {"sip", "rtcp"}


def test_traffic_and_demo_generators() -> None:
    plan = generate(seed=5, start_us=1_700_000_000_000_000, calls=60)
    packets = [item.data for item in plan.items if isinstance(item.data, bytes)]
    packets += demo.generate(40, seed=3).packets
    assert len(packets) > 1000
    for raw in packets:
        compare(raw)


def test_fuzz_engine_inputs() -> None:
    """The fuzz engine's HEP and SIP inputs (generated, mutated, random), a few thousand."""
    from tests.hep.differential import fuzz_inputs

    for data in fuzz_inputs(seed=2024, count=6000):
        compare(data)


SEEDS = [INVITE, RINGING, BYE, REGISTER, OPTIONS, *fuzz.SIP_SAMPLES]


def _edit(rng: random.Random, data: bytes) -> bytes:
    """One of the edits the brief lists, at a random place."""
    buf = bytearray(data)
    at = rng.randrange(len(buf) + 1)
    edit = rng.randrange(10)
    if edit == 0 and buf:  # bit flip
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    elif edit == 1:  # truncation
        del buf[at:]
    elif edit == 2:
        buf[at:at] = rng.choice([b"\r", b"\n", b"\r\n", b":", b" ", b"\t", b"\r\n ", b"\n\n", b",", b";", b'"', b"<"])
    elif edit == 3:
        buf = bytearray(data.replace(b"Content-Length: ", rng.choice([b"Content-Length: 4294967296", b"l: 99999"])))
    elif edit == 4:  # non-UTF-8 and non-ASCII
        buf[at:at] = rng.choice([b"\xff", b"\xc3", b"\xc3\xa9", b"\xe2\x80\xa8", b"\x80\x80", b"\xed\xa0\x80"])
    elif edit == 5:  # compact forms
        for long, short in ((b"Call-ID:", b"i:"), (b"From:", b"f:"), (b"To:", b"t:"), (b"Via:", b"v:")):
            if rng.random() < 0.5:
                buf = bytearray(bytes(buf).replace(long, short))
    elif edit == 6:  # repeated Via
        via = b"Via: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bK" + str(rng.randrange(1000)).encode() + b"\r\n"
        buf = bytearray(bytes(buf).replace(b"\r\n", b"\r\n" + via * rng.randrange(1, 40), 1))
    elif edit == 7:  # a header line of its own
        line = rng.choice([b"X-CID: ", b"x-cid:", b"Expires: ", b"P-Asserted-Identity: ", b"Session-ID: ", b"Reason: "])
        buf = bytearray(bytes(buf).replace(b"\r\n", b"\r\n" + line + rng.randbytes(rng.randrange(20)) + b"\r\n", 1))
    elif edit == 8:  # bare LF
        buf = bytearray(bytes(buf).replace(b"\r\n", b"\n"))
    else:  # duplicate a slice
        j = rng.randrange(at, len(buf) + 1)
        buf[j:j] = buf[at:j]
    return bytes(buf)


@FUZZ
@given(st.sampled_from(SEEDS), st.randoms(use_true_random=False), st.integers(1, 6))
def test_edited_sip_messages(seed: bytes, rng: random.Random, edits: int) -> None:
    data = seed
    for _ in range(edits):
        data = _edit(rng, data)
    compare(data)


@FUZZ
@given(st.randoms(use_true_random=False))
def test_generated_and_mutated_packets(rng: random.Random) -> None:
    compare(fuzz.gen_sip(rng))
    compare(fuzz.gen_hep(rng))
    compare(fuzz.mutate(rng, fuzz.gen_hep(rng), rng.choice(fuzz.TARGETS["hep"].samples)))
    compare(fuzz.mutate(rng, rng.choice(SEEDS)))


@FUZZ
@given(st.binary(max_size=1500))
def test_random_bytes(data: bytes) -> None:
    compare(data)
    compare(b"HEP3" + data)
    compare(b"SIP/2.0 200 OK\r\n" + data)


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Via", "v", "From", "f", "To", "t", "Contact", "m", "Expires", "X-CID", "Allow", "k"]),
            st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x7F), max_size=60),
        ),
        max_size=12,
    ),
    st.sampled_from(["", "application/sdp", "Application/SDP; x=1", "application/vq-rtcpxr"]),
    st.text(max_size=300),
)
def test_built_messages(headers: list[tuple[str, str]], ctype: str, body: str) -> None:
    """Messages built from header values and bodies of any characters, Content-Length right."""
    lines = ["INVITE sip:bob@example.com SIP/2.0", "Call-ID: abc@h", "CSeq: 1 INVITE"]
    lines += [f"{name}: {value}" for name, value in headers]
    raw_body = body.encode()
    if ctype:
        lines.append(f"Content-Type: {ctype}")
    lines.append(f"Content-Length: {len(raw_body)}")
    compare(("\r\n".join(lines) + "\r\n\r\n").encode() + raw_body)


def test_pure_environment_variable_forces_the_python_path() -> None:
    """With CALLSCOPE_HEP_PURE=1 the modules bind the pure functions, and their envelopes are the C ones."""
    script = (
        "from bench.hep_decode import HEP, TOPOLOGY, build_mix\n"
        "from collectors.hep import decode, events, sip, speedups\n"
        "assert speedups.native is None and speedups.PATH == 'python'\n"
        "assert decode.decode is decode.decode_pure and sip.parse_fields is sip.parse_fields_pure\n"
        "assert events.envelope_from_hep is events.envelope_from_hep_pure\n"
        "args = dict(topology=TOPOLOGY, hep=HEP, received_us=1, collector_node='c')\n"
        "for raw in build_mix(2):\n"
        "    print(events.envelope_from_hep(decode.decode(raw), **args)[2].decode())\n"
    )
    env = {**os.environ, speedups.PURE_ENV: "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    args: dict[str, Any] = {"topology": BENCH_TOPOLOGY, "hep": BENCH_HEP, "received_us": 1, "collector_node": "c"}
    fast = [events.envelope_from_hep(decode_module.decode(raw), **args)[2].decode() for raw in build_mix(2)]
    assert out.splitlines() == fast


@pytest.mark.parametrize("received_us", [0, -1, 1_700_000_000_999_999, 253_402_300_800_000_000, 10**20, 2**64])
def test_times_and_their_errors(received_us: int) -> None:
    """Times the seconds cache has and has not seen, out of range ones (``time``), and a SIP error first."""
    from tests.hep.differential import TOPOLOGY, outcome

    hep = BENCH_HEP
    args: dict[str, Any] = {"topology": TOPOLOGY, "hep": hep, "received_us": received_us, "collector_node": "c"}
    bad_sip = b"INVITE sip:b@h SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n"  # no Call-ID
    packets = [decode_pure(raw) for raw in build_mix(1)]
    packets.append(HepPacket(1, 2, 17, "1.2.3.4", 1, "1.2.3.5", 2, 0, 0, 1, RINGING))  # HEPv1: received time
    packets.append(HepPacket(3, 2, 17, "1.2.3.4", 1, "1.2.3.5", 2, 2**60, 5, 1, RINGING))  # time out of range
    packets.append(HepPacket(3, 2, 17, "1.2.3.4", 1, "1.2.3.5", 2, 2**60, 5, 1, bad_sip))  # SIP error first
    for pkt in packets:
        pure = outcome(events.envelope_from_hep_pure, pkt, **args)
        assert outcome(events.envelope_from_hep, pkt, **args) == pure
    assert outcome(events.envelope_from_hep, packets[-1], **args)[1:3] == ("SipError", "call_id")
    assert outcome(events.envelope_from_hep, packets[-2], **args)[1:3] == ("DecodeError", "time")


def test_sip_and_rtcp_envelopes_do_not_need_the_pure_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bench mix's SIP and RTCP packets are encoded without envelope_from_hep_pure (which would raise here)."""
    args: dict[str, Any] = {"topology": BENCH_TOPOLOGY, "hep": BENCH_HEP, "received_us": 1, "collector_node": "c"}
    packets = [decode_pure(raw) for raw in build_mix(2)]
    expected = [events.envelope_from_hep_pure(pkt, **args) for pkt in packets]

    def refuse(*args: object, **kwargs: object) -> tuple[str, str, bytes]:
        raise AssertionError("handed to the pure path")

    monkeypatch.setattr(events, "envelope_from_hep_pure", refuse)
    assert [events.envelope_from_hep(pkt, **args) for pkt in packets] == expected
    log = HepPacket(3, 2, 17, "1.2.3.4", 1, "1.2.3.5", 2, 1, 0, 100, b"a log line")
    with pytest.raises(AssertionError, match="handed to the pure path"):
        events.envelope_from_hep(log, **args)
