"""Reading AMI and CEL fields: case-insensitive keys, channel blocks, Local channel names, SIP Call-IDs.

AMI keys differ in case between Asterisk versions (``Uniqueid`` on 13+, ``UniqueID`` on
some Asterisk 11 events, ``LinkedID`` in CEL over AMI), so events are read through a
lower-cased copy of their fields (:class:`Fields`). A *channel block* is the set of keys
that describe one channel (``Channel``, ``Uniqueid``, ``Linkedid``, ``ChannelState``,
``CallerIDNum`` ...), bare or behind a prefix (``Dest``, ``Transferee``, ``LocalOne`` ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

UNKNOWN = frozenset({"", "<unknown>", "unknown", "<none>"})
MAX_ID = 256
MAX_CALL_ID = 1024


class Fields:
    """An event's fields with case-insensitive lookup."""

    __slots__ = ("_low",)

    def __init__(self, fields: Mapping[str, object]) -> None:
        self._low = {k.lower(): ("" if v is None else str(v)) for k, v in fields.items()}

    def get(self, *names: str) -> str:
        """The first present of ``names`` (stripped), '' when none is."""
        for name in names:
            value = self._low.get(name.lower())
            if value is not None:
                return value.strip()
        return ""

    def has(self, name: str) -> bool:
        return name.lower() in self._low

    def items(self) -> list[tuple[str, str]]:
        return list(self._low.items())


def meaningful(value: str) -> str:
    """``value`` unless it is one of Asterisk's placeholders for 'nothing' (``<unknown>``, empty)."""
    return "" if value.strip().lower() in UNKNOWN else value.strip()


@dataclass(frozen=True, slots=True)
class Block:
    """One channel as an event describes it."""

    uniqueid: str
    name: str = ""
    linkedid: str = ""
    state: int | None = None
    caller_num: str = ""
    caller_name: str = ""
    connected_num: str = ""
    connected_name: str = ""
    context: str = ""
    exten: str = ""


def block(f: Fields, prefix: str = "") -> Block | None:
    """The channel block behind ``prefix``, None when it names no uniqueid (or an implausible one)."""
    uid = f.get(f"{prefix}Uniqueid")
    if not uid or len(uid) > MAX_ID:
        return None
    state_text = f.get(f"{prefix}ChannelState")
    linkedid = f.get(f"{prefix}Linkedid")
    return Block(
        uniqueid=uid,
        name=f.get(f"{prefix}Channel")[:MAX_ID],
        linkedid=linkedid if len(linkedid) <= MAX_ID else "",
        state=int(state_text) if state_text.isdigit() and len(state_text) < 3 else None,
        caller_num=meaningful(f.get(f"{prefix}CallerIDNum")),
        caller_name=meaningful(f.get(f"{prefix}CallerIDName")),
        connected_num=meaningful(f.get(f"{prefix}ConnectedLineNum")),
        connected_name=meaningful(f.get(f"{prefix}ConnectedLineName")),
        context=f.get(f"{prefix}Context"),
        exten=f.get(f"{prefix}Exten"),
    )


def tech(name: str) -> str:
    """The channel technology (``SIP``, ``PJSIP``, ``Local`` ...) of a channel name."""
    head, sep, _ = name.partition("/")
    return head if sep else ""


def is_local(name: str) -> bool:
    return tech(name).lower() == "local"


def base_name(name: str) -> str:
    """A channel name without Asterisk 11's ``<MASQ>``/``<ZOMBIE>`` suffixes."""
    at = name.find("<")
    return name[:at] if at > 0 else name


def local_pair(name: str) -> tuple[str, str] | None:
    """``(pair name, side)`` of a Local half (``Local/x@ctx-0000000e;1`` -> ``('Local/x@ctx-0000000e', '1')``)."""
    name = base_name(name)
    if not is_local(name):
        return None
    head, sep, side = name.rpartition(";")
    if not sep or side not in ("1", "2"):
        return None
    return head, side


def sip_call_id(value: str) -> str:
    """``value`` when it can be a SIP Call-ID (non-empty, no spaces, at most 1024 characters), else ''."""
    value = value.strip()
    if not value or len(value) > MAX_CALL_ID or any(c.isspace() or ord(c) < 32 for c in value):
        return ""
    return value


def duration_secs(text: str) -> int | None:
    """``HH:MM:SS`` (CoreShowChannel ``Duration``) or plain seconds, None when neither."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    parts = text.split(":")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        h, m, s = (int(p) for p in parts)
        return h * 3600 + m * 60 + s
    return None
