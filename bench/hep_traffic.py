"""HEP traffic for the end-to-end benchmarks: distinct HEP3/SIP packets, a paced sender, peak RSS,
and stopping the ``callscope run`` processes they measure.

``bench/e2e_hep.py`` (embedded) and ``bench/e2e_hep_kafka.py`` (collector and processor
roles on a real broker) send the same packets the same way, so their figures compare.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

_SDP = (
    "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n"
)
CALLER, CALLEE = ("10.1.0.1", 5060), ("10.1.0.2", 5060)
# One call: (phase, start line, CSeq, from the caller, To tag, SDP). Phases leave about a second apart.
CALL = (
    (0, "INVITE sip:{callee}@10.1.0.2 SIP/2.0", "1 INVITE", True, False, True),
    (0, "SIP/2.0 100 Trying", "1 INVITE", False, False, False),
    (0, "SIP/2.0 180 Ringing", "1 INVITE", False, True, False),
    (1, "SIP/2.0 200 OK", "1 INVITE", False, True, True),
    (1, "ACK sip:{callee}@10.1.0.2:5060 SIP/2.0", "1 ACK", True, True, False),
    (2, "BYE sip:{callee}@10.1.0.2:5060 SIP/2.0", "2 BYE", True, True, False),
    (2, "SIP/2.0 200 OK", "2 BYE", False, True, False),
)


def _message(i: int, seed: int, step: tuple[int, str, str, bool, bool, bool]) -> bytes:
    _, start, cseq, from_caller, to_tag, sdp = step
    callee = i % 1000
    src = CALLER if from_caller else CALLEE
    body = _SDP.format(ip=src[0], port=16384 + 2 * (i % 8000)) if sdp else ""
    lines = [
        start.format(callee=callee),
        f"Via: SIP/2.0/UDP 10.1.0.1:5060;branch=z9hG4bK{i:010d}{cseq[0]}",
        "Max-Forwards: 70",
        f"From: <sip:caller@10.1.0.1>;tag={i:08x}",
        f"To: <sip:{callee}@10.1.0.2>" + (f";tag=b{i:08x}" if to_tag else ""),
        f"Call-ID: bench-{seed}-{i:09d}@10.1.0.1",
        f"CSeq: {cseq}",
        "Contact: <sip:caller@10.1.0.1:5060>" if from_caller else f"Contact: <sip:{callee}@10.1.0.2:5060>",
        "User-Agent: callscope-bench" if from_caller else "Server: callscope-bench",
    ]
    if sdp:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def packets(n: int, seed: int, rate: float = 30_000.0) -> list[bytes]:
    """``n`` HEP3 packets of complete calls (Call-ID ``bench-<seed>-<i>``), in the order they are sent.

    A call is 7 messages: INVITE (SDP), 100, 180, 200 (SDP), ACK, BYE, 200. Calls go in blocks
    of about one second of sending at ``rate``; block b carries the setup (INVITE, 100, 180) of
    its own calls, the answer (200, ACK) of block b-1's and the end (BYE, 200) of block b-2's,
    so a call's messages reach the processors spread over about three seconds, as the
    phases of real calls do, not back to back. Packets are stamped from now on at ``rate``.
    Only the last call may be cut short (``n`` need not be a multiple of 7).
    """
    from callscope.traffic.sip import hep

    calls = -(-n // len(CALL))
    block = max(1, int(rate / len(CALL)))
    phases = 1 + max(step[0] for step in CALL)
    order: list[tuple[int, tuple[int, str, str, bool, bool, bool]]] = []
    for b in range(-(-calls // block) + phases - 1):
        for phase in range(phases):
            first = (b - phase) * block
            if first < 0 or first >= calls:
                continue
            for i in range(first, min(first + block, calls)):
                order.extend((i, step) for step in CALL if step[0] == phase)
    base_us = int(time.time() * 1e6)
    out = []
    for k, (i, step) in enumerate(order[:n]):
        ts_us = base_us + int(k * 1e6 / rate)
        src, dst = (CALLER, CALLEE) if step[3] else (CALLEE, CALLER)
        out.append(hep(ts_us=ts_us, src=src, dst=dst, capture_id=1, payload=_message(i, seed, step)))
    return out


def sender(port: int, n: int, rate: float, seed: int, ready: Any, go: Any, result: Any) -> None:
    """Process target: build the packets, set ``ready``, wait for ``go``, send at ``rate`` per second.

    Packets leave in 1 ms slots (``rate / 1000`` per slot), paced against the start time, so
    a late slot is caught up rather than lost. ``result.value`` gets the seconds sending took.
    """
    pkts = packets(n, seed, rate)
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


def cpu_secs(pid: int) -> float:
    """User + system CPU seconds a live process used so far (NaN once gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def machine_busy_secs() -> float:
    """CPU seconds the whole machine spent busy so far, every core and process (``/proc/stat``: user, nice,
    system, irq, softirq, steal; not idle or iowait)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def busy_fraction(busy_secs: float, elapsed_secs: float) -> float:
    """``machine_busy_secs`` spent over ``elapsed_secs`` as a share of every core's time (1.0: all busy throughout)."""
    return round(busy_secs / (elapsed_secs * (os.cpu_count() or 1)), 2) if elapsed_secs > 0 else 0.0


def udp_rcvbuf_errors() -> int:
    """The host's UDP RcvbufErrors counter (datagrams the kernel dropped on a full socket buffer)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    return int(dict(zip(lines[0], lines[1], strict=True))["RcvbufErrors"])


def peak_rss_mb(pid: int) -> float:
    """The peak resident set size (VmHWM) of a live process in MiB; NaN once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


def stop_process(proc: subprocess.Popen[str], timeout_secs: float = 60.0) -> None:
    """Stop ``proc`` as an operator would (SIGTERM: it drains and exits), killed if it has not within
    ``timeout_secs``; its stdout pipe closed."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_secs)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
