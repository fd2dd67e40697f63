"""The SIP ladder of a call: stored messages in, a ladder model out, rendered as JSON, SVG, mermaid or HTML.

Pure: no I/O, no clock. :func:`build_ladder` takes the messages of a call (and
of its linked calls) as rows of ``sip_messages`` (plus ``via_branch`` from the
body) and returns a :class:`Ladder`:

- **columns** are the hosts (``ip:port``) in order of first appearance, named by
  the topology node whose ``address`` is that ``ip:port`` or that ``ip``
  (:func:`hosts_from_topology`);
- **arrows** are the hops the messages made, in time order. One message is
  captured on every node it crosses: an SBC sees the INVITE arrive from the
  carrier and leave towards Asterisk, and the Asterisk node sees the second hop
  too. A copy with the same hop (src and dst), Call-ID, top Via branch, CSeq,
  method and status within ``duplicate_window_ms`` of the first is the *same
  packet* seen twice and is drawn once (its nodes are listed in ``seen_on``);
  the same hop again after the window is a **retransmission** (drawn, flagged).
  The window (200 ms) is below SIP's T1 (500 ms), the earliest a UDP
  retransmission can come, and above the clock skew of NTP-synchronised nodes.

- **notes** are what the Asterisk nodes said meanwhile (AMI and CEL events of the call:
  a channel created, dialed, answered, bridged, transferred, hung up; see
  :func:`api.trace_asterisk.note_for`), each on the column of its node (the
  topology node's column, or one of its own when no SIP message shows the node).
  Arrows and notes share one time line.

The renderers (:mod:`api.ladder_render`) turn a :class:`Ladder` into SVG,
mermaid ``sequenceDiagram`` text or a standalone HTML page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from callscope.settings import TopologyConfig

DUPLICATE_WINDOW_MS = 200.0

HostNames = Mapping[str, tuple[str, str]]
"""``"ip:port"`` or ``"ip"`` -> (node name, role)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One stored SIP message as the ladder needs it (a ``sip_messages`` row)."""

    id: str
    ts: datetime
    node: str
    call_id: str
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: str
    is_request: bool
    method: str
    status: int
    reason: str
    cseq: int
    via_branch: str = ""
    raw: str = ""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Message:
        return cls(
            id=str(row["id"]),
            ts=row["ts"],
            node=str(row.get("node", "")),
            call_id=str(row.get("call_id", "")),
            src_ip=str(row["src_ip"]),
            src_port=int(row["src_port"]),
            dst_ip=str(row["dst_ip"]),
            dst_port=int(row["dst_port"]),
            transport=str(row.get("transport", "udp")),
            is_request=bool(row["is_request"]),
            method=str(row.get("method", "")),
            status=int(row.get("status") or 0),
            reason=str(row.get("reason", "")),
            cseq=int(row.get("cseq") or 0),
            via_branch=str(row.get("via_branch", "")),
            raw=str(row.get("raw", "")),
        )

    @property
    def label(self) -> str:
        if self.is_request:
            return self.method or "request"
        return f"{self.status} {self.reason}".strip()


@dataclass(frozen=True, slots=True)
class Column:
    id: str
    host: str
    port: int
    node: str
    role: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "host": self.host, "port": self.port, "node": self.node, "role": self.role}


@dataclass(slots=True)
class Arrow:
    """One hop of one message. ``message`` is the first copy captured; ``seen_on`` every node that captured it."""

    message: Message
    src: str
    dst: str
    delta_ms: float
    since_start_ms: float
    retransmission: bool
    seen_on: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def label(self) -> str:
        return self.message.label

    @property
    def kind(self) -> str:
        """Colour class: ``req``, ``r1xx`` ... ``r6xx``."""
        if self.message.is_request:
            return "req"
        return f"r{max(1, min(6, self.message.status // 100))}xx"

    def to_json(self) -> dict[str, Any]:
        m = self.message
        return {
            "id": m.id,
            "ts": m.ts.isoformat(),
            "from": self.src,
            "to": self.dst,
            "label": self.label,
            "method": m.method,
            "status": None if m.is_request else m.status,
            "cseq": m.cseq,
            "transport": m.transport,
            "delta_ms": round(self.delta_ms, 3),
            "since_start_ms": round(self.since_start_ms, 3),
            "node": m.node,
            "seen_on": list(self.seen_on),
            "call_id": m.call_id,
            "retransmission": self.retransmission,
        }


@dataclass(frozen=True, slots=True)
class Note:
    """An event an Asterisk node reported (AMI or CEL), shown on that node's column."""

    id: str
    ts: datetime
    node: str
    source: str  # "ami" or "cel"
    event: str
    text: str
    column: str = ""  # set by build_ladder
    since_start_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts.isoformat(),
            "node": self.node,
            "column": self.column,
            "source": self.source,
            "event": self.event,
            "text": self.text,
            "since_start_ms": round(self.since_start_ms, 3),
        }


@dataclass(slots=True)
class Ladder:
    call_id: str
    columns: list[Column]
    arrows: list[Arrow]
    notes: list[Note] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "columns": [c.to_json() for c in self.columns],
            "arrows": [a.to_json() for a in self.arrows],
            "notes": [n.to_json() for n in self.notes],
        }

    def rows(self) -> list[Arrow | Note]:
        """Arrows and notes in time order (an arrow first at equal times)."""
        merged: list[tuple[datetime, int, int, Arrow | Note]] = [
            (a.message.ts, 0, i, a) for i, a in enumerate(self.arrows)
        ]
        merged.extend((n.ts, 1, i, n) for i, n in enumerate(self.notes))
        merged.sort(key=lambda item: item[:3])
        return [item[3] for item in merged]


def endpoint(ip: str, port: int) -> str:
    """``ip:port``, IPv6 addresses in brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def hosts_from_topology(topology: TopologyConfig) -> dict[str, tuple[str, str]]:
    """Names for columns from the topology: each node's ``address`` (``ip`` or ``ip:port``) -> (name, role)."""
    names: dict[str, tuple[str, str]] = {}
    for node in topology.nodes:
        if node.address:
            names[node.address] = (node.name, node.role)
    return names


def build_ladder(
    call_id: str,
    messages: Iterable[Message],
    hosts: HostNames | None = None,
    *,
    duplicate_window_ms: float = DUPLICATE_WINDOW_MS,
    notes: Iterable[Note] = (),
) -> Ladder:
    """The ladder of ``messages`` (any order; sorted here by time then id), with ``notes`` on their nodes'
    columns. See the module for the rules."""
    hosts = hosts or {}
    ordered = sorted(messages, key=lambda m: (m.ts, m.id))
    timed_notes = sorted(notes, key=lambda n: (n.ts, n.id))
    columns: dict[str, Column] = {}
    arrows: list[Arrow] = []
    last_seen: dict[tuple[Any, ...], tuple[datetime, Arrow]] = {}
    window_s = duplicate_window_ms / 1000.0
    firsts = [m.ts for m in ordered[:1]] + [n.ts for n in timed_notes[:1]]
    start = min(firsts) if firsts else None
    previous: datetime | None = None
    for m in ordered:
        src = endpoint(m.src_ip, m.src_port)
        dst = endpoint(m.dst_ip, m.dst_port)
        key = (m.call_id, src, dst, m.via_branch, m.cseq, m.method, m.is_request, m.status)
        seen = last_seen.get(key)
        if seen is not None and (m.ts - seen[0]).total_seconds() <= window_s:
            if m.node not in seen[1].seen_on:
                seen[1].seen_on.append(m.node)
            continue
        for ep, ip, port in ((src, m.src_ip, m.src_port), (dst, m.dst_ip, m.dst_port)):
            if ep not in columns:
                node, role = hosts.get(ep) or hosts.get(ip) or ("", "")
                columns[ep] = Column(id=ep, host=ip, port=port, node=node, role=role)
        assert start is not None
        arrow = Arrow(
            message=m,
            src=src,
            dst=dst,
            delta_ms=0.0 if previous is None else (m.ts - previous).total_seconds() * 1000.0,
            since_start_ms=(m.ts - start).total_seconds() * 1000.0,
            retransmission=seen is not None,
            seen_on=[m.node],
        )
        arrows.append(arrow)
        last_seen[key] = (m.ts, arrow)
        previous = m.ts
    placed: list[Note] = []
    for note in timed_notes:
        column = next((c.id for c in columns.values() if c.node == note.node), "")
        if not column:
            column = f"asterisk:{note.node}"
            if column not in columns:
                columns[column] = Column(id=column, host=note.node, port=0, node=note.node, role="")
        assert start is not None
        placed.append(replace(note, column=column, since_start_ms=(note.ts - start).total_seconds() * 1000.0))
    return Ladder(call_id=call_id, columns=list(columns.values()), arrows=arrows, notes=placed)


def ladder_messages(ladder: Ladder) -> Sequence[Message]:
    """The messages drawn, one per arrow (duplicate captures left out), in time order."""
    return [a.message for a in ladder.arrows]
