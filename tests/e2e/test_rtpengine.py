"""Real media relay into callscope: rtpengine 10.5 (userspace, ``table = -1``) reporting RTCP as HEP.

The test is the signalling proxy: it asks rtpengine for media ports over the ng protocol
(offer/answer with a Call-ID), sends RTP both ways through them and one RTCP report from each
side (a Sender Report with a report block from the caller, a Receiver Report from the callee).
rtpengine relays them and mirrors each RTCP packet to callscope as HEP type 5 (JSON) with the
Call-ID as correlation id and capture id 2301 (node ``rtp1``). The figures read back from
``GET /api/v1/calls/{call_id}`` (``media_quality``) must be the ones sent.

The same Call-ID is first signalled through Kamailio (sipp UAC -> Kamailio -> sipp UAS), as a
proxy driving rtpengine would: the API answers 404 for a Call-ID it knows only from RTCP.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RTPENGINE_CAPTURE_ID, Pipeline, need_peers
from tests.peers import harness

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SSRC_CALLER = 0x1111_1111
SSRC_CALLEE = 0x2222_2222
CLOCK_RATE = 8000  # PCMU


@pytest.fixture(scope="module")
def rtpengine(pipeline: Pipeline, e2e_dir: Path) -> Iterator[harness.Rtpengine]:
    need_peers("rtpengine")
    engine = harness.start_rtpengine(e2e_dir / "rtpengine", hep_port=pipeline.hep_port, homer_id=RTPENGINE_CAPTURE_ID)
    try:
        yield engine
    finally:
        engine.stop()


def sdp(port: int, session: int) -> str:
    return (
        f"v=0\r\no=- {session} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )


def media_port(answer: dict[str, harness.Bencode]) -> int:
    assert answer.get("result") == b"ok", answer
    match = re.search(r"m=audio (\d+)", harness.text(answer.get("sdp")))
    assert match, answer
    return int(match.group(1))


def udp(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((harness.LOOPBACK, port))
    sock.settimeout(2)
    return sock


def test_rtcp_reports_relayed_by_rtpengine_become_media_quality(
    pipeline: Pipeline,
    rtpengine: harness.Rtpengine,
    kamailio: harness.Kamailio,
    uas_factory: Callable[[str, str], harness.Uas],
    e2e_dir: Path,
) -> None:
    call_id = f"cs-media-{secrets.token_hex(5)}@callscope-e2e"
    uas = uas_factory("uas_answer.xml", "uas-media")
    signalled = harness.run_uac(
        harness.SIPP_DIR / "uac_answered.xml",
        e2e_dir / "sipp",
        target=uas.hostport,
        proxy=kamailio.hostport,
        call_id=call_id,
        timeout=20,
    )
    assert signalled.returncode == 0, signalled.describe()
    base = harness.free_udp_block(4)
    caller_rtp, caller_rtcp, callee_rtp, callee_rtcp = (udp(base + i) for i in range(4))
    ng = harness.NgClient(rtpengine.ng_address)
    try:
        offer = ng.request("offer", call_id=call_id, from_tag="caller-tag", sdp=sdp(base, 1))
        to_callee = media_port(offer)  # where the callee sends
        answer = ng.request("answer", call_id=call_id, from_tag="caller-tag", to_tag="callee-tag", sdp=sdp(base + 2, 2))
        to_caller = media_port(answer)  # where the caller sends
        assert rtpengine.port_min <= min(to_callee, to_caller) <= max(to_callee, to_caller) <= rtpengine.port_max

        # 50 packets of 20 ms each way; rtpengine learns both endpoints from them.
        for i in range(50):
            caller_rtp.sendto(harness.rtp_packet(1000 + i, 160 * i, SSRC_CALLER), (harness.LOOPBACK, to_caller))
            callee_rtp.sendto(harness.rtp_packet(5000 + i, 160 * i, SSRC_CALLEE), (harness.LOOPBACK, to_callee))
        relayed = callee_rtp.recv(2048)
        assert relayed[8:12] == SSRC_CALLER.to_bytes(4, "big")  # the caller's RTP reached the callee

        # The caller reports on the callee's stream: 5 lost (fraction 25/256), jitter 80 units = 10 ms.
        about_callee = harness.ReportBlock(
            SSRC_CALLEE, fraction_lost=25, cumulative_lost=5, highest_seq=5049, jitter=80
        )
        sender_report = harness.rtcp_sr(
            SSRC_CALLER, ntp=time.time(), rtp_ts=160 * 50, packets=50, octets=8000, blocks=[about_callee]
        ) + harness.rtcp_sdes(SSRC_CALLER, "caller@e2e")
        caller_rtcp.sendto(sender_report, (harness.LOOPBACK, to_caller + 1))
        # The callee reports on the caller's stream: nothing lost, jitter 12 units = 1.5 ms.
        about_caller = harness.ReportBlock(SSRC_CALLER, fraction_lost=0, cumulative_lost=0, highest_seq=1049, jitter=12)
        receiver_report = harness.rtcp_rr(SSRC_CALLEE, [about_caller]) + harness.rtcp_sdes(SSRC_CALLEE, "callee@e2e")
        callee_rtcp.sendto(receiver_report, (harness.LOOPBACK, to_callee + 1))
        assert caller_rtcp.recv(2048)[1] == 201  # the RR was relayed to the caller

        doc = pipeline.call(call_id, lambda d: len(d["media_quality"]) >= 2)
        ng.request("delete", call_id=call_id, from_tag="caller-tag")
    finally:
        ng.close()
        for sock in (caller_rtp, caller_rtcp, callee_rtp, callee_rtcp):
            sock.close()

    assert [leg["state"] for leg in doc["legs"]] == ["completed"]
    events = pipeline.get("/api/v1/events", kind="rtcp", key=call_id).json()["events"]
    assert {(e["node"], e["body"]["capture_id"], e["body"]["correlation_id"]) for e in events} == {
        ("rtp1", RTPENGINE_CAPTURE_ID, call_id)
    }
    reports: dict[int, dict[str, Any]] = {r["source_ssrc"]: r for r in doc["media_quality"]}
    assert set(reports) == {SSRC_CALLER, SSRC_CALLEE}, doc["media_quality"]
    assert all(r["node"] == "rtp1" for r in reports.values())
    assert all(r["call_id"] == call_id and r["correlation_id"] == call_id for r in reports.values())

    on_callee = reports[SSRC_CALLEE]
    assert on_callee["ssrc"] == SSRC_CALLER
    assert on_callee["report_type"].upper() in {"SR", "200"}
    assert on_callee["packets_lost"] == 5
    # fraction_lost as a fraction or a percentage: 25/256 either way.
    assert on_callee["fraction_lost"] in (pytest.approx(25 / 256, abs=1e-3), pytest.approx(100 * 25 / 256, abs=0.1))
    assert on_callee["jitter_ms"] == pytest.approx(80 / CLOCK_RATE * 1000, abs=0.01)

    on_caller = reports[SSRC_CALLER]
    assert on_caller["ssrc"] == SSRC_CALLEE
    assert on_caller["report_type"].upper() in {"RR", "201"}
    assert on_caller["packets_lost"] == 0
    assert on_caller["fraction_lost"] == 0
    assert on_caller["jitter_ms"] == pytest.approx(12 / CLOCK_RATE * 1000, abs=0.01)
