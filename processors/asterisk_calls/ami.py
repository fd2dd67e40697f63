"""AMI events into channel facts: Asterisk 13+ (DialBegin/End, BridgeEnter/Leave, Blind/AttendedTransfer,
Linkedid) and Asterisk 11 (Dial with SubEvent, Bridge Link/Unlink, Masquerade, Rename, Transfer, no Linkedid).

:data:`HANDLERS` maps an event name to its reader; every other event (Newexten, AGIExec,
RTCP reports, queue events ...) changes nothing here and stays in ``ami_events``.

- Channel events (Newchannel, Newstate, NewCallerid, NewConnectedLine, Hangup) carry
  the channel block; ``Hangup`` closes the channel with its cause (``Cause``, ``Cause-txt``).
- ``DialBegin`` ties the dialed channel to the dialer (``dialed_by``, ``dial_string``); one
  whose destination already lives in another linkedid and is not Down is a **pickup**
  (the picking phone joins the ringing call: cacofonisk's sip_pickup and star_pickup).
  ``DialEnd`` gives the destination's ``DialStatus`` (and ``Forward``, a call forward).
- ``BridgeEnter``/``BridgeLeave`` give bridge membership: peers, bridged time, and
  the call's ``connected_at`` when two non-Local channels meet (through Local pairs).
- ``BlindTransfer``; ``AttendedTransfer`` with ``DestType: Bridge`` (attended) or
  ``App``/``Dial`` (blonde: transferred while the target still rings); ``Pickup``.
- Asterisk 11: ``Dial`` (SubEvent Begin/End), ``Bridge`` (Link/Unlink) as a two-channel
  bridge, ``LocalBridge`` (Uniqueid1/2), ``Masquerade`` (recorded as a transfer of kind
  ``masquerade``), ``Rename`` (the channel's new name), ``Transfer`` (with its ``SIP-Callid``),
  ``ChannelUpdate`` (chan_sip's ``SIPcallid``). Without Linkedid, a channel's call is
  inferred: a dialed channel joins its dialer's call, a Local ``;2`` half its ``;1``.
- The SIP Call-ID: ``VarSet`` of a configured variable, or ``ChanVariable`` keys
  (manager.conf ``channelvars``) on any channel event.
- ``CoreShowChannel`` (resync after a reconnect) confirms or re-creates a live channel;
  ``CallscopeGap`` marks live channels (of the node, or of one linkedid) incomplete.
- ``CEL`` (CEL over AMI) goes to :mod:`.cel`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from processors.asterisk_calls.causes import parse_cause
from processors.asterisk_calls.cel import CelView, read_cel
from processors.asterisk_calls.fields import Block, Fields, base_name, block, duration_secs, meaningful
from processors.asterisk_calls.state import AST_STATE_RING, AST_STATE_UP
from processors.asterisk_calls.tracker import Tracker, fill
from schemas.tables import micros


@dataclass(frozen=True, slots=True)
class Event:
    """One AMI event as the readers need it."""

    name: str
    f: Fields
    ts: int
    id: str
    key: str
    node: str


Handler = Callable[[Tracker, Event], None]

_PICKER = frozenset({AST_STATE_RING, AST_STATE_UP})  # a phone that called in (Ring) or is up, not one ringing


def _see(tr: Tracker, e: Event, prefix: str = "", *, hangup: bool = False) -> Block | None:
    blk = block(e.f, prefix)
    if blk is None:
        return None
    leg = tr.see(blk, e.ts, hangup=hangup)
    if not prefix:
        _chan_variables(tr, e, leg.uniqueid)
    return blk


def _required(tr: Tracker, e: Event, prefix: str = "") -> Block | None:
    blk = _see(tr, e, prefix)
    if blk is None:
        tr.problems["ami_no_uniqueid"] += 1
    return blk


def _chan_variables(tr: Tracker, e: Event, uid: str) -> None:
    """``ChanVariable: NAME=value`` (13+, several joined by newlines) and ``ChanVariable(NAME): value`` (11)."""
    for key, value in e.f.items():
        if not key.startswith("chanvariable"):
            continue
        if key == "chanvariable":
            pairs = [line.partition("=") for line in value.split("\n")]
            found = [(name, val) for name, sep, val in pairs if sep]
        else:
            found = [(key[len("chanvariable(") : -1], value)] if key.endswith(")") else []
        for name, val in found:
            if name.strip().lstrip("_").upper() in tr.variables:
                tr.sip_call_id(tr.node.legs[uid], val)


def _channel(tr: Tracker, e: Event) -> None:
    _required(tr, e)


def _newchannel(tr: Tracker, e: Event) -> None:
    blk = _required(tr, e)
    if blk is not None:
        tr.start(tr.node.legs[blk.uniqueid], e.ts)


def _hangup(tr: Tracker, e: Event) -> None:
    blk = block(e.f)
    if blk is None:
        tr.problems["ami_no_uniqueid"] += 1
        return
    leg = tr.see(blk, e.ts, hangup=True)
    _chan_variables(tr, e, leg.uniqueid)
    tr.hangup(leg, e.ts, parse_cause(e.f.get("Cause")), e.f.get("Cause-txt"))


def _varset(tr: Tracker, e: Event) -> None:
    if e.f.get("Variable").lstrip("_").upper() not in tr.variables:
        return
    blk = block(e.f)
    value = e.f.get("Value")
    if blk is None or not value:
        return
    tr.sip_call_id(tr.see(blk, e.ts), value)


def _channel_update(tr: Tracker, e: Event) -> None:
    value = e.f.get("SIPcallid")
    blk = block(e.f)
    if value and blk is not None:
        tr.sip_call_id(tr.see(blk, e.ts), value)


def _dial_begin(tr: Tracker, e: Event) -> None:
    dest = _required(tr, e, "Dest")
    if dest is None:
        return
    src = _see(tr, e)
    dialer = tr.node.legs[src.uniqueid] if src is not None else None
    leg = tr.node.legs[dest.uniqueid]
    if src is not None and dest.linkedid and src.linkedid and dest.linkedid != src.linkedid and dest.state in _PICKER:
        # The "destination" already lives in a call of its own and is not Down: a phone picking up this call.
        root = tr.known(src.linkedid)
        t = tr.transfer("pickup", dest.uniqueid, src.linkedid, e.ts, e.id)
        fill(t, transferer=dest.uniqueid, transferee=root.uniqueid if root else src.uniqueid, target_exten=dest.exten)
        fill(t, result="Success")
    tr.dial(dialer, leg, e.ts, e.f.get("DialString"))


def _dial_end(tr: Tracker, e: Event) -> None:
    dest = _required(tr, e, "Dest")
    if dest is None:
        return
    _see(tr, e)
    tr.dial_status(tr.node.legs[dest.uniqueid], e.f.get("DialStatus"), e.ts, e.f.get("Forward"))


def _dial11(tr: Tracker, e: Event) -> None:
    """Asterisk 11 ``Dial``: SubEvent Begin names the destination; End only the dialer and its status."""
    uid = e.f.get("UniqueID", "Uniqueid")
    if not uid:
        tr.problems["ami_no_uniqueid"] += 1
        return
    dialer = tr.see(Block(uniqueid=uid, name=e.f.get("Channel")), e.ts)
    sub = e.f.get("SubEvent").lower()
    if sub == "begin":
        dest_uid = e.f.get("DestUniqueID", "DestUniqueid")
        if not dest_uid:
            tr.problems["ami_no_uniqueid"] += 1
            return
        dest = tr.see(Block(uniqueid=dest_uid, name=e.f.get("Destination")), e.ts)
        tr.dial(dialer, dest, e.ts, e.f.get("Dialstring", "DialString"))
    elif sub == "end":
        status = e.f.get("DialStatus").upper()
        for dest_uid in dialer.dials:
            dialed = tr.node.legs.get(dest_uid)
            if dialed is not None and not dialed.dial_status:
                tr.dial_status(dialed, status if status != "ANSWER" or dialed.answered_ts else "CANCEL", e.ts)
                tr.touch(dialed)


def _bridge_enter(tr: Tracker, e: Event) -> None:
    blk = _required(tr, e)
    bridge_id = e.f.get("BridgeUniqueid")
    if blk is not None and bridge_id:
        tr.enter(tr.node.legs[blk.uniqueid], bridge_id, e.ts)


def _bridge_leave(tr: Tracker, e: Event) -> None:
    blk = _required(tr, e)
    bridge_id = e.f.get("BridgeUniqueid")
    if blk is not None and bridge_id:
        tr.leave(tr.node.legs[blk.uniqueid], bridge_id, e.ts)


def _pair(tr: Tracker, e: Event) -> tuple[Block, Block] | None:
    one = Block(uniqueid=e.f.get("Uniqueid1"), name=e.f.get("Channel1"))
    two = Block(uniqueid=e.f.get("Uniqueid2"), name=e.f.get("Channel2"))
    if not one.uniqueid or not two.uniqueid:
        tr.problems["ami_no_uniqueid"] += 1
        return None
    return one, two


def _bridge11(tr: Tracker, e: Event) -> None:
    pair = _pair(tr, e)
    if pair is None:
        return
    one, two = (tr.see(b, e.ts) for b in pair)
    bridge_id = f"link:{one.uniqueid}|{two.uniqueid}"
    if e.f.get("Bridgestate").lower() == "unlink":
        tr.leave(one, bridge_id, e.ts)
        tr.leave(two, bridge_id, e.ts)
    else:
        tr.enter(one, bridge_id, e.ts)
        tr.enter(two, bridge_id, e.ts)


def _local_bridge(tr: Tracker, e: Event) -> None:
    one_blk, two_blk = block(e.f, "LocalOne"), block(e.f, "LocalTwo")
    if one_blk is not None and two_blk is not None:
        one, two = tr.see(one_blk, e.ts), tr.see(two_blk, e.ts)
    else:
        pair = _pair(tr, e)
        if pair is None:
            return
        one, two = (tr.see(b, e.ts) for b in pair)
    tr.twins(one, two, e.ts)


def _blind_transfer(tr: Tracker, e: Event) -> None:
    doer, moved = _required(tr, e, "Transferer"), _see(tr, e, "Transferee")
    if doer is None:
        return
    linkedid = (moved.linkedid if moved else "") or doer.linkedid or tr.node.legs[doer.uniqueid].linkedid
    t = tr.transfer("blind", doer.uniqueid, linkedid, e.ts, e.id)
    fill(t, transferer=doer.uniqueid, transferer_name=doer.name, result=e.f.get("Result"))
    fill(t, transferee=moved.uniqueid if moved else "", transferee_name=moved.name if moved else "")
    fill(t, target_exten=e.f.get("Extension"), is_external=e.f.get("IsExternal").lower() == "yes")
    tr.resolve(t)


def _attended_transfer(tr: Tracker, e: Event) -> None:
    orig = _required(tr, e, "OrigTransferer")
    if orig is None:
        return
    second, moved, target = (_see(tr, e, p) for p in ("SecondTransferer", "Transferee", "TransferTarget"))
    dest_type = e.f.get("DestType")
    kind = "blonde" if dest_type.lower() == "app" and e.f.get("DestApp").lower() == "dial" else "attended"
    linkedid = orig.linkedid or tr.node.legs[orig.uniqueid].linkedid
    t = tr.transfer(kind, orig.uniqueid, linkedid, e.ts, e.id)
    fill(t, transferer=orig.uniqueid, transferer_name=orig.name, result=e.f.get("Result"))
    fill(t, second_transferer=second.uniqueid if second else "", second_linkedid=second.linkedid if second else "")
    fill(t, transferee=moved.uniqueid if moved else "", transferee_name=moved.name if moved else "")
    fill(t, target=target.uniqueid if target else "", target_name=target.name if target else "")
    fill(t, dest_bridge=e.f.get("DestBridgeUniqueid"), is_external=e.f.get("IsExternal").lower() == "yes")
    if kind == "blonde" and second is not None:
        fill(t, target_exten=second.exten)
    tr.resolve(t)


def _transfer11(tr: Tracker, e: Event) -> None:
    doer = _required(tr, e)
    if doer is None:
        return
    leg = tr.node.legs[doer.uniqueid]
    kind = "attended" if e.f.get("TransferType").lower() == "attended" else "blind"
    t = tr.transfer(kind, doer.uniqueid, leg.linkedid, e.ts, e.id)
    fill(t, transferer=doer.uniqueid, transferer_name=doer.name, result="Success")
    fill(t, target=e.f.get("TargetUniqueid"), target_name=e.f.get("TargetChannel"))
    fill(t, target_exten=e.f.get("TransferExten"))
    tr.sip_call_id(leg, e.f.get("SIP-Callid"))


def _pickup(tr: Tracker, e: Event) -> None:
    picker = _required(tr, e)
    if picker is None:
        return
    target = _see(tr, e, "Target")
    linkedid = (target.linkedid if target else "") or tr.node.legs[picker.uniqueid].linkedid
    root = tr.known(linkedid)
    t = tr.transfer("pickup", picker.uniqueid, linkedid, e.ts, e.id)
    fill(t, transferer=picker.uniqueid, transferer_name=picker.name, result="Success")
    fill(t, target=target.uniqueid if target else "", target_name=target.name if target else "")
    fill(t, transferee=root.uniqueid if root else "", target_exten=picker.exten)


def _masquerade(tr: Tracker, e: Event) -> None:
    clone = tr.node.by_name(base_name(e.f.get("Clone")))
    original = tr.node.by_name(base_name(e.f.get("Original")))
    if clone is None or original is None:
        tr.problems["masquerade_unknown_channel"] += 1
        return
    t = tr.transfer("masquerade", clone.uniqueid, original.linkedid, e.ts, e.id)
    fill(t, transferer=clone.uniqueid, transferer_name=clone.channel)
    fill(t, transferee=original.uniqueid, transferee_name=original.channel)
    fill(t, target=clone.uniqueid, target_name=clone.channel, result="Success")
    if clone.sip_call_id:
        tr.sip_call_id(original, clone.sip_call_id)  # the original takes over the clone's device (its dialog)
    tr.touch(clone)
    tr.touch(original)


def _rename(tr: Tracker, e: Event) -> None:
    uid, new = e.f.get("Uniqueid", "UniqueID"), e.f.get("Newname")
    if not uid or not new:
        tr.problems["ami_no_uniqueid"] += 1
        return
    tr.node.name(tr.leg(uid, e.ts), new, e.ts)


def _core_show_channel(tr: Tracker, e: Event) -> None:
    blk = block(e.f) or (Block(uniqueid=u, name=e.f.get("Channel")) if (u := e.f.get("UniqueID")) else None)
    if blk is None:
        tr.problems["ami_no_uniqueid"] += 1
        return
    leg = tr.see(blk, e.ts)
    tr.resynced(leg, e.ts, duration_secs(e.f.get("Duration")))
    bridge_id = e.f.get("BridgeId")
    peer = e.f.get("BridgedUniqueID")
    if bridge_id:
        tr.enter(leg, bridge_id, e.ts)
    elif peer and peer.lower() != "(none)":
        other = tr.leg(peer, e.ts)
        tr.node.name(other, meaningful(e.f.get("BridgedChannel")), e.ts)
        for member in (leg, other):
            tr.enter(member, f"link:{leg.uniqueid}|{peer}", e.ts)


def _gap(tr: Tracker, e: Event) -> None:
    times = []
    for name in ("since", "until"):
        text = e.f.get(name)
        try:
            times.append(micros(text) if text else e.ts)
        except (TypeError, ValueError):
            tr.problems["gap_bad_time"] += 1
            times.append(e.ts)
    since, until = min(times), max(times)
    scope = e.f.get("Linkedid", "Uniqueid", "UniqueID") or (e.key if e.key and e.key != e.node else "")
    tr.gap(scope or None, since, until, e.ts)


def _cel(tr: Tracker, e: Event) -> None:
    f = e.f
    view = CelView(
        eventtype=f.get("EventName").upper(),
        uniqueid=f.get("UniqueID", "Uniqueid"),
        linkedid=f.get("LinkedID", "Linkedid"),
        channel=f.get("Channel"),
        cid_num=meaningful(f.get("CallerIDnum", "CallerIDNum")),
        cid_name=meaningful(f.get("CallerIDname", "CallerIDName")),
        exten=f.get("Exten"),
        context=f.get("Context"),
        peer=f.get("Peer"),
        extra=f.get("Extra"),
        userfield=f.get("Userfield"),
        fields=f,
    )
    read_cel(tr, view, e.ts, e.id)


HANDLERS: dict[str, Handler] = {
    "Newchannel": _newchannel,
    "Newstate": _channel,
    "NewCallerid": _channel,
    "NewConnectedLine": _channel,
    "Hangup": _hangup,
    "VarSet": _varset,
    "ChannelUpdate": _channel_update,
    "DialBegin": _dial_begin,
    "DialEnd": _dial_end,
    "Dial": _dial11,
    "BridgeEnter": _bridge_enter,
    "BridgeLeave": _bridge_leave,
    "Bridge": _bridge11,
    "LocalBridge": _local_bridge,
    "BlindTransfer": _blind_transfer,
    "AttendedTransfer": _attended_transfer,
    "Transfer": _transfer11,
    "Pickup": _pickup,
    "Masquerade": _masquerade,
    "Rename": _rename,
    "CoreShowChannel": _core_show_channel,
    "CallscopeGap": _gap,
    "CEL": _cel,
}
