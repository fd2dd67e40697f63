"""Fault tests through real Kafka (issue 7): a processor killed mid-stream, the broker stopped during intake.

Both run the distributed pipeline as processes, the way it is deployed: ``callscope run --role
collector`` takes HEP3 over UDP onto the broker, ``callscope run --role processor`` stores it in
its embedded ClickHouse engine. Traffic is the demo's complete calls (``callscope.demo.generate``),
paced at a rate the collector takes without kernel drops (checked per socket). Each test ends
with the proof of :mod:`tests.faults.counts`: every generated event stored exactly once, and
one ``call_legs`` row per leg with the status its scenario sets. The third test shrinks the
collector's outage budget (producer buffer + HEP queue) below the outage: then every packet
is either stored exactly once or counted as dropped, and the drops are logged while they happen.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.e2e_hep_kafka import commit_at_end, metric_sum
from callscope.demo import DemoTraffic, generate
from collectors.hep.decode import decode
from tests.ci import unavailable
from tests.faults.counts import assert_exactly_once
from tests.faults.kafka_roles import (
    Counted,
    Metrics,
    Role,
    UdpSender,
    committed,
    count_store,
    group_topics,
    kafka_env,
    new_group_prefix,
    start_role,
    udp_socket_drops,
    wait_drained,
    wait_for,
)
from tests.kafka.broker import KafkaBroker, KafkaToolMissing

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.slow]

RATE_PKTS = 1000.0  # far below what the collector takes on two busy cores (bench/e2e_hep_kafka.py)

# Final SIP status and leg state per demo scenario; every call has two legs (SBC side, proxy side).
FINAL = {
    "answered": (200, "completed"),
    "busy": (486, "failed"),
    "cancelled": (487, "cancelled"),
    "failed_404": (404, "failed"),
    "failed_408": (408, "failed"),
    "failed_503": (503, "failed"),
}
KIND_TABLES = {"sip": "sip_messages", "rtcp": "rtcp", "log": "logs"}


def _traffic(calls: int, seed: int) -> DemoTraffic:
    # Event times start now: the processors' reload window and timeouts run on the wall clock.
    return generate(calls, seed=seed, start_us=time.time_ns() // 1000)


def _stored_rows(processor: Role, table: str) -> int:
    """Rows this processor's sink wrote to ``table`` (redeliveries included)."""
    return int(metric_sum(processor.metrics(), "callscope_sink_batch_rows_sum", table=table))


def _events_read(processor: Role) -> int:
    """Records the events processor (it reads every topic) took off the bus in this process."""
    return int(metric_sum(processor.metrics(), "callscope_events_received_total", component="events"))


def _published(collector: Role) -> int:
    return int(metric_sum(collector.metrics(), "callscope_hep_packets_total", transport="all", result="published"))


def _collector_delivered(collector: Role, traffic: DemoTraffic) -> None:
    """Every packet reached the collector and its producer handed it to Kafka (no kernel drop, nothing buffered)."""
    assert collector.hep_port is not None
    total = len(traffic.packets)

    def done() -> bool:
        m = collector.metrics()
        published = metric_sum(m, "callscope_hep_packets_total", transport="all", result="published")
        return int(published) >= total and metric_sum(m, "callscope_bus_buffered_messages") == 0

    try:
        wait_for("the collector to publish every packet", done, 60)
    finally:
        drops = udp_socket_drops(collector.hep_port)
        assert drops == 0, f"the kernel dropped {drops} datagrams on the collector's socket: lower RATE_PKTS"
    m = collector.metrics()
    assert int(metric_sum(m, "callscope_events_received_total", component="hep")) == total
    assert metric_sum(m, "callscope_events_dropped_total", component="hep") == 0


def _count(processor_dir: Path) -> Counted:
    return count_store(
        processor_dir,
        {kind: (table, "1") for kind, table in KIND_TABLES.items()} | {"call_legs": ("call_legs", "1")},
        {
            "legs": "SELECT status, state, count() AS n, uniqExact(leg_id) AS legs FROM call_legs FINAL"
            " GROUP BY status, state",
        },
    )


def _assert_exactly_once(counted: Counted, traffic: DemoTraffic) -> dict[str, int]:
    """The proof; returns the redeliveries seen per table (raw rows not yet collapsed)."""
    for kind in KIND_TABLES:
        assert_exactly_once(counted.stored[kind], traffic.kinds[kind])
    calls = sum(traffic.scenarios[s] for s in FINAL)
    assert_exactly_once(counted.stored["call_legs"], 2 * calls)
    want: Counter[tuple[int, str]] = Counter()
    for scenario, (status, state) in FINAL.items():
        want[status, state] += 2 * traffic.scenarios[scenario]
    got = Counter({(int(r["status"]), str(r["state"])): int(r["n"]) for r in counted.queries["legs"]})  # type: ignore[call-overload]
    assert got == +want, f"call_legs per (status, state): {dict(got)}, generated {dict(+want)}"
    for row in counted.queries["legs"]:
        assert row["n"] == row["legs"], f"two rows for one leg under FINAL: {row}"
    return {name: s.redelivered for name, s in counted.stored.items()}


def test_processor_killed_mid_stream_then_restarted(
    kafka_bootstrap: str, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """SIGKILL the processor when a third is stored; a new one on the same directory finishes the job."""
    started = time.monotonic()
    prefix = new_group_prefix("kill")
    commit_at_end(kafka_bootstrap, prefix)
    events_group = f"{prefix}.events"  # the processor that stores every envelope, whatever its topic
    committed_at_start = committed(kafka_bootstrap, events_group)
    env = kafka_env(kafka_bootstrap, prefix)
    traffic = _traffic(900, seed=71)
    total_sip = traffic.kinds["sip"]
    roles: list[Role] = []
    sender: UdpSender | None = None
    try:
        collector = start_role("collector", tmp_path / "collector", env)
        roles.append(collector)
        processor = start_role("processor", tmp_path / "processor", env)
        roles.append(processor)
        assert collector.hep_port is not None
        # A tenth goes out first and is stored (the processor is consuming steadily); then the
        # sender goes on up to 85% (it waits there if the processor is slow) and the processor is
        # killed while it stores; the last 15% go out once the kill is done.
        tenth, most = len(traffic.packets) // 10, len(traffic.packets) * 85 // 100
        sip_sent = list(itertools.accumulate(decode(p).payload_type == 1 for p in traffic.packets))
        sender = UdpSender(collector.hep_port, traffic.packets, RATE_PKTS, until=tenth)
        sender.start()
        warm = sip_sent[tenth - 1]
        wait_for("the first tenth stored", lambda: _stored_rows(processor, "sip_messages") >= warm, 90)
        sender.release(most)

        written_at_third = 0

        def a_third_stored() -> bool:
            nonlocal written_at_third
            written_at_third = _stored_rows(processor, "sip_messages")
            return written_at_third * 3 >= total_sip

        wait_for("a third of the SIP messages stored", a_third_stored, 120, interval_secs=0.05)
        time.sleep(0.5)  # halfway to the next flush (batch_max_age_secs 1): records read, not yet written
        read_by_first = _events_read(processor)
        written_by_first = _stored_rows(processor, "sip_messages")
        processor.kill()
        killed_at = time.monotonic()
        sent_at_kill = sender.sent
        sender.release()
        committed_at_kill = committed(kafka_bootstrap, events_group)
        assert written_by_first < sip_sent[sent_at_kill - 1], "the processor had caught up: not killed mid-stream"

        # The kernel dropped the killed process's flock: a new processor takes the directory over.
        second = start_role("processor", tmp_path / "processor", env)
        roles.append(second)
        ready_secs = time.monotonic() - killed_at
        wait_for("the restarted processor to store rows", lambda: _stored_rows(second, "sip_messages") > 0, 90)
        resumed_secs = time.monotonic() - killed_at

        sender.join(120)
        assert not sender.is_alive(), "the sender did not finish"
        assert sender.error is None, sender.error
        _collector_delivered(collector, traffic)
        topics = group_topics(second, prefix)
        # Lag is measured on the topics a group reads (a topic it never commits would be all lag).
        assert topics[f"{prefix}.call_legs"] == ("callscope.sip",)
        lag = wait_drained(kafka_bootstrap, topics, timeout_secs=120)
        assert not lag, f"messages left unconsumed per group: {lag}"
        drained_secs = time.monotonic() - killed_at
        committed_at_end = committed(kafka_bootstrap, events_group)
        assert second.stop() == 0, second.stderr()[-3000:]
        assert collector.stop() == 0, collector.stderr()[-3000:]
        for role in (collector, second):
            assert "Traceback" not in role.stderr(), role.stderr()[-3000:]

        redelivered = _assert_exactly_once(_count(tmp_path / "processor"), traffic)
        figures = {
            "packets": len(traffic.packets),
            "sip_written_by_first": written_by_first,
            "packets_sent_at_kill": sent_at_kill,
            # records on the bus (HEP envelopes plus what processors derived, e.g. passive OPTIONS results)
            "records_on_bus": committed_at_end - committed_at_start,
            "records_committed_at_kill": committed_at_kill - committed_at_start,
            # read by the first events processor past its last commit (at least): read again by the second
            "reread_after_restart": read_by_first - (committed_at_kill - committed_at_start),
            "redelivered_raw_minus_final": redelivered,
            "restart_ready_secs": round(ready_secs, 1),
            "restart_first_rows_secs": round(resumed_secs, 1),
            "kill_to_drained_secs": round(drained_secs, 1),
            "runtime_secs": round(time.monotonic() - started, 1),
        }
        for name, value in figures.items():
            record_property(name, value)
        print(f"kill -9 processor: {figures}")
    finally:
        if sender is not None:
            sender.cancel()
        for role in roles:
            role.close()


@pytest.fixture
def own_broker() -> Iterator[KafkaBroker]:
    """A broker of this test's own: it is stopped and started, which the session's broker must not be."""
    broker = KafkaBroker()
    try:
        broker.start()
    except KafkaToolMissing as exc:
        broker.close()
        unavailable(f"the Kafka tests cannot run: {exc}")
    try:
        yield broker
    finally:
        broker.close()


@dataclass
class Outage:
    """What a broker outage run saw: the traffic, the collector's metrics at the end of the outage and
    at the end, the store's counts, and the timings."""

    traffic: DemoTraffic
    sent_while_down: int
    down_metrics: Metrics
    final_metrics: Metrics
    collector_log: list[dict[str, object]]
    counted: Counted
    figures: dict[str, object]


def _broker_outage(broker: KafkaBroker, tmp_path: Path, **env_extra: str) -> Outage:
    """Collector and processor on ``broker``; a fifth of the traffic before, three fifths while the
    broker is stopped, the rest after it is back; wait until everything the collector published is
    stored, stop both roles cleanly and count the store."""
    started = time.monotonic()
    prefix = new_group_prefix("broker")
    env = kafka_env(broker.bootstrap, prefix, **env_extra)
    traffic = _traffic(1100, seed=72)
    packets = len(traffic.packets)
    before, during = packets // 5, packets * 4 // 5
    roles: list[Role] = []
    sender: UdpSender | None = None
    try:
        collector = start_role("collector", tmp_path / "collector", env)
        roles.append(collector)
        processor = start_role("processor", tmp_path / "processor", env)
        roles.append(processor)
        topics = group_topics(processor, prefix)
        assert collector.hep_port is not None
        sender = UdpSender(collector.hep_port, traffic.packets, RATE_PKTS, until=before)
        sender.start()
        wait_for("the first packets published", lambda: _published(collector) >= before, 60)
        assert not wait_drained(broker.bootstrap, topics, timeout_secs=60)

        stop_at = time.monotonic()
        broker.stop()
        stopped_secs = time.monotonic() - stop_at
        sender.release(during)
        wait_for("the packets sent while the broker is down", lambda: sender is not None and sender.done, 120)
        time.sleep(1.5)  # the collector's drop report runs once a second
        down_metrics = collector.metrics()
        down_secs = time.monotonic() - stop_at
        start_at = time.monotonic()
        broker.start()
        broker_ready_secs = time.monotonic() - start_at
        sender.release()

        def delivered() -> bool:
            return metric_sum(collector.metrics(), "callscope_bus_buffered_messages") == 0

        backlog_secs = wait_for("the collector to deliver its backlog", delivered, 120) + broker_ready_secs
        sender.join(120)
        assert not sender.is_alive(), "the sender did not finish"
        assert sender.error is None, sender.error
        drops = udp_socket_drops(collector.hep_port)
        assert drops == 0, f"the kernel dropped {drops} datagrams on the collector's socket: lower RATE_PKTS"
        lag = wait_drained(broker.bootstrap, topics, timeout_secs=120)
        assert not lag, f"messages left unconsumed per group: {lag}"
        drained_secs = time.monotonic() - start_at
        final_metrics = collector.metrics()
        assert processor.stop() == 0, processor.stderr()[-3000:]
        assert collector.stop() == 0, collector.stderr()[-3000:]
        for role in (collector, processor):
            assert "Traceback" not in role.stderr(), role.stderr()[-3000:]
        figures: dict[str, object] = {
            "packets": packets,
            "sent_while_down": during - before,
            "broker_down_secs": round(down_secs, 1),
            "broker_stop_secs": round(stopped_secs, 1),
            "broker_ready_secs": round(broker_ready_secs, 1),
            "collector_buffered_at_end_of_outage": int(metric_sum(down_metrics, "callscope_bus_buffered_messages")),
            "start_to_backlog_delivered_secs": round(backlog_secs, 1),
            "start_to_drained_secs": round(drained_secs, 1),
        }
        counted = _count(tmp_path / "processor")
        figures["runtime_secs"] = round(time.monotonic() - started, 1)
        return Outage(traffic, during - before, down_metrics, final_metrics, collector.log_events(), counted, figures)
    finally:
        if sender is not None:
            sender.cancel()
        for role in roles:
            role.close()


def _report(name: str, figures: dict[str, object], record_property: Callable[[str, object], None]) -> None:
    for key, value in figures.items():
        record_property(key, value)
    print(f"{name}: {figures}")


def _hep_dropped(metrics: Metrics) -> int:
    return int(metric_sum(metrics, "callscope_events_dropped_total", component="hep"))


def test_broker_stopped_and_started_during_intake(
    own_broker: KafkaBroker, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """HEP keeps arriving while the broker is down; within the collector's budget (the defaults:
    300,000 packets) it is held and delivered once the broker is back: every event stored once."""
    outage = _broker_outage(own_broker, tmp_path)
    m = outage.final_metrics
    total = len(outage.traffic.packets)
    assert outage.sent_while_down > 0
    assert _hep_dropped(m) == 0
    assert int(metric_sum(m, "callscope_events_received_total", component="hep")) == total
    assert int(metric_sum(m, "callscope_hep_packets_total", transport="all", result="published")) == total
    # The backlog showed while the broker was away (the gauge is the outage's first signal).
    assert metric_sum(outage.down_metrics, "callscope_bus_buffered_messages") > 0
    redelivered = _assert_exactly_once(outage.counted, outage.traffic)
    _report("broker stop/start", {**outage.figures, "redelivered_raw_minus_final": redelivered}, record_property)


BUDGET = {"buffer_max_messages": 1000, "queue_max_packets": 1000, "batch_max_messages": 500}


def test_broker_outage_beyond_the_budget_counts_and_logs_the_loss(
    own_broker: KafkaBroker, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """With a small budget the outage outlasts it: what does not fit is dropped, but counted while
    it happens and logged; every packet is either stored exactly once or counted as dropped."""
    outage = _broker_outage(
        own_broker,
        tmp_path,
        CALLSCOPE_BUS__KAFKA__BUFFER_MAX_MESSAGES=str(BUDGET["buffer_max_messages"]),
        CALLSCOPE_COLLECTORS__HEP__QUEUE_MAX_PACKETS=str(BUDGET["queue_max_packets"]),
        CALLSCOPE_COLLECTORS__HEP__BATCH_MAX_MESSAGES=str(BUDGET["batch_max_messages"]),
    )
    dropped_while_down = _hep_dropped(outage.down_metrics)
    dropped = _hep_dropped(outage.final_metrics)  # more may go while the producer reconnects
    held = outage.sent_while_down - dropped_while_down
    # Counted while the broker was still down, not only once it came back.
    assert dropped_while_down > 0
    # Held through the outage: the producer's buffer, the queue, and at most the one batch in hand.
    assert BUDGET["buffer_max_messages"] + BUDGET["queue_max_packets"] <= held <= sum(BUDGET.values())
    warnings = [e for e in outage.collector_log if e.get("event") == "hep queue full, udp packets dropped"]
    assert sum(int(e["dropped"]) for e in warnings) == dropped  # type: ignore[call-overload]
    assert any(e.get("event") == "kafka producer buffer full, senders wait" for e in outage.collector_log)
    stored = 0
    for kind in KIND_TABLES:
        result = outage.counted.stored[kind]
        assert result.duplicates == 0, f"{result.table}: {result.duplicates} ids stored twice"
        stored += result.final_count
    assert stored + dropped == len(outage.traffic.packets), f"{stored} stored + {dropped} dropped"
    _report(
        "broker outage beyond the budget",
        {
            **outage.figures,
            "dropped_while_down": dropped_while_down,
            "dropped_after_restart": dropped - dropped_while_down,
            "held_while_down": held,
            "budget": BUDGET,
        },
        record_property,
    )
