"""The call_legs, registrations and media_quality shells on the in-process bus and the embedded engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from callscope.store.client import Store
from processors.call_legs.app import CallLegsProcessor, CorrelatingShell
from processors.media_quality.app import MediaQualityProcessor
from processors.registrations.app import RegistrationsProcessor
from schemas.tables import COLUMNS
from tests.call_legs.conftest import Env, drained, publish, running
from tests.call_legs.sipgen import CALLER, SBC, at
from tests.call_legs.test_correlator import D, answered_setup, base, resp
from tests.media_quality.test_mos import rtcp_env
from tests.registrations.test_correlator import challenge_cycle

Factory = Callable[..., CorrelatingShell]


def wall() -> datetime:
    return at(100)


def leg_final(store: Store) -> dict[str, Any]:
    rows = store.query("SELECT * FROM call_legs FINAL")
    assert len(rows) == 1
    return rows[0]


def check_golden(stored: dict[str, Any], golden: dict[str, Any]) -> None:
    for name, value in golden.items():
        got = stored[name]
        if isinstance(value, tuple):
            got = tuple(got)
        assert got == value, name


def test_correlated_columns_match_the_migrated_tables(migrated_store: Store) -> None:
    for table in ("call_legs", "call_links", "registrations", "media_quality"):
        rows = migrated_store.query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}"
            " AND default_kind = '' ORDER BY position",
            {"db": migrated_store.database, "t": table},
        )
        assert tuple(r["name"] for r in rows) == COLUMNS[table], table


async def test_leg_completes_across_a_restart_midcall(env: Env) -> None:
    async with running(env, CallLegsProcessor, wall=wall) as p:
        await publish(env, answered_setup())
        await drained(env, p)
    stored = leg_final(env.store)
    assert stored["state"] == "answered"
    assert stored["message_count"] == 5

    bye = [
        D.msg(62, "BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye", reason_header="Q.850;cause=16"),
        resp(62.005, 200, "OK", method="BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye"),
    ]
    # A crash after the store acknowledged but before the commit re-feeds the last messages: replay the ACK.
    await publish(env, [answered_setup()[-1], *bye])
    async with running(env, CallLegsProcessor, wall=wall) as p:
        await drained(env, p)
        async with asyncio.timeout(30):
            while leg_final(env.store)["state"] != "completed":
                await asyncio.sleep(0.05)
    check_golden(leg_final(env.store), base())
    links = env.store.query("SELECT call_id, linked_call_id, via, value FROM call_links FINAL ORDER BY call_id")
    assert [(r["call_id"], r["linked_call_id"], r["via"]) for r in links] == [
        ("call-0@upstream", D.call_id, "header:x-cid"),
        (D.call_id, "", "header:x-cid"),
        (D.call_id, "", "session_id"),
        (D.call_id, "call-0@upstream", "header:x-cid"),
    ]


async def test_timeouts_run_on_the_shell_clock(env: Env) -> None:
    now = [at(10)]
    async with running(env, CallLegsProcessor, wall=lambda: now[0]) as p:
        await publish(env, [D.msg(0, "INVITE"), resp(0.5, 180, "Ringing", to_tag="tt-b")])
        await drained(env, p)
        now[0] = at(400)
        async with asyncio.timeout(30):
            while leg_final(env.store)["state"] != "timeout":
                await asyncio.sleep(0.05)
    stored = leg_final(env.store)
    assert (stored["ended_by"], stored["ended_at"]) == ("system", at(300.5))


async def test_registrations_shell_and_current_view(env: Env) -> None:
    async with running(env, RegistrationsProcessor, wall=wall) as p:
        await publish(env, challenge_cycle())
        await drained(env, p)
    rows = env.store.query("SELECT status, challenge, expires FROM registrations FINAL ORDER BY cseq")
    assert [(r["status"], bool(r["challenge"]), r["expires"]) for r in rows] == [(401, True, 3600), (200, False, 600)]
    current = env.store.query("SELECT aor, contact, expires, expired FROM registrations_current")
    assert [(r["aor"], r["expires"]) for r in current] == [("1001@example.com", 600)]
    assert bool(current[0]["expired"])  # registered in 2024, 600 s: long expired by the engine's now()


async def test_media_quality_shell(env: Env) -> None:
    async with running(env, MediaQualityProcessor, wall=wall) as p:
        await publish(env, [D.msg(0, "INVITE", codecs=["PCMA/8000"], src=CALLER, dst=SBC), *rtcp_env()])
        await drained(env, p)
    rows = env.store.query("SELECT report_type, rtt_ms, missing FROM media_quality FINAL ORDER BY ts, id")
    assert [r["report_type"] for r in rows] == ["SR", "RR"]
    assert rows[1]["rtt_ms"] == pytest.approx(40.0, abs=0.01)
    assert list(rows[0]["missing"]) == ["rtt"]
