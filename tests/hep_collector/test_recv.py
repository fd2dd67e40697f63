"""Batched UDP receive (collectors/hep/recv.py): what recvmmsg hands over, on a real socket."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from collectors.hep.collector import _shutdown_udp
from collectors.hep.recv import BatchReceiver, batch_receiver


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    yield rx, tx
    rx.close()
    tx.close()


def _receiver(rx: socket.socket, batch: int, slot: int) -> BatchReceiver:
    receiver = batch_receiver(rx, batch=batch, slot_bytes=slot)
    assert receiver is not None, "recvmmsg is Linux's, and this is Linux"
    return receiver


def test_a_batch_takes_every_queued_datagram_in_order_sizes_kept(pair: tuple[socket.socket, socket.socket]) -> None:
    rx, tx = pair
    sent = [bytes([i % 256]) * (1 + (i * 37) % 1500) for i in range(300)] + [b""]
    for pkt in sent:
        tx.send(pkt)
    receiver = _receiver(rx, batch=128, slot=2048)
    got: list[bytes] = []
    calls = 0
    while len(got) < len(sent):
        got.extend(receiver.receive())
        calls += 1
    assert got == sent  # the zero-length datagram too: the collector counts it as a short packet
    assert calls == 3  # 128 + 128 + 45: one call per batch, not per datagram


def test_a_datagram_longer_than_its_slot_is_cut_to_the_slot(pair: tuple[socket.socket, socket.socket]) -> None:
    rx, tx = pair
    tx.send(b"a" * 5000)
    tx.send(b"b" * 10)
    (long, short) = _receiver(rx, batch=4, slot=1025).receive()
    assert long == b"a" * 1025  # one byte past a 1024-byte limit: the collector sees it as oversized
    assert short == b"b" * 10


def test_receive_blocks_for_the_first_datagram_and_wakes_on_shutdown(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    rx, tx = pair
    receiver = _receiver(rx, batch=8, slot=2048)
    results: list[list[bytes]] = []
    thread = threading.Thread(target=lambda: results.append(receiver.receive()))
    thread.start()
    time.sleep(0.2)
    assert not results  # still waiting: nothing was sent
    tx.send(b"late")
    thread.join(5)
    assert results == [[b"late"]]
    thread = threading.Thread(target=lambda: results.append(receiver.receive()))
    thread.start()
    _shutdown_udp(rx, rx.getsockname())  # as the collector stops: shutdown() and an empty datagram
    thread.join(5)
    assert not thread.is_alive()
    assert results[1] in ([], [b""])
