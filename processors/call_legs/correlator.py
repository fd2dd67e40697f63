"""Pure core of the call_legs processor: SIP envelopes in, ``call_legs``/``call_links`` rows out.

One leg per dialog: Call-ID + the caller's from-tag, merged over every node that
saw it. No I/O and no clock: :meth:`LegCorrelator.feed` takes one envelope,
:meth:`LegCorrelator.expire` takes the caller's ``now``.

Counting. A SIP message is identified by ``(CSeq, method, status, bottom Via
branch, To tag of a response)``: the bottom Via is the originator's, so the copy
a proxy relays (with its own Via on top) is the same message. The first copy
counts in ``message_count``; a copy on another hop (node, source, destination)
only adds its node; a copy again on a hop that already carried it is a
retransmission. An envelope id seen before (a bus redelivery) changes nothing.

State is derived from facts, not from arrival order, so out-of-order messages
(a BYE's 200 stamped before the BYE, a 180 fed after the 200) give the same row:

- ``completed``: a BYE (or its 2xx) in the answered dialog; ``ended_by`` is
  ``caller`` when the BYE's From tag is the leg's from-tag, else ``callee``;
  ``ended_at`` is the earlier of the BYE and its answer;
- ``answered``: a 2xx to the initial INVITE (the first one: other forks' 2xx and
  BYEs to other forks' to-tags do not change the leg);
- ``cancelled``: a 487, or any failure after the caller's CANCEL; ended_by ``caller``;
- ``failed``: another 3xx-6xx. With forking, a 2xx wins over failures, and among
  failures the one sent to the caller's address (the first INVITE's source) wins;
- ``timeout``: closed by :meth:`expire` (``ended_by`` ``system``,
  ``ended_at`` the deadline, no duration);
- ``ringing`` (an 18x), else ``live``.

A 401/407 ends the attempt as ``failed``; the authenticated INVITE that follows
(same Call-ID and from-tag, higher CSeq, no To tag) reopens the leg.
Only an INVITE creates a leg: OPTIONS, MESSAGE, SUBSCRIBE, NOTIFY, REGISTER ...
are counted only when they belong to a known INVITE dialog. A response seen
before its INVITE opens a pending leg that writes no row until the INVITE arrives.

Timeouts (:class:`processors.call_legs.config.CallLegsConfig`) count from the
last message of the dialog (event time), so the row a timeout writes is the same
whichever process computes it and when.

Every change of a row's content gives a new row with a higher ``version``
(``max(previous + 1, microseconds of updated_at)``). Each row carries the leg's
``checkpoint`` (JSON) so a restarted shell can :meth:`LegCorrelator.restore` it.

Rows are built lazily. :meth:`LegCorrelator.touch` applies a message and marks its leg
changed; :meth:`LegCorrelator.rows` builds one row per changed leg (its newest content).
A shell calls ``rows()`` when it writes, so a call whose messages arrive between two
writes costs one row version instead of one per message (building a row, with its
content hash and checkpoint, is most of what a message costs). :meth:`feed` is
``touch`` followed by ``rows``: the eager form, one message in, its rows out.

Timeouts are kept in a heap of deadlines (one live entry per leg, moved when a
message changes the leg's deadline), so :meth:`expire` looks only at legs that are due,
not at every leg held.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from processors.call_legs.config import CallLegsConfig
from schemas.bodies import SipBody
from schemas.tables import from_micros, micros
from schemas.wire import SipLike, WireSipBody, WireSipEnvelope

SipBodyLike = SipBody | WireSipBody

FINAL_STATES = frozenset({"completed", "failed", "cancelled", "timeout"})
LIVE_STATES = ("live", "ringing", "answered")
VIA_HEP = "hep_correlation_id"
VIA_SESSION = "session_id"
_DATETIMES_MAX = 8  # datetimes a leg keeps for its next row versions
_SECONDS_MAX = 65_536  # entries of LegCorrelator._seconds (one per second of traffic) before it starts afresh


_dumps = orjson.dumps
_new_row = tuple.__new__


def _ms(delta_us: int) -> int:
    return max(0, (delta_us + 500) // 1000)


class LegRow(NamedTuple):
    """One version of a ``call_legs`` row (columns of ``schemas.tables.COLUMNS['call_legs']``, in order).

    A named tuple, not a dataclass: one is built per changed leg per write, and a tuple is
    built several times faster than a frozen dataclass of 37 fields.
    """

    id: str
    call_id: str
    leg_id: str
    from_tag: str
    to_tag: str
    caller: str
    callee: str
    caller_display: str
    pai: str
    request_uri: str
    started_at: datetime
    ringing_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    pdd_ms: int | None
    setup_ms: int | None
    duration_secs: float | None
    status: int
    reason: str
    reason_header: str
    ended_by: str
    state: str
    nodes: tuple[str, ...]
    src_ip: str
    dst_ip: str
    user_agent: str
    codecs: tuple[str, ...]
    correlation_ids: tuple[str, ...]
    x_cid: str
    session_id: str
    message_count: int
    retransmissions: int
    reinvites: int
    version: int
    updated_at: datetime
    checkpoint: str

    def values(self) -> tuple[Any, ...]:
        """Values in column order, ready for :class:`callscope.store.sink.BatchSink`: the row itself (its
        arrays are tuples, which the store's converter and clickhouse-connect both take)."""
        return self

    def golden(self) -> dict[str, Any]:
        """The row's content without version bookkeeping (for tests and comparisons)."""
        data = self._asdict()
        for name in ("id", "version", "checkpoint"):
            data.pop(name)
        return data


@dataclass(frozen=True, slots=True)
class LinkRow:
    """One ``call_links`` row."""

    id: str
    call_id: str
    linked_call_id: str
    via: str
    value: str
    ts: datetime

    def values(self) -> tuple[Any, ...]:
        return (self.id, self.call_id, self.linked_call_id, self.via, self.value, self.ts)


Output = LegRow | LinkRow


@dataclass
class _Leg:
    """In-flight state of one leg; every field survives a JSON round trip (the checkpoint)."""

    call_id: str
    from_tag: str
    first_ts: int
    last_ts: int
    invite_ts: int | None = None
    invite_cseq: int = 0
    caller: str = ""
    callee: str = ""
    caller_display: str = ""
    pai: str = ""
    request_uri: str = ""
    src_ip: str = ""
    dst_ip: str = ""
    caller_ep: str = ""
    user_agent: str = ""
    session_id: str = ""
    x_cid: str = ""
    ringing_ts: int | None = None
    answered_ts: int | None = None
    answer_to_tag: str = ""
    answer_status: int = 0
    answer_reason: str = ""
    final_status: int = 0
    final_reason: str = ""
    final_ts: int | None = None
    final_to_tag: str = ""
    final_at_caller: bool = False
    cancel_ts: int | None = None
    cancel_cseq: int = 0
    bye_ts: int | None = None
    bye_by: str = ""
    reason_header: str = ""
    timeout_at: int | None = None
    codecs: list[str] = field(default_factory=list)
    codecs_from_answer: bool = False
    nodes: list[str] = field(default_factory=list)
    correlation_ids: list[str] = field(default_factory=list)
    messages: dict[str, list[str]] = field(default_factory=dict)
    seen_ids: list[str] = field(default_factory=list)
    message_count: int = 0
    retransmissions: int = 0
    reinvites: int = 0
    links: list[str] = field(default_factory=list)
    version: int = 0

    def __post_init__(self) -> None:
        # Private attributes (leading underscore) are not fields: orjson leaves them out of the
        # checkpoint, as it does for every dataclass attribute whose name starts with one.
        self._id = f"{self.call_id}:{self.from_tag}"  # call_id and from_tag never change
        # Datetimes of this leg's row columns by microseconds: a leg's started_at, ringing_at ...
        # are the same in each of its row versions (memory only, rebuilt after a restore).
        self._datetimes: dict[int, datetime] = {}
        # The due time of its live entry in LegCorrelator._deadlines (None: not scheduled).
        self._due: int | None = None
        # hash() of its last row's content (None: no row yet); per process, recomputed by restore().
        self._content: int | None = None

    @property
    def leg_id(self) -> str:
        return self._id

    @classmethod
    def new(cls, call_id: str, from_tag: str, ts: int) -> _Leg:
        """``_Leg(call_id=..., from_tag=..., first_ts=ts, last_ts=ts)``, about three times cheaper.

        The instance dict is a copy of a default leg's (same keys, same order: the checkpoint's
        order), so it is made at its final size instead of growing key by key; the mutable
        defaults are fresh ones.
        """
        leg = _new_object(cls)
        attrs = _DEFAULT_ATTRS.copy()
        attrs["call_id"], attrs["from_tag"], attrs["first_ts"], attrs["last_ts"] = call_id, from_tag, ts, ts
        attrs["codecs"], attrs["nodes"], attrs["correlation_ids"] = [], [], []
        attrs["messages"], attrs["seen_ids"], attrs["links"] = {}, [], []
        attrs["_id"], attrs["_datetimes"], attrs["_due"], attrs["_content"] = f"{call_id}:{from_tag}", {}, None, None
        leg.__dict__ = attrs
        return leg

    def state(self) -> str:
        cancelled = self.cancel_ts is not None and self.cancel_cseq == self.invite_cseq
        if self.bye_ts is not None:
            return "completed"
        if self.answered_ts is not None:
            return "timeout" if self.timeout_at is not None else "answered"
        if self.final_ts is not None:
            return "cancelled" if self.final_status == 487 or cancelled else "failed"
        if self.timeout_at is not None:
            return "cancelled" if cancelled else "timeout"
        if self.ringing_ts is not None:
            return "ringing"
        return "live"

    def closed_at(self) -> int:
        return max(self.last_ts, self.timeout_at or 0)


_new_object = object.__new__
# What _Leg.new() copies: a default leg's attributes (the fields in order, then the private ones).
_DEFAULT_ATTRS: dict[str, Any] = dict(vars(_Leg(call_id="", from_tag="", first_ts=0, last_ts=0)))


class LegCorrelator:
    """Legs in flight, keyed by Call-ID then from-tag. See the module docstring."""

    def __init__(self, config: CallLegsConfig | None = None) -> None:
        self.config = config or CallLegsConfig()
        self._legs: dict[str, dict[str, _Leg]] = {}
        self.ignored = 0  # messages that belong to no INVITE dialog
        self._dirty: dict[str, _Leg] = {}  # leg_id -> leg changed since the last rows()
        # Deadlines: (due, call_id, from_tag) entries; an entry is live while its leg's _due == due.
        self._deadlines: list[tuple[int, str, str]] = []
        cfg = self.config
        self._seen_max = cfg.seen_ids_max
        self._seconds: dict[str, int] = {}  # envelope ts text up to the second -> its microseconds
        self._setup_us = int(cfg.setup_timeout_secs * 1e6)
        self._linger_us = int(cfg.final_linger_secs * 1e6)
        self._limit_us = {
            "live": self._setup_us,
            "ringing": int(cfg.ringing_timeout_secs * 1e6),
            "answered": int(cfg.answered_max_secs * 1e6),
        }

    # -- state inspection -------------------------------------------------------------------

    def __len__(self) -> int:
        return sum(len(v) for v in self._legs.values())

    def leg_ids(self) -> list[str]:
        return [leg.leg_id for legs in self._legs.values() for leg in legs.values()]

    @property
    def dirty_count(self) -> int:
        """Legs changed since the last :meth:`rows` (rows not built yet)."""
        return len(self._dirty)

    def restore(self, checkpoint: str) -> str:
        """Take back a leg from a row's ``checkpoint``; returns its leg_id. Replaces a leg already held.

        The content of the last row is recomputed from the restored state, so a message that changes nothing
        writes no new version after a restart either.
        """
        data = orjson.loads(checkpoint)
        data.pop("fingerprint", None)  # written by versions before 2026-11-26; recomputed below
        leg = _Leg(**data)
        if leg.invite_ts is not None:
            leg._content = hash(tuple(self._fields(leg)))
        self._legs.setdefault(leg.call_id, {})[leg.from_tag] = leg
        self._dirty.pop(leg.leg_id, None)
        self._schedule(leg)
        return leg.leg_id

    # -- feeding ----------------------------------------------------------------------------

    def feed(self, env: SipLike) -> list[Output]:
        """Apply one SIP message; return the rows it changed (none for a replay or an unrelated message)."""
        out: list[Output] = list(self.touch(env))
        out.extend(self.rows())
        return out

    def touch(self, env: SipLike) -> list[LinkRow]:
        """Apply one SIP message and mark its leg changed; return the new link rows.

        The leg's row is built by the next :meth:`rows` (or :meth:`expire`).
        """
        b = env.body
        method = b.method
        method = method.upper() if method else ""
        # micros(env.ts); a msgspec envelope's from its text, by a cache of whole seconds.
        ts = -1
        if type(env) is WireSipEnvelope:
            text = env.ts_text
            if len(text) == 27:  # YYYY-MM-DDTHH:MM:SS.ffffffZ (the encoder's form; digits per the schema)
                base = self._seconds.get(text[:19])
                if base is not None:
                    ts = base + int(text[20:26])
        if ts < 0:
            ts = self._micros(env)
        from_tag, to_tag = b.from_tag or "", b.to_tag or ""
        is_request = b.is_request
        legs = self._legs.get(b.call_id)
        leg: _Leg | None = None
        if legs:
            leg = legs.get(from_tag) or (legs.get(to_tag) if to_tag else None)
        if leg is None:
            if method != "INVITE" or (is_request and to_tag) or not from_tag:
                self.ignored += 1
                return []
            leg = _Leg.new(b.call_id, from_tag, ts)
            if legs is None:
                self._legs[b.call_id] = {from_tag: leg}
            else:
                legs[from_tag] = leg
            self._schedule(leg)
        seen = leg.seen_ids
        env_id = env.id
        if env_id in seen:
            return []
        seen.append(env_id)
        if len(seen) > self._seen_max:
            del seen[0]

        status = b.status or 0
        branches = b.via_branches
        branch = branches[-1] if branches else (b.via_branch or "")
        src, dst, node = b.src, b.dst, env.node
        key = f"{b.cseq or 0}|{method}|{status}|{branch}|{'' if is_request else to_tag}"
        hop = f"{node}|{src.ip}:{src.port}>{dst.ip}:{dst.port}"
        messages = leg.messages
        hops = messages.get(key)
        if hops is None:
            messages[key] = [hop]
            leg.message_count += 1
        elif hop in hops:
            leg.retransmissions += 1
        else:
            hops.append(hop)
        nodes = leg.nodes
        if node not in nodes:
            nodes.append(node)
            nodes.sort()
        correlation_id = b.correlation_id
        if correlation_id and correlation_id not in leg.correlation_ids:
            leg.correlation_ids.append(correlation_id)
            leg.correlation_ids.sort()
        leg.last_ts = max(leg.last_ts, ts)
        leg.first_ts = min(leg.first_ts, ts)

        if is_request:
            self._request(leg, b, method, ts, hops is None)
        else:
            self._response(leg, b, method, status, ts)

        leg_id = leg._id
        self._dirty[leg_id] = leg
        # _deadline(), inline (it runs once per message); keep the two in step
        if leg.invite_ts is None:
            due = leg.last_ts + self._setup_us
        else:
            state = leg.state()
            due = leg.closed_at() + self._linger_us if state in FINAL_STATES else leg.last_ts + self._limit_us[state]
        scheduled = leg._due
        if scheduled is None or due < scheduled:  # earlier than the entry held (a later one re-arms itself)
            leg._due = due
            heapq.heappush(self._deadlines, (due, leg.call_id, leg.from_tag))
        if correlation_id or b.correlation or (leg.session_id and is_request and method == "INVITE" and not to_tag):
            return list(self._links(leg, env, ts))
        return []  # _links() would find nothing to link

    def _micros(self, env: SipLike) -> int:
        """``micros(env.ts)``, and the second it falls in cached for :meth:`touch` (a msgspec envelope's)."""
        ts = micros(env.ts)
        if type(env) is WireSipEnvelope:
            text = env.ts_text
            if len(text) == 27:
                if len(self._seconds) >= _SECONDS_MAX:
                    self._seconds.clear()
                self._seconds[text[:19]] = ts - int(text[20:26])
        return ts

    def rows(self) -> list[LegRow]:
        """A row for every leg changed since the last call whose content changed (see :meth:`_row`)."""
        if not self._dirty:
            return []
        out: list[LegRow] = []
        for leg in self._dirty.values():
            row = self._row(leg)
            if row is not None:
                out.append(row)
        self._dirty.clear()
        return out

    def _request(self, leg: _Leg, b: SipBodyLike, method: str, ts: int, new: bool) -> None:
        cseq = b.cseq or 0
        to_tag = b.to_tag or ""
        from_caller = (b.from_tag or "") == leg.from_tag
        if method == "INVITE":
            if to_tag:
                if new:
                    leg.reinvites += 1
                return
            if cseq > leg.invite_cseq:
                if leg.invite_cseq and leg.answered_ts is None:
                    # A new attempt after a challenge (401/407) or a redirect: the leg reopens.
                    leg.final_status, leg.final_reason, leg.final_ts, leg.final_to_tag = 0, "", None, ""
                    leg.final_at_caller = False
                    leg.timeout_at = None
                leg.invite_cseq = cseq
            if leg.invite_ts is None or ts < leg.invite_ts:
                leg.invite_ts = ts
                leg.caller = b.from_user or ""
                leg.caller_display = b.from_display or ""
                leg.callee = b.to_user or _uri_user(b.request_uri)
                leg.pai = b.pai or ""
                leg.request_uri = b.request_uri or ""
                leg.src_ip, leg.dst_ip = b.src.ip, b.dst.ip
                leg.caller_ep = f"{b.src.ip}:{b.src.port}"
                leg.user_agent = b.user_agent or ""
            if b.session_id and not leg.session_id:
                leg.session_id = b.session_id
            if not leg.x_cid and b.correlation:
                leg.x_cid = self._x_cid(b.correlation)
            if not leg.codecs and b.sdp is not None:
                leg.codecs = _codecs(b.sdp.media)
        elif method == "CANCEL":
            if from_caller and not to_tag:
                if leg.cancel_ts is None or ts < leg.cancel_ts:
                    leg.cancel_ts = ts
                leg.cancel_cseq = cseq
                if b.reason_header:
                    leg.reason_header = b.reason_header
        elif method == "BYE":
            remote = to_tag if from_caller else (b.from_tag or "")
            if leg.answer_to_tag and remote != leg.answer_to_tag:
                return  # a BYE to another fork's dialog
            self._bye(leg, ts, from_caller)
            if b.reason_header:
                leg.reason_header = b.reason_header

    def _response(self, leg: _Leg, b: SipBodyLike, method: str, status: int, ts: int) -> None:
        cseq = b.cseq or 0
        to_tag = b.to_tag or ""
        from_caller = (b.from_tag or "") == leg.from_tag
        if method == "INVITE" and from_caller:
            if leg.invite_cseq == 0:
                leg.invite_cseq = cseq  # a response seen before its INVITE
            if cseq != leg.invite_cseq:
                return  # a re-INVITE's answer, or an earlier attempt's
            if status < 200:
                if status >= 180 and (leg.ringing_ts is None or ts < leg.ringing_ts):
                    leg.ringing_ts = ts
                if status == 183 and not leg.codecs_from_answer and b.sdp is not None and b.sdp.media:
                    leg.codecs, leg.codecs_from_answer = _codecs(b.sdp.media), True
                return
            if status < 300:
                if not leg.answer_to_tag or to_tag == leg.answer_to_tag:
                    leg.answer_to_tag = to_tag
                    if leg.answered_ts is None or ts < leg.answered_ts:
                        leg.answered_ts = ts
                    leg.answer_status, leg.answer_reason = status, b.reason or ""
                    if b.sdp is not None and b.sdp.media:
                        leg.codecs, leg.codecs_from_answer = _codecs(b.sdp.media), True
                return
            at_caller = f"{b.dst.ip}:{b.dst.port}" == leg.caller_ep
            better = (
                leg.final_ts is None
                or (at_caller and not leg.final_at_caller)
                or (at_caller == leg.final_at_caller and ts >= leg.final_ts)
            )
            if better:
                leg.final_status, leg.final_reason, leg.final_ts = status, b.reason or "", ts
                leg.final_to_tag, leg.final_at_caller = to_tag, at_caller
                if b.reason_header:
                    leg.reason_header = b.reason_header
        elif method == "BYE" and 200 <= status < 300:
            remote = to_tag if from_caller else (b.from_tag or "")
            if leg.answer_to_tag and remote != leg.answer_to_tag:
                return
            self._bye(leg, ts, from_caller)

    @staticmethod
    def _bye(leg: _Leg, ts: int, from_caller: bool) -> None:
        if leg.bye_ts is None or ts < leg.bye_ts:
            leg.bye_ts = ts
        if not leg.bye_by:
            leg.bye_by = "caller" if from_caller else "callee"

    def _x_cid(self, correlation: dict[str, str]) -> str:
        for name in self.config.correlation_headers:
            value = correlation.get(name)
            if value:
                return value
        return next((v for v in correlation.values() if v), "")

    def _links(self, leg: _Leg, env: SipLike, ts: int) -> Iterable[LinkRow]:
        b = env.body
        wanted: list[tuple[str, str, bool]] = []  # via, value, value names a Call-ID
        if b.correlation_id and b.correlation_id != leg.call_id:
            wanted.append((VIA_HEP, b.correlation_id, True))
        for name, value in b.correlation.items():
            if value:
                wanted.append((f"header:{name.lower()}", value, value != leg.call_id))
        if leg.session_id and b.is_request and (b.method or "").upper() == "INVITE" and not b.to_tag:
            wanted.append((VIA_SESSION, leg.session_id, False))
        for via, value, direct in wanted:
            rows: list[tuple[str, str]] = []
            if via != VIA_HEP:
                rows.append((leg.call_id, ""))
            if direct:
                rows.extend(((leg.call_id, value), (value, leg.call_id)))
            for call_id, linked in rows:
                row_id = f"{call_id}|{linked}|{via}|{value}"
                if row_id in leg.links:
                    continue
                leg.links.append(row_id)
                yield LinkRow(row_id, call_id, linked, via, value, from_micros(ts))

    # -- rows ---------------------------------------------------------------------------------

    def _row(self, leg: _Leg) -> LegRow | None:
        """A new row version if the leg's content changed since the last row (None for pending legs)."""
        if leg.invite_ts is None:
            return None
        fields = self._fields(leg)
        # The content's hash, not the content: an int per leg held. A hash of the same values is the
        # same within a process (str hashes are salted per process: restore() recomputes it).
        content = hash(tuple(fields))
        if content == leg._content:
            return None
        leg._content = content
        datetimes = leg._datetimes
        updated = leg.closed_at()
        leg.version = version = max(leg.version + 1, updated)
        updated_at = datetimes.get(updated)
        if updated_at is None:
            updated_at = datetimes[updated] = from_micros(updated)
        if len(datetimes) > _DATETIMES_MAX:  # a long dialog (re-INVITEs, timeouts ...): keep the newest
            for us in list(datetimes)[:-_DATETIMES_MAX]:
                del datetimes[us]
        leg_id = leg._id
        fields[:0] = (f"{leg_id}@{version}", leg.call_id, leg_id, leg.from_tag)
        # orjson serialises the dataclass itself, field by field, as asdict() would (without its
        # deep copies, and without the private attributes).
        fields += (version, updated_at, _dumps(leg).decode())
        # tuple.__new__, not LegRow(...): the same tuple without the generated __new__'s frame.
        return _new_row(LegRow, fields)

    @staticmethod
    def _fields(leg: _Leg) -> list[Any]:
        """The row's columns between ``from_tag`` and ``version``: its content (the leg has an INVITE)."""
        started = leg.invite_ts
        assert started is not None
        state = leg.state()
        answered = leg.answered_ts
        fin: int | None = answered if answered is not None else leg.final_ts
        ringing = leg.ringing_ts
        if ringing is not None and fin is not None and fin < ringing:
            ringing = fin
        pdd = ringing if ringing is not None else fin
        duration = None
        if state == "completed":
            ended_at, ended_by = leg.bye_ts, leg.bye_by
            if answered is not None and ended_at is not None:
                duration = max(0, ended_at - answered) / 1e6
        elif state in {"failed", "cancelled"}:
            ended_at = leg.final_ts if leg.final_ts is not None else (leg.timeout_at or leg.cancel_ts)
            ended_by = "caller" if state == "cancelled" else ""
        elif state == "timeout":
            ended_at, ended_by = leg.timeout_at, "system"
        else:
            ended_at, ended_by = None, ""
        if answered is not None:
            status, reason, to_tag = leg.answer_status, leg.answer_reason, leg.answer_to_tag
        else:
            status, reason, to_tag = leg.final_status, leg.final_reason, leg.final_to_tag
        # The leg's datetimes, each built once (from_micros) for all of its row versions.
        datetimes = leg._datetimes
        started_at = datetimes.get(started)
        if started_at is None:
            started_at = datetimes[started] = from_micros(started)
        ringing_at = answered_at = ended_dt = None
        if ringing is not None:
            ringing_at = datetimes.get(ringing)
            if ringing_at is None:
                ringing_at = datetimes[ringing] = from_micros(ringing)
        if answered is not None:
            answered_at = datetimes.get(answered)
            if answered_at is None:
                answered_at = datetimes[answered] = from_micros(answered)
        if ended_at is not None:
            ended_dt = datetimes.get(ended_at)
            if ended_dt is None:
                ended_dt = datetimes[ended_at] = from_micros(ended_at)
        # The row's columns between from_tag and version, built once: they are both the content
        # compared and the row (call_id, leg_id, from_tag never change for a leg). A list: it
        # becomes the row without another copy.
        return [
            to_tag,
            leg.caller,
            leg.callee,
            leg.caller_display,
            leg.pai,
            leg.request_uri,
            started_at,
            ringing_at,
            answered_at,
            ended_dt,
            None if pdd is None else _ms(pdd - started),
            None if fin is None else _ms(fin - started),
            duration,
            status,
            reason,
            leg.reason_header,
            ended_by,
            state,
            tuple(leg.nodes),
            leg.src_ip,
            leg.dst_ip,
            leg.user_agent,
            tuple(leg.codecs),
            tuple(leg.correlation_ids),
            leg.x_cid,
            leg.session_id,
            leg.message_count,
            leg.retransmissions,
            leg.reinvites,
        ]

    # -- time ---------------------------------------------------------------------------------

    def _deadline(self, leg: _Leg) -> int:
        """When :meth:`expire` next has something to do with ``leg`` (event-time microseconds)."""
        if leg.invite_ts is None:
            return leg.last_ts + self._setup_us  # a pending leg is forgotten
        state = leg.state()
        if state in FINAL_STATES:
            return leg.closed_at() + self._linger_us  # a closed leg is forgotten
        return leg.last_ts + self._limit_us[state]  # a live leg times out

    def _schedule(self, leg: _Leg) -> None:
        due = self._deadline(leg)
        leg._due = due
        heapq.heappush(self._deadlines, (due, leg.call_id, leg.from_tag))

    def _forget(self, legs: dict[str, _Leg], leg: _Leg) -> None:
        del legs[leg.from_tag]
        leg._due = None
        if not legs:
            del self._legs[leg.call_id]

    def expire(self, now: datetime) -> list[Output]:
        """Close legs whose timeout passed by ``now`` (rows with state 'timeout'); forget closed legs
        after ``final_linger_secs`` (no row). Rows of legs changed since :meth:`rows` come first."""
        out: list[Output] = list(self.rows())
        now_us = micros(now)
        heap = self._deadlines
        while heap and heap[0][0] <= now_us:
            due, call_id, from_tag = heapq.heappop(heap)
            legs = self._legs.get(call_id)
            leg = legs.get(from_tag) if legs else None
            if leg is None or legs is None or leg._due != due:
                continue  # forgotten, or moved by a later message
            deadline = self._deadline(leg)
            if deadline != due:  # a message moved it later: re-arm (legs are closed in deadline order)
                leg._due = deadline
                heapq.heappush(heap, (deadline, call_id, from_tag))
                continue
            if leg.invite_ts is None or leg.state() in FINAL_STATES:
                self._forget(legs, leg)
                continue
            leg.timeout_at = deadline
            row = self._row(leg)
            if row is not None:
                out.append(row)
            if now_us >= leg.closed_at() + self._linger_us:
                self._forget(legs, leg)
            else:
                self._schedule(leg)
        return out


def _uri_user(uri: str | None) -> str:
    if not uri:
        return ""
    rest = uri.split(":", 1)[-1]
    return rest.split("@", 1)[0] if "@" in rest else ""


def _codecs(media: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for m in media:
        for codec in m.codecs:
            if codec not in out:
                out.append(codec)
    return out
