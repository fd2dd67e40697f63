"""The soak: its traffic rewriting, its line fit and verdict, and a short run against `callscope run`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bench import soak
from collectors.hep.decode import decode


def _samples(rss: Sequence[float], state: Sequence[int], backlog: Sequence[int] | None = None) -> list[dict[str, Any]]:
    lag = backlog or [0] * len(rss)
    return [
        {"t": 10.0 * (i + 1), "rss_mb": r, "state": s, "backlog": b}
        for i, (r, s, b) in enumerate(zip(rss, state, lag, strict=True))
    ]


def test_linear_fit_recovers_a_line() -> None:
    slope, intercept = soak.linear_fit([0, 1, 2, 3], [5, 7, 9, 11])
    assert slope == pytest.approx(2.0)
    assert intercept == pytest.approx(5.0)
    assert soak.linear_fit([1.0], [4.0]) == (0.0, 4.0)


def test_a_ramp_in_the_first_half_then_flat_is_flat() -> None:
    rss = [100, 140, 180, 200, 201, 200, 200.5, 201, 200, 200.5]
    state = [0, 3000, 6000, 8000, 8050, 7990, 8010, 8000, 8020, 7995]
    verdict = soak.analyse(_samples(rss, state), sent=1000, stored=1000, rate=100)
    assert verdict["verdict"] == "flat", verdict["reasons"]
    assert abs(verdict["rss_slope_mb_per_min"]) < 1
    assert verdict["lost"] == 0


def test_the_growing_processor_is_named() -> None:
    samples = _samples([100.0] * 10, [0] * 10)
    for i, s in enumerate(samples):
        s["state_by_processor"] = {"call_legs": 500, "media_quality": 1000 * i}
        s["state"] = 500 + 1000 * i
    verdict = soak.analyse(samples, sent=1, stored=1, rate=10)
    assert verdict["state_slope_by_processor_per_min"]["call_legs"] == 0
    assert verdict["state_slope_by_processor_per_min"]["media_quality"] == pytest.approx(6000)
    assert "media_quality +6000/min" in " ".join(verdict["reasons"])
    assert "call_legs" not in " ".join(verdict["reasons"])


def test_rss_growing_in_the_second_half_is_not_flat() -> None:
    rss = [100 + 2 * i for i in range(20)]  # 2 MiB per 10 s sample: 12 MiB/min
    verdict = soak.analyse(_samples(rss, [500] * 20), sent=10, stored=10, rate=100)
    assert verdict["verdict"] == "not flat"
    assert verdict["rss_slope_mb_per_min"] == pytest.approx(12.0)
    assert any("RSS grows" in r for r in verdict["reasons"])


def test_growing_state_backlog_and_loss_are_each_reported() -> None:
    n = 12
    verdict = soak.analyse(
        _samples([100.0] * n, [1000 + 500 * i for i in range(n)], [100 * i * i for i in range(n)]),
        sent=100,
        stored=97,
        rate=50,
    )
    reasons = " | ".join(verdict["reasons"])
    assert "state grows" in reasons
    assert verdict["state_slope_by_processor_per_min"] == {}  # these samples carry no breakdown
    assert "backlog grows" in reasons
    assert "3 of 100" in reasons
    assert verdict["lost"] == 3


def test_each_cycle_gets_its_own_call_ids_and_the_given_time() -> None:
    pool = soak.build_pool(calls=40, seed=3)
    assert pool.kinds["sip"] > pool.kinds["rtcp"] > 0
    invite = next(t for t in pool.templates if t.data.find(b"X-CID:") > 0)
    first, second = (
        decode(soak.patch(invite, 1, 1_800_000_000_250_000)),
        decode(soak.patch(invite, 2, 1_800_000_001_000_000)),
    )
    assert (first.ts_sec, first.ts_usec) == (1_800_000_000, 250_000)
    head = first.payload.split(b"\r\n\r\n")[0]
    call_id = next(line for line in head.split(b"\r\n") if line.startswith(b"Call-ID:"))
    x_cid = next(line for line in head.split(b"\r\n") if line.startswith(b"X-CID:"))
    assert call_id.split()[1].startswith(b"00000001")
    assert x_cid.split()[1].startswith(b"00000001")  # the link to the other leg moves with it
    assert first.payload.replace(b"00000001", b"00000002") == second.payload
    assert len(soak.patch(invite, 1, 0)) == len(invite.data)


def test_schedule_spreads_calls_and_keeps_their_timing() -> None:
    pool = soak.build_pool(calls=40, seed=3)
    items = soak.schedule(pool, 5, 1_000_000, 4_000_000)
    assert len(items) == len(pool.templates)
    assert all(cycle == 5 for _, cycle, _ in items)
    for at, _, index in items:
        t = pool.templates[index]
        assert at == 1_000_000 + int(t.group * 4_000_000 / pool.groups) + t.offset_us


@pytest.mark.slow
@pytest.mark.e2e
def test_short_soak_samples_rss_and_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    args = ["--minutes", "0.4", "--rate", "400", "--interval", "3", "--output", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.soak", *args], capture_output=True, text=True, timeout=280, check=False
    )
    assert out.exists(), proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    assert len(doc["samples"]) >= 5
    assert all(s["rss_mb"] > 50 for s in doc["samples"])
    assert any(s["state"] > 0 for s in doc["samples"])  # the state gauges are there and move
    assert doc["sent"] > 0.4 * 60 * 400 * 0.5
    assert doc["lost"] == 0, doc["reasons"]
    assert doc["sent_by_kind"]["sip"] == doc["stored_by_kind"]["sip"]
    assert "verdict" in doc
