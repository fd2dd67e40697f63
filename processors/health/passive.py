"""Pure core of passive OPTIONS: OPTIONS transactions seen in HEP become probe results.

Kamailio's dispatcher and keep-alive pings, OpenSIPS's dispatcher probing: the
proxies already send OPTIONS, and HEP shows them with their answers. Each
transaction becomes one ``options`` envelope with ``passive=True``, the same
shape the active prober publishes:

- A transaction is the capturing node plus Call-ID, CSeq number and the top Via
  branch (when present), so the in- and out-legs of an OPTIONS relayed by a proxy
  (same Call-ID and CSeq, different branches) are two transactions.
- The request's destination names the target: the configured target
  (``collectors.options.targets``) whose host is that IP literal and whose port
  matches (no name is resolved here), else ``host:port`` with kind ``other``.
  At most ``max_passive_targets`` distinct ``host:port`` targets: requests to more
  are dropped (:class:`Dropped` ``target_limit``), so metric labels stay bounded.
  Requests addressed to the capturing node itself (its topology addresses) are
  someone else's probe of this node and are ignored (``inbound``).
- RTT = first final answer's ts − first request's ts: retransmissions of the
  request change nothing, 1xx answers are ignored, later copies of the final
  answer too (the transaction lingers ``passive_linger_secs`` to absorb them).
- The answer's code is judged against the target's expected codes: outside them
  the result has ``error="unexpected_code"``.
- No final answer ``passive_timeout_secs`` after the request (RFC 3261 Timer F):
  an ``error="timeout"`` result from :meth:`PassiveCorrelator.expire`. A
  transaction times out at the second ``expire`` past its deadline, so an answer
  in the next bus batch of a replay still finds its request.
- An answer can be mirrored before its request: Kamailio's siptrace (``trace_mode``)
  mirrors a request it sends after sending it, and the answer, read by another worker
  process, may be mirrored first. A final answer without its request is therefore
  held until the second :meth:`PassiveCorrelator.expire`; the request arriving by then
  completes the transaction (RTT 0 when the answer's time is earlier). Still alone
  then (capture started mid-transaction, or the request was on another node), it is
  :class:`Dropped` ``unmatched_answer``.

The result envelope's id derives from the request's event id, so a replay of the
same capture produces the same envelope. ``ts`` is the request's time (as the active
prober stamps the first send). No I/O, no clock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from collectors.options.config import OptionsConfig
from processors.health.config import HealthConfig
from processors.health.policy import Policies
from schemas.bodies import OptionsBody
from schemas.envelope import OptionsEnvelope, Role, event_id
from schemas.tables import micros
from schemas.wire import SipLike

_US = 1_000_000

_TRANSPORTS: dict[str, Literal["udp", "tcp", "tls"]] = {
    "udp": "udp",
    "tcp": "tcp",
    "tls": "tls",
    "ws": "tcp",
    "wss": "tls",
    "sctp": "udp",
    "other": "udp",
}

DropReason = Literal["target_limit", "unmatched_answer", "transaction_limit", "inbound"]


@dataclass(frozen=True, slots=True)
class Dropped:
    """A message that made no result, and why (a bounded label)."""

    reason: DropReason


PassiveOutput = OptionsEnvelope | Dropped

TxnKey = tuple[str, str, int, str]  # node, Call-ID, CSeq, top Via branch


@dataclass(slots=True)
class _Txn:
    request: SipLike
    ts: int
    target: str
    kind: Literal["trunk", "node", "subscriber", "other"]
    expect: tuple[int, ...]
    remote: str
    attempts: int = 1
    done_at: int | None = None
    ignored: bool = False  # request dropped: its answers are ignored silently
    overdue: bool = False


def normalize_ip(text: str) -> str | None:
    """The canonical text of an IP literal (brackets allowed), None for anything else."""
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        return None


def hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass
class PassiveCorrelator:
    """OPTIONS transactions in flight, keyed by (node, Call-ID, CSeq, branch)."""

    health: HealthConfig
    options: OptionsConfig
    own_addresses: Mapping[str, frozenset[str]] = field(default_factory=dict)
    _txns: dict[TxnKey, _Txn] = field(default_factory=dict, init=False)
    _others: set[str] = field(default_factory=set, init=False)
    _early: dict[TxnKey, tuple[SipLike, bool]] = field(default_factory=dict, init=False)  # answer, overdue
    _by_address: dict[tuple[str, int], tuple[str, Literal["trunk", "node", "subscriber", "other"]]] = field(
        default_factory=dict, init=False
    )

    def __post_init__(self) -> None:
        self._policies = Policies(self.health, self.options)
        for target in self.options.targets:
            sip = target.sip
            ip = normalize_ip(sip.host)
            if ip is not None:
                self._by_address.setdefault((ip, sip.port), (target.name, target.kind))

    def __len__(self) -> int:
        return len(self._txns) + len(self._early)

    @property
    def passive_targets(self) -> int:
        """Distinct unconfigured (``host:port``) targets seen."""
        return len(self._others)

    def feed(self, env: SipLike) -> list[PassiveOutput]:
        """Apply one SIP message; anything but OPTIONS and its answers is ignored."""
        b = env.body
        if (b.method or "").upper() != "OPTIONS":
            return []
        key: TxnKey = (env.node, b.call_id, b.cseq or 0, b.via_branch or "")
        txn = self._txns.get(key)
        if b.is_request:
            if txn is not None:
                txn.attempts += 1  # a retransmission (or a second copy): the RTT keeps the first send
                return []
            return self._request(key, env)
        if b.status is None or b.status < 200:
            return []  # provisional
        if txn is None:
            if key in self._early:
                return []  # a retransmitted final answer, still waiting for its request
            if len(self) >= self.health.max_passive_transactions:
                return [Dropped("unmatched_answer")]
            self._early[key] = (env, False)  # mirrored before its request, perhaps
            return []
        return self._answer(txn, env)

    def _answer(self, txn: _Txn, env: SipLike) -> list[PassiveOutput]:
        b = env.body
        if txn.ignored or txn.done_at is not None or b.status is None:
            return []  # a retransmitted final answer, or the answer to a dropped request
        ts = micros(env.ts)
        txn.done_at = ts
        status = b.status
        error: Literal["unexpected_code"] | None = None if status in txn.expect else "unexpected_code"
        rtt = max(0.0, (ts - txn.ts) / 1000)
        return [
            self._result(
                txn,
                received=env,
                status=status,
                reason=b.reason,
                rtt_ms=round(rtt, 3),
                server=b.server or b.user_agent,
                error=error,
            )
        ]

    def _request(self, key: TxnKey, env: SipLike) -> list[PassiveOutput]:
        early = self._early.pop(key, None)
        out = self._open(key, env)
        txn = self._txns.get(key)
        if early is not None and txn is not None:
            out.extend(self._answer(txn, early[0]))
        return out

    def _open(self, key: TxnKey, env: SipLike) -> list[PassiveOutput]:
        if len(self) >= self.health.max_passive_transactions:
            return [Dropped("transaction_limit")]
        b = env.body
        ip = normalize_ip(b.dst.ip) or b.dst.ip
        remote = hostport(ip, b.dst.port)
        txn = _Txn(request=env, ts=micros(env.ts), target="", kind="other", expect=(), remote=remote)
        self._txns[key] = txn
        own = self.own_addresses.get(env.node, frozenset())
        if ip in own or remote in own:  # a bare IP is the node on every port; IP:PORT that port only
            txn.ignored = True
            return [Dropped("inbound")]
        configured = self._by_address.get((ip, b.dst.port))
        if configured is not None:
            txn.target, txn.kind = configured
        else:
            if remote not in self._others and len(self._others) >= self.health.max_passive_targets:
                txn.ignored = True
                return [Dropped("target_limit")]
            self._others.add(remote)
            txn.target = remote
        txn.expect = self._policies(txn.target).expect_codes
        return []

    def _result(
        self,
        txn: _Txn,
        *,
        received: SipLike | None,
        status: int | None,
        reason: str | None,
        rtt_ms: float | None,
        server: str | None,
        error: Literal["timeout", "unexpected_code"] | None,
    ) -> OptionsEnvelope:
        req = txn.request
        body = OptionsBody(
            target=txn.target,
            target_kind=txn.kind,
            uri=(req.body.request_uri or "")[:1024],
            transport=_TRANSPORTS.get(req.body.transport, "udp"),
            passive=True,
            status=status,
            reason=reason,
            rtt_ms=rtt_ms,
            server=server,
            error=error,
            remote=txn.remote,
            attempts=min(txn.attempts, 1000),
        )
        if received is not None:
            got = received.received
        else:
            got = req.received + timedelta(seconds=self.health.passive_timeout_secs)
        role: Role = req.role
        return OptionsEnvelope(
            kind="options",
            id=event_id("options", req.node, "passive", req.id),
            node=req.node,
            role=role,
            ts=req.ts,
            received=got,
            key=txn.target,
            body=body,
        )

    def expire(self, now: int) -> list[PassiveOutput]:
        """Time out unanswered transactions and forget finished ones, by ``now`` (microseconds)."""
        out: list[PassiveOutput] = []
        timeout_us = int(self.health.passive_timeout_secs * _US)
        linger_us = int(self.health.passive_linger_secs * _US)
        gone: list[TxnKey] = []
        for key, txn in self._txns.items():
            if txn.ignored or txn.done_at is not None:
                if now >= (txn.done_at if txn.done_at is not None else txn.ts + timeout_us) + linger_us:
                    gone.append(key)
                continue
            if now < txn.ts + timeout_us:
                continue
            if not txn.overdue:
                txn.overdue = True  # one more expire for an answer still on its way (replays)
                continue
            txn.done_at = txn.ts + timeout_us
            out.append(
                self._result(txn, received=None, status=None, reason=None, rtt_ms=None, server=None, error="timeout")
            )
        for key in gone:
            del self._txns[key]
        for key, (answer, overdue) in list(self._early.items()):
            if overdue:  # no request within a whole expire interval: it is not coming
                del self._early[key]
                out.append(Dropped("unmatched_answer"))
            else:
                self._early[key] = (answer, True)
        return out
