"""Hangup causes (ITU-T Q.850, as Asterisk reports them) and what they mean for a channel's outcome.

Asterisk puts the Q.850 cause code of a hangup in AMI ``Hangup`` (``Cause``, with its
own text in ``Cause-txt``) and in CEL ``HANGUP`` (``hangupcause`` in the JSON extra of
Asterisk 12+, the first comma field of the older extra). :data:`Q850` gives the
standard text of the codes seen in practice; the event's own text wins when present.

Outcome of a channel that hung up (:func:`outcome`), in the words a supervisor uses:

======================  ==========================================================
outcome                 when
======================  ==========================================================
``completed``           answered, then a normal clearing (16, 31), or 0/127 (Asterisk
                        sets no cause when the dialplan ends an answered call)
``busy``                17 user busy (whether or not answered before, e.g. after a transfer)
``no-answer``           18 no user responding, 19 no answer; or 16/31 before an answer
                        (the dialplan gave up, e.g. a Dial timeout)
``rejected``            21 call rejected
``answered-elsewhere``  26 (another phone of a ring group took the call)
``cancelled``           0/127 before an answer: the caller hung up while it rang
``failed``              any other cause (unallocated number, congestion, network failure ...)
======================  ==========================================================

For a channel that was dialed, a ``DialStatus`` of BUSY/NOANSWER/CANCEL decides when
the cause is 16/0 before an answer (the cause then says only who hung up).
"""

from __future__ import annotations

Q850: dict[int, str] = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    2: "No route to specified transit network",
    3: "No route to destination",
    6: "Channel unacceptable",
    7: "Call awarded, being delivered in an established channel",
    16: "Normal call clearing",
    17: "User busy",
    18: "No user responding",
    19: "No answer from user (user alerted)",
    20: "Subscriber absent",
    21: "Call rejected",
    22: "Number changed",
    23: "Redirected to new destination",
    26: "Non-selected user clearing (answered elsewhere)",
    27: "Destination out of order",
    28: "Invalid number format (address incomplete)",
    29: "Facility rejected",
    30: "Response to STATUS ENQUIRY",
    31: "Normal, unspecified",
    34: "No circuit/channel available",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    43: "Access information discarded",
    44: "Requested circuit/channel not available",
    47: "Resource unavailable, unspecified",
    50: "Requested facility not subscribed",
    57: "Bearer capability not authorized",
    58: "Bearer capability not presently available",
    65: "Bearer capability not implemented",
    66: "Channel type not implemented",
    69: "Requested facility not implemented",
    79: "Service or option not implemented, unspecified",
    81: "Invalid call reference value",
    88: "Incompatible destination",
    95: "Invalid message, unspecified",
    96: "Mandatory information element is missing",
    97: "Message type non-existent or not implemented",
    98: "Message not compatible with call state",
    99: "Information element non-existent or not implemented",
    100: "Invalid information element contents",
    101: "Message not compatible with call state",
    102: "Recovery on timer expiry",
    103: "Parameter non-existent or not implemented, passed on",
    111: "Protocol error, unspecified",
    127: "Interworking, unspecified",
}

OUTCOMES = ("completed", "busy", "no-answer", "rejected", "answered-elsewhere", "cancelled", "failed")

_NORMAL = frozenset({16, 31})
_UNSET = frozenset({0, 127})
_NO_ANSWER = frozenset({18, 19})
_DIAL_STATUS = {"BUSY": "busy", "NOANSWER": "no-answer", "CANCEL": "cancelled", "CONGESTION": "failed"}


def cause_text(code: int | None, given: str = "") -> str:
    """The event's own text when it has one, else the Q.850 text of ``code`` ('' when no code)."""
    if given:
        return given
    if code is None:
        return ""
    return Q850.get(code, f"Cause {code}")


def parse_cause(value: object) -> int | None:
    """A cause code from an event field (``"16"``, ``16``); None when absent or not a number in 0..255."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        code = value
    elif isinstance(value, str) and value.strip().isdigit():
        code = int(value.strip())
    else:
        return None
    return code if 0 <= code <= 255 else None


def outcome(cause: int | None, answered: bool, dial_status: str = "") -> str:
    """How a channel's call ended (see the module table); '' when there is no cause to judge by."""
    status = dial_status.upper()
    if cause is None:
        if answered:
            return "completed"
        return _DIAL_STATUS.get(status, "")
    if cause == 17:
        return "busy"
    if cause in _NO_ANSWER:
        return "no-answer"
    if cause == 21:
        return "rejected"
    if cause == 26:
        return "answered-elsewhere"
    if cause in _NORMAL or cause in _UNSET:
        if answered:
            return "completed"
        if status in _DIAL_STATUS:
            return _DIAL_STATUS[status]
        return "no-answer" if cause in _NORMAL else "cancelled"
    return "failed"
