"""Per-packet cost of the HEP hot path on one core: decode + SIP parse + envelope encode.

    .venv/bin/python bench/hep_decode.py [--packets N] [--runs 3] [--pure | --both] [--profile]

The mix is one call's worth of realistic packets, cycled: INVITE with SDP, 100, 180,
200 with SDP, ACK, BYE, 200, plus REGISTER/200, OPTIONS/200 and two rtpengine RTCP JSON
reports (14 packets, 12 of them SIP), each encoded as Kamailio does (HEP3, spec chunk
order, correlation id). Every packet gets distinct bytes (Call-ID and time vary), so
nothing per call or per packet is served from a cache. What the decoder and the envelope
builder do cache is per agent or per host, bounded, and hits in production as it does
here: the node of a capture id, the text of an address (up to 4096 hosts), the spelling
of a header name, the event-id hasher of a node. Prints packets per second, the median of
the runs with their min-max spread. ``--profile`` prints a cProfile of one run instead.

It measures the path the collector uses -- the C accelerator when it is built, else the
pure-Python reference (see :mod:`collectors.hep.speedups`) -- and prints which. ``--pure``
measures the reference path; ``--both`` measures the two in alternating runs of one process.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from callscope.settings import NodeConfig, TopologyConfig
from collectors.hep import speedups
from collectors.hep.config import HepConfig
from collectors.hep.decode import HepPacket, decode, decode_pure, encode_hep3
from collectors.hep.events import envelope_from_hep, envelope_from_hep_pure

TOPOLOGY = TopologyConfig(nodes=(NodeConfig(name="sbc-1", role="sbc", hep_capture_id=2001),))
HEP = HepConfig()
VARIANTS = 500

_SDP = (
    "v=0\r\no=- 3866411411 3866411411 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    "m=audio 16384 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
)


def _sip(start: str, cseq: str, call_id: str, *, to_tag: bool, sdp: bool = False, extra: str = "") -> bytes:
    lines = [
        start,
        "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-524287-1---77ba4d6f02c8e6a1;rport",
        "Max-Forwards: 70",
        "Contact: <sip:1001@10.0.0.1:5060>",
        f"To: <sip:2002@pbx.example.com>{';tag=as5e1f0c2a' if to_tag else ''}",
        'From: "Alice" <sip:1001@pbx.example.com>;tag=8a41b3d7',
        f"Call-ID: {call_id}",
        f"CSeq: {cseq}",
        "User-Agent: Zoiper rv2.10.8",
        "Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE",
    ]
    if extra:
        lines.append(extra)
    body = _SDP if sdp else ""
    if sdp:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def _rtcp(i: int) -> bytes:
    return (
        '{"sender_information":{"ntp_timestamp_sec":3650797214,"ntp_timestamp_usec":1321734,"octets":16960,'
        f'"rtp_timestamp":16960,"packets":{100 + i}}},"ssrc":451916597,"type":200,"report_count":1,'
        '"report_blocks":[{"source_ssrc":898343773,"highest_seq_no":20881,"fraction_lost":0,"ia_jitter":1,'
        '"packets_lost":0,"lsr":1097006646,"dlsr":7733}],"sdes_ssrc":451916597}'
    ).encode()


def build_mix(variants: int = VARIANTS) -> list[bytes]:
    """HEP3 datagrams: ``variants`` calls x 14 packets."""
    out = []
    for v in range(variants):
        cid = f"{v:08x}-1f2e3d4c5b6a@10.0.0.1"
        msgs = [
            (_sip("INVITE sip:2002@pbx.example.com SIP/2.0", "1 INVITE", cid, to_tag=False, sdp=True), 1),
            (_sip("SIP/2.0 100 Trying", "1 INVITE", cid, to_tag=False), 1),
            (_sip("SIP/2.0 180 Ringing", "1 INVITE", cid, to_tag=True), 1),
            (_sip("SIP/2.0 200 OK", "1 INVITE", cid, to_tag=True, sdp=True), 1),
            (_sip("ACK sip:2002@10.0.0.2:5060 SIP/2.0", "1 ACK", cid, to_tag=True), 1),
            (_rtcp(v), 5),
            (_rtcp(v + 1), 5),
            (_sip("BYE sip:2002@10.0.0.2:5060 SIP/2.0", "2 BYE", cid, to_tag=True), 1),
            (_sip("SIP/2.0 200 OK", "2 BYE", cid, to_tag=True), 1),
            (
                _sip(
                    "REGISTER sip:pbx.example.com SIP/2.0", "7 REGISTER", "r" + cid, to_tag=False, extra="Expires: 300"
                ),
                1,
            ),
            (_sip("SIP/2.0 200 OK", "7 REGISTER", "r" + cid, to_tag=True, extra="Expires: 300"), 1),
            (_sip("OPTIONS sip:carrier.example.net SIP/2.0", "1 OPTIONS", "o" + cid, to_tag=False), 1),
            (_sip("SIP/2.0 200 OK", "1 OPTIONS", "o" + cid, to_tag=True), 1),
            (_sip("SIP/2.0 100 Trying", "1 INVITE", cid, to_tag=False), 1),
        ]
        for i, (payload, ptype) in enumerate(msgs):
            pkt = HepPacket(
                3,
                2,
                17,
                "10.0.0.1",
                5060,
                "10.0.0.2",
                5060,
                1_700_000_000 + v,
                i * 1000,
                payload_type=ptype,
                payload=payload,
                capture_id=2001,
                auth_key=b"myHep",
                correlation_id=cid,
            )
            out.append(encode_hep3(pkt))
    return out


def _once(mix: list[bytes], n: int, pure: bool = False) -> float:
    topology, hep = TOPOLOGY, HEP
    received = 1_700_000_000_000_000
    m = len(mix)
    dec, envelope = (decode_pure, envelope_from_hep_pure) if pure else (decode, envelope_from_hep)
    start = time.perf_counter()
    for i in range(n):
        pkt = dec(mix[i % m])
        envelope(pkt, topology=topology, hep=hep, received_us=received, collector_node="col")
    return n / (time.perf_counter() - start)


def path(pure: bool = False) -> str:
    """The path measured: ``"c"`` (the accelerator) or ``"python"``."""
    return "python" if pure else speedups.PATH


def _result(rates: list[float], n: int, runs: int, mix: list[bytes], pure: bool) -> dict[str, Any]:
    return {
        "hep_decode_pps": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "packets": n,
        "runs": runs,
        "mix_bytes_avg": sum(map(len, mix)) / len(mix),
        "path": path(pure),
    }


def run(n: int = 200_000, runs: int = 3, *, pure: bool = False) -> dict[str, Any]:
    """Packets per second (median of ``runs``) for ``n`` packets per run, on the collector's path or the pure one."""
    mix = build_mix()
    _once(mix, min(n, 5000), pure)  # warm caches
    rates = [_once(mix, n, pure) for _ in range(runs)]
    return _result(rates, n, runs, mix, pure)


def run_both(n: int = 200_000, runs: int = 3) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`run` for the collector's path and the pure one, their runs alternating (same machine state)."""
    mix = build_mix()
    _once(mix, min(n, 5000), False)
    _once(mix, min(n, 5000), True)
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(runs):
        for pure in (False, True):
            rates[pure].append(_once(mix, n, pure))
    return _result(rates[False], n, runs, mix, False), _result(rates[True], n, runs, mix, True)


def _print(res: dict[str, Any]) -> None:
    print(
        f"hep_decode [{res['path']}]: {res['hep_decode_pps']:,.0f} packets/s median of {res['runs']} "
        f"(spread {res['min']:,.0f}-{res['max']:,.0f}), {res['packets']:,} packets/run, "
        f"avg packet {res['mix_bytes_avg']:.0f} B; target 100,000, floor 50,000"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one run instead")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--pure", action="store_true", help="measure the pure-Python reference path")
    which.add_argument("--both", action="store_true", help="measure the collector's path and the pure one")
    args = parser.parse_args(argv)
    if args.profile:
        import cProfile
        import pstats

        mix = build_mix()
        prof = cProfile.Profile()
        prof.runcall(_once, mix, args.packets, args.pure)
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        return 0
    if args.both:
        for res in run_both(args.packets, args.runs):
            _print(res)
        return 0
    _print(run(args.packets, args.runs, pure=args.pure))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
