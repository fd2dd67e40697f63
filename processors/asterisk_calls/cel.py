"""CEL events (cel_custom CSV rows, and ``Event: CEL`` over AMI) into channel facts.

CEL alone is enough for legs and calls (a node with no AMI connection):

- ``CHAN_START`` opens a channel, ``ANSWER`` answers it, ``HANGUP`` closes it with its
  cause (``hangupcause`` in the JSON extra of Asterisk 12+, the first field of the older
  ``16,dialplan/builtin,`` text), ``CHAN_END`` closes it if HANGUP was missed;
- ``BRIDGE_START``/``BRIDGE_END`` (up to Asterisk 11: the peer is ``bridgepeer``) and
  ``BRIDGE_ENTER``/``BRIDGE_EXIT`` (12+: ``bridge_id`` in the extra) give bridges;
- ``BLINDTRANSFER``, ``ATTENDEDTRANSFER`` (blonde when the extra names an ``app``),
  ``TRANSFER`` (older, kind ``transfer``), ``PICKUP`` (``pickup_channel``), ``FORWARD``;
- ``LINKEDID_END`` closes the call: no channel of that linkedid is left.

Other types (APP_START, APP_END, USER_DEFINED, PARK_* ...) stay in the ``cel`` table only.
The SIP Call-ID: a configured column (``userfield`` by default) or an extra key named as
a configured variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from processors.asterisk_calls.causes import parse_cause
from processors.asterisk_calls.fields import Block, Fields
from processors.asterisk_calls.tracker import Tracker, fill

HANDLED = frozenset(
    {
        "CHAN_START",
        "ANSWER",
        "HANGUP",
        "CHAN_END",
        "BRIDGE_START",
        "BRIDGE_END",
        "BRIDGE_ENTER",
        "BRIDGE_EXIT",
        "BLINDTRANSFER",
        "ATTENDEDTRANSFER",
        "TRANSFER",
        "PICKUP",
        "FORWARD",
        "LINKEDID_END",
    }
)
_CLOSING = frozenset({"HANGUP", "CHAN_END", "LINKEDID_END"})


@dataclass(frozen=True, slots=True)
class CelView:
    """One CEL event, whichever way it came (CSV columns or AMI keys)."""

    eventtype: str
    uniqueid: str
    linkedid: str
    channel: str
    cid_num: str
    cid_name: str
    exten: str
    context: str
    peer: str
    extra: Mapping[str, Any] | str | None
    userfield: str
    fields: Fields

    def extra_dict(self) -> Mapping[str, Any]:
        extra = self.extra
        if isinstance(extra, str) and extra.startswith("{"):
            try:
                value = orjson.loads(extra)
            except orjson.JSONDecodeError:
                return {}
            return value if isinstance(value, dict) else {}
        return extra if isinstance(extra, Mapping) else {}

    def extra_text(self) -> str:
        return self.extra if isinstance(self.extra, str) and not self.extra.startswith("{") else ""


def _s(value: Any) -> str:
    return "" if value is None else str(value).strip()


def read_cel(tr: Tracker, v: CelView, ts: int, event_id: str) -> None:
    """Apply one CEL event (see the module)."""
    kind = v.eventtype
    if kind not in HANDLED:
        return
    if not v.uniqueid:
        tr.problems["cel_no_uniqueid"] += 1
        return
    blk = Block(
        uniqueid=v.uniqueid,
        name=v.channel,
        linkedid=v.linkedid,
        caller_num=v.cid_num,
        caller_name=v.cid_name,
        context=v.context,
        exten=v.exten,
    )
    leg = tr.see(blk, ts, hangup=kind in _CLOSING)
    extra = v.extra_dict()
    _sip_call_id(tr, v, extra, leg.uniqueid)
    if kind == "CHAN_START":
        tr.start(leg, ts)
    elif kind == "ANSWER":
        tr.answer(leg, ts)
    elif kind == "HANGUP":
        cause = parse_cause(extra.get("hangupcause")) if extra else parse_cause(v.extra_text().split(",", 1)[0])
        tr.hangup(leg, ts, cause)
    elif kind == "CHAN_END":
        if leg.ended_ts is None:
            tr.hangup(leg, ts)
    elif kind in ("BRIDGE_START", "BRIDGE_END"):
        peer = tr.node.by_name(v.peer) if v.peer else None
        if peer is None:
            tr.problems["cel_unknown_peer"] += 1
            return
        bridge_id = f"cel:{leg.uniqueid}|{peer.uniqueid}"
        for member in (leg, peer):
            if kind == "BRIDGE_START":
                tr.enter(member, bridge_id, ts)
            else:
                tr.leave(member, bridge_id, ts)
    elif kind in ("BRIDGE_ENTER", "BRIDGE_EXIT"):
        bridge_id = _s(extra.get("bridge_id"))
        if bridge_id:
            (tr.enter if kind == "BRIDGE_ENTER" else tr.leave)(leg, bridge_id, ts)
    elif kind == "LINKEDID_END":
        call = tr.call(v.linkedid or leg.linkedid, ts)
        if call.end_ts is None or ts < call.end_ts:
            call.end_ts = ts
    elif kind == "FORWARD":
        tr.dial_status(leg, "", ts, _s(extra.get("forward")) or v.extra_text())
    else:
        _transfer(tr, v, extra, ts, event_id)


def _transfer(tr: Tracker, v: CelView, extra: Mapping[str, Any], ts: int, event_id: str) -> None:
    kind = v.eventtype
    leg = tr.node.legs[v.uniqueid]
    linkedid = v.linkedid or leg.linkedid
    moved = _s(extra.get("transferee_channel_uniqueid"))
    if kind == "PICKUP":
        picker = tr.node.by_name(_s(extra.get("pickup_channel")))
        root = tr.known(linkedid)
        t = tr.transfer(
            "pickup", picker.uniqueid if picker else _s(extra.get("pickup_channel")), linkedid, ts, event_id
        )
        fill(t, transferer=picker.uniqueid if picker else "", transferer_name=_s(extra.get("pickup_channel")))
        fill(t, target=leg.uniqueid, transferee=root.uniqueid if root else "", result="Success")
        return
    if kind == "BLINDTRANSFER":
        t = tr.transfer("blind", leg.uniqueid, linkedid, ts, event_id)
        fill(t, target_exten=_s(extra.get("extension")))
    elif kind == "ATTENDEDTRANSFER":
        t = tr.transfer("blonde" if extra.get("app") else "attended", leg.uniqueid, linkedid, ts, event_id)
        second = _s(extra.get("channel2_uniqueid"))
        second_leg = tr.known(second)
        fill(t, second_transferer=second, second_linkedid=second_leg.linkedids[0] if second_leg else "")
        fill(t, target=_s(extra.get("transfer_target_channel_uniqueid")))
        fill(t, target_name=_s(extra.get("transfer_target_channel_name")), dest_bridge=_s(extra.get("bridge2_id")))
    else:
        t = tr.transfer("transfer", leg.uniqueid, linkedid, ts, event_id)
        fill(t, target_name=v.peer)
    fill(t, transferer=leg.uniqueid, transferer_name=leg.channel, result="Success")
    fill(t, transferee=moved, transferee_name=_s(extra.get("transferee_channel_name")))
    tr.resolve(t)


def _sip_call_id(tr: Tracker, v: CelView, extra: Mapping[str, Any], uid: str) -> None:
    leg = tr.node.legs[uid]
    if leg.sip_call_id:
        return
    for name in tr.config.cel_sip_call_id_fields:
        value = v.userfield if name.lower() == "userfield" and v.userfield else v.fields.get(name)
        if value:
            tr.sip_call_id(leg, value)
            return
    for key, value in extra.items():
        if str(key).lstrip("_").upper() in tr.variables:
            tr.sip_call_id(leg, _s(value))
            return
