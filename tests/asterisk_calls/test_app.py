"""The asterisk_calls shell on the in-process bus and the embedded engine: stored rows, links, restarts, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from callscope.store.client import Store
from processors.asterisk_calls.app import AsteriskCallsProcessor, ami_wants
from processors.asterisk_calls.config import AsteriskCallsConfig
from schemas.envelope import AmiEnvelope, encode, event_id
from schemas.tables import COLUMNS
from tests.asterisk_calls.corpus import FAMILIES, T0, envelopes, recording
from tests.call_legs.conftest import Env, drained, publish, running

FAST = AsteriskCallsConfig(expire_interval_secs=0.05)
SIP_CALL_ID = "a84b4c76e66710@pc33.atlanta.example.com"


def wall(secs: float) -> Callable[[], datetime]:
    return lambda: T0 + timedelta(seconds=secs)


def calls(store: Store) -> dict[str, dict[str, Any]]:
    return {r["linkedid"]: r for r in store.query("SELECT * FROM asterisk_calls FINAL")}


def legs(store: Store) -> dict[str, dict[str, Any]]:
    return {r["uniqueid"]: r for r in store.query("SELECT * FROM asterisk_legs FINAL")}


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not check():
            await asyncio.sleep(0.05)


def with_sip_call_id(envs: list[AmiEnvelope]) -> list[AmiEnvelope]:
    """The recording plus the VarSet the documented dialplan line produces on the caller's channel."""
    first = envs[2]  # the caller's Newchannel
    fields = {k: first.body.fields[k] for k in ("Channel", "Uniqueid", "Linkedid")}
    varset = AmiEnvelope(
        kind="ami",
        id=event_id("ami", "ast1", "varset"),
        node="ast1",
        role="logic",
        ts=first.ts + timedelta(milliseconds=1),
        received=first.ts,
        key=fields["Linkedid"],
        body={"event": "VarSet", "fields": {**fields, "Variable": "__SIPCALLID", "Value": SIP_CALL_ID}},
    )
    return [*envs[:3], varset, *envs[3:]]


def test_columns_match_the_migrated_tables(migrated_store: Store) -> None:
    for table in ("asterisk_legs", "asterisk_calls", "asterisk_transfers"):
        rows = migrated_store.query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}"
            " AND default_kind = '' ORDER BY position",
            {"db": migrated_store.database, "t": table},
        )
        assert tuple(r["name"] for r in rows) == COLUMNS[table], table


def test_prefilter_skips_events_the_core_ignores() -> None:
    envs = envelopes(recording(FAMILIES["simple_answered"]), tag="prefilter")
    assert all(
        ami_wants(encode(e)) == (e.body.event not in ("FullyBooted", "NewAccountCode", "BridgeCreate", "BridgeDestroy"))
        for e in envs
    )


async def test_recording_into_the_store(env: Env) -> None:
    envs = with_sip_call_id(envelopes(recording(FAMILIES["blind_transfer"]), tag="store"))
    async with running(env, AsteriskCallsProcessor, asterisk=FAST, wall=wall(3600)) as p:
        await publish(env, envs)
        await drained(env, p)
    (call,) = calls(env.store).values()
    assert (call["state"], call["outcome"], list(call["transfers"]), call["channels"]) == (
        "ended",
        "completed",
        ["blind"],
        7,
    )
    assert list(call["sip_call_ids"]) == [SIP_CALL_ID]
    stored = legs(env.store)
    assert len(stored) == 7
    assert {r["state"] for r in stored.values()} == {"hungup"}
    assert stored[call["linkedid"]]["sip_call_id"] == SIP_CALL_ID
    (transfer,) = env.store.query("SELECT * FROM asterisk_transfers FINAL")
    assert (transfer["kind"], transfer["target_exten"], transfer["transferee_uniqueid"]) == (
        "blind",
        "203",
        call["linkedid"],
    )
    links = env.store.query("SELECT call_id, linked_call_id, via, value FROM call_links FINAL WHERE via = 'asterisk'")
    assert links == [
        {"call_id": SIP_CALL_ID, "linked_call_id": "", "via": "asterisk", "value": f"{call['linkedid']}@ast1"}
    ]
    # The shell coalesces versions per flush: far fewer rows than events.
    versions = env.store.query("SELECT count() AS n FROM asterisk_legs")[0]["n"]
    assert versions < len(envs)


async def test_restart_mid_call_resumes_from_the_checkpoint(env: Env) -> None:
    envs = envelopes(recording(FAMILIES["attended_transfer"]), tag="restart")
    half = len(envs) // 2
    async with running(env, AsteriskCallsProcessor, asterisk=FAST, wall=wall(60)) as p:
        await publish(env, envs[:half])
        await drained(env, p)
    assert {c["state"] for c in calls(env.store).values()} == {"live"}
    # A crash after the store acknowledged, before the commit: the last events come again.
    await publish(env, envs[half - 3 :])
    async with running(env, AsteriskCallsProcessor, asterisk=FAST, wall=wall(60)) as p:
        await drained(env, p)
        await until(lambda: {c["state"] for c in calls(env.store).values()} == {"ended"})
    stored = calls(env.store)
    assert sorted(c["outcome"] for c in stored.values()) == ["completed", "transferred"]
    assert not any(c["incomplete"] for c in stored.values())
    (transfer,) = env.store.query("SELECT kind, transferee_channel FROM asterisk_transfers FINAL")
    assert transfer == {"kind": "attended", "transferee_channel": "SIP/150010002-00000029"}


async def test_timeouts_run_on_the_shell_clock(env: Env) -> None:
    envs = envelopes(recording(FAMILIES["simple_answered"]), tag="timeout")
    answered = [e for e in envs if e.body.event != "Hangup"]
    now = [T0 + timedelta(seconds=10)]
    async with running(env, AsteriskCallsProcessor, asterisk=FAST, wall=lambda: now[0]) as p:
        await publish(env, answered)
        await drained(env, p)
        now[0] = T0 + timedelta(seconds=FAST.answered_max_secs + 60)
        await until(lambda: {c["state"] for c in calls(env.store).values()} == {"ended"})
    assert {r["state"] for r in legs(env.store).values()} == {"timeout"}


async def test_unreadable_checkpoint_is_counted_and_skipped(env: Env) -> None:
    row = dict.fromkeys(COLUMNS["asterisk_calls"])
    row.update(
        id="ast1/x@1",
        node="ast1",
        linkedid="x",
        caller_channel="",
        caller_num="",
        caller_name="",
        callee="",
        started_at=datetime.now(UTC),
        state="live",
        outcome="",
        hangup_cause_text="",
        channels=0,
        uniqueids=[],
        transfers=[],
        sip_call_ids=[],
        merged_into="",
        incomplete=False,
        created=datetime.now(UTC),
        version=1,
        updated_at=datetime.now(UTC),
        checkpoint="{not json",
    )
    env.store.insert("asterisk_calls", [tuple(row[c] for c in COLUMNS["asterisk_calls"])], COLUMNS["asterisk_calls"])
    async with running(env, AsteriskCallsProcessor, asterisk=FAST) as p:
        assert isinstance(p, AsteriskCallsProcessor)
        assert p.correlator.nodes == {}
    sample = env.telemetry.registry.get_sample_value(
        "callscope_errors_total", {"component": "asterisk_calls", "error": "checkpoint"}
    )
    assert sample == 1
