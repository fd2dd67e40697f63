"""Receive UDP datagrams in batches: one ``recvmmsg(2)`` call, and one GIL hand-off, for many packets.

Why: the HEP collector receives in a thread of its own while the event loop decodes and
the processors run. Every ``socket.recv_into`` releases the GIL for the system call and must
take it back afterwards; while the other thread is busy, taking it back waits for the
interpreter's switch interval (5 ms). One packet per hand-off caps a busy process at a few
thousand packets a second, and the rest overflow the kernel's receive buffer. (Measured here:
a busy main thread left a recv_into thread 29,441 of 60,000 packets sent at 20k/s.)

:class:`BatchReceiver` calls libc's ``recvmmsg`` through ctypes, which releases the GIL for
the call: it blocks until one datagram is there (``MSG_WAITFORONE``), then takes every
datagram already queued, up to ``batch`` of them, into one preallocated buffer. The GIL is
taken back once per batch, and the batch's bytes objects are cut from the buffer under it.

Linux only (``recvmmsg`` is Linux's). :func:`batch_receiver` returns None where it is
missing, and the collector falls back to one ``recv_into`` per packet.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket
import sys

MSG_WAITFORONE = 0x10000
MSG_TRUNC = 0x20


class _IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _MsgHdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _MMsgHdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint))


def _recvmmsg() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        func = libc.recvmmsg
    except (OSError, AttributeError):
        return None
    func.argtypes = (ctypes.c_int, ctypes.POINTER(_MMsgHdr), ctypes.c_uint, ctypes.c_int, ctypes.c_void_p)
    func.restype = ctypes.c_int
    return func


_RECVMMSG = _recvmmsg()


class BatchReceiver:
    """Up to ``batch`` datagrams of up to ``slot_bytes`` each per :meth:`receive` call, from a blocking socket.

    A datagram longer than ``slot_bytes`` comes back cut to ``slot_bytes`` (the collector
    gives slots one byte more than its packet limit, so a cut packet is still seen as too long).
    """

    def __init__(self, sock: socket.socket, *, batch: int, slot_bytes: int) -> None:
        if _RECVMMSG is None:  # pragma: no cover - checked by batch_receiver()
            raise OSError(errno.ENOSYS, "recvmmsg is not available")
        self._recvmmsg = _RECVMMSG
        self._fd = sock.fileno()
        self._batch = batch
        self._slot = slot_bytes
        self._buffer = ctypes.create_string_buffer(batch * slot_bytes)
        self._view = memoryview(self._buffer).cast("B")
        base = ctypes.addressof(self._buffer)
        self._iovecs = (_IoVec * batch)()
        self._msgs = (_MMsgHdr * batch)()
        for i in range(batch):
            self._iovecs[i].iov_base = base + i * slot_bytes
            self._iovecs[i].iov_len = slot_bytes
            hdr = self._msgs[i].msg_hdr
            hdr.msg_iov = ctypes.pointer(self._iovecs[i])
            hdr.msg_iovlen = 1

    def receive(self) -> list[bytes]:
        """Block until at least one datagram arrives; return every one queued, up to the batch size.

        Raises ``OSError`` as ``recv`` does (EINTR is retried). Zero-length datagrams are
        returned as ``b""``; an empty list means the socket was shut down.
        """
        msgs = self._msgs
        while True:
            n = self._recvmmsg(self._fd, msgs, self._batch, MSG_WAITFORONE, None)
            if n >= 0:
                break
            err = ctypes.get_errno()
            if err != errno.EINTR:
                raise OSError(err, os.strerror(err))
        view, slot = self._view, self._slot
        return [bytes(view[i * slot : i * slot + msgs[i].msg_len]) for i in range(n)]


def batch_receiver(sock: socket.socket, *, batch: int, slot_bytes: int) -> BatchReceiver | None:
    """A :class:`BatchReceiver` for ``sock``, or None where ``recvmmsg`` is not available."""
    if _RECVMMSG is None:
        return None
    return BatchReceiver(sock, batch=batch, slot_bytes=slot_bytes)
