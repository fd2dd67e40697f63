"""A HEP flood from a process of its own (so the sender does not share the collector's GIL).

``python -m tests.faults.flood_sender PORT UDP_FILE TCP_FILE STREAMS_FILE`` sends the packets
of UDP_FILE as UDP datagrams as fast as the collector takes them, the packets of TCP_FILE as
one HEP3 stream over TCP, and each record of STREAMS_FILE on a TCP connection of its own
(streams that are not HEP3, or end inside a packet), all at once, then prints one JSON line
of figures.

The files hold records as a u32 big-endian length and the bytes.

UDP flow control: the sender reads the collector socket's receive queue from /proc/net/udp
every few datagrams and waits while it is over a quarter of the socket's buffer, so the
kernel never has to drop: the rate it reaches is the rate the collector's receive thread
takes. TCP needs no such care (the window is the backpressure). Each TCP connection is
half-closed after its last byte and read until the collector closes it, which it does only
after it queued every frame (or dead-lettered the stream).
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time
from pathlib import Path

import orjson

_LEN = struct.Struct("!I")
CHECK_EVERY = 16  # datagrams between two looks at the receive queue


def write_records(path: Path, records: list[bytes]) -> None:
    path.write_bytes(b"".join(_LEN.pack(len(r)) + r for r in records))


def read_records(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        (n,) = _LEN.unpack_from(data, pos)
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


def udp_socket_stats(port: int) -> tuple[int, int]:
    """(bytes waiting in the receive buffer, datagrams the kernel dropped) of the UDP socket on 127.0.0.1:``port``.

    Read from /proc/net/udp (Linux): ``rx_queue`` and ``drops`` of the socket's line.
    """
    local = f"{socket.htonl(0x7F000001):08X}:{port:04X}"
    with open("/proc/net/udp") as fh:
        for line in fh:
            cols = line.split()
            if len(cols) > 4 and cols[1] == local:
                return int(cols[4].split(":")[1], 16), int(cols[-1])
    raise LookupError(f"no UDP socket on 127.0.0.1:{port} in /proc/net/udp")


def _send_udp(port: int, packets: list[bytes], limit: int, figures: dict[str, float]) -> None:
    throttled = 0
    max_queue = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        started = time.monotonic()
        for i, pkt in enumerate(packets):
            if i % CHECK_EVERY == 0:
                queued = udp_socket_stats(port)[0]
                max_queue = max(max_queue, queued)
                while queued > limit:
                    throttled += 1
                    time.sleep(0.0005)
                    queued = udp_socket_stats(port)[0]
            sock.send(pkt)
        seconds = time.monotonic() - started
    figures.update(udp_sent=len(packets), udp_secs=seconds, udp_throttled=throttled, udp_max_rx_queue=max_queue)


def _send_tcp(port: int, payload: bytes, figures: dict[str, float], key: str) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a stream that is not HEP3: the collector may close before it read everything
        while True:  # until the collector closes: it has taken everything it will take
            try:
                if not sock.recv(4096):
                    break
            except ConnectionResetError:
                break
    figures[key] = time.monotonic() - started


def main(argv: list[str]) -> int:
    port = int(argv[0])
    udp = read_records(Path(argv[1]))
    tcp = read_records(Path(argv[2]))
    streams = read_records(Path(argv[3]))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 30)
        default_buf = probe.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    # the collector's buffer is at least what an unprivileged socket gets; a quarter of it is the ceiling
    limit = int(argv[4]) if len(argv) > 4 else default_buf // 4
    figures: dict[str, float] = {"udp_limit": limit}
    threads = [threading.Thread(target=_send_udp, args=(port, udp, limit, figures))]
    tcp_payload = b"".join(tcp)
    threads.append(threading.Thread(target=_send_tcp, args=(port, tcp_payload, figures, "tcp_secs")))
    threads += [
        threading.Thread(target=_send_tcp, args=(port, g, figures, f"stream_{i}_secs")) for i, g in enumerate(streams)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    figures.update(tcp_sent=len(tcp), streams=len(streams), total_secs=time.monotonic() - started)
    sys.stdout.write(orjson.dumps(figures).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
