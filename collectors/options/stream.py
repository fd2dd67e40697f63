"""OPTIONS over TCP and TLS: one connection per probe.

Connect (``refused`` when the peer resets or nothing listens), upgrade to TLS when asked
(``tls`` for any handshake or certificate failure: ``server_hostname`` is the target's host,
checked unless ``tls_verify`` is off), write the request, read answers framed by their
Content-Length until a final one that matches the branch and Call-ID. Provisional answers
are skipped, answers of other transactions are counted as stray (``mismatch``) and
skipped. End of stream, a reset or bytes that are not SIP before a complete final answer:
``malformed``. Whatever step is still running at the deadline: ``timeout``, with the
step in ``error_detail``. The connection is closed (aborted) as soon as the probe ends.

The RTT and the envelope's ``ts`` count from the write of the request, so they measure
the SIP transaction as on UDP; connecting and the TLS handshake count toward the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable

from collectors.options.message import AnswerError, ErrorClass, Outcome, frame, read_answer

__all__ = ["StreamError", "transact_stream"]

_READ = 65536


class StreamError(Exception):
    """A stream probe that ended without a usable answer: ``error`` class and detail."""

    def __init__(self, error: ErrorClass, detail: str, outcome: Outcome) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail
        self.outcome = outcome


async def transact_stream(
    remote: tuple[str, int],
    build: Callable[[tuple[str, int]], bytes],
    branch: str,
    call_id: str,
    *,
    timeout_secs: float,
    tls: ssl.SSLContext | None,
    server_hostname: str,
    on_stray: Callable[[str], None],
) -> Outcome:
    """One transaction on its own connection. Returns the outcome with the final answer, or raises StreamError."""
    outcome = Outcome(first_send_us=time.time_ns() // 1000, first_send=time.monotonic())
    step = "connecting"
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_secs):
            reader, writer = await asyncio.open_connection(remote[0], remote[1], limit=_READ * 2)
            if tls is not None:
                step = "TLS handshake"
                await writer.start_tls(tls, server_hostname=server_hostname)
            step = "waiting for the answer"
            local = writer.get_extra_info("sockname")
            data = build((str(local[0]), int(local[1])))
            outcome.first_send_us = time.time_ns() // 1000
            outcome.first_send = time.monotonic()
            writer.write(data)
            outcome.attempts = 1
            await _read_final(reader, branch, call_id, outcome, on_stray)
            return outcome
    except TimeoutError:
        raise StreamError("timeout", f"timed out {step} after {timeout_secs:g} s", outcome) from None
    except ssl.SSLCertVerificationError as exc:
        raise StreamError("tls", f"certificate: {exc.verify_message or exc.reason}", outcome) from None
    except ssl.SSLError as exc:
        raise StreamError("tls", f"TLS: {exc.reason or exc}", outcome) from None
    except AnswerError as exc:
        raise StreamError("malformed", str(exc), outcome) from None
    except OSError as exc:
        text = exc.strerror or str(exc) or type(exc).__name__
        if step == "connecting":
            raise StreamError("refused", f"connect: {text}", outcome) from None
        if step == "TLS handshake":
            raise StreamError("tls", f"TLS handshake: {text}", outcome) from None
        raise StreamError("malformed", f"connection lost before a complete answer: {text}", outcome) from None
    finally:
        if writer is not None:
            writer.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.sleep(0)  # let the transport's connection_lost run


async def _read_final(
    reader: asyncio.StreamReader, branch: str, call_id: str, outcome: Outcome, on_stray: Callable[[str], None]
) -> None:
    buf = bytearray()
    while True:
        chunk = await reader.read(_READ)
        received = time.monotonic()
        if not chunk:
            what = "closed without answering" if not buf.strip() else "closed in the middle of an answer"
            raise AnswerError(f"connection {what}", reason="garbage")
        buf += chunk
        while True:
            message, used = frame(buf)
            if used:
                del buf[:used]
            if message is None:
                break
            try:
                answer = read_answer(message)
            except AnswerError as exc:
                if exc.reason != "request":
                    raise
                on_stray("request")  # the peer's own request on our connection: not ours to answer
                continue
            if answer.branch != branch or answer.call_id != call_id or answer.method != "OPTIONS":
                on_stray("mismatch")
                continue
            if answer.provisional:
                continue
            outcome.answer = answer
            outcome.received = received
            return
