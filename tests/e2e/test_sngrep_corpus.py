"""Recorded SIP from public captures, replayed by a real HEP agent into callscope.

``sngrep -N -q -I <pcap> -H udp:127.0.0.1:<hep port>`` reads a pcap of the conformance corpus
(``../shared/corpus``, read in place) and sends every SIP message it finds as HEP3; the legs and
registrations callscope builds must match the corpus MANIFEST's expectations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.corpus import corpus_file
from tests.e2e.conftest import SNGREP_CAPTURE_ID_AS_SENT, Pipeline, need_peers
from tests.peers import harness

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


# sngrep/tests/aaa.pcap (MANIFEST row 125): 81 SIP messages, 6 Call-IDs. Four INVITE dialogs
# (403, 403 after a 407 challenge, 480, and one CANCELled with retransmits that ends in 408)
# and two REGISTER dialogs (401 challenge loops; 200 in the end).
AAA_MESSAGES = 81
AAA_INVITES = {
    "85216695-42dcdb1d@192.168.1.2": ("failed", 403),
    "24487391-449bf2a0@192.168.1.2": ("failed", 403),
    "11894297-4432a9f8@192.168.1.2": ("failed", 480),
    "105090259-446faf7a@192.168.1.2": ("cancelled", 408),
}
AAA_REGISTER_CALL_IDS = {"578222729-4665d775@578222732-4665d772", "29858147-465b0752@29858051-465b07b2"}
AAA_AORS = {"35104723@sip.cybercity.dk", "voi18062@sip.cybercity.dk"}


@pytest.fixture(scope="module")
def aaa_replayed(pipeline: Pipeline, e2e_dir: Path) -> Pipeline:
    """aaa.pcap replayed once by sngrep into the module's callscope."""
    need_peers("sngrep")
    pcap = corpus_file("sngrep/tests/aaa.pcap")
    proc = harness.sngrep_replay(pcap, pipeline.hep_port, e2e_dir / "sngrep")
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode(errors="replace")
    return pipeline


def messages_of(pipeline: Pipeline, call_id: str, count: int) -> dict[str, Any]:
    return pipeline.call(call_id, lambda d: len(d["messages"]) >= count)


def test_every_sip_message_of_the_pcap_is_stored_once(aaa_replayed: Pipeline) -> None:
    stats = aaa_replayed.wait_json(
        "/api/v1/events/stats", lambda d: d["tables"]["sip"]["events"] >= AAA_MESSAGES, timeout=30
    )
    assert stats["tables"]["sip"]["events"] == AAA_MESSAGES
    assert stats["tables"]["sip"]["distinct_ids"] == AAA_MESSAGES
    assert stats["deadletters"] == 0


def test_invite_dialogs_end_as_the_manifest_says(aaa_replayed: Pipeline) -> None:
    doc = aaa_replayed.wait_json(
        "/api/v1/calls",
        lambda d: {leg["call_id"] for leg in d["legs"]} >= set(AAA_INVITES),
        timeout=30,
        limit=100,
    )
    outcomes = {leg["call_id"]: (leg["state"], leg["status"]) for leg in doc["legs"] if leg["call_id"] in AAA_INVITES}
    assert outcomes == AAA_INVITES
    assert not {leg["call_id"] for leg in doc["legs"]} & AAA_REGISTER_CALL_IDS  # registrations are not calls
    for call_id in AAA_INVITES:
        (leg,) = aaa_replayed.call(call_id, lambda d: len(d["legs"]) == 1)["legs"]
        assert leg["answered_at"] is None
        assert leg["started_at"].startswith("2005-07-04T")  # the capture's time, not the replay's


def test_registrations_end_registered_after_401_challenges(aaa_replayed: Pipeline) -> None:
    doc = aaa_replayed.wait_json(
        "/api/v1/registrations", lambda d: {r["aor"] for r in d["current"]} >= AAA_AORS, timeout=30
    )
    current = {r["aor"]: r for r in doc["current"]}
    assert set(current) == AAA_AORS
    assert {current[aor]["call_id"] for aor in AAA_AORS} == AAA_REGISTER_CALL_IDS
    assert all(r["registered_at"] is not None for r in current.values())
    assert current["35104723@sip.cybercity.dk"]["last_attempt_status"] == 200
    challenged = messages_of(aaa_replayed, "578222729-4665d775@578222732-4665d772", 26)["messages"]
    statuses = [m["status"] for m in challenged if not m["is_request"]]
    assert statuses.count(401) >= 2
    assert 200 in statuses


def test_sngrep_capture_id_maps_to_its_topology_node(aaa_replayed: Pipeline) -> None:
    doc = messages_of(aaa_replayed, "85216695-42dcdb1d@192.168.1.2", 6)
    assert SNGREP_CAPTURE_ID_AS_SENT == 0x07D2_0000
    assert {m["node"] for m in doc["messages"]} == {"capture1"}
