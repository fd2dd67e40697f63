"""The embedded end-to-end benchmark: a small run with every processor, and one with the raw path alone."""

from __future__ import annotations

import pytest

from bench import e2e_hep, hep_traffic


def test_machine_busy_secs_grows_with_work() -> None:
    before = hep_traffic.machine_busy_secs()
    total = 0
    while hep_traffic.machine_busy_secs() - before < 0.05:  # a spin of this process's own
        total += sum(range(10_000))
    assert total > 0


def test_processors_without_events_is_refused() -> None:
    with pytest.raises(ValueError, match="name events among --processors"):
        e2e_hep.run(10, 10.0, processors=["call_legs"])


@pytest.mark.slow
@pytest.mark.e2e
def test_small_runs_all_processors_and_the_raw_path_alone() -> None:
    every = e2e_hep.run(1400, 2000.0)  # 200 calls of 7 messages
    raw = e2e_hep.run(1400, 2000.0, processors=["events"])
    for result in (every, raw):
        assert result["e2e_embedded_lost"] == 0, result
        assert 0 < result["machine_cpu_busy"] <= 1.1, result  # jiffies round: a little over 1 may show
    assert every["processors"] == "all"
    assert every["call_legs_rows_per_call"] >= 1  # the legs of the calls were written ...
    assert raw["processors"] == ["events"]
    assert raw["call_legs_rows_per_call"] == 0  # ... and not where call_legs did not run
