"""Cheap looks at an envelope's bytes, before a processor pays for validating it.

Several processors read every SIP record but use a few of them (REGISTER transactions,
OPTIONS, messages with SDP). Envelopes on the bus are :func:`schemas.envelope.encode`'s
output: orjson, no spaces, and a quote inside a string escaped as ``\\"``. So ``"method":"``
or ``"sdp":null`` in the bytes can only be the field itself, never text inside a value.
A false positive is harmless (the record is validated and the core checks again); these
checks are written so that they never give a false negative on such an envelope.
"""

from __future__ import annotations

_METHOD = b'"method":"'
_NO_SDP = b'"sdp":null'
_NO_VQ = b'"vq_report":null'


def method_is(value: bytes, method: bytes) -> bool:
    """Whether the envelope's SIP method (a request's, or a response's CSeq method) is ``method``.

    ``method`` is lower-case bytes (``b"register"``); the comparison ignores case, as the
    processors' own checks do.
    """
    wanted = method + b'"'
    size = len(wanted)
    at = value.find(_METHOD)
    while at >= 0:
        start = at + len(_METHOD)
        if value[start : start + size].lower() == wanted:
            return True
        at = value.find(_METHOD, start)
    return False


def may_carry_media(value: bytes) -> bool:
    """False only when the envelope says it has neither an SDP summary nor a VQ report."""
    return not (_NO_SDP in value and _NO_VQ in value)
