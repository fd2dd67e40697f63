"""HEP over TCP: split a receive buffer into HEP3 packets by their declared length."""

from __future__ import annotations

from collectors.hep.packet import HEP3_MAGIC, HepError

__all__ = ["frame_stream", "resync"]


def frame_stream(buf: bytearray) -> list[bytes]:
    """Pop every complete HEP3 packet from the front of ``buf`` (a TCP receive buffer).

    Complete packets are removed from ``buf`` and returned in order; a partial packet stays
    for the next read. When the front of ``buf`` is not ``"HEP3"`` (or declares a length
    below 6), :class:`HepError` is raised with reason ``"magic"`` (or ``"length"``) and
    ``buf`` is left untouched. Bad bytes *after* good packets are not raised at once: the
    good packets are returned and the next call raises, so nothing decodable is lost.

    HEP over TCP has no marker that cannot also occur inside a payload, so the recommended
    reaction is to count the error and close the connection (the agent reconnects and
    starts on a packet boundary). :func:`resync` is there for callers that prefer to skip
    to the next ``"HEP3"`` instead.
    """
    out: list[bytes] = []
    pos = 0
    n = len(buf)
    while n - pos >= 6:
        if buf[pos : pos + 4] != HEP3_MAGIC:
            if out:
                break  # return the good ones first; the next call raises
            raise HepError("stream does not start with HEP3", reason="magic")
        total = (buf[pos + 4] << 8) | buf[pos + 5]
        if total < 6:
            if out:
                break
            raise HepError(f"declared length {total}", reason="length")
        if n - pos < total:
            break
        out.append(bytes(buf[pos : pos + total]))
        pos += total
    if pos:
        del buf[:pos]
    elif n < 6 and n and not HEP3_MAGIC.startswith(bytes(buf[:4])):
        raise HepError("stream does not start with HEP3", reason="magic")
    return out


def resync(buf: bytearray) -> int:
    """Drop bytes from the front of ``buf`` up to the next ``"HEP3"``; return how many were dropped.

    When no magic is found, all but the last 3 bytes (a possible magic prefix) are dropped.
    """
    idx = buf.find(HEP3_MAGIC, 1)
    if idx < 0:
        idx = max(len(buf) - 3, 0)
    del buf[:idx]
    return idx
