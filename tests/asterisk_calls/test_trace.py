"""The Asterisk side of ``GET /api/v1/calls/{call_id}`` and its ladder.

ab_answered_via_sbc (tests/api_calls/scenario.py: a carrier calls through sbc1 to Asterisk ast1) plus what
ast1's AMI said about the same call: cacofonisk's ab_success_a_hangup recording, with the dialplan's
``Set(__SIPCALLID=${CHANNEL(pjsip,call-id)})`` on the inbound channel (the SBC's b-leg Call-ID) and a
pre-dial handler doing the same on the outbound channel (a Call-ID of its own). The rows are what the
asterisk_calls core writes for those events; the raw events are in ``ami_events`` as the events
processor stores them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

from api.app import create_app
from callscope.store.client import Store
from processors.asterisk_calls.rows import CallRow, LegRow, TransferRow
from processors.queue_sessions.correlator import QueueCorrelator
from processors.queue_sessions.session import SessionRow
from schemas.envelope import AmiEnvelope, event_id
from schemas.tables import COLUMNS, row_for
from tests.api.conftest import client_for
from tests.api_calls.conftest import READ, make_calls_context
from tests.api_calls.scenario import A_LEG, B_LEG, DISTINCT_HOPS, T0, seed_scenario
from tests.api_calls.test_ladder_browser import run_chromium
from tests.asterisk_calls.corpus import FAMILIES, envelopes, recording
from tests.asterisk_calls.support import feed
from tests.queue_sessions.gen import answered as queue_answered
from tests.queue_sessions.gen import at as queue_at

CALLER_UID = "195176c06ab8-1529936170.42"  # SIP/150010001-00000004, the inbound channel
CALLEE_UID = "195176c06ab8-1529936170.50"  # SIP/150010002-00000005, dialed by Asterisk
OUT_CALL_ID = "ast1-out-0001@10.0.0.20"


def varset(after: AmiEnvelope, uid: str, channel: str, value: str, n: int) -> AmiEnvelope:
    fields = {"Channel": channel, "Uniqueid": uid, "Linkedid": CALLER_UID, "Variable": "SIPCALLID", "Value": value}
    return AmiEnvelope(
        kind="ami",
        id=event_id("ami", "ast1", "trace-varset", str(n)),
        node="ast1",
        role="logic",
        ts=after.ts + timedelta(milliseconds=1),
        received=after.ts,
        key=CALLER_UID,
        body={"event": "VarSet", "fields": fields, "dialect": "asterisk13"},
    )


def ast1_events() -> list[AmiEnvelope]:
    envs = envelopes(recording(FAMILIES["simple_answered"]), tag="trace", t0=T0 + timedelta(milliseconds=6))
    caller_new = next(i for i, e in enumerate(envs) if e.body.fields.get("Uniqueid") == CALLER_UID)
    callee_new = next(i for i, e in enumerate(envs) if e.body.fields.get("Uniqueid") == CALLEE_UID)
    out = list(envs)
    out.insert(callee_new + 1, varset(envs[callee_new], CALLEE_UID, "SIP/150010002-00000005", OUT_CALL_ID, 2))
    out.insert(caller_new + 1, varset(envs[caller_new], CALLER_UID, "SIP/150010001-00000004", B_LEG, 1))
    return out


def seed_asterisk(store: Store) -> None:
    events = ast1_events()
    _, final = feed(events)
    tables: dict[str, list[tuple[object, ...]]] = {}
    rows: list[LegRow | CallRow | TransferRow] = [*final.legs.values(), *final.calls.values()]
    rows.extend(final.transfers.values())
    for row in rows:
        table = {LegRow: "asterisk_legs", CallRow: "asterisk_calls", TransferRow: "asterisk_transfers"}[type(row)]
        tables.setdefault(table, []).append(row.values())
    tables["call_links"] = [link.values() for link in final.links.values()]
    tables["ami_events"] = [row_for(env)[1] for env in events]
    for table, values in tables.items():
        store.insert(table, values, COLUMNS[table])


@pytest.fixture
async def client(tmp_path: Path, migrated_store: Store) -> AsyncIterator[httpx.AsyncClient]:
    seed_scenario(migrated_store)
    seed_asterisk(migrated_store)
    async with client_for(create_app(make_calls_context(tmp_path, migrated_store))) as c:
        c.headers.update(READ)
        yield c


async def test_sip_leg_and_asterisk_channel_with_one_call_id_are_one_trace(client: httpx.AsyncClient) -> None:
    trace = (await client.get(f"/api/v1/calls/{B_LEG}")).json()
    assert [leg["call_id"] for leg in trace["legs"]] == [B_LEG]  # the SIP side
    (call,) = trace["asterisk_calls"]  # the Asterisk side of the same Call-ID
    assert (call["linkedid"], call["node"], call["outcome"], call["channels"]) == (CALLER_UID, "ast1", "completed", 4)
    assert sorted(call["sip_call_ids"]) == sorted([B_LEG, OUT_CALL_ID])
    legs = {leg["uniqueid"]: leg for leg in trace["asterisk_legs"]}
    assert len(legs) == 4
    assert legs[CALLER_UID]["sip_call_id"] == B_LEG
    assert legs[CALLER_UID]["connected_to"] == ["SIP/150010002-00000005"]
    assert legs[CALLEE_UID]["sip_call_id"] == OUT_CALL_ID
    # The outbound channel's own SIP dialog is a linked call of the trace, through the Asterisk call.
    assert {(link["linked_call_id"], link["via"]) for link in trace["links"]} >= {
        (A_LEG, "hep_correlation_id"),
        (OUT_CALL_ID, "asterisk"),
    }
    assert OUT_CALL_ID in trace["call_ids"]
    events = trace["asterisk_events"]
    assert [e["event"] for e in events].count("Hangup") == 4
    assert {e["source"] for e in events} == {"ami"}
    stamps = [e["ts"] for e in events]
    assert stamps == sorted(stamps)
    hangup = next(e for e in events if e["event"] == "Hangup" and e["uniqueid"] == CALLER_UID)
    assert hangup["fields"]["Cause-txt"] == "Normal Clearing"
    assert trace["asterisk_events_truncated"] is False


@pytest.mark.parametrize("asked", [CALLER_UID, CALLEE_UID])
async def test_trace_by_asterisk_linkedid_or_uniqueid(client: httpx.AsyncClient, asked: str) -> None:
    response = await client.get(f"/api/v1/calls/{asked}")
    assert response.status_code == 200
    trace = response.json()
    assert trace["legs"] == []  # no SIP dialog has that id
    assert [c["linkedid"] for c in trace["asterisk_calls"]] == [CALLER_UID]
    assert {leg["call_id"] for leg in trace["linked_legs"]} == {B_LEG}
    assert len(trace["messages"]) > 0  # the B-leg's SIP messages, through the Asterisk link


async def test_the_carrier_leg_reaches_the_asterisk_side_through_its_linked_b_leg(client: httpx.AsyncClient) -> None:
    trace = (await client.get(f"/api/v1/calls/{A_LEG}")).json()
    assert [c["linkedid"] for c in trace["asterisk_calls"]] == [CALLER_UID]
    assert trace["call_ids"][:2] == [A_LEG, B_LEG]
    assert OUT_CALL_ID in trace["call_ids"]  # the Asterisk call's outbound dialog, linked via 'asterisk'
    assert (await client.get("/api/v1/calls/195176c06ab8-9999.1")).status_code == 404


async def test_ladder_shows_the_asterisk_events_as_notes(client: httpx.AsyncClient) -> None:
    ladder = (await client.get(f"/api/v1/calls/{B_LEG}/ladder", params={"linked": "false"})).json()
    notes = ladder["notes"]
    assert notes, "the AMI events of the call are notes"
    ast1 = next(c["id"] for c in ladder["columns"] if c["node"] == "ast1")
    assert {n["column"] for n in notes} == {ast1}  # on the Asterisk node's own column
    assert {n["source"] for n in notes} == {"ami"}
    texts = [n["text"] for n in notes]
    assert "Hangup SIP/150010001-00000004 16 Normal Clearing" in texts
    assert any(t.startswith("DialBegin Local/ID730151") for t in texts)
    assert not any(n["event"] in ("VarSet", "NewCallerid", "NewAccountCode") for n in notes)
    times = [n["since_start_ms"] for n in notes]
    assert times == sorted(times)
    assert times[0] > 0
    plain = (await client.get(f"/api/v1/calls/{B_LEG}/ladder", params={"linked": "false", "asterisk": "false"})).json()
    assert plain["notes"] == []
    assert len(plain["arrows"]) == len(ladder["arrows"])


async def test_ladder_renders_notes_in_svg_mermaid_and_html(client: httpx.AsyncClient) -> None:
    ladder = (await client.get(f"/api/v1/calls/{B_LEG}/ladder")).json()
    count = len(ladder["notes"])
    svg = (await client.get(f"/api/v1/calls/{B_LEG}/ladder", params={"format": "svg"})).text
    root = ElementTree.fromstring(svg)
    groups = [g.get("class", "") for g in root.iter("{http://www.w3.org/2000/svg}g")]
    assert sum(c.startswith("note ") for c in groups) == count
    assert sum(c.startswith("arrow ") for c in groups) == len(ladder["arrows"])
    mermaid = (await client.get(f"/api/v1/calls/{B_LEG}/ladder", params={"format": "mermaid"})).text
    assert sum(line.startswith("    Note over ") for line in mermaid.splitlines()) == count
    page = (await client.get(f"/api/v1/calls/{B_LEG}/ladder", params={"format": "html"})).text
    assert page.count("data-note-id=") == count
    assert '<script type="application/json" id="notes">' in page
    assert "Cause-txt: Normal Clearing" not in page  # fields travel as JSON, shown on click
    assert '"Cause-txt":"Normal Clearing"' in page


async def test_ladder_of_an_asterisk_call_alone(client: httpx.AsyncClient) -> None:
    ladder = (await client.get(f"/api/v1/calls/{CALLER_UID}/ladder", params={"linked": "false"})).json()
    assert ladder["arrows"] == []
    assert {c["id"] for c in ladder["columns"]} == {"asterisk:ast1"}
    assert len(ladder["notes"]) > 10
    linked = (await client.get(f"/api/v1/calls/{CALLER_UID}/ladder")).json()
    assert len(linked["arrows"]) == DISTINCT_HOPS - 8  # the b-leg's 7 hops, through the Asterisk link


@pytest.mark.e2e
async def test_ladder_page_wires_the_notes_in_a_browser(client: httpx.AsyncClient, tmp_path: Path) -> None:
    """Headless Chromium runs the page's script: it parsed the notes' JSON and wired every note."""
    page = (await client.get(f"/api/v1/calls/{B_LEG}/ladder", params={"format": "html"})).text
    path = tmp_path / "ladder.html"
    path.write_text(page, encoding="utf-8")
    dom = await run_chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", path.as_uri())
    count = page.count("data-note-id=")
    assert count > 10
    assert f'data-notes="{count}"' in dom
    assert f'data-arrows="{page.count("data-arrow-id=")}"' in dom


async def test_trace_shows_the_queue_session_of_the_asterisk_caller(
    client: httpx.AsyncClient, migrated_store: Store
) -> None:
    """The caller's channel waited in a queue: the trace of its SIP Call-ID carries that queue session."""
    correlator = QueueCorrelator()
    events = queue_answered(0, wait=9, talk=40, callid=CALLER_UID, queue="support")
    rows = [r for e in events for r in correlator.feed(e)]
    rows += correlator.expire(queue_at(3600))
    sessions = [r.values() for r in rows if isinstance(r, SessionRow)]
    assert sessions
    migrated_store.insert("queue_sessions", sessions, COLUMNS["queue_sessions"])
    trace = (await client.get(f"/api/v1/calls/{B_LEG}")).json()
    (session,) = [s for s in trace["queue_sessions"] if s["queue"] == "support"]
    assert (session["callid"], session["outcome"]) == (CALLER_UID, "completed_caller")
    assert (session["wait_secs"], session["talk_secs"]) == (9.0, 40.0)
