"""State changes of one node's channels and calls, as facts: the readers (:mod:`.ami`, :mod:`.cel`) call these.

Facts, not arrival order: events of one channel can reach the processor through two
partitions (its envelopes are keyed by the linkedid it has *at the time*, and a transfer
or pickup changes it; transfer events without a channel are keyed by the node), so
times keep the earliest (start, answer, hangup) and values the newest (name, caller
id, linkedid), and a fact applied twice changes nothing.

A :class:`Tracker` lives for one event: it records which legs and calls the event
touched, so only their rows are rebuilt.
"""

from __future__ import annotations

from collections import Counter

from processors.asterisk_calls import bridges
from processors.asterisk_calls.config import AsteriskCallsConfig
from processors.asterisk_calls.fields import Block, sip_call_id
from processors.asterisk_calls.state import AST_STATE_RINGING, AST_STATE_UP, Call, Leg, NodeState, Transfer

_NO_EXTEN = frozenset({"", "s"})


def fill(t: Transfer, **values: str | bool) -> None:
    """Set the transfer's fields that are still empty (AMI and CEL may both describe one transfer)."""
    for name, value in values.items():
        if value and not getattr(t, name):
            setattr(t, name, value)


class Tracker:
    """Applies facts to a :class:`NodeState` and remembers what they touched."""

    def __init__(
        self,
        node: NodeState,
        config: AsteriskCallsConfig,
        problems: Counter[str],
        source: str,
        variables: frozenset[str] = frozenset(),
    ) -> None:
        self.node = node
        self.config = config
        self.variables = variables
        self.problems = problems
        self.source = source
        self.legs: dict[str, Leg] = {}
        self.calls: set[str] = set()

    # -- entities ---------------------------------------------------------------------------

    def leg(self, uid: str, ts: int) -> Leg:
        leg = self.node.legs.get(uid)
        if leg is None:
            leg = Leg(node=self.node.node, uniqueid=uid, created=ts, last_ts=ts)
            self.node.legs[uid] = leg
        leg.touch(ts)
        leg.add_source(self.source)
        self.touch(leg)
        return leg

    def known(self, uid: str) -> Leg | None:
        return self.node.legs.get(uid) if uid else None

    def touch(self, leg: Leg) -> None:
        """The leg's row and the rows of every call it belonged to are rebuilt after the event."""
        self.legs[leg.uniqueid] = leg
        self.calls.update(leg.linkedids)
        if leg.linkedid:
            self.calls.add(leg.linkedid)

    def call(self, linkedid: str, ts: int) -> Call:
        call = self.node.calls.get(linkedid)
        if call is None:
            call = Call(node=self.node.node, linkedid=linkedid, created=ts, last_ts=ts)
            self.node.calls[linkedid] = call
        call.touch(ts)
        self.calls.add(linkedid)
        return call

    def see(self, blk: Block, ts: int, *, hangup: bool = False) -> Leg:
        """Apply what a channel block says: name, linkedid, caller id, connected line, extension, state."""
        leg = self.leg(blk.uniqueid, ts)
        self.node.name(leg, blk.name, ts)
        if blk.linkedid:
            self.assign(leg, blk.linkedid, ts)
        elif not leg.linkedid:
            self.assign(leg, blk.uniqueid, ts, derived=True)
        # Each value from the newest event that has one (a name may come without a number and back).
        if blk.caller_num and ts >= leg.caller_ts:
            leg.caller_num, leg.caller_ts = blk.caller_num, ts
        if blk.caller_name and ts >= leg.caller_name_ts:
            leg.caller_name, leg.caller_name_ts = blk.caller_name, ts
        if blk.connected_num and ts >= leg.connected_line_ts:
            leg.connected_num, leg.connected_line_ts = blk.connected_num, ts
        if blk.connected_name and ts >= leg.connected_name_ts:
            leg.connected_name, leg.connected_name_ts = blk.connected_name, ts
        if not hangup and blk.exten not in _NO_EXTEN and (leg.exten_ts < 0 or ts < leg.exten_ts):
            leg.exten, leg.context, leg.exten_ts = blk.exten, blk.context, ts
        if blk.state is not None:
            self.state(leg, blk.state, ts)
        return leg

    def state(self, leg: Leg, code: int, ts: int) -> None:
        if ts >= leg.state_ts:
            leg.state_code, leg.state_ts = code, ts
        if code == AST_STATE_UP:
            self.answer(leg, ts)
        elif code == AST_STATE_RINGING and (leg.ringing_ts is None or ts < leg.ringing_ts):
            leg.ringing_ts = ts

    def assign(self, leg: Leg, linkedid: str, ts: int, *, derived: bool = False) -> None:
        """The channel belongs to ``linkedid`` from ``ts`` on (a guess when ``derived``: Asterisk 11 AMI)."""
        if derived and leg.linkedid and not leg.linkedid_derived:
            return
        if linkedid == leg.linkedid:
            if ts < leg.first_seen.get(linkedid, ts + 1):
                leg.first_seen[linkedid] = ts
            if not derived:
                leg.linkedid_derived = False
                leg.linkedid_ts = max(leg.linkedid_ts, ts)
            return
        if linkedid not in leg.first_seen or ts < leg.first_seen[linkedid]:
            leg.first_seen[linkedid] = ts
        call = self.call(linkedid, ts)
        if len(call.legs) >= self.config.max_channels_per_call and leg.uniqueid not in call.legs:
            self.problems["too_many_channels"] += 1
            return
        if leg.uniqueid not in call.legs:
            call.legs.append(leg.uniqueid)
        old, was_derived = leg.linkedid, leg.linkedid_derived
        if not derived and not was_derived and old and ts < leg.linkedid_ts:
            # An older event naming an earlier linkedid: history, not the current one.
            if linkedid not in leg.linkedids:
                leg.linkedids.insert(0, linkedid)
            return
        if old and was_derived and old in leg.linkedids:
            leg.linkedids.remove(old)  # a guess replaced by what Asterisk said
        leg.linkedid, leg.linkedid_ts, leg.linkedid_derived = linkedid, ts, derived
        if linkedid not in leg.linkedids:
            leg.linkedids.append(linkedid)
        if old:
            self.calls.add(old)
        self.touch(leg)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, leg: Leg, ts: int) -> None:
        if leg.start_ts is None or ts < leg.start_ts:
            leg.start_ts = ts

    def answer(self, leg: Leg, ts: int) -> None:
        if leg.answered_ts is None or ts < leg.answered_ts:
            leg.answered_ts = ts

    def hangup(self, leg: Leg, ts: int, cause: int | None = None, text: str = "") -> None:
        if leg.ended_ts is None or ts < leg.ended_ts:
            leg.ended_ts = ts
        if cause is not None and (leg.cause is None or (leg.cause == 0 and cause != 0)):
            leg.cause, leg.cause_text = cause, text
        elif cause is not None and cause == leg.cause and text and not leg.cause_text:
            leg.cause_text = text
        leg.resync_deadline = None
        self.close_bridges(leg, ts)

    def close_bridges(self, leg: Leg, ts: int) -> None:
        """The channel is gone at ``ts``: it leaves every bridge it is in."""
        closed = False
        for bridge_id, spans in leg.spans.items():
            if bridges.close_all(spans, ts):
                self._touch_bridge(bridge_id)
                closed = True
        if closed:
            self._connect(leg)

    def dial(self, dialer: Leg | None, dest: Leg, ts: int, dial_string: str = "") -> None:
        if dialer is not None:
            if dest.uniqueid not in dialer.dials:
                dialer.dials.append(dest.uniqueid)
            if not dest.dialed_by or ts < dest.dialed_ts:
                dest.dialed_by, dest.dialed_ts = dialer.uniqueid, ts
            if dest.linkedid_derived and dialer.linkedid:
                self.assign(dest, dialer.linkedid, ts, derived=dialer.linkedid_derived)
            self.touch(dialer)
        if dial_string and (not dest.dial_string or ts <= dest.dialed_ts):
            dest.dial_string = dial_string[:256]

    def dial_status(self, dest: Leg, status: str, ts: int, forward: str = "") -> None:
        if status and ts >= dest.dial_status_ts:
            dest.dial_status, dest.dial_status_ts = status.upper()[:32], ts
        if forward:
            dest.forwarded_to = forward[:256]

    def twins(self, one: Leg, two: Leg, ts: int) -> None:
        """The two halves of a Local channel; the ``;2`` half runs in the ``;1`` half's call."""
        one.twin, two.twin = two.uniqueid, one.uniqueid
        if two.linkedid_derived and one.linkedid:
            self.assign(two, one.linkedid, ts, derived=one.linkedid_derived)

    def sip_call_id(self, leg: Leg, value: str) -> None:
        value = sip_call_id(value)
        if value and not leg.sip_call_id:
            leg.sip_call_id = value
            self.touch(leg)

    # -- bridges ----------------------------------------------------------------------------

    def enter(self, leg: Leg, bridge_id: str, ts: int) -> None:
        if not bridges.enter(leg.spans.setdefault(bridge_id, []), ts):
            return
        self.node.in_bridge(leg, bridge_id)
        self._touch_bridge(bridge_id)
        self._connect(leg)

    def leave(self, leg: Leg, bridge_id: str, ts: int) -> None:
        if bridges.leave(leg.spans.setdefault(bridge_id, []), ts):
            self.node.in_bridge(leg, bridge_id)
            self._touch_bridge(bridge_id)
            self._connect(leg)

    def _touch_bridge(self, bridge_id: str) -> None:
        for uid in self.node.bridges.get(bridge_id, ()):
            member = self.node.legs.get(uid)
            if member is not None:
                self.touch(member)

    def _connect(self, leg: Leg) -> None:
        """Non-Local channels joined through bridges and Local pairs at the same moment are connected.

        Recomputed for the whole component at every moment one of its channels entered a bridge, so
        an enter read after the peer's leave (another partition) still connects them at the right
        time, and a hangup read late undoes a connection it never allowed.
        """
        group: dict[str, Leg] = {leg.uniqueid: leg}
        stack = [leg]
        while stack:
            cur = stack.pop()
            near = [u for b in cur.spans for u in self.node.bridges.get(b, ())]
            if cur.twin:
                near.append(cur.twin)
            for uid in near:
                other = self.node.legs.get(uid)
                if other is not None and uid not in group:
                    group[uid] = other
                    stack.append(other)
        members = list(group.values())
        found: dict[str, dict[str, int]] = {m.uniqueid: {} for m in members}
        if sum(not m.local for m in members) >= 2:
            moments = sorted({e for m in members for spans in m.spans.values() for e, _ in spans if e is not None})
            for ts in moments:
                self._connect_at(members, ts, found)
        for m in members:
            if m.connected_to != found[m.uniqueid]:
                m.connected_to = found[m.uniqueid]
                self.touch(m)

    def _connect_at(self, members: list[Leg], ts: int, found: dict[str, dict[str, int]]) -> None:
        parent = {m.uniqueid: m.uniqueid for m in members}

        def root(uid: str) -> str:
            while parent[uid] != uid:
                parent[uid] = parent[parent[uid]]
                uid = parent[uid]
            return uid

        present: dict[str, list[str]] = {}
        for m in members:
            for bridge_id, spans in m.spans.items():
                if bridges.inside(spans, ts):
                    present.setdefault(bridge_id, []).append(m.uniqueid)
            if m.twin in parent and all(x.ended_ts is None or x.ended_ts > ts for x in (m, self.node.legs[m.twin])):
                parent[root(m.uniqueid)] = root(m.twin)
        for uids in present.values():
            for uid in uids[1:]:
                parent[root(uid)] = root(uids[0])
        groups: dict[str, list[Leg]] = {}
        for m in members:
            if not m.local:
                groups.setdefault(root(m.uniqueid), []).append(m)
        for real in groups.values():
            for a in real:
                for b in real:
                    if a is not b and b.uniqueid not in found[a.uniqueid]:
                        found[a.uniqueid][b.uniqueid] = ts

    # -- transfers --------------------------------------------------------------------------

    def transfer(self, kind: str, doer: str, linkedid: str, ts: int, event_id: str) -> Transfer:
        """The transfer of ``kind`` that channel ``doer`` made (the same one when AMI and CEL both report it)."""
        key = f"{self.node.node}|{kind}|{doer or event_id}"
        t = self.node.transfers.get(key)
        if t is None:
            t = Transfer(
                key=key, node=self.node.node, linkedid=linkedid, ts=ts, kind=kind, source=self.source, event_id=event_id
            )
            self.node.transfers[key] = t
        elif ts < t.ts:
            t.ts = ts
        call = self.call(t.linkedid, ts)
        if key not in call.transfers:
            call.transfers.append(key)
        return t

    def resolve(self, t: Transfer) -> None:
        """An attended transfer's transferee and target from its destination bridge (when the event named none)."""
        ever = self.node.bridges.get(t.dest_bridge) if t.dest_bridge else None
        if ever is not None and not (t.transferee and t.target):
            doers = {t.transferer, t.second_transferer}
            cands = [self.node.legs[u] for u in ever if u in self.node.legs and u not in doers]
            cands.sort(key=lambda leg: leg.local)
            for cand in cands:
                first = cand.linkedids[0] if cand.linkedids else cand.linkedid
                if not t.transferee and first == t.linkedid:
                    t.transferee = cand.uniqueid
                elif not t.target and t.second_linkedid and first == t.second_linkedid:
                    t.target = cand.uniqueid
        if t.second_linkedid:
            self.calls.add(t.second_linkedid)
        if t.kind in ("blind", "attended", "blonde") and t.transferee:
            moved = self.node.legs.get(t.transferee)
            call = self.node.calls.get(t.linkedid)
            if moved is not None and call is not None and not moved.local and call.caller != t.transferee:
                call.caller = t.transferee
                self.calls.add(call.linkedid)

    # -- gaps -------------------------------------------------------------------------------

    def gap(self, linkedid: str | None, since: int, until: int, ts: int) -> None:
        """The AMI connection was down from ``since`` to ``until``: channels (of ``linkedid``, or all) alive
        then may have missed events. Judged by their times, not by when the marker is read: a marker that
        arrives after the call's later events (another partition) still flags it."""
        deadline = until + int(self.config.resync_timeout_secs * 1e6)
        for leg in list(self.node.legs.values()):
            if linkedid is not None and linkedid not in (leg.linkedid, leg.uniqueid) and linkedid not in leg.linkedids:
                continue
            end = leg.end_time()
            if leg.started() > until or (end is not None and end < since):
                continue
            leg.incomplete = True
            leg.gap_until = until if leg.gap_until is None else max(leg.gap_until, until)
            if not leg.ended and leg.resync_ts < until:
                leg.resync_deadline = deadline if leg.resync_deadline is None else max(leg.resync_deadline, deadline)
            self.touch(leg)
        for call in self.node.calls.values():
            if linkedid is not None and call.linkedid != linkedid:
                continue
            if call.created <= until and (call.closed_ts is None or call.closed_ts >= since):
                call.incomplete = True
                call.touch(ts)
                self.calls.add(call.linkedid)

    def resynced(self, leg: Leg, ts: int, running_secs: int | None) -> None:
        """A resync (CoreShowChannel) says the channel is alive at ``ts``."""
        leg.resync_ts = max(leg.resync_ts, ts)
        leg.resync_deadline = None
        if leg.start_ts is None:
            leg.incomplete = True
            if running_secs is not None:
                start = ts - running_secs * 1_000_000
                if leg.estimated_start_ts is None or start < leg.estimated_start_ts:
                    leg.estimated_start_ts = start
