"""Golden decodes of the corpus HEP vectors and of the HEP packets inside the corpus captures.

The corpus is read in place from ``../shared/corpus`` (see :func:`tests.hep.corpus_file`).
The expectations are the ones MANIFEST.md states, taken from the upstream tests.
"""

from __future__ import annotations

import orjson
import pytest

from callscope.settings import TopologyConfig
from collectors.hep.config import HepConfig
from collectors.hep.decode import HepError, decode
from collectors.hep.events import envelope_from_hep
from collectors.hep.pcap import read_packets
from collectors.hep.sip import SipError, parse
from schemas.envelope import validate
from tests.corpus import corpus_file


def _vector(name: str) -> bytes:
    return corpus_file(name).read_bytes()


def _udp_payloads(relative: str) -> list[bytes]:
    with corpus_file(relative).open("rb") as fh:
        return [p.payload for p in read_packets(fh) if p.ip_proto == 17]


def test_sip3_hepv2_packet_1() -> None:
    pkt = decode(_vector("sip3-salto-ce/hep_vectors/hep2_sip_PACKET_1.bin"))
    assert pkt.version == 2
    assert pkt.ts_us // 1000 == 1571254062044  # upstream createdAt (ms)
    assert (pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port) == ("10.0.0.4", 5060, "10.0.0.4", 5062)
    assert (pkt.capture_id, pkt.protocol, pkt.payload) == (1, 17, b"SIP/2.0")
    with pytest.raises(SipError):  # "SIP/2.0" alone is not a SIP message: dead-lettered, not dropped
        parse(pkt.payload)


def test_sip3_ipv4_mapped_truncated_packet_2() -> None:
    data = _vector("sip3-salto-ce/hep_vectors/hep3_sip_notify_ipv4mapped_PACKET_2.bin")
    assert len(data) == 140
    pkt = decode(data)
    assert pkt.truncated  # declared 544 bytes, chunks complete up to a payload: decoded like upstream
    assert (pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port) == ("79.142.86.118", 5063, "212.48.197.150", 5060)
    assert pkt.ts_us // 1000 == 1550492760263
    assert pkt.ts_usec % 1000 == 774
    assert (pkt.payload, pkt.payload_type, pkt.capture_id, pkt.auth_key) == (b"NOTIFY", 1, 2004, b"myhep")


def test_sip3_rtcp_json_packet_3() -> None:
    pkt = decode(_vector("sip3-salto-ce/hep_vectors/hep3_rtcp_json_PACKET_3.bin"))
    assert pkt.payload_type == 5
    assert len(pkt.payload) == 546
    assert pkt.ts_us // 1000 == 1602657480066
    assert pkt.correlation_id == "946b5b3c-888a-1239-8881-00155d09c401"
    assert (pkt.capture_id, pkt.vlan) == (2002, 0)
    assert (pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port) == ("192.168.9.119", 17969, "192.168.4.140", 5005)
    kind, key, raw = envelope_from_hep(
        pkt, topology=TopologyConfig(), hep=HepConfig(), received_us=0, collector_node="c"
    )
    assert (kind, key) == ("rtcp", "946b5b3c-888a-1239-8881-00155d09c401")
    report = orjson.loads(raw)["body"]["report"]
    assert report["ssrc"] == 2141660700
    block = report["report_blocks"][0]
    assert (block["packets_lost"], block["ia_jitter"], block["highest_seq_no"]) == (1, 42, 34312)
    assert "report_blocks_xr" in report
    validate(orjson.loads(raw))


def test_heplify_server_hep3_options_200() -> None:
    pkt = decode(_vector("heplify-server/hep_vectors/hep3_sip_options_200ok_hepPacket.bin"))
    assert (pkt.version, pkt.ts_sec, pkt.ts_usec, pkt.capture_id, pkt.auth_key) == (3, 1520606104, 119540, 0, b"")
    assert (pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port) == ("192.168.247.250", 5060, "192.168.245.250", 5060)
    msg = parse(pkt.payload)
    assert (msg.status, msg.method, msg.call_id) == (200, "OPTIONS", "BC099884@6dfcffe8")
    assert msg.sdp is not None
    assert msg.sdp["media"]


def test_heplify_server_hepv1_and_raw_frame_carry_the_same_sip() -> None:
    pkt = decode(_vector("heplify-server/hep_vectors/hep1_sip_200ok_hepV2Packet.bin"))
    assert (pkt.version, pkt.ts_sec, pkt.capture_id) == (1, 0, None)
    assert (pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port) == ("10.0.1.100", 5060, "192.168.0.254", 5060)
    assert parse(pkt.payload).status == 200
    frame = _vector("heplify-server/hep_vectors/raw_ethernet_frame_rawPacket.bin")
    with pytest.raises(HepError):  # a raw Ethernet frame is not HEP
        decode(frame)
    hep3 = decode(_vector("heplify-server/hep_vectors/hep3_sip_options_200ok_hepPacket.bin"))
    assert hep3.payload in frame  # the same SIP 200 OK as the HEP3 vector


def test_hep_wireshark_pcap_eight_packets_one_correlation_id() -> None:
    payloads = _udp_payloads("hep-wireshark/pcap/hep.pcap")
    assert len(payloads) == 8
    packets = [decode(p) for p in payloads]
    assert [p.payload_type for p in packets] == [1, 1, 1, 1, 100, 1, 1, 5]
    assert {p.correlation_id for p in packets} == {"qgf3dm9rudi@127.0.0.1"}
    assert {p.auth_key for p in packets} == {b"myHep"}
    assert {p.capture_id for p in packets} == {2001}
    assert [(p.src_port, p.dst_port) for p in packets if p.payload_type != 1] == [(0, 0), (0, 0)]
    hep = HepConfig(auth_key="myHep")
    kinds = []
    for pkt in packets:
        kind, key, raw = envelope_from_hep(pkt, topology=TopologyConfig(), hep=hep, received_us=0, collector_node="c")
        env = validate(orjson.loads(raw))
        assert key == "qgf3dm9rudi@127.0.0.1"
        kinds.append(kind)
        if kind == "log":
            assert env.body.call_id == "qgf3dm9rudi@127.0.0.1"  # type: ignore[union-attr]
    assert kinds.count("sip") == 6
    assert kinds.count("log") == 1
    assert kinds.count("rtcp") == 1
    sip = [parse(p.payload) for p in packets if p.payload_type == 1]
    assert [(m.method, m.status) for m in sip] == [
        ("INVITE", None),
        ("INVITE", 100),
        ("INVITE", 407),
        ("OPTIONS", None),
        ("OPTIONS", 200),
        ("PUBLISH", None),
    ]
    vq = sip[-1].vq_report
    assert vq is not None
    assert vq["CallID"] == "qgf3dm9rudi@127.0.0.1"
    assert vq["PacketLoss"] == {"NLR": 8.0}
    assert vq["Delay"] == {"IAJ": 93}
    assert vq["LocalAddr"] == {"IP": "192.168.1.55", "PORT": 30539}
    assert sip[0].sdp is not None
    assert sip[0].sdp["media"][0]["codecs"] == ["G729/8000", "PCMU/8000", "PCMA/8000", "telephone-event/8000"]
    rtcp = orjson.loads(packets[-1].payload)
    assert (rtcp["report_count"], len(rtcp["report_blocks"]), rtcp["report_blocks"][0]["lsr"] < 0) == (0, 1, True)


def test_hep_wireshark_compressed_pcapng() -> None:
    payloads = _udp_payloads("hep-wireshark/pcap/hep3_compressed.pcap.pcapng")
    assert len(payloads) == 21
    packets = [decode(p) for p in payloads]
    assert all(p.compressed for p in packets)
    assert {(p.capture_id, p.auth_key, p.protocol) for p in packets} == {(228, b"myHep", 6)}
    messages = [parse(p.payload) for p in packets]
    # each packet was sent three times (broadcast + docker bridge): 7 distinct SIP messages
    distinct = list(dict.fromkeys(payloads))
    assert len(distinct) == 7
    firsts = [parse(decode(p).payload) for p in distinct]
    assert [(m.method, m.status) for m in firsts] == [
        ("REGISTER", None),
        ("REGISTER", None),
        ("REGISTER", 401),
        ("REGISTER", 401),
        ("REGISTER", None),
        ("REGISTER", None),
        ("REGISTER", 200),
    ]
    assert len({m.call_id for m in messages}) == 1
    # duplicates get the same event id: the store deduplicates them
    ids = set()
    for p in packets:
        _, _, raw = envelope_from_hep(p, topology=TopologyConfig(), hep=HepConfig(), received_us=0, collector_node="c")
        ids.add(orjson.loads(raw)["id"])
    assert len(ids) == 7
