"""The AMI collector through the real panoramisk client against an AMI server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence

import pytest
import structlog

from callscope.bus.base import Producer
from callscope.telemetry import configure_logging
from collectors.ami import collector as collector_module
from collectors.ami.client import PANORAMISK_LOG
from collectors.ami.events import GAP_EVENT, RESYNC_FIELD
from schemas.envelope import AmiEnvelope
from tests.ami.corpus import CACOFONISK, PANORAMISK
from tests.ami.harness import start_collector
from tests.ami.server import AmiServer, load_recording
from tests.corpus import corpus_file

NODE = {"node": "ast-1"}


def _live(envs: list[AmiEnvelope]) -> list[AmiEnvelope]:
    """Envelopes of events as they happened (not resync results, not markers)."""
    return [e for e in envs if RESYNC_FIELD not in e.body.fields and e.body.event != GAP_EVENT]


def _group(envs: Sequence[AmiEnvelope]) -> dict[str, list[AmiEnvelope]]:
    out: dict[str, list[AmiEnvelope]] = defaultdict(list)
    for env in envs:
        out[env.key].append(env)
    return dict(out)


def _by_key(envs: Sequence[AmiEnvelope]) -> dict[str, list[str]]:
    return {key: [e.body.event for e in group] for key, group in _group(envs).items()}


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """structlog's output as JSON lines, restored afterwards."""
    saved = structlog.get_config()
    stream = io.StringIO()
    configure_logging(level="debug", fmt="json", stream=stream)
    try:
        yield stream
    finally:
        structlog.configure(**saved)


async def test_events_flow_as_envelopes_with_keys_dialect_and_node() -> None:
    events = load_recording(corpus_file(f"{CACOFONISK}/simple/ab_success_a_hangup.json"))
    async with AmiServer() as ami:
        harness = await start_collector(ami)
        try:
            await ami.wait_logged_in()
            await ami.replay(events)
            await harness.wait_for(lambda envs: len(_live(envs)) >= len(events) + 1)
            envs = await harness.wait_for(lambda envs: len(envs) >= len(events) + 3)  # + the resync's list ends
        finally:
            await harness.close()
    live = _live(envs)
    assert len(live) == len(events) + 1  # the server's FullyBooted after the login, then the recording
    assert {e.node for e in envs} == {"ast-1"}
    assert {e.role for e in envs} == {"logic"}
    assert {e.body.dialect for e in envs} == {"asterisk13"}  # banner Asterisk Call Manager/5.0.1
    assert len({e.id for e in envs}) == len(envs)
    for env in live:
        if "Linkedid" in env.body.fields:
            assert env.key == env.body.fields["Linkedid"]
    # Receive times are strictly increasing per node, so ordering by ts keeps Asterisk's order.
    for events_of_key in _group(live).values():
        times = [e.received for e in events_of_key]
        assert times == sorted(times)
        assert len(set(times)) == len(times)
        assert [e.ts for e in events_of_key] == times  # no Timestamp: ts is the receive time
    # Per call (partition key) the order is the recording's.
    expected = [e for e in events if "Linkedid" in e]
    assert _by_key([e for e in live if "Linkedid" in e.body.fields]) == {
        key: [e["Event"] for e in expected if e["Linkedid"] == key] for key in {e["Linkedid"] for e in expected}
    }
    assert Counter(e.body.event for e in live) == Counter(e["Event"] for e in events) + Counter({"FullyBooted": 1})
    # The resync at login found no channel and no queue: the two list ends only.
    assert sorted(e.body.event for e in envs if RESYNC_FIELD in e.body.fields) == [
        "CoreShowChannelsComplete",
        "QueueStatusComplete",
    ]
    assert not [e for e in envs if e.body.event == GAP_EVENT]  # no reconnect, no gap
    assert harness.metric("callscope_ami_events_total", {"node": "ast-1", "result": "published"}) == len(live)
    # At stop the connection logged off and the gauges went down.
    assert ami.actions[-1]["Action"] == "Logoff"
    assert harness.metric("callscope_ami_connected", {"node": "ast-1"}) == 0
    assert harness.metric("callscope_component_up", {"component": "ami"}) == 0


async def test_connected_gauges_while_logged_in() -> None:
    async with AmiServer() as ami:
        harness = await start_collector(ami)
        try:
            assert harness.metric("callscope_component_up", {"component": "ami"}) == 0
            await ami.wait_logged_in()
            await harness.wait_metric("callscope_ami_connected", {"node": "ast-1"}, 1)
            assert harness.metric("callscope_component_up", {"component": "ami"}) == 1
            assert harness.collector.healthcheck()
            assert harness.collector.describe() == f"1 connection: ast-1 127.0.0.1:{ami.port}"
            actions = [a["Action"] for a in ami.actions]
            assert actions[:3] == ["Login", "CoreShowChannels", "QueueStatus"]
            assert ami.actions[0]["Secret"] == "***"  # the server masks what it records
        finally:
            await harness.close()


async def test_asterisk11_dialect_and_keys() -> None:
    events = load_recording(corpus_file(f"{PANORAMISK}/originate_with_events.yaml"))
    async with AmiServer(banner="Asterisk Call Manager/1.3") as ami:
        harness = await start_collector(ami)
        try:
            await ami.wait_logged_in()
            await ami.replay(events)
            envs = await harness.wait_for(lambda envs: len(_live(envs)) >= len(events) + 1)
        finally:
            await harness.close()
    live = _live(envs)
    assert {e.body.dialect for e in envs} == {"asterisk11"}
    dials = [e for e in live if e.body.event == "Dial"]
    assert len(dials) == 4
    for env in dials:
        assert env.key == env.body.fields["UniqueID"]
        assert env.body.fields["SubEvent"] in ("Begin", "End")
    bridges = [e for e in live if e.body.event == "Bridge"]
    assert len(bridges) == 6
    assert all(e.key == e.body.fields["Uniqueid1"] for e in bridges)
    assert {e.body.event for e in live} >= {"Masquerade", "Rename", "Newchannel", "Hangup", "CEL", "VarSet"}


async def test_wrong_secret_is_refused_retried_with_backoff_and_never_logged(
    json_log: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-secret-4f1d9c"
    async with AmiServer(secret="the-real-secret") as ami:
        harness = await start_collector(
            ami, secret=wrong, reconnect_backoff_initial_secs=0.05, reconnect_backoff_max_secs=0.8
        )
        try:
            await ami.wait_failed_logins(5)
            await harness.wait_metric("callscope_ami_login_failures_total", {"node": "ast-1"}, 5)
        finally:
            await harness.close()
    gaps = [b - a for a, b in zip(ami.login_times, ami.login_times[1:], strict=False)]
    # Backoff 0.05 s doubling, each delay drawn in [d/2, d]: the 4th wait is at least 0.2 s.
    assert gaps[3] >= 0.2
    assert gaps[3] > gaps[0]
    assert ami.logins == 0
    assert harness.metric("callscope_ami_reconnects_total", {"node": "ast-1", "reason": "login_refused"}) >= 4
    assert harness.metric("callscope_ami_connected", {"node": "ast-1"}) == 0
    lines = [json.loads(line) for line in json_log.getvalue().splitlines() if line.strip()]
    refused = [line for line in lines if line["event"] == "ami login refused"]
    assert len(refused) >= 5
    assert refused[0]["message"] == "Authentication failed"
    assert refused[0]["asterisk"] == "ast-1"
    assert refused[0]["level"] == "error"
    assert wrong not in json_log.getvalue()
    assert wrong not in caplog.text
    assert not any(wrong in str(record.args) for record in caplog.records)


async def test_drop_mid_call_reconnects_resyncs_and_marks_the_gap() -> None:
    events = load_recording(corpus_file(f"{CACOFONISK}/simple/ab_success_a_hangup.json"))
    cut = next(i for i, e in enumerate(events) if e["Event"] == "BridgeEnter")  # both legs up, call live
    async with AmiServer() as ami:
        harness = await start_collector(ami)
        try:
            await ami.wait_logged_in()
            await ami.replay(events[:cut])
            await harness.wait_for(lambda envs: len(_live(envs)) >= cut + 1)
            live_channels = dict(ami.channels)
            assert len(live_channels) >= 2
            ami.drop(mid_block=events[cut])  # half a block, then the connection closes
            await ami.wait_logged_in(2)
            envs = await harness.wait_for(lambda envs: any(e.body.event == GAP_EVENT for e in envs))
            envs = await harness.wait_for(
                lambda envs: sum(e.body.event == "CoreShowChannel" for e in envs) >= len(live_channels)
            )
            await ami.replay(events[cut:])
            envs = await harness.wait_for(lambda envs: len(_live(envs)) >= len(events) + 2)
        finally:
            await harness.close()
    gaps = [e for e in envs if e.body.event == GAP_EVENT]
    linkedids = {c["Linkedid"] for c in live_channels.values()}
    assert sorted(e.key for e in gaps) == sorted({"ast-1", *linkedids})
    for gap in gaps:
        fields = gap.body.fields
        assert fields["reason"] == "connection_lost"
        assert fields["since"] < fields["until"]
        assert gap.body.dialect == "asterisk13"
    per_call = [g for g in gaps if g.key != "ast-1"]
    assert all(g.body.fields["Linkedid"] == g.key for g in per_call)
    snapshot = [e for e in envs if e.body.event == "CoreShowChannel"]
    assert {e.body.fields["Uniqueid"] for e in snapshot} == set(live_channels)
    assert all(e.body.fields[RESYNC_FIELD] == "1" and e.key in linkedids for e in snapshot)
    # Nothing of the cut block was published as an event; everything after the reconnect was.
    assert len(_live(envs)) == len(events) + 2  # two FullyBooted from the two logins
    assert Counter(e.body.event for e in _live(envs))["Hangup"] == Counter(e["Event"] for e in events)["Hangup"]
    assert harness.metric("callscope_ami_reconnects_total", {"node": "ast-1", "reason": "connection_lost"}) == 1
    assert harness.metric("callscope_ami_gaps_total", {"node": "ast-1"}) == 1


async def test_silent_peer_is_detected_within_interval_plus_timeout() -> None:
    interval, timeout = 0.4, 0.3
    async with AmiServer() as ami:
        harness = await start_collector(ami, ping_interval_secs=interval, ping_timeout_secs=timeout)
        try:
            await ami.wait_logged_in()
            await ami.wait_action("Ping")  # the keep-alive runs and is answered
            await ami.send({"Event": "Newchannel", "Uniqueid": "1.1", "Linkedid": "1.1", "Channel": "SIP/a-1"})
            await harness.wait_for(lambda envs: any(e.body.event == "Newchannel" for e in envs))
            ami.go_silent()
            silent_at = time.monotonic()
            await ami.wait_logged_in(2, within=10)
            noticed = ami.login_times[-1] - silent_at
            envs = await harness.wait_for(lambda envs: sum(e.body.event == GAP_EVENT for e in envs) >= 2)
        finally:
            await harness.close()
    # interval + timeout, plus the reconnect backoff (<= 0.05 s here) and the new connection.
    assert noticed <= interval + timeout + 0.5
    assert harness.metric("callscope_ami_reconnects_total", {"node": "ast-1", "reason": "ping_timeout"}) == 1
    gaps = {e.key: e.body.fields for e in envs if e.body.event == GAP_EVENT}
    assert set(gaps) == {"ast-1", "1.1"}  # the silent server's channel is still live for the new session
    assert gaps["ast-1"]["reason"] == "ping_timeout"
    assert len(ami.sessions) >= 2
    assert ami.sessions[0].writer.is_closing()  # the collector closed the half-dead connection


async def test_garbage_on_the_wire_is_dead_lettered_and_counted() -> None:
    async with AmiServer() as ami:
        harness = await start_collector(ami)
        try:
            await ami.wait_logged_in()
            await ami.send_raw(
                b"\x00\x01 binary junk\r\n\r\n"
                b"[218 bytes missing in capture file]Event: Newexten\r\nUniqueid: 1.1\r\nLinkedid: 1.1\r\n\r\n"
                b"Event: \r\nKey: no name\r\n\r\n"
            )
            envs = await harness.wait_for(lambda envs: any(e.body.event == "Newexten" for e in envs))
            await harness.wait_metric("callscope_deadletters_total", {"component": "ami", "reason": "no_event"}, 1)
        finally:
            await harness.close()
    newexten = next(e for e in envs if e.body.event == "Newexten")
    assert newexten.key == "1.1"
    letters = harness.deadletters()
    assert sorted(d["reason"] for d in letters) == ["garbage", "garbage", "no_event"]
    raws = {base64.b64decode(d["raw_b64"]) for d in letters}
    assert b"[218 bytes missing in capture file]" in raws
    assert all(d["component"] == "ami" and d["node"] == "ast-1" for d in letters)
    assert harness.metric("callscope_ami_parse_errors_total", {"node": "ast-1", "reason": "garbage"}) == 2
    assert harness.metric("callscope_ami_parse_errors_total", {"node": "ast-1", "reason": "no_event"}) == 1


async def test_event_filters_drop_live_events_not_resync_results() -> None:
    events = load_recording(corpus_file(f"{CACOFONISK}/simple/ab_success_a_hangup.json"))
    kept = [e for e in events if e["Event"] in ("Newchannel", "Hangup", "DialBegin")]
    async with AmiServer() as ami:
        harness = await start_collector(
            ami, events={"allow": ["Newchannel", "Hangup", "Dial*"], "deny": ["DialEnd", "CoreShowChannel*"]}
        )
        try:
            await ami.wait_logged_in()
            await harness.wait_metric("callscope_ami_events_total", {"node": "ast-1", "result": "resync"}, 2)
            await ami.replay(events)
            await harness.wait_for(lambda envs: len(_live(envs)) >= len(kept))
        finally:
            await harness.close()
    envs = harness.envelopes()
    assert Counter(e.body.event for e in _live(envs)) == Counter(e["Event"] for e in kept)
    resync = {e.body.event for e in envs if RESYNC_FIELD in e.body.fields}
    assert resync == {"CoreShowChannelsComplete", "QueueStatusComplete"}  # asked for: never filtered
    filtered = harness.metric("callscope_ami_events_total", {"node": "ast-1", "result": "filtered"})
    assert filtered == len(events) + 1 - len(kept)  # + the server's FullyBooted


async def test_a_hung_asterisk_fails_the_login_deadline_and_is_retried() -> None:
    async with AmiServer() as ami:
        ami.mute_new_sessions = True  # TCP accepts, the banner comes, the Login is never answered
        harness = await start_collector(ami, connect_timeout_secs=0.3)
        try:
            await harness.wait_metric("callscope_ami_reconnects_total", {"node": "ast-1", "reason": "login_timeout"}, 2)
            ami.mute_new_sessions = False
            await ami.wait_logged_in()
            await harness.wait_metric("callscope_ami_connected", {"node": "ast-1"}, 1)
        finally:
            await harness.close()
    assert all(s.writer.is_closing() for s in ami.sessions[:2])  # given up, closed


def test_panoramisk_log_lines_never_show_a_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=PANORAMISK_LOG.name)
    PANORAMISK_LOG.error("Fail to send %r", "Action: Login\r\nSecret: hunter2\r\nUsername: u\r\n")
    PANORAMISK_LOG.info("Adding action to awaiting list: %s", {"Action": "Login", "secret": "hunter2"})
    assert "hunter2" not in caplog.text
    assert caplog.text.count("***") == 2


async def test_shutdown_event_reconnects() -> None:
    async with AmiServer() as ami:
        harness = await start_collector(ami)
        try:
            await ami.wait_logged_in()
            await ami.send({"Event": "Shutdown", "Privilege": "system,all", "Shutdown": "Cleanly", "Restart": "True"})
            await ami.wait_logged_in(2)
            await harness.wait_metric("callscope_ami_gaps_total", {"node": "ast-1"}, 1)
        finally:
            await harness.close()
    assert harness.metric("callscope_ami_reconnects_total", {"node": "ast-1", "reason": "shutdown"}) == 1
    assert [e.body.event for e in harness.envelopes("Shutdown")] == ["Shutdown"]


async def test_unreachable_asterisk_does_not_block_start_and_is_retried() -> None:
    ami = AmiServer()
    await ami.start()
    port = ami.port
    await ami.close()  # nothing listens there any more
    async with AmiServer() as placeholder:
        harness = await start_collector(placeholder, port=port)
        try:
            assert harness.collector.ready.is_set()
            await harness.wait_metric(
                "callscope_ami_reconnects_total", {"node": "ast-1", "reason": "connect_failed"}, 3
            )
            assert harness.collector.healthcheck()
        finally:
            await harness.close()


class _Gate(Producer):
    """Holds every send until opened: a bus that fell behind."""

    def __init__(self, inner: Producer) -> None:
        self.inner = inner
        self.open = asyncio.Event()

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        await self.open.wait()
        await self.inner.send(topic, value, key)

    async def send_many(self, topic: str, items: Sequence[tuple[bytes | None, bytes]]) -> None:
        await self.open.wait()
        await self.inner.send_many(topic, items)

    async def flush(self) -> None:
        await self.inner.flush()

    async def close(self) -> None:
        await self.inner.close()


async def test_a_slow_bus_pauses_reading_and_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector_module, "OUTBOX_HIGH", 40)
    monkeypatch.setattr(collector_module, "OUTBOX_LOW", 5)
    interval, timeout = 0.2, 0.2
    published = {"node": "ast-1", "result": "published"}

    def user_events(first: int, n: int) -> list[dict[str, str]]:
        return [{"Event": "UserEvent", "UserEvent": f"n{i}", "Uniqueid": "9.9"} for i in range(first, first + n)]

    async with AmiServer() as ami:
        harness = await start_collector(ami, ping_interval_secs=interval, ping_timeout_secs=timeout)
        gate = _Gate(harness.collector.producer)
        harness.collector.producer = gate
        try:
            await ami.wait_logged_in()
            await harness.wait_metric("callscope_ami_events_total", {"node": "ast-1", "result": "resync"}, 2)
            await ami.replay(user_events(0, 100))
            await harness.wait_metric("callscope_ami_events_total", published, 101)  # + FullyBooted
            assert harness.collector.outbox.paused
            assert harness.collector.sessions[0].paused
            await ami.replay(user_events(100, 200))  # waits in the socket buffers: nobody reads
            await asyncio.sleep(3 * (interval + timeout))  # a paused reader judges no ping meanwhile
            assert harness.metric("callscope_ami_events_total", published) == 101
            gate.open.set()
            await harness.wait_for(lambda envs: len(harness.envelopes("UserEvent")) >= 300)
            await harness.wait_for(lambda envs: not harness.collector.outbox.paused)
        finally:
            gate.open.set()
            await harness.close()
    assert [e.body.fields["UserEvent"] for e in harness.envelopes("UserEvent")] == [f"n{i}" for i in range(300)]
    assert harness.metric("callscope_ami_reconnects_total", {"node": "ast-1", "reason": "ping_timeout"}) == 0
