"""Pure core of the asterisk_calls processor: AMI, CEL and CDR envelopes in, rows out.

One **leg** per channel (node + uniqueid), one **call** per linkedid per node, one
**transfer** row per transfer, pickup or masquerade, and ``call_links`` rows
``(SIP Call-ID, '', 'asterisk', 'linkedid@node')`` that tie a channel's SIP dialog to its
call (the trace resolves them at query time, as it does X-CID values).

No I/O and no clock: :meth:`AsteriskCorrelator.feed` takes one envelope,
:meth:`AsteriskCorrelator.expire` the caller's ``now``.

- A channel closes on its ``Hangup`` (CEL: HANGUP, CHAN_END); a call closes when every
  channel that holds its linkedid has closed, or on CEL's ``LINKEDID_END``. A call whose
  channels all moved to another linkedid (a pickup, an attended transfer) is ``merged``.
- Gaps: a ``CallscopeGap`` marker (the collector lost its AMI connection) marks the live
  channels of the node, or of one linkedid, ``incomplete``; the resync's
  ``CoreShowChannel`` events confirm (or re-create) the live ones; a channel no resync
  confirmed within ``resync_timeout_secs`` of the reconnect hung up unseen: closed as
  ``lost`` (its end time is the reconnect, at the latest).
- Named timeouts (:class:`processors.asterisk_calls.config.AsteriskCallsConfig`) close
  channels that never hang up (state ``timeout``), counted from their last event.
- An event id seen before (bus redelivery) changes nothing; so does an event of a call
  forgotten after ``final_linger_secs`` (counted as ``late_event``): it cannot overwrite
  the stored call with a partial one.

Every call row carries a ``checkpoint`` (the call, its channels and transfers as JSON)
so a restarted shell can :meth:`AsteriskCorrelator.restore` it.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from processors.asterisk_calls.ami import HANDLERS, Event
from processors.asterisk_calls.cel import CelView, read_cel
from processors.asterisk_calls.config import AsteriskCallsConfig
from processors.asterisk_calls.fields import Fields, meaningful, sip_call_id
from processors.asterisk_calls.rows import (
    CallRow,
    LegRow,
    TransferRow,
    call_row,
    call_state,
    dt,
    leg_row,
    transfer_row,
)
from processors.asterisk_calls.state import CALL_LIVE, Call, NodeState, restore
from processors.asterisk_calls.tracker import Tracker
from processors.call_legs.correlator import LinkRow
from schemas.envelope import AmiEnvelope, CdrEnvelope, CelEnvelope
from schemas.tables import micros
from schemas.wire import Decoded

VIA_ASTERISK = "asterisk"
FORGOTTEN_MAX = 100_000

Output = LegRow | CallRow | TransferRow | LinkRow


def link_value(linkedid: str, node: str) -> str:
    """The ``call_links.value`` that names an Asterisk call: ``linkedid@node``."""
    return f"{linkedid}@{node}"


def link_row(sip_call_id: str, linkedid: str, node: str, ts: int) -> LinkRow:
    value = link_value(linkedid, node)
    return LinkRow(f"{sip_call_id}||{VIA_ASTERISK}|{value}", sip_call_id, "", VIA_ASTERISK, value, dt(ts))


class AsteriskCorrelator:
    """Channels, calls and transfers per node. See the module docstring."""

    def __init__(self, config: AsteriskCallsConfig | None = None) -> None:
        self.config = config or AsteriskCallsConfig()
        self.nodes: dict[str, NodeState] = {}
        self.problems: Counter[str] = Counter()
        self._variables = self.config.call_id_variables()
        self._recent: dict[str, None] = {}
        self._forgotten: dict[tuple[str, str], None] = {}

    # -- inspection -------------------------------------------------------------------------

    def __len__(self) -> int:
        """Calls held in memory."""
        return sum(len(n.calls) for n in self.nodes.values())

    def node(self, name: str) -> NodeState:
        state = self.nodes.get(name)
        if state is None:
            state = self.nodes[name] = NodeState(name)
        return state

    def take_problems(self) -> Counter[str]:
        """What could not be read since the last call (bounded reasons), and reset."""
        out, self.problems = self.problems, Counter()
        return out

    # -- feeding ----------------------------------------------------------------------------

    def feed(self, env: Decoded) -> list[Output]:
        """Apply one envelope (AMI, CEL or CDR; any other kind is ignored); return the rows it changed."""
        if isinstance(env, AmiEnvelope):
            handler = HANDLERS.get(env.body.event)
            if handler is None or self._seen(env.id):
                return []
            node = self.node(env.node)
            f = Fields(env.body.fields)
            if self._late(node, f.get("Linkedid", "LinkedID"), f.get("Uniqueid", "UniqueID")):
                return []
            tr = self._tracker(node, "ami")
            handler(tr, Event(env.body.event, f, micros(env.ts), env.id, env.key, env.node))
            return self._emit(tr)
        if isinstance(env, CelEnvelope):
            if self._seen(env.id):
                return []
            body = env.body
            node = self.node(env.node)
            if self._late(node, body.linkedid or "", body.uniqueid):
                return []
            f = Fields(body.fields)
            view = CelView(
                eventtype=body.eventtype.strip().upper(),
                uniqueid=body.uniqueid.strip(),
                linkedid=(body.linkedid or "").strip(),
                channel=body.channame.strip(),
                cid_num=meaningful(f.get("cid_num", "calleridnum")),
                cid_name=meaningful(f.get("cid_name", "calleridname")),
                exten=f.get("exten"),
                context=f.get("context"),
                peer=f.get("bridgepeer", "peer"),
                extra=body.extra,
                userfield=f.get("userfield"),
                fields=f,
            )
            tr = self._tracker(node, "cel")
            read_cel(tr, view, micros(env.ts), env.id)
            return self._emit(tr)
        if isinstance(env, CdrEnvelope):
            return self._cdr(env)
        return []

    def _tracker(self, node: NodeState, source: str) -> Tracker:
        return Tracker(node, self.config, self.problems, source, self._variables)

    def _seen(self, event_id: str) -> bool:
        if event_id in self._recent:
            return True
        self._recent[event_id] = None
        if len(self._recent) > self.config.recent_ids_max:
            del self._recent[next(iter(self._recent))]
        return False

    def _late(self, node: NodeState, linkedid: str, uniqueid: str) -> bool:
        for kind, value, known in (("l", linkedid, node.calls), ("u", uniqueid, node.legs)):
            if value and value not in known and (node.node, f"{kind}:{value}") in self._forgotten:
                self.problems["late_event"] += 1
                return True
        return False

    def _cdr(self, env: CdrEnvelope) -> list[Output]:
        body = env.body
        f = Fields(body.fields)
        value = ""
        for name in self.config.cdr_sip_call_id_fields:
            value = sip_call_id(f.get(name))
            if value:
                break
        if not value or not body.uniqueid:
            return []
        if self._seen(env.id):
            return []
        node = self.node(env.node)
        leg = node.legs.get(body.uniqueid)
        if leg is not None:
            tr = self._tracker(node, "cdr")
            leg.add_source("cdr")
            tr.sip_call_id(leg, value)
            tr.touch(leg)
            return self._emit(tr)
        return [link_row(value, body.linkedid or body.uniqueid, node.node, micros(env.ts))]

    # -- rows -------------------------------------------------------------------------------

    @staticmethod
    def _pending(node: NodeState, call: Call) -> bool:
        """A call only inferred (Asterisk 11 AMI) that has not shown itself yet: its channels are all Down (or
        a Local half) and idle, likely about to be dialed into another call, or already moved there. No row
        for it (no ghost call for every dialed channel) until it does something."""
        if call.version:
            return False
        for uid in call.legs:
            leg = node.legs.get(uid)
            if leg is None or leg.linkedid != call.linkedid:
                continue
            quiet = leg.state_code in (None, 0) or leg.local
            if not leg.linkedid_derived or not quiet or leg.dials or leg.ended or leg.answered_ts is not None:
                return False
        return True

    def _emit(self, tr: Tracker) -> list[Output]:
        node = tr.node
        for leg in tr.legs.values():
            if leg.linkedid:
                tr.calls.add(leg.linkedid)
        for lid in list(tr.calls):
            call = node.calls.get(lid)
            if call is not None:
                for key in call.transfers:
                    if key in node.transfers:
                        tr.resolve(node.transfers[key])
        calls = [node.calls[lid] for lid in sorted(tr.calls) if lid in node.calls]
        live_calls = [c for c in calls if not self._pending(node, c)]
        emitting = {c.linkedid for c in live_calls}
        out: list[Output] = []
        links: list[Output] = []
        for leg in tr.legs.values():
            if leg.uniqueid not in node.legs or leg.linkedid not in emitting:
                continue
            row = leg_row(node, leg)
            if row is not None:
                out.append(row)
            if leg.sip_call_id:
                for lid in leg.linkedids:
                    call = node.calls.get(lid)
                    if call is None:
                        continue
                    link = link_row(leg.sip_call_id, lid, node.node, leg.last_ts)
                    if link.id not in call.links:
                        call.links.append(link.id)
                        links.append(link)
        for call in live_calls:
            for key in call.transfers:
                t = node.transfers.get(key)
                trow = transfer_row(node, t) if t is not None else None
                if trow is not None:
                    out.append(trow)
            crow = call_row(node, call)
            if crow is not None:
                out.append(crow)
        return out + links

    # -- restart ----------------------------------------------------------------------------

    def restore(self, checkpoint: str) -> tuple[str, str]:
        """Take back a call (its channels and transfers) from a row's ``checkpoint``; returns (node, linkedid)."""
        call, legs, transfers = restore(checkpoint)
        node = self.node(call.node)
        node.calls[call.linkedid] = call
        for leg in legs:
            node.legs[leg.uniqueid] = leg
            for bridge_id in leg.spans:
                node.in_bridge(leg, bridge_id)
        for leg in legs:
            node.name(leg, leg.channel, leg.channel_ts)
        for t in transfers:
            node.transfers[t.key] = t
        return call.node, call.linkedid

    # -- time -------------------------------------------------------------------------------

    def expire(self, now: datetime) -> list[Output]:
        """Close channels whose timeout (or resync deadline) passed by ``now``; forget calls ended
        ``final_linger_secs`` ago (no row)."""
        now_us = micros(now)
        cfg = self.config
        linger = int(cfg.final_linger_secs * 1e6)
        out: list[Output] = []
        for node in self.nodes.values():
            tr = self._tracker(node, "timer")
            for leg in list(node.legs.values()):
                if leg.ended:
                    continue
                if leg.resync_deadline is not None and now_us >= leg.resync_deadline:
                    tr.close_bridges(leg, leg.gap_until if leg.gap_until is not None else leg.resync_deadline)
                    leg.lost = True
                    tr.touch(leg)
                    continue
                limit = cfg.answered_max_secs if leg.answered_ts is not None else cfg.unanswered_timeout_secs
                deadline = leg.last_ts + int(limit * 1e6)
                if now_us >= deadline:
                    tr.close_bridges(leg, deadline)
                    leg.timeout_at = deadline
                    tr.touch(leg)
            if tr.legs or tr.calls:
                out.extend(self._emit(tr))
            for call in list(node.calls.values()):
                if call_state(node, call) == CALL_LIVE:
                    continue
                closed = call.closed_ts if call.closed_ts is not None else call.last_ts
                if now_us >= closed + linger:
                    self._forget(node, call)
        return out

    def _forget(self, node: NodeState, call: Call) -> None:
        del node.calls[call.linkedid]
        self._remember(node.node, f"l:{call.linkedid}")
        for uid in call.legs:
            leg = node.legs.get(uid)
            if leg is not None and leg.ended and (leg.linkedid == call.linkedid or leg.linkedid not in node.calls):
                node.forget_leg(leg)
                self._remember(node.node, f"u:{uid}")
        for key in call.transfers:
            node.transfers.pop(key, None)

    def _remember(self, node: str, key: str) -> None:
        self._forgotten[(node, key)] = None
        if len(self._forgotten) > FORGOTTEN_MAX:
            del self._forgotten[next(iter(self._forgotten))]


__all__ = ["AsteriskCorrelator", "Output", "link_row", "link_value"]
