"""The engine itself: it must see crashes and hangs (else a zero proves nothing), and repeat itself."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench import fuzz


def _boom(data: bytes) -> None:
    """A parser with a bug: inputs whose length is a multiple of 7 raise KeyError; ValueError is its contract."""
    if len(data) % 7 == 0:
        raise KeyError("bug")
    if len(data) % 7 == 1:
        raise ValueError("documented error")


BUG = f"KeyError at test_engine.py:{_boom.__code__.co_firstlineno + 3}"  # where _boom raises


def _spin(data: bytes) -> None:
    """A parser that loops forever on inputs whose length is a multiple of 40."""
    if len(data) % 40 == 0:
        while True:
            pass


def _sleepy(data: bytes) -> None:
    """A parser that blocks (in a C call) on inputs whose length is a multiple of 40."""
    if len(data) % 40 == 0:
        time.sleep(30)


def _target(name: str, run: Callable[[bytes], None]) -> fuzz.Target:
    return fuzz.Target(name, run, (ValueError,), fuzz.gen_sip, list(fuzz.SIP_SAMPLES), fuzz._no_corpus)


@pytest.fixture
def boom(monkeypatch: pytest.MonkeyPatch) -> fuzz.Target:
    target = _target("boom", _boom)
    monkeypatch.setitem(fuzz.TARGETS, "boom", target)
    return target


def test_a_crashing_target_is_counted_and_its_inputs_saved(boom: fuzz.Target, tmp_path: Path) -> None:
    inputs = list(fuzz.inputs_for(boom, 9, 0, 500))
    expected = sum(1 for d in inputs if len(d) % 7 == 0)
    assert 20 < expected < 200  # the check below can fail both ways
    result = fuzz.run_target(boom, iter(inputs), timeout=5.0)
    assert (result.inputs, result.crashes, result.hangs) == (500, expected, 0)
    assert {c.signature for c in result.examples} == {BUG}

    out = fuzz.run(500, workers=1, seed=9, targets=["boom"], crash_dir=tmp_path)
    assert out["fuzz_crashes"] == out["targets"]["boom"]["crashes"] == expected
    [sig] = out["crash_signatures"]
    assert sig["signature"] == BUG
    assert len(sig["saved"]) == fuzz.SAVE_PER_SIGNATURE
    for saved in sig["saved"]:
        data = Path(saved).read_bytes()
        assert len(data) % 7 == 0
        assert data in inputs
        trace = Path(saved).with_suffix(".txt").read_text()
        assert "KeyError: 'bug'" in trace
        assert "target: boom" in trace


@pytest.mark.parametrize("run", [_spin, _sleepy], ids=["busy-loop", "blocking-call"])
def test_a_hanging_input_is_a_crash_and_the_run_goes_on(run: Callable[[bytes], None]) -> None:
    target = _target("hang", run)
    inputs = list(fuzz.inputs_for(target, 4, 0, 300))
    expected = sum(1 for d in inputs if len(d) % 40 == 0)
    assert 1 <= expected <= 20
    start = time.monotonic()
    result = fuzz.run_target(target, iter(inputs), timeout=0.2, wall_timeout=0.5)
    assert time.monotonic() - start < 0.5 * expected + 20
    assert (result.inputs, result.crashes, result.hangs) == (300, expected, expected)
    assert {c.signature for c in result.examples} == {"Hang"}


def test_the_alarm_handler_is_restored() -> None:
    import signal

    before = signal.getsignal(signal.SIGALRM), signal.getsignal(signal.SIGPROF)
    fuzz.run_target(_target("hang", _spin), iter([b"x" * 40]), timeout=0.1)
    assert (signal.getsignal(signal.SIGALRM), signal.getsignal(signal.SIGPROF)) == before
    assert signal.getitimer(signal.ITIMER_REAL) == signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)


def test_inputs_depend_only_on_seed_target_and_chunk() -> None:
    sip = fuzz.TARGETS["sip"]
    first = list(fuzz.inputs_for(sip, 1, 0, 300))
    assert first == list(fuzz.inputs_for(sip, 1, 0, 300))
    assert first != list(fuzz.inputs_for(sip, 2, 0, 300))
    assert first != list(fuzz.inputs_for(sip, 1, 1, 300))
    assert len(set(first)) > 250  # mutants, not one input repeated


def test_results_do_not_depend_on_the_number_of_workers(boom: fuzz.Target, tmp_path: Path) -> None:
    n = 2 * fuzz.CHUNK + 700  # several chunks per target
    one = fuzz.run(n, workers=1, seed=5, targets=["boom", "sip"], crash_dir=tmp_path / "one")
    two = fuzz.run(n, workers=2, seed=5, targets=["boom", "sip"], crash_dir=tmp_path / "two")
    for out in (one, two):
        assert out["fuzz_inputs"] == n
        assert out["fuzz_complete"] is True
    strip = {name: (t["inputs"], t["crashes"]) for name, t in one["targets"].items()}
    assert strip == {name: (t["inputs"], t["crashes"]) for name, t in two["targets"].items()}
    assert one["targets"]["boom"]["crashes"] > 0
    assert one["targets"]["sip"]["crashes"] == 0
    names = [[Path(p).name for p in s["saved"]] for s in one["crash_signatures"]]
    assert names == [[Path(p).name for p in s["saved"]] for s in two["crash_signatures"]]


def test_the_api_contract_for_the_bench_runner(tmp_path: Path) -> None:
    out = fuzz.run(800, workers=2, seed=3, crash_dir=tmp_path)
    assert out["fuzz_inputs"] == 800
    assert out["fuzz_crashes"] == 0
    assert out["fuzz_seed"] == 3
    assert out["fuzz_inputs_per_sec"] > 0
    assert set(out["targets"]) == set(fuzz.TARGETS)
    assert sum(t["inputs"] for t in out["targets"].values()) == 800
    for t in out["targets"].values():
        assert set(t) >= {"inputs", "crashes", "seconds"}
        assert t["inputs"] > 0
    json.dumps(out)  # the bench runner stores it as JSON


def test_max_seconds_stops_early_and_says_so(tmp_path: Path) -> None:
    out = fuzz.run(10_000_000, workers=1, seed=1, targets=["queue_log"], crash_dir=tmp_path, max_seconds=0.5)
    assert 0 < out["fuzz_inputs"] < 10_000_000
    assert out["fuzz_complete"] is False
    assert out["fuzz_requested"] == 10_000_000


def test_cli_prints_a_table_writes_json_and_exits_nonzero_on_crashes(
    boom: fuzz.Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "out.json"
    argv = ["--inputs", "600", "--workers", "1", "--seed", "2", "--crash-dir", str(tmp_path / "c"), "--json", str(path)]
    assert fuzz.main([*argv, "--targets", "sip,options"]) == 0
    table = capsys.readouterr().out
    assert "sip" in table
    assert "options" in table
    assert "total" in table
    assert json.loads(path.read_text())["fuzz_inputs"] == 600
    assert fuzz.main([*argv, "--targets", "boom"]) == 1
    assert "CRASH boom: KeyError" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        fuzz.main(["--inputs", "10", "--targets", "nope"])


def test_no_input_is_larger_than_a_collector_ever_hands_a_parser() -> None:
    # A line duplicated 50 times in a megabyte corpus file, then a byte run repeated 5,000 times:
    # mutations compound; the full 10M run once made a 179 MB CDR "line" the tailer would have cut.
    huge = fuzz.Target(
        name="huge",
        run=lambda data: None,
        allowed=(),
        generate=lambda rng: b"x\n" * (3 << 20),
        samples=[b"y\n" * (2 << 20)],
        corpus=list,
    )
    sizes = [len(data) for data in fuzz.inputs_for(huge, seed=1, chunk=0, count=50)]
    assert max(sizes) == fuzz.MAX_INPUT_BYTES
