"""The pure cores: api.ladder (+ renderers) and api.pcap_export, without the store."""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

from api.ladder import Message, build_ladder
from api.ladder_render import render_html, render_mermaid, render_svg
from api.pcap_export import build_pcap
from tests.api_calls.pcapread import read_pcap

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def msg(i: int, at_ms: float, src: str, dst: str, *, status: int = 0, node: str = "sbc1", **kw: object) -> Message:
    sip, sport = src.rsplit(":", 1)
    dip, dport = dst.rsplit(":", 1)
    method = str(kw.pop("method", "INVITE"))
    raw = (
        f"{method} sip:x@y SIP/2.0\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\n\r\n"
        if not status
        else (f"SIP/2.0 {status} OK\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\n\r\n")
    )
    return Message(
        id=f"m{i}",
        ts=T0 + timedelta(milliseconds=at_ms),
        node=node,
        call_id=str(kw.pop("call_id", "c1")),
        src_ip=sip.strip("[]"),
        src_port=int(sport),
        dst_ip=dip.strip("[]"),
        dst_port=int(dport),
        transport=str(kw.pop("transport", "udp")),
        is_request=not status,
        method=method,
        status=status,
        reason="OK" if status else "",
        cseq=1,
        via_branch=str(kw.pop("branch", "z9hG4bK1")),
        raw=raw,
    )


def test_duplicate_copy_within_window_is_dropped_retransmission_is_kept() -> None:
    a, b = "10.0.0.1:5060", "10.0.0.2:5060"
    messages = [
        msg(1, 0, a, b, node="n1"),
        msg(2, 0.4, a, b, node="n2"),  # same packet seen on n2
        msg(3, 500, a, b, node="n1"),  # T1 retransmission
        msg(4, 500.2, a, b, node="n2"),  # its copy
        msg(5, 510, b, a, status=200, node="n2"),
    ]
    ladder = build_ladder("c1", reversed(messages))
    assert [(x.id, x.retransmission, x.seen_on) for x in ladder.arrows] == [
        ("m1", False, ["n1", "n2"]),
        ("m3", True, ["n1", "n2"]),
        ("m5", False, ["n2"]),
    ]
    assert [c.id for c in ladder.columns] == [a, b]
    assert ladder.arrows[2].delta_ms == 10.0


def test_ipv6_columns_and_topology_names() -> None:
    ladder = build_ladder(
        "c1", [msg(1, 0, "[2001:db8::1]:5060", "[2001:db8::2]:5062")], {"2001:db8::2": ("ast1", "logic")}
    )
    assert [(c.id, c.node) for c in ladder.columns] == [("[2001:db8::1]:5060", ""), ("[2001:db8::2]:5062", "ast1")]


def test_renderers_escape_and_stay_well_formed() -> None:
    messages = [
        msg(1, 0, "10.0.0.1:5060", "10.0.0.2:5060", call_id="<x>&\"'#;"),
        msg(2, 1, "10.0.0.1:5060", "10.0.0.1:5060"),
    ]
    ladder = build_ladder("<x>&\"'#;", messages)
    svg = render_svg(ladder)
    root = ElementTree.fromstring(svg)  # well-formed XML
    assert len([g for g in root.iter("{http://www.w3.org/2000/svg}g") if "arrow" in g.get("class", "")]) == 2
    mermaid = render_mermaid(ladder)
    assert "#59;" not in mermaid.splitlines()[0]
    assert mermaid.count("->>") == 2
    page = render_html(ladder)
    assert "</script><" in page
    assert page.count("</script>") == 2


def test_200_message_ladder_renders_within_20_ms() -> None:
    hosts = [f"10.0.0.{i}:5060" for i in range(1, 5)]
    messages = [
        msg(i, i * 7.0, hosts[i % 4], hosts[(i + 1) % 4], status=0 if i % 2 else 200, branch=f"b{i}", node=f"n{i % 2}")
        for i in range(200)
    ]
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        ladder = build_ladder("c1", messages)
        render_svg(ladder)
        best = min(best, time.perf_counter() - started)
    assert len(ladder.arrows) == 200
    assert best * 1000 <= 20.0


def test_pcap_tcp_and_ipv6(tmp_path: Path) -> None:
    messages = [
        msg(1, 0, "10.0.0.1:5060", "10.0.0.2:5060", transport="tcp"),
        msg(2, 5, "10.0.0.2:5060", "10.0.0.1:5060", status=200, transport="tcp"),
        msg(3, 9, "10.0.0.1:5060", "10.0.0.2:5060", transport="tcp", method="ACK"),
        msg(4, 12, "[2001:db8::1]:5060", "[2001:db8::2]:5060", method="OPTIONS"),
    ]
    data = build_pcap(messages)
    packets = read_pcap(data)
    assert [p.proto for p in packets] == [6, 6, 6, 17]
    assert all(p.checksums_ok for p in packets)
    # Sequence numbers advance by the payload; ACKs follow the other direction.
    assert packets[2].seq == packets[0].seq + len(packets[0].payload)
    assert packets[1].ack == packets[2].seq
    assert packets[2].ack == packets[1].seq + len(packets[1].payload)
    assert packets[3].src == "2001:db8::1"
    assert round(packets[1].ts - packets[0].ts, 6) == 0.005
    tshark = shutil.which("tshark")
    if tshark is None:
        return
    path = tmp_path / "t.pcap"
    path.write_bytes(data)
    out = subprocess.run(
        [
            tshark,
            "-r",
            str(path),
            "-Y",
            "sip",
            "-T",
            "fields",
            "-e",
            "sip.CSeq.method",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert out == ["INVITE\t10.0.0.1\t", "INVITE\t10.0.0.2\t", "ACK\t10.0.0.1\t", "OPTIONS\t\t2001:db8::1"]
