"""Replay formats ``pcap`` and ``hep``: captures through the live envelope path; end to end via the CLI."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from callscope.formats import FORMATS, detect
from schemas.envelope import decode as decode_envelope
from tests.cli_process import CLI, start
from tests.corpus import corpus_file
from tests.hep_collector.conftest import hep_packet, sip_message


def _items(fmt: str, path: Path, node: str = "replayer") -> list[object]:
    return list(FORMATS[fmt].read(path, node=node, role="sbc"))


def test_formats_are_registered_and_sniffed() -> None:
    assert {"pcap", "hep"} <= set(FORMATS)
    assert detect(corpus_file("sngrep/tests/aaa.pcap")) is FORMATS["pcap"]
    assert detect(corpus_file("ndpi/tests/cfgs/default/pcap/sip_hello.pcapng")) is FORMATS["pcap"]


def test_pcap_sip_becomes_the_same_envelopes_as_live_traffic() -> None:
    items = _items("pcap", corpus_file("sngrep/tests/aaa.pcap"))
    assert len(items) == 81
    envelopes = [decode_envelope(i.envelope) for i in items]  # type: ignore[attr-defined]
    assert {e.kind for e in envelopes} == {"sip"}
    assert len({e.key for e in envelopes}) == 6
    assert {e.node for e in envelopes} == {"replayer"}  # --node names packets that carry none
    assert {e.role for e in envelopes} == {"sbc"}
    assert len({e.id for e in envelopes}) == 81
    first = envelopes[0]
    assert first.ts.year == 2005  # the capture time, not the replay time
    assert first.body.transport == "udp"  # type: ignore[union-attr]
    # Replaying twice gives the same ids (deduplicated downstream).
    again = [decode_envelope(i.envelope).id for i in _items("pcap", corpus_file("sngrep/tests/aaa.pcap"))]  # type: ignore[attr-defined]
    assert again == [e.id for e in envelopes]


def test_pcap_with_hep_inside_udp_is_decoded_as_hep() -> None:
    items = _items("pcap", corpus_file("hep-wireshark/pcap/hep.pcap"))
    kinds = Counter(i.kind for i in items)  # type: ignore[attr-defined]
    assert kinds == {"sip": 6, "log": 1, "rtcp": 1}
    envelopes = [decode_envelope(i.envelope) for i in items]  # type: ignore[attr-defined]
    assert {e.key for e in envelopes} == {"qgf3dm9rudi@127.0.0.1"}
    assert {e.node for e in envelopes} != {"replayer"}  # the HEP capture id names the node


def test_pcap_tcp_and_non_sip() -> None:
    tcp = _items("pcap", corpus_file("heplify/example/pcap/sip_ipv4_tcp_fragmented.pcap"))
    assert len(tcp) == 406
    assert all(i.error is None for i in tcp)  # type: ignore[attr-defined]
    assert {orjson.loads(i.envelope)["body"]["transport"] for i in tcp} == {"tcp"}  # type: ignore[attr-defined]
    assert _items("pcap", corpus_file("ndpi/tests/cfgs/default/pcap/http_on_sip_port.pcap")) == []


def test_corrupt_capture_ends_in_an_error_item(tmp_path: Path) -> None:
    data = corpus_file("sngrep/tests/ipip.pcap").read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[: len(data) - 100])
    items = _items("pcap", path)
    assert items[-1].error is not None  # type: ignore[attr-defined]
    assert items[-1].error.reason == "truncated"  # type: ignore[attr-defined]
    assert all(i.error is None for i in items[:-1])  # type: ignore[attr-defined]


def test_hep_file_format_with_garbage_in_between(tmp_path: Path) -> None:
    good = [hep_packet(sip_message(call_id=f"h{i}@file")) for i in range(5)]
    path = tmp_path / "stream.hep"
    path.write_bytes(good[0] + good[1] + b"garbage!" + good[2] + good[3] + good[4])
    assert detect(path) is FORMATS["hep"]
    items = _items("hep", path)
    assert [i.key for i in items if i.error is None] == [f"h{i}@file" for i in range(5)]  # type: ignore[attr-defined]
    errors = [i for i in items if i.error is not None]  # type: ignore[attr-defined]
    assert len(errors) == 1
    assert errors[0].error.reason == "magic"  # type: ignore[attr-defined]


def test_hep_file_single_legacy_packets() -> None:
    v2 = _items("hep", corpus_file("sip3-salto-ce/hep_vectors/hep2_sip_PACKET_1.bin"))
    assert len(v2) == 1  # payload "SIP/2.0" is not a whole SIP message: dead-lettered, not lost
    v3 = _items("hep", corpus_file("heplify-server/hep_vectors/hep3_sip_options_200ok_hepPacket.bin"))
    assert [i.key for i in v3] == ["BC099884@6dfcffe8"]  # type: ignore[attr-defined]


@pytest.mark.e2e
def test_replay_a_capture_then_serve_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    capture = corpus_file("sngrep/tests/aaa.pcap")
    done = subprocess.run(
        [*CLI, "replay", "--data-dir", str(data_dir), "--no-progress", "--node", "lab1", str(capture)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "81 accepted, 0 dead-lettered" in done.stdout
    run = start(data_dir, "--hep-listen", "127.0.0.1:0")
    try:
        stats = httpx.get(f"{run.url}/api/v1/events/stats", headers=run.headers(), timeout=30).json()
        assert stats["tables"]["sip"]["events"] == 81
        assert stats["tables"]["sip"]["distinct_ids"] == 81
        page = httpx.get(
            f"{run.url}/api/v1/events",
            params={"kind": "sip", "key": decode_envelope(_items("pcap", capture)[0].envelope).key},  # type: ignore[attr-defined]
            headers=run.headers(),
            timeout=30,
        )
        assert page.status_code == 200, page.text
        assert page.json()["count"] >= 1
        assert {e["node"] for e in page.json()["events"]} == {"lab1"}
    finally:
        run.close()
