"""Asterisk's two AMI dialects, and the channel ids an event is keyed by. Pure.

- ``asterisk13`` (Asterisk 12 and later, AMI 2.0+): ``DialBegin``/``DialEnd``,
  ``BridgeCreate``/``BridgeEnter``/``BridgeLeave``, ``AttendedTransfer``/``BlindTransfer``,
  ``QueueCallerJoin``/``Leave``/``Abandon``, and ``Linkedid`` on every channel.
- ``asterisk11`` (Asterisk 1.8 to 11, AMI 1.x): ``Dial`` with ``SubEvent: Begin|End``,
  ``Bridge`` with ``Bridgestate: Link|Unlink``, ``Masquerade``, ``Rename``, ``Transfer``,
  ``Join``/``Leave``; no ``Linkedid``; ``UniqueID`` spelled so in ``Dial``; ``Uniqueid1``/``2``
  in ``Bridge``. A channel event (``Uniqueid``) without ``Linkedid`` is Asterisk 11 too:
  12+ sends both in every channel snapshot.

A live connection knows its dialect from the banner (``Asterisk Call Manager/2.x`` or later
is 13+; ``/1.x`` is 11 or older). A recording without banner is recognised from the first
event that only one dialect sends (:class:`DialectTracker`).

Keys (the envelope's ``key``, which picks the bus partition): ``Linkedid`` when the event has
one; else the first ``<prefix>Linkedid`` of its channel blocks (``DestLinkedid`` of a
``DialBegin`` without a caller, ``OrigTransfererLinkedid`` of an ``AttendedTransfer``,
``LocalOneLinkedid``); else the channel's ``Uniqueid`` (``UniqueID``, ``Uniqueid1``); else the
first ``<prefix>Uniqueid``; else the node's name. Bridge ids (``BridgeUniqueid``) are never
channel ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

__all__ = [
    "ASTERISK11_EVENTS",
    "ASTERISK13_EVENTS",
    "Dialect",
    "DialectTracker",
    "classify",
    "correlation_key",
    "dialect_of_version",
    "field",
    "linkedid",
    "uniqueid",
]

Dialect = Literal["asterisk13", "asterisk11", "unknown"]

#: Events only Asterisk 12+ sends.
ASTERISK13_EVENTS = frozenset(
    {
        "DialBegin",
        "DialEnd",
        "DialState",
        "BridgeCreate",
        "BridgeDestroy",
        "BridgeEnter",
        "BridgeLeave",
        "BridgeMerge",
        "BridgeInfoChannel",
        "BridgeInfoComplete",
        "AttendedTransfer",
        "BlindTransfer",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "NewConnectedLine",
        "DeviceStateChange",
        "ChannelTalkingStart",
        "ChannelTalkingStop",
        "MusicOnHoldStart",
        "MusicOnHoldStop",
    }
)
#: Events only Asterisk 11 and older send.
ASTERISK11_EVENTS = frozenset(
    {"Dial", "Bridge", "Masquerade", "Rename", "Transfer", "Link", "Unlink", "Join", "Leave", "Unhold", "MusicOnHold"}
)

_LINKEDID = ("Linkedid", "LinkedID", "linkedid", "LinkedId")
_UNIQUEID = ("Uniqueid", "UniqueID", "uniqueid", "UniqueId", "Uniqueid1", "UniqueID1")


def field(fields: Mapping[str, str], name: str) -> str | None:
    """A field by name: exact spelling first, then case-insensitively (AMI keys' case varies)."""
    value = fields.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for key, candidate in fields.items():
        if key.lower() == lower:
            return candidate
    return None


def _first(fields: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = fields.get(name)
        if value:
            return value
    return None


def linkedid(fields: Mapping[str, str]) -> str | None:
    """The event's own ``Linkedid`` (any case), or None."""
    value = _first(fields, _LINKEDID)
    if value is None:
        value = field(fields, "linkedid") or None
    return value


def uniqueid(fields: Mapping[str, str]) -> str | None:
    """The event's channel ``Uniqueid`` (``UniqueID`` in Asterisk 11's Dial, ``Uniqueid1`` in its Bridge)."""
    value = _first(fields, _UNIQUEID)
    if value is None:
        value = field(fields, "uniqueid") or field(fields, "uniqueid1") or None
    return value


def _prefixed(fields: Mapping[str, str], suffix: str) -> str | None:
    """The first ``<prefix><suffix>`` of a channel block (not a bridge's), in the event's key order."""
    n = len(suffix)
    for key, value in fields.items():
        if len(key) > n and value and key[-n:].lower() == suffix and "bridge" not in key.lower():
            return value
    return None


def correlation_key(fields: Mapping[str, str], node: str) -> str:
    """The envelope key of an AMI event (see the module docstring for the order)."""
    return (
        linkedid(fields) or _prefixed(fields, "linkedid") or uniqueid(fields) or _prefixed(fields, "uniqueid") or node
    )


def dialect_of_version(version: str) -> Dialect:
    """The dialect of an AMI protocol version from the banner: 2.0+ is Asterisk 12/13+, 1.x is 11 or older."""
    major, _, _ = version.partition(".")
    if not major.isdigit():
        return "unknown"
    return "asterisk13" if int(major) >= 2 else "asterisk11"


def classify(event: str, fields: Mapping[str, str]) -> Dialect:
    """The dialect one event proves on its own, or ``unknown`` when both dialects send it."""
    if event in ASTERISK13_EVENTS or "Linkedid" in fields:
        return "asterisk13"
    if event in ASTERISK11_EVENTS or "Uniqueid1" in fields or "Uniqueid" in fields:
        return "asterisk11"  # Asterisk 12+ puts Linkedid beside every channel's Uniqueid
    return "unknown"


class DialectTracker:
    """The dialect of one stream: the banner's when there is one, else the first decisive event's."""

    def __init__(self, version: str | None = None) -> None:
        self.dialect: Dialect = dialect_of_version(version) if version else "unknown"
        self._fixed = self.dialect != "unknown"

    def banner(self, version: str) -> None:
        dialect = dialect_of_version(version)
        if dialect != "unknown":
            self.dialect = dialect
            self._fixed = True

    def label(self, event: str, fields: Mapping[str, str]) -> Dialect:
        if not self._fixed:
            seen = classify(event, fields)
            if seen != "unknown":
                self.dialect = seen
                self._fixed = True
        return self.dialect
