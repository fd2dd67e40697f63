"""The E-model on known points, rtpengine's RTCP JSON from the corpus and crafted SR/RR pairs, VQ reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from processors.media_quality.mos import (
    MediaQualityCore,
    MediaQualityLimits,
    delay_impairment,
    equipment_impairment,
    mos_from_r,
    r_factor,
    score,
)
from schemas.envelope import RtcpEnvelope, SipEnvelope, validate
from tests.call_legs.sipgen import Dialog, at
from tests.corpus import corpus_file

CALL = "media-1@10.0.0.1"
NTP_OFFSET = 2208988800


@pytest.mark.parametrize(
    ("r", "mos"),
    [(93.2, 4.41), (100, 4.5), (120, 4.5), (0, 1.0), (-5, 1.0), (50, 2.58), (70, 3.60), (80, 4.02), (90, 4.34)],
)
def test_mos_from_r_known_points(r: float, mos: float) -> None:
    assert mos_from_r(r) == pytest.approx(mos, abs=0.01)


def test_impairments() -> None:
    assert delay_impairment(0) == 0
    assert delay_impairment(100) == pytest.approx(2.4)
    assert delay_impairment(300) == pytest.approx(0.024 * 300 + 0.11 * 122.7)
    assert equipment_impairment(0) == 0
    assert equipment_impairment(0.01) == pytest.approx(95 * 1 / (1 + 25.1))  # 1 % loss, G.711 with PLC
    assert equipment_impairment(0.05, bpl=4.3) == pytest.approx(95 * 5 / (5 + 4.3))
    assert r_factor(loss_fraction=0, one_way_ms=0) == pytest.approx(93.2)
    r, mos = score(0.0, None, None)  # no loss, no RTT, 20 ms jitter buffer
    assert r == pytest.approx(93.2 - 0.48)
    assert mos == pytest.approx(4.40, abs=0.01)
    assert score(0.05, 300, 30)[1] < score(0.01, 40, 5)[1]


def _rtcp(t: float, report: dict[str, Any], *, ident: str, src: int = 30000, dst: int = 40000) -> RtcpEnvelope:
    env = validate(
        {
            "kind": "rtcp",
            "id": ident,
            "node": "media1",
            "role": "media",
            "ts": at(t).isoformat(),
            "received": at(t).isoformat(),
            "key": CALL,
            "body": {
                "src": {"ip": "10.0.0.9", "port": src},
                "dst": {"ip": "10.0.0.8", "port": dst},
                "correlation_id": CALL,
                "report": report,
            },
        }
    )
    assert isinstance(env, RtcpEnvelope)
    return env


def _ntp(t: float) -> tuple[int, int]:
    unix = at(t).timestamp()
    return int(unix) + NTP_OFFSET, int((unix % 1) * 2**32)


def rtcp_env() -> list[RtcpEnvelope]:
    """An SR from A at t=10 and B's RR answering it at t=10.1 after holding it 60 ms: RTT 40 ms."""
    sec, frac = _ntp(10)
    sr = {
        "sender_information": {"ntp_timestamp_sec": sec, "ntp_timestamp_usec": frac, "packets": 500, "octets": 80000},
        "ssrc": 111,
        "type": 200,
        "report_count": 1,
        "report_blocks": [
            {"source_ssrc": 222, "fraction_lost": 0, "packets_lost": 0, "ia_jitter": 40, "lsr": 0, "dlsr": 0}
        ],
    }
    lsr = ((sec & 0xFFFF) << 16) | (frac >> 16)
    rr = {
        "ssrc": 222,
        "type": 201,
        "report_count": 0,  # rtpengine quirk: 0 with one block
        "report_blocks": [
            {
                "source_ssrc": 111,
                "fraction_lost": 13,
                "packets_lost": 25,
                "ia_jitter": 160,
                "lsr": lsr - (1 << 32) if lsr >= 1 << 31 else lsr,  # printed signed, as some versions do
                "dlsr": int(0.06 * 65536),
            }
        ],
    }
    return [_rtcp(10, sr, ident="sr-1"), _rtcp(10.1, rr, ident="rr-1", src=40000, dst=30000)]


def test_sr_rr_pair_gives_rtt_jitter_loss_and_mos() -> None:
    core = MediaQualityCore()
    core.feed_sip(Dialog(call_id=CALL).msg(0, "INVITE", codecs=["PCMA/8000"]))
    sr_rows = core.feed_rtcp(rtcp_env()[0])
    (rr_row,) = core.feed_rtcp(rtcp_env()[1])
    (sr_row,) = sr_rows
    assert (sr_row.report_type, sr_row.missing, sr_row.rtt_ms, sr_row.jitter_ms) == ("SR", ("rtt",), None, 5.0)
    assert rr_row.report_type == "RR"
    assert rr_row.missing == ()
    assert rr_row.fraction_lost == pytest.approx(13 / 256)
    assert rr_row.packets_lost == 25
    assert rr_row.jitter_ms == pytest.approx(20.0)
    assert rr_row.rtt_ms == pytest.approx(40.0, abs=0.01)
    assert (rr_row.clock_rate, rr_row.codec, rr_row.call_id) == (8000, "PCMA", CALL)
    r, mos = score(13 / 256, rr_row.rtt_ms, 20.0)
    assert rr_row.r_factor == pytest.approx(r, abs=0.001)
    assert rr_row.mos == pytest.approx(mos, abs=0.001)
    assert rr_row.mos is not None
    assert 1.0 < rr_row.mos < 4.0


def test_one_side_only_marks_rtt_missing_and_uses_the_default_clock() -> None:
    core = MediaQualityCore()
    (row,) = core.feed_rtcp(rtcp_env()[1])  # the RR without its SR
    assert row.missing == ("rtt",)
    assert row.rtt_ms is None
    assert (row.clock_rate, row.codec) == (8000, "")
    assert row.mos is not None


def test_wideband_codec_clock_rate_from_sdp() -> None:
    core = MediaQualityCore()
    core.feed_sip(Dialog(call_id=CALL).msg(0, "INVITE", codecs=["opus/48000/2"]))
    (row,) = core.feed_rtcp(rtcp_env()[1])
    assert row.clock_rate == 48000
    assert row.jitter_ms == pytest.approx(160 * 1000 / 48000, abs=0.001)


def test_idle_calls_are_forgotten_while_reports_keep_a_call_remembered() -> None:
    now = [0.0]
    core = MediaQualityCore(MediaQualityLimits(idle_secs=120.0), clock=lambda: now[0])
    core.feed_sip(Dialog(call_id=CALL).msg(0, "INVITE", codecs=["opus/48000/2"]))
    core.feed_sip(Dialog(call_id="quiet-call").msg(0, "INVITE", codecs=["PCMA/8000"]))
    sr, rr = rtcp_env()
    now[0] = 100.0
    core.feed_rtcp(sr)  # CALL's SR at t=100: CALL stays, the quiet call does not
    now[0] = 150.0
    assert core.expire() == 1
    assert len(core) == 2  # CALL's codec and SR times
    (row,) = core.feed_rtcp(rr)
    assert (row.clock_rate, row.missing) == (48000, ())  # both remembered: RTT computed
    now[0] = 150.0 + 120.0
    assert core.expire() == 1
    assert len(core) == 0
    (row,) = core.feed_rtcp(rr)
    assert (row.clock_rate, row.missing) == (8000, ("rtt",))  # forgotten: the default clock, RTT missing


def test_the_count_bound_forgets_the_least_recently_fed_call() -> None:
    core = MediaQualityCore(MediaQualityLimits(calls_max=2))
    for call in ("a", "b", "c"):
        core.feed_sip(Dialog(call_id=call).msg(0, "INVITE", codecs=["PCMA/8000"]))
    assert len(core) == 2
    assert core.expire() == 0


def _corpus_json(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    start = data.find(b'{"')
    depth = 0
    for end in range(start, len(data)):
        depth += {ord("{"): 1, ord("}"): -1}.get(data[end], 0)
        if depth == 0:
            doc = orjson.loads(data[start : end + 1])
            assert isinstance(doc, dict)
            return doc
    raise AssertionError("no JSON")


def test_corpus_rtpengine_reports() -> None:
    sip3 = corpus_file("sip3-salto-ce/hep_vectors/hep3_rtcp_json_PACKET_3.bin")
    pcap = corpus_file("hep-wireshark/pcap/hep.pcap")
    core = MediaQualityCore()
    # sip3's vector: type 202 (SDES last in the compound) with sender information -> an SR; XR type 0 ignored.
    (row,) = core.feed_rtcp(_rtcp(0, _corpus_json(sip3), ident="sip3"))
    assert (row.report_type, row.ssrc, row.source_ssrc, row.packets_lost) == ("SR", 2141660700, 299816601, 1)
    assert row.fraction_lost == 0
    assert row.jitter_ms == pytest.approx(42 / 8)
    assert row.missing == ("rtt",)
    assert row.mos == pytest.approx(mos_from_r(93.2 - 0.024 * 20), abs=0.001)
    # hep.pcap: report_count 0 with one block, a negative lsr, an NTP fraction past 32 bits.
    (row,) = core.feed_rtcp(_rtcp(1, _corpus_json(pcap), ident="pcap"))
    assert (row.report_type, row.ssrc, row.source_ssrc) == ("SR", 451916597, 898343773)
    assert row.jitter_ms == pytest.approx(1 / 8)
    assert row.missing == ("rtt",)


def _publish(report: dict[str, Any]) -> SipEnvelope:
    return Dialog(call_id="publish-9@10.0.0.1").msg(5, "PUBLISH", vq_report=report, correlation_id=None)


def test_vq_rtcpxr_publish_becomes_a_row_on_the_reported_call() -> None:
    report = {
        "type": "VQSessionReport: CallTerm",
        "CallID": CALL,
        "LocalAddr": {"IP": "10.0.0.1", "PORT": 4000, "SSRC": "0x2468ACE0"},
        "RemoteAddr": {"IP": "10.0.0.4", "PORT": 5000, "SSRC": "0x1357BDF0"},
        "SessionDesc": {"PT": 0, "PD": "PCMU", "SR": 8000},
        "PacketLoss": {"NLR": 2.0, "JDR": 0.5},
        "Delay": {"RTD": 120, "ESD": 60, "IAJ": 8},
        "QualityEst": {"RCQ": 85, "MOSCQ": 4.1},
    }
    (row,) = MediaQualityCore().feed_sip(_publish(report))
    assert (row.call_id, row.report_type, row.ssrc, row.source_ssrc) == (CALL, "VQ", 0x2468ACE0, 0x1357BDF0)
    assert (row.fraction_lost, row.jitter_ms, row.rtt_ms, row.r_factor, row.mos) == (0.02, 8.0, 120.0, 85.0, 4.1)
    assert (row.codec, row.clock_rate, row.missing) == ("PCMU", 8000, ("packets_lost",))
    (computed,) = MediaQualityCore().feed_sip(_publish({"CallID": CALL, "PacketLoss": {"NLR": 1.0}}))
    assert computed.missing == ("jitter", "rtt", "packets_lost")
    assert computed.mos == pytest.approx(score(0.01, None, None)[1], abs=0.001)
