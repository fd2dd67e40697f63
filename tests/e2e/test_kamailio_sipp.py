"""Real SIP through a real proxy into callscope: sipp UAC -> Kamailio 5.6 -> sipp UAS.

Kamailio mirrors every transaction with siptrace (HEP3 over UDP, capture id 4242 = node
``proxy1``) to ``callscope run``'s HEP collector; the tests read the outcome back from the API
(``/api/v1/calls/{call_id}`` and its ladder), the way an engineer would.

Kamailio stamps a mirrored message when it mirrors it (FACTS.md): a relayed request can be
stamped after the reply it caused. Ladder checks therefore compare the caller's side of the
proxy in time order (sequential by construction, the UAS pauses between its replies) and the
whole ladder as a multiset of hops.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import KAMAILIO_CAPTURE_ID, Pipeline, need_peers
from tests.peers import harness

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PAUSE_MS = 2000  # the answered call's length (sipp -d)
TRYING = "100 trying -- your call is important to us"  # Kamailio tm's own 100


def new_call_id(case: str) -> str:
    return f"cs-{case}-{secrets.token_hex(5)}@callscope-e2e"


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def one_leg(pipeline: Pipeline, call_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    doc = pipeline.call(call_id, lambda d: len(d["legs"]) == 1 and done(d["legs"][0]))
    leg: dict[str, Any] = doc["legs"][0]
    return leg


def place(
    scenario_path: Path,
    workdir: Path,
    kamailio: harness.Kamailio,
    target: str,
    call_id: str,
    pause_ms: int = 0,
) -> harness.SippResult:
    result = harness.run_uac(
        scenario_path, workdir, target=target, proxy=kamailio.hostport, call_id=call_id, pause_ms=pause_ms, timeout=20
    )
    assert result.returncode == 0, result.describe() + "\n--- kamailio ---\n" + kamailio.process.log_tail()
    return result


def hop(arrow: dict[str, Any], columns: dict[str, int]) -> tuple[str, int, int]:
    return (arrow["label"], columns[arrow["from"]], columns[arrow["to"]])


def ladder_hops(pipeline: Pipeline, call_id: str) -> list[tuple[str, int, int]]:
    """The ladder's arrows as (label, from port, to port) in the API's order."""
    ladder = pipeline.ladder(call_id)
    assert ladder["call_id"] == call_id
    columns = {c["id"]: int(c["port"]) for c in ladder["columns"]}
    return [hop(a, columns) for a in ladder["arrows"]]


# --------------------------------------------------------------------------- the peer alone


def test_kamailio_mirrors_requests_and_replies_as_hep3(tmp_path: Path) -> None:
    """Without callscope: Kamailio's siptrace sends HEP3 for both directions of a real call."""
    need_peers("kamailio", "sipp")
    sink = harness.HepSink.open()
    kam = harness.start_kamailio(tmp_path / "kamailio", hep_port=sink.port, capture_id=KAMAILIO_CAPTURE_ID)
    uas = harness.start_uas(harness.SIPP_DIR / "uas_answer.xml", tmp_path, name="uas")
    try:
        call_id = new_call_id("hepsink")
        place(harness.SIPP_DIR / "uac_answered.xml", tmp_path, kam, uas.hostport, call_id)

        def bye_answered(packets: list[bytes]) -> bool:
            payloads = [harness.parse_hep3(p).payload for p in packets]
            return sum(p.startswith(b"SIP/2.0 200") and b"CSeq: 2 BYE" in p for p in payloads) >= 2

        packets = sink.wait_for("the BYE's 200 OK on both sides of the proxy", bye_answered)
    finally:
        uas.stop()
        kam.stop()
        sink.close()
    assert all(p.startswith(b"HEP3") for p in packets)
    heps = [harness.parse_hep3(p) for p in packets]
    assert {h.capture_id for h in heps} == {KAMAILIO_CAPTURE_ID}
    assert {h.proto_type for h in heps} == {1}  # SIP
    ours = [h for h in heps if f"Call-ID: {call_id}".encode() in h.payload]
    first_lines = Counter(h.payload.split(b"\r\n", 1)[0].split(b" sip:", 1)[0] for h in ours)
    assert first_lines[b"INVITE"] == 2  # received and relayed
    assert first_lines[b"SIP/2.0 180 Ringing"] == 2
    assert first_lines[b"SIP/2.0 200 OK"] == 4  # INVITE and BYE, each in and out
    # The correlation id chunk (0x11) carries the Call-ID on requests Kamailio received.
    assert {h.correlation_id for h in ours if h.payload.startswith(b"INVITE")} == {call_id, None}


# --------------------------------------------------------------------------- through callscope


def test_answered_call_caller_hangs_up(
    pipeline: Pipeline, kamailio: harness.Kamailio, uas_factory: Callable[[str, str], harness.Uas], e2e_dir: Path
) -> None:
    uas = uas_factory("uas_answer.xml", "uas-answered")
    call_id = new_call_id("answered")
    uac = place(harness.SIPP_DIR / "uac_answered.xml", e2e_dir / "sipp", kamailio, uas.hostport, call_id, PAUSE_MS)

    leg = one_leg(pipeline, call_id, lambda leg: leg["state"] == "completed")
    assert leg["status"] == 200
    assert leg["answered_at"] is not None
    assert leg["ended_at"] is not None
    assert leg["ended_by"] == "caller"
    assert "proxy1" in leg["nodes"]
    assert leg["duration_secs"] == pytest.approx(PAUSE_MS / 1000, abs=0.5)  # ACK delay 100 ms + pause
    assert ts(leg["started_at"]) <= ts(leg["ringing_at"]) <= ts(leg["answered_at"]) <= ts(leg["ended_at"])

    # The ladder, once every mirrored message is in (12: Kamailio does not mirror the stateless ACK relay).
    pipeline.wait_json(f"/api/v1/calls/{call_id}/ladder", lambda d: len(d["arrows"]) >= 12)
    hops = ladder_hops(pipeline, call_id)
    caller, proxy, callee = uac.port, kamailio.sip_port, uas.port
    caller_side = [h for h in hops if caller in h[1:]]
    assert caller_side == [
        ("INVITE", caller, proxy),
        (TRYING, proxy, caller),
        ("180 Ringing", proxy, caller),
        ("200 OK", proxy, caller),
        ("ACK", caller, proxy),
        ("BYE", caller, proxy),
        ("200 OK", proxy, caller),
    ]
    callee_side = Counter(h for h in hops if callee in h[1:])
    assert callee_side == Counter(
        [
            ("INVITE", proxy, callee),
            ("180 Ringing", callee, proxy),
            ("200 OK", callee, proxy),
            ("BYE", proxy, callee),
            ("200 OK", callee, proxy),
        ]
    )
    assert len(hops) == 12


@pytest.mark.parametrize(
    ("case", "uas_scenario", "status", "state"),
    [
        ("busy", "uas_busy.xml", 486, "failed"),
        ("notfound", "uas_not_found.xml", 404, "failed"),
    ],
)
def test_callee_rejects(
    pipeline: Pipeline,
    kamailio: harness.Kamailio,
    uas_factory: Callable[[str, str], harness.Uas],
    e2e_dir: Path,
    case: str,
    uas_scenario: str,
    status: int,
    state: str,
) -> None:
    uas = uas_factory(uas_scenario, f"uas-{case}")
    call_id = new_call_id(case)
    work = e2e_dir / "sipp"
    place(harness.scenario("uac_failure.xml", work, status=status), work, kamailio, uas.hostport, call_id)

    leg = one_leg(pipeline, call_id, lambda leg: leg["status"] == status)
    assert leg["state"] == state
    assert leg["answered_at"] is None
    assert "proxy1" in leg["nodes"]
    pipeline.wait_json(
        f"/api/v1/calls/{call_id}/ladder",
        lambda d: sum(a["status"] == status for a in d["arrows"]) >= 2,  # from the callee, then to the caller
    )


def test_unreachable_callee_times_out_with_408_from_the_proxy(
    pipeline: Pipeline, kamailio: harness.Kamailio, e2e_dir: Path
) -> None:
    """Nothing listens at the R-URI: Kamailio's tm answers 408 itself after fr_timer (2 s)."""
    call_id = new_call_id("timeout")
    work = e2e_dir / "sipp"
    nowhere = f"{harness.LOOPBACK}:{harness.free_udp_port()}"
    place(harness.scenario("uac_failure.xml", work, status=408), work, kamailio, nowhere, call_id)

    leg = one_leg(pipeline, call_id, lambda leg: leg["status"] == 408)
    assert leg["state"] in {"failed", "timeout"}
    assert leg["answered_at"] is None
    messages = pipeline.call(call_id, lambda d: any(m["status"] == 408 for m in d["messages"]))["messages"]
    (reply,) = [m for m in messages if m["status"] == 408]
    assert reply["src_port"] == kamailio.sip_port  # generated by the proxy, not by a UAS


def test_caller_cancels_before_answer(
    pipeline: Pipeline, kamailio: harness.Kamailio, uas_factory: Callable[[str, str], harness.Uas], e2e_dir: Path
) -> None:
    uas = uas_factory("uas_ring_cancel.xml", "uas-cancel")
    call_id = new_call_id("cancel")
    place(harness.SIPP_DIR / "uac_cancel.xml", e2e_dir / "sipp", kamailio, uas.hostport, call_id)

    leg = one_leg(pipeline, call_id, lambda leg: leg["state"] == "cancelled")
    assert leg["status"] == 487
    assert leg["answered_at"] is None
    assert leg["ringing_at"] is not None
    assert leg["ended_by"] == "caller"
    methods = Counter(m["method"] for m in pipeline.call(call_id, lambda d: True)["messages"] if m["is_request"])
    assert methods["CANCEL"] >= 2  # received and relayed


def test_options_to_the_proxy_are_messages_not_a_call(
    pipeline: Pipeline, kamailio: harness.Kamailio, e2e_dir: Path
) -> None:
    call_id = new_call_id("options")
    result = harness.run_uac(
        harness.SIPP_DIR / "uac_options.xml",
        e2e_dir / "sipp",
        target=kamailio.hostport,
        proxy=None,
        call_id=call_id,
        service="",
        timeout=10,
    )
    assert result.returncode == 0, result.describe()

    doc = pipeline.call(call_id, lambda d: len(d["messages"]) >= 2)
    assert doc["legs"] == []
    lines = [(m["method"] if m["is_request"] else m["status"], m["node"]) for m in doc["messages"]]
    assert lines == [("OPTIONS", "proxy1"), (200, "proxy1")]
    assert pipeline.get("/api/v1/calls", call_id=call_id).json().get("legs", []) == []
