"""HEP traffic for the end-to-end benchmarks: distinct HEP3/SIP packets, a paced sender, peak RSS.

``bench/e2e_hep.py`` (embedded) and ``bench/e2e_hep_kafka.py`` (collector and processor
roles on a real broker) send the same packets the same way, so their figures compare.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any


def packets(n: int, seed: int) -> list[bytes]:
    """``n`` HEP3 packets, each an INVITE of its own call (Call-ID ``bench-<seed>-<i>``)."""
    from collectors.hep.decode import HepPacket, encode_hep3

    base = 1_700_000_000
    out = []
    for i in range(n):
        call_id = f"bench-{seed}-{i:09d}@10.1.0.1"
        sip = (
            f"INVITE sip:{i % 1000}@10.1.0.2 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 10.1.0.1:5060;branch=z9hG4bK{i:010d}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:caller@10.1.0.1>;tag={i:08x}\r\n"
            f"To: <sip:{i % 1000}@10.1.0.2>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 INVITE\r\n"
            "Contact: <sip:caller@10.1.0.1:5060>\r\n"
            "User-Agent: callscope-bench\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        pkt = HepPacket(
            version=3,
            family=2,
            protocol=17,
            src_ip="10.1.0.1",
            src_port=5060,
            dst_ip="10.1.0.2",
            dst_port=5060,
            ts_sec=base + i // 1000,
            ts_usec=(i % 1000) * 1000,
            payload=sip,
            capture_id=1,
        )
        out.append(encode_hep3(pkt))
    return out


def sender(port: int, n: int, rate: float, seed: int, ready: Any, go: Any, result: Any) -> None:
    """Process target: build the packets, set ``ready``, wait for ``go``, send at ``rate`` per second.

    Packets leave in 1 ms slots (``rate / 1000`` per slot), paced against the start time, so
    a late slot is caught up rather than lost. ``result.value`` gets the seconds sending took.
    """
    pkts = packets(n, seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    ready.set()
    go.wait()
    started = time.monotonic()
    slot = max(1, int(rate / 1000))  # packets per 1 ms
    send = sock.send
    for i in range(0, n, slot):
        for pkt in pkts[i : i + slot]:
            send(pkt)
        due = started + (i + slot) / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    result.value = time.monotonic() - started
    sock.close()


def peak_rss_mb(pid: int) -> float:
    """The peak resident set size (VmHWM) of a live process in MiB; NaN once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")
