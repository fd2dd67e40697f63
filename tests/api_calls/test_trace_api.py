"""GET /api/v1/calls/{call_id}, /ladder and /pcap on ab_answered_via_sbc."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from schemas.envelope import validate
from tests.api_calls.pcapread import read_pcap
from tests.api_calls.scenario import (
    A_LEG,
    B_LEG,
    DISTINCT_HOPS,
    STORED_MESSAGES,
    X_CID,
    a_leg_hops,
    scenario_envelopes,
)


def test_scenario_envelopes_are_valid() -> None:
    for env in scenario_envelopes():
        validate(env)


async def test_trace_has_legs_links_messages_media_and_logs(calls_client: httpx.AsyncClient) -> None:
    response = await calls_client.get(f"/api/v1/calls/{A_LEG}")
    assert response.status_code == 200
    trace = response.json()
    assert trace["call_id"] == A_LEG
    assert trace["call_ids"] == [A_LEG, B_LEG]
    # FINAL: the newest version of the a-leg only.
    assert [(leg["leg_id"], leg["state"], leg["version"]) for leg in trace["legs"]] == [
        (f"{A_LEG}:ftA", "completed", 1)
    ]
    assert [leg["call_id"] for leg in trace["linked_legs"]] == [B_LEG]
    vias = {(link["linked_call_id"], link["via"], link["value"]) for link in trace["links"]}
    assert vias == {(B_LEG, "hep_correlation_id", A_LEG), (B_LEG, "header:x-cid", X_CID)}
    messages = trace["messages"]
    assert len(messages) == STORED_MESSAGES
    stamps = [datetime.fromisoformat(m["ts"]) for m in messages]
    assert stamps == sorted(stamps)
    assert {m["node"] for m in messages} == {"sbc1", "ast1"}
    first = messages[0]
    assert (first["method"], first["status"], first["src_ip"], first["dst_port"]) == ("INVITE", 0, "203.0.113.5", 5060)
    assert first["raw"].startswith("INVITE sip:4930123@10.0.0.10 SIP/2.0\r\n")
    assert first["via_branch"] == "z9hG4bKa1"
    assert trace["messages_truncated"] is False
    assert [(q["id"], q["mos"], q["missing"]) for q in trace["media_quality"]] == [("mq1", pytest.approx(4.3), ["rtt"])]
    assert [line["message"] for line in trace["logs"]] == ["dialplan: routed to queue support"]


async def test_trace_from_the_b_leg_finds_the_a_leg(calls_client: httpx.AsyncClient) -> None:
    trace = (await calls_client.get(f"/api/v1/calls/{B_LEG}")).json()
    assert trace["call_ids"] == [B_LEG, A_LEG]
    assert [leg["correlation_ids"] for leg in trace["legs"]] == [[A_LEG]]
    assert [leg["call_id"] for leg in trace["linked_legs"]] == [A_LEG]
    assert len(trace["messages"]) == STORED_MESSAGES


async def test_unknown_call_is_404(calls_client: httpx.AsyncClient) -> None:
    for suffix in ("", "/ladder", "/pcap"):
        response = await calls_client.get(f"/api/v1/calls/nope@nowhere{suffix}")
        assert response.status_code == 404, suffix


async def test_routes_need_a_token(calls_client: httpx.AsyncClient) -> None:
    response = await calls_client.get(f"/api/v1/calls/{A_LEG}", headers={"Authorization": ""})
    assert response.status_code == 401


async def test_ladder_json_draws_each_hop_once(calls_client: httpx.AsyncClient) -> None:
    ladder = (await calls_client.get(f"/api/v1/calls/{A_LEG}/ladder")).json()
    assert ladder["call_id"] == A_LEG
    assert [(c["id"], c["node"], c["role"]) for c in ladder["columns"]] == [
        ("203.0.113.5:5060", "", ""),
        ("10.0.0.10:5060", "sbc1", "sbc"),
        ("10.0.0.10:5080", "sbc1", "sbc"),
        ("10.0.0.20:5060", "ast1", "logic"),
    ]
    arrows = ladder["arrows"]
    assert len(arrows) == DISTINCT_HOPS
    assert [a["label"] for a in arrows[:4]] == ["INVITE", "100 Trying", "INVITE", "100 Trying"]
    assert (arrows[2]["from"], arrows[2]["to"], arrows[2]["call_id"]) == ("10.0.0.10:5080", "10.0.0.20:5060", B_LEG)
    assert arrows[2]["seen_on"] == ["sbc1", "ast1"]
    assert arrows[2]["delta_ms"] == pytest.approx(3.0)
    assert arrows[-1]["since_start_ms"] == pytest.approx(30080.0)
    retransmitted = [a for a in arrows if a["retransmission"]]
    assert [(a["label"], a["call_id"], a["since_start_ms"]) for a in retransmitted] == [("200 OK", A_LEG, 2500.0)]
    assert all(a["status"] is None for a in arrows if a["method"] != "INVITE" and a["label"] in ("ACK", "BYE"))


async def test_ladder_without_linked_calls(calls_client: httpx.AsyncClient) -> None:
    ladder = (await calls_client.get(f"/api/v1/calls/{A_LEG}/ladder", params={"linked": "false"})).json()
    assert len(ladder["arrows"]) == len(a_leg_hops())
    assert {a["call_id"] for a in ladder["arrows"]} == {A_LEG}


async def test_ladder_svg_mermaid_html(calls_client: httpx.AsyncClient) -> None:
    svg = await calls_client.get(f"/api/v1/calls/{A_LEG}/ladder", params={"format": "svg"})
    assert svg.headers["content-type"] == "image/svg+xml"
    assert svg.text.startswith("<svg")
    assert svg.text.count('class="arrow ') == DISTINCT_HOPS
    assert "href=" not in svg.text  # self-contained
    mermaid = await calls_client.get(f"/api/v1/calls/{A_LEG}/ladder", params={"format": "mermaid"})
    lines = mermaid.text.splitlines()
    assert lines[0] == "sequenceDiagram"
    assert "    participant H1 as sbc1 10.0.0.10:5060" in lines
    assert sum("->>" in line for line in lines) == DISTINCT_HOPS
    assert "    H0->>H1: INVITE" in lines
    assert "    H1-->>H0: 200 OK (retransmission)" in lines
    page = await calls_client.get(f"/api/v1/calls/{A_LEG}/ladder", params={"format": "html"})
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.count("data-arrow-id=") == DISTINCT_HOPS
    assert "<script src" not in page.text
    assert "<link" not in page.text


async def test_pcap_rebuilds_every_hop(calls_client: httpx.AsyncClient, tmp_path: Path) -> None:
    response = await calls_client.get(f"/api/v1/calls/{A_LEG}/pcap")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.tcpdump.pcap"
    assert response.headers["content-disposition"] == 'attachment; filename="a-leg-1_carrier.example.net.pcap"'
    packets = read_pcap(response.content)
    assert len(packets) == DISTINCT_HOPS
    assert all(p.checksums_ok for p in packets)
    first = packets[0]
    assert (first.src, first.sport, first.dst, first.dport, first.proto) == ("203.0.113.5", 5060, "10.0.0.10", 5060, 17)
    assert first.payload.startswith(b"INVITE sip:4930123@10.0.0.10 SIP/2.0\r\n")
    assert first.ts == pytest.approx(1714550400.0)
    everything = read_pcap((await calls_client.get(f"/api/v1/calls/{A_LEG}/pcap", params={"dedup": "false"})).content)
    assert len(everything) == STORED_MESSAGES
    tshark = shutil.which("tshark")
    if tshark is None:
        return  # the reader above already checked lengths and checksums
    path = tmp_path / "call.pcap"
    path.write_bytes(response.content)
    out = await asyncio.to_thread(tshark_fields, tshark, path)
    assert len(out) == DISTINCT_HOPS
    assert out[0] == f"{A_LEG}\tINVITE"


def tshark_fields(tshark: str, path: Path) -> list[str]:
    return subprocess.run(
        [tshark, "-r", str(path), "-Y", "sip", "-T", "fields", "-e", "sip.Call-ID", "-e", "sip.CSeq.method"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
