"""The Kafka end-to-end benchmark's own parts: its metric reading, and one small run through a real broker."""

from __future__ import annotations

import pytest

from bench import e2e_hep_kafka


def test_metric_sum_filters_labels() -> None:
    metrics = {("x_total", (("a", "1"), ("b", "2"))): 3.0, ("x_total", (("a", "9"),)): 4.0, ("y", ()): 5.0}
    assert e2e_hep_kafka.metric_sum(metrics, "x_total", a="1") == 3.0
    assert e2e_hep_kafka.metric_sum(metrics, "x_total") == 7.0
    assert e2e_hep_kafka.metric_sum(metrics, "missing") == 0.0


@pytest.mark.kafka
@pytest.mark.e2e
def test_small_run_through_kafka_stores_every_packet(kafka_bootstrap: str) -> None:
    result = e2e_hep_kafka.one_run(kafka_bootstrap, 2000, 2000.0)
    assert result["e2e_kafka_lost"] == 0
    assert result["collector_published"] == 2000
    assert result["collector_rss_mb"] > 0
    assert result["processor_rss_mb"] > 0
    assert 0 < result["machine_cpu_busy"] <= 1.1  # the whole machine over the run (jiffies round)
