"""Pure core of the registrations processor: REGISTER transactions in, ``registrations`` rows out.

A transaction is Call-ID + CSeq (every copy of the REGISTER and of its answers, on
every node, is the same transaction; retransmissions change nothing). The
REGISTER writes a row with status 0; the final answer writes the row's new version
with the status, reason, the expiry granted and ``answered_at``. A 401/407 sets
``challenge``; the authenticated retry is the next CSeq on the same Call-ID and
gets a row of its own. ``expires`` is what the 2xx granted (the Contact's
``expires`` parameter or the Expires header, as the collector extracted it), else
what the REGISTER asked, else RFC 3261's default 3600; a 2xx with 0 is a
de-registration. A REGISTER unanswered after ``transaction_timeout_secs`` gets
reason ``timeout`` (status stays 0).

No I/O, no clock: :meth:`RegistrationCorrelator.feed` and
:meth:`RegistrationCorrelator.expire` (the caller's ``now``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from schemas.tables import from_micros, micros
from schemas.wire import SipLike

DEFAULT_EXPIRES = 3600
TIMEOUT_REASON = "timeout"


@dataclass(frozen=True, slots=True)
class RegistrationRow:
    """One version of a ``registrations`` row (columns of ``schemas.tables.COLUMNS['registrations']``)."""

    id: str
    aor: str
    contact: str
    expires: int
    status: int
    reason: str
    node: str
    nodes: tuple[str, ...]
    user_agent: str
    src_ip: str
    call_id: str
    cseq: int
    requested_at: datetime
    answered_at: datetime | None
    challenge: bool
    version: int

    def values(self) -> tuple[Any, ...]:
        return tuple(list(v) if isinstance(v, tuple) else v for v in (getattr(self, f.name) for f in fields(self)))


@dataclass
class _Txn:
    call_id: str
    cseq: int
    last_ts: int
    id: str = ""
    aor: str = ""
    contact: str = ""
    requested_expires: int | None = None
    granted_expires: int | None = None
    status: int = 0
    reason: str = ""
    node: str = ""
    nodes: list[str] = field(default_factory=list)
    user_agent: str = ""
    src_ip: str = ""
    requested_at: int | None = None
    answered_at: int | None = None
    challenge: bool = False
    version: int = 0
    last_row: tuple[Any, ...] | None = None

    def expires(self) -> int:
        if self.status and 200 <= self.status < 300 and self.granted_expires is not None:
            return self.granted_expires
        if self.requested_expires is not None:
            return self.requested_expires
        return DEFAULT_EXPIRES


@dataclass(frozen=True)
class RegistrationTimeouts:
    transaction_timeout_secs: float = 32.0  # Timer F (64*T1): no final answer by then
    final_linger_secs: float = 32.0  # answered transactions absorb retransmissions this long


class RegistrationCorrelator:
    """REGISTER transactions in flight, keyed by (Call-ID, CSeq)."""

    def __init__(self, timeouts: RegistrationTimeouts | None = None) -> None:
        self.timeouts = timeouts or RegistrationTimeouts()
        self._txns: dict[tuple[str, int], _Txn] = {}

    def __len__(self) -> int:
        return len(self._txns)

    def restore(self, row: RegistrationRow) -> None:
        """Take back an unanswered transaction from its stored row (shell restart)."""
        txn = _Txn(
            call_id=row.call_id,
            cseq=row.cseq,
            last_ts=micros(row.requested_at),
            id=row.id,
            aor=row.aor,
            contact=row.contact,
            requested_expires=row.expires,
            status=row.status,
            reason=row.reason,
            node=row.node,
            nodes=list(row.nodes),
            user_agent=row.user_agent,
            src_ip=row.src_ip,
            requested_at=micros(row.requested_at),
            answered_at=None if row.answered_at is None else micros(row.answered_at),
            challenge=row.challenge,
            version=row.version,
        )
        txn.last_row = self._content(txn)
        self._txns[(row.call_id, row.cseq)] = txn

    def feed(self, env: SipLike) -> list[RegistrationRow]:
        """Apply one SIP message (anything but REGISTER and its answers is ignored)."""
        b = env.body
        if (b.method or "").upper() != "REGISTER":
            return []
        ts = micros(env.ts)
        key = (b.call_id, b.cseq or 0)
        txn = self._txns.get(key)
        if txn is None:
            txn = _Txn(call_id=b.call_id, cseq=b.cseq or 0, last_ts=ts)
            self._txns[key] = txn
        txn.last_ts = max(txn.last_ts, ts)
        if env.node not in txn.nodes:
            txn.nodes.append(env.node)
            txn.nodes.sort()
        if not txn.aor:
            txn.aor = _aor(b.to_uri) or _aor(b.from_uri)
        if b.is_request:
            if txn.requested_at is None:
                txn.id, txn.requested_at, txn.node = env.id, ts, env.node
                txn.contact = b.contact or ""
                txn.requested_expires = b.expires
                txn.user_agent = b.user_agent or ""
                txn.src_ip = b.src.ip
        else:
            status = b.status or 0
            if status >= 200:
                if status in (401, 407):
                    txn.challenge = True
                if txn.status == 0 or (txn.status >= 300 and 200 <= status < 300):
                    txn.status, txn.reason = status, b.reason or ""
                    if 200 <= status < 300:
                        txn.granted_expires = b.expires
                        if b.contact and not txn.contact:
                            txn.contact = b.contact
                if txn.answered_at is None or ts < txn.answered_at:
                    txn.answered_at = ts
        row = self._row(txn)
        return [] if row is None else [row]

    @staticmethod
    def _content(txn: _Txn) -> tuple[Any, ...]:
        return (
            txn.aor,
            txn.contact,
            txn.expires(),
            txn.status,
            txn.reason,
            tuple(txn.nodes),
            txn.answered_at,
            txn.challenge,
        )

    def _row(self, txn: _Txn) -> RegistrationRow | None:
        if txn.requested_at is None:
            return None  # an answer seen before its REGISTER: wait for it
        content = self._content(txn)
        if content == txn.last_row:
            return None
        txn.last_row = content
        txn.version = max(txn.version + 1, txn.last_ts)
        return RegistrationRow(
            id=txn.id,
            aor=txn.aor,
            contact=txn.contact,
            expires=txn.expires(),
            status=txn.status,
            reason=txn.reason,
            node=txn.node,
            nodes=tuple(txn.nodes),
            user_agent=txn.user_agent,
            src_ip=txn.src_ip,
            call_id=txn.call_id,
            cseq=txn.cseq,
            requested_at=from_micros(txn.requested_at),
            answered_at=None if txn.answered_at is None else from_micros(txn.answered_at),
            challenge=txn.challenge,
            version=txn.version,
        )

    def expire(self, now: datetime) -> list[RegistrationRow]:
        """Mark REGISTERs unanswered past the transaction timeout (reason 'timeout'); forget old ones."""
        now_us = micros(now)
        timeout = int(self.timeouts.transaction_timeout_secs * 1e6)
        linger = int(self.timeouts.final_linger_secs * 1e6)
        out: list[RegistrationRow] = []
        for key in list(self._txns):
            txn = self._txns[key]
            if txn.status == 0 and txn.reason != TIMEOUT_REASON:
                deadline = txn.last_ts + timeout
                if now_us < deadline:
                    continue
                if txn.requested_at is not None:
                    txn.reason = TIMEOUT_REASON
                    txn.last_ts = deadline
                    row = self._row(txn)
                    if row is not None:
                        out.append(row)
            if now_us >= txn.last_ts + linger:
                del self._txns[key]
        return out


def _aor(uri: str | None) -> str:
    """``user@host`` of a SIP URI (scheme, port, parameters and brackets removed)."""
    if not uri:
        return ""
    text = uri.strip().strip("<>")
    if ":" in text and text.split(":", 1)[0].lower() in ("sip", "sips", "tel"):
        text = text.split(":", 1)[1]
    text = text.split(";", 1)[0].split("?", 1)[0].split(">", 1)[0]
    user, at, host = text.rpartition("@")
    if not at:
        return host.lower()
    host = host.lower()
    host = host.split("]", 1)[0] + "]" if host.startswith("[") else host.split(":", 1)[0]
    return f"{user}@{host}"
