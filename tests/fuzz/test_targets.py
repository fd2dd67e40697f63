"""Every fuzz target runs a few thousand generated and mutated inputs with no crash."""

from __future__ import annotations

import pytest

from bench import fuzz
from tests.corpus import CORPUS, require

INPUTS = 3000


@pytest.mark.parametrize("name", list(fuzz.TARGETS))
def test_target_survives_a_few_thousand_inputs(name: str) -> None:
    target = fuzz.TARGETS[name]
    result = fuzz.run_target(target, fuzz.inputs_for(target, 20261126, 0, INPUTS), timeout=5.0)
    assert result.inputs == INPUTS
    details = "\n\n".join(f"{c.signature}\ninput={c.data[:200]!r}\n{c.trace}" for c in result.examples)
    assert result.crashes == 0, details


@pytest.mark.parametrize("name", ["hep", "sip", "ami", "queue_log", "cdr", "cel", "pcap"])
def test_targets_are_seeded_from_the_corpus(name: str) -> None:
    require(CORPUS)
    target = fuzz.TARGETS[name]
    from_corpus = target.corpus()
    assert from_corpus, f"no corpus seeds for {name}"
    assert all(isinstance(s, bytes) and s for s in from_corpus)


def test_generators_make_inputs_the_parsers_accept() -> None:
    """Structure-aware generation is worth its cost only when most generated inputs parse."""
    import random

    from collectors.hep.decode import decode
    from collectors.hep.sip import parse
    from collectors.options.message import read_answer
    from schemas.errors import DecodeError

    rng = random.Random(5)
    ok = {"sip": 0, "hep": 0, "options": 0}
    for _ in range(300):
        try:
            parse(fuzz.gen_sip(rng))
            ok["sip"] += 1
        except DecodeError:
            pass
        try:
            decode(fuzz.gen_hep(rng))
            ok["hep"] += 1
        except DecodeError:
            pass
        try:
            read_answer(fuzz.gen_sip(rng, response=True))
            ok["options"] += 1
        except DecodeError:
            pass
    assert min(ok.values()) > 150, ok
