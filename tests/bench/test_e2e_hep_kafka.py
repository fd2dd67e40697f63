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


@pytest.mark.kafka
@pytest.mark.e2e
def test_two_processor_replicas_split_the_partitions_and_store_every_packet(kafka_bootstrap: str) -> None:
    result = e2e_hep_kafka.one_run(kafka_bootstrap, 2100, 2000.0, replicas=2)  # 300 calls
    assert result["processor_replicas"] == 2
    assert result["e2e_kafka_lost"] == 0  # the rows of the two stores add up to every packet
    assert len(result["processor_rows"]) == 2
    assert all(rows > 0 for rows in result["processor_rows"]), result["processor_rows"]  # both had partitions
    assert result["call_legs_rows_written"] >= 300  # a row per call at least, wherever its partition went
