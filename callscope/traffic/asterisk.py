"""What one Asterisk node reports about a call: AMI events, CEL and queue_log lines, one CDR.

The events follow Asterisk 13's AMI (``timestampevents = yes``): channels with their
``Uniqueid``/``Linkedid``, the SIP Call-ID set as ``SIPCALLID`` (a ``VarSet``, as the
dialplan line in docs/asterisk.md makes Asterisk report it), dials, bridges, hangups with
Q.850 causes, and app_queue's caller and agent events. CEL lines use cel_custom's sample
column order, the CDR line cdr_csv's 18 columns (uniqueid and userfield = the SIP Call-ID),
queue_log the ``epoch|callid|queue|agent|event|data…`` layout. Times are UTC.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from callscope.traffic.builder import Builder
from callscope.traffic.model import Node

_STATES = {"Down": "0", "Ring": "4", "Ringing": "5", "Up": "6"}
CAUSES = {
    0: "Unknown",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
}


@dataclass
class Channel:
    """One Asterisk channel and what AMI repeats about it in every event."""

    name: str
    uniqueid: str
    linkedid: str
    caller_num: str
    exten: str
    context: str
    sip_call_id: str
    state: str = "Down"
    connected: str = "<unknown>"
    answered_us: int | None = None
    start_us: int = 0

    def fields(self, prefix: str = "") -> dict[str, str]:
        return {
            f"{prefix}Channel": self.name,
            f"{prefix}ChannelState": _STATES[self.state],
            f"{prefix}ChannelStateDesc": self.state,
            f"{prefix}CallerIDNum": self.caller_num,
            f"{prefix}CallerIDName": "<unknown>",
            f"{prefix}ConnectedLineNum": self.connected,
            f"{prefix}ConnectedLineName": "<unknown>",
            f"{prefix}Language": "en",
            f"{prefix}AccountCode": "",
            f"{prefix}Context": self.context,
            f"{prefix}Exten": self.exten,
            f"{prefix}Priority": "1",
            f"{prefix}Uniqueid": self.uniqueid,
            f"{prefix}Linkedid": self.linkedid,
        }


def _utc(us: int) -> str:
    return datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


class AsteriskCall:
    """The Asterisk side of one call (one linkedid) on ``node``, written into the builder as it happens."""

    def __init__(self, b: Builder, node: Node) -> None:
        self.b = b
        self.node = node
        self.channels: list[Channel] = []
        self.bridge_id = ""
        self.caller: Channel | None = None

    # ------------------------------------------------------------------ channels
    def channel(self, tech_peer: str, caller_num: str, exten: str, context: str, sip_call_id: str) -> Channel:
        """A new channel (the first one is the caller: its uniqueid is the linkedid)."""
        b = self.b
        b.uniqueid_seq += 1
        b.channel_seq += 1
        uid = f"{b.now_us // 1_000_000}.{b.uniqueid_seq}"
        linkedid = self.caller.linkedid if self.caller else uid
        chan = Channel(f"PJSIP/{tech_peer}-{b.channel_seq:08x}", uid, linkedid, caller_num, exten, context, sip_call_id)
        chan.start_us = b.now_us
        if self.caller is None:
            self.caller = chan
        else:
            chan.connected = self.caller.caller_num
        self.channels.append(chan)
        self.ami("Newchannel", chan)
        variable = "__SIPCALLID" if chan is self.caller else "SIPCALLID"
        self.ami("VarSet", chan, Variable=variable, Value=sip_call_id)
        self.cel("CHAN_START", chan)
        return chan

    def state(self, chan: Channel, state: str) -> None:
        chan.state = state
        self.ami("Newstate", chan)
        if state == "Up":
            chan.answered_us = self.b.now_us
            self.cel("ANSWER", chan)

    def dial_begin(self, caller: Channel, dest: Channel) -> None:
        self.ami("DialBegin", caller, **dest.fields("Dest"), DialString=dest.name.rsplit("-", 1)[0])

    def dial_end(self, caller: Channel, dest: Channel, status: str) -> None:
        self.ami("DialEnd", caller, **dest.fields("Dest"), DialStatus=status)

    def bridge(self, *chans: Channel) -> None:
        b = self.b
        # Asterisk's bridge ids are UUIDs; drawn from the seeded generator so they repeat with the seed.
        self.bridge_id = str(uuid.UUID(int=b.rng.getrandbits(128), version=4))
        self.ami("BridgeCreate", None, **self._bridge_fields(0))
        for n, chan in enumerate(chans, 1):
            self.ami("BridgeEnter", chan, **self._bridge_fields(n))
            peer = chans[0] if chan is not chans[0] else (chans[1] if len(chans) > 1 else chan)
            self.cel("BRIDGE_ENTER", chan, peer=peer.name)

    def unbridge(self, *chans: Channel) -> None:
        left = len(chans)
        for chan in chans:
            left -= 1
            self.ami("BridgeLeave", chan, **self._bridge_fields(left))
            self.cel("BRIDGE_EXIT", chan)
        self.ami("BridgeDestroy", None, **self._bridge_fields(0))

    def hangup(self, chan: Channel, cause: int, dialstatus: str = "") -> None:
        self.ami("Hangup", chan, Cause=str(cause), **{"Cause-txt": CAUSES[cause]})
        extra = {"hangupcause": cause, "hangupsource": chan.name, "dialstatus": dialstatus}
        self.cel("HANGUP", chan, extra=orjson.dumps(extra).decode())
        self.cel("CHAN_END", chan)

    def end(self, *, dst: str, dstchannel: str, lastapp: str, lastdata: str, disposition: str) -> None:
        """The call is over: CEL's LINKEDID_END and the caller channel's CDR."""
        caller = self.caller
        assert caller is not None
        self.cel("LINKEDID_END", caller)
        b = self.b
        started_us = caller.start_us
        answered = caller.answered_us
        duration = max(0, (b.now_us - started_us) // 1_000_000)
        billsec = 0 if answered is None else max(0, (b.now_us - answered) // 1_000_000)
        cols = [
            _quote(""),
            _quote(caller.caller_num),
            _quote(dst),
            _quote(caller.context),
            _quote(f'"{caller.caller_num}" <{caller.caller_num}>'),
            _quote(caller.name),
            _quote(dstchannel),
            _quote(lastapp),
            _quote(lastdata),
            _quote(_utc(started_us)),
            _quote(_utc(answered)) if answered is not None else "",
            _quote(_utc(b.now_us)),
            str(duration),
            str(billsec),
            _quote(disposition),
            _quote("DOCUMENTATION"),
            _quote(caller.uniqueid),
            _quote(caller.sip_call_id),
        ]
        b.add("cdr", ",".join(cols))
        b.summary.asterisk_calls += 1

    # ------------------------------------------------------------------ queues
    def queue_log(self, callid: str, queue: str, agent: str, event: str, *data: str) -> None:
        line = "|".join((str(self.b.now_us // 1_000_000), callid, queue, agent, event, *data))
        self.b.add("queue_log", line)

    # ------------------------------------------------------------------ writers
    def ami(self, event: str, chan: Channel | None, **extra: str) -> None:
        fields: dict[str, str] = {"Event": event, "Privilege": "call,all", "Timestamp": f"{self.b.now_us / 1e6:.6f}"}
        if chan is not None:
            fields.update(chan.fields())
        fields.update(extra)
        fields["SystemName"] = self.node.name
        self.b.add("ami", fields)

    def cel(self, event: str, chan: Channel, *, peer: str = "", extra: str = "") -> None:
        now = self.b.now_us
        values = [
            event,
            f"{now // 1_000_000}.{now % 1_000_000:06d}",
            "",
            chan.caller_num,
            chan.caller_num,
            "",
            chan.exten,
            chan.exten,
            chan.context,
            chan.name,
            "Queue" if chan.context == "queues" else "Dial",
            "",
            "3",
            "",
            chan.uniqueid,
            chan.linkedid,
            peer,
            chan.sip_call_id,
            "",
            extra,
        ]
        self.b.add("cel", ",".join(_quote(v) for v in values))

    def _bridge_fields(self, count: int) -> dict[str, str]:
        return {
            "BridgeUniqueid": self.bridge_id,
            "BridgeType": "basic",
            "BridgeTechnology": "simple_bridge",
            "BridgeCreator": "<unknown>",
            "BridgeName": "<unknown>",
            "BridgeNumChannels": str(count),
        }
