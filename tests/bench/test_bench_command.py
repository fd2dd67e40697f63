"""`callscope bench`: the figures' bookkeeping, and a quick run of two cheap benchmarks end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS, figure, loss, table


def test_figure_compares_the_median_with_its_target() -> None:
    fast = figure(120_000, 110_000, 130_000, 3, unit="pkt/s", target=100_000, op=">=", size="n")
    slow = figure(60.0, 40.0, 70.0, 3, unit="ms", target=50, op="<=", size="n")
    assert fast["meets_target"] is True
    assert slow["meets_target"] is False
    assert (slow["min"], slow["max"], slow["runs"]) == (40.0, 70.0, 3)


def test_loss_reports_the_worst_run() -> None:
    lost = loss([0, 12, 0], "n")
    assert lost["median"] == 12
    assert lost["meets_target"] is False
    assert loss([0, 0, 0], "n")["meets_target"] is True


def test_table_flags_a_short_figure() -> None:
    doc = {
        "quick": True,
        "machine": {"cpus": 2, "loadavg_start": [1.0, 1.0, 1.0]},
        "elapsed_secs": 3.0,
        "figures": {
            "hep_decode_pps": figure(53_000, 51_000, 56_000, 3, unit="pkt/s", target=100_000, op=">=", size="50k")
        },
        "ratios": {"e2e_embedded_vs_hep_decode": 0.4},
        "errors": {"trace": "exit status 1"},
    }
    text = table(doc)
    assert "hep_decode_pps" in text
    assert "SHORT" in text
    assert "ERROR trace" in text
    assert "e2e_embedded_vs_hep_decode" in text


@pytest.mark.slow
@pytest.mark.e2e
def test_quick_run_of_two_benchmarks_prints_the_table_and_writes_their_keys(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    args = ["--quick", "--runs", "2", "--only", "hep_decode,bus_memory", "--output", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "callscope.cli", "bench", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hep_decode_pps" in proc.stdout
    assert "bus_memory_msgs_per_sec" in proc.stdout
    assert "median" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["benchmarks"] == ["hep_decode", "bus_memory"]
    for key in ("hep_decode_pps", "bus_memory_msgs_per_sec"):
        assert doc[key] > 0
        fig = doc["figures"][key]
        assert fig["runs"] == 2
        assert fig["min"] <= fig["median"] <= fig["max"]
        assert fig["meets_target"] == (fig["median"] >= fig["target"])
        assert fig["size"]
    assert doc["machine"]["cpus"] >= 1
    assert len(doc["machine"]["loadavg_start"]) == 3
    assert doc["sizes"]["hep_decode_packets"] > 0
    assert "trace_p99_ms" not in doc  # not selected, so not reported


def test_an_unknown_benchmark_is_refused() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "hep_decode,nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "nonsense" in proc.stderr
    assert "hep_decode" in BENCHMARKS
