"""Generated OPTIONS results and OPTIONS transactions for the health tests (test data)."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from processors.health.results import ProbeResult
from schemas.envelope import OptionsEnvelope, SipEnvelope, validate
from schemas.tables import micros

T0 = datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC)
US = 1_000_000

_ids = itertools.count(1)


def at(secs: float) -> datetime:
    return T0 + timedelta(seconds=secs)


def us(secs: float) -> int:
    return micros(at(secs))


def ok(t: float, *, node: str = "sbc1", target: str = "carrier-a", rtt: float = 12.0, **kw: Any) -> ProbeResult:
    """A reachable result (200 OK) at T0 + t seconds."""
    return ProbeResult(
        id=f"r{next(_ids)}",
        node=node,
        target=target,
        kind=kw.pop("kind", "trunk"),
        ts=us(t),
        status=200,
        reason="OK",
        rtt_ms=rtt,
        **kw,
    )


def fail(t: float, error: str = "timeout", *, node: str = "sbc1", target: str = "carrier-a", **kw: Any) -> ProbeResult:
    status = kw.pop("status", 503 if error == "unexpected_code" else None)
    return ProbeResult(
        id=f"r{next(_ids)}",
        node=node,
        target=target,
        kind=kw.pop("kind", "trunk"),
        ts=us(t),
        status=status,
        reason=None,
        rtt_ms=kw.pop("rtt_ms", 20.0 if status else None),
        error=error,
        **kw,
    )


def options_env(
    t: float,
    *,
    node: str = "sbc1",
    target: str = "carrier-a",
    error: str | None = None,
    rtt: float | None = 12.0,
    status: int | None = 200,
    kind: str = "trunk",
    ident: str | None = None,
    passive: bool = False,
) -> OptionsEnvelope:
    """An ``options`` envelope as the prober publishes it."""
    if error is not None and error != "unexpected_code":
        status, rtt = None, None
    env = validate(
        {
            "kind": "options",
            "id": ident or hashlib.blake2b(f"{node}|{target}|{t}".encode(), digest_size=12).hexdigest(),
            "node": node,
            "role": "probe",
            "ts": at(t).isoformat(),
            "received": at(t + 0.1).isoformat(),
            "key": target,
            "body": {
                "target": target,
                "target_kind": kind,
                "uri": f"sip:{target}.example.net",
                "status": status,
                "reason": "OK" if status == 200 else None,
                "rtt_ms": rtt,
                "error": error,
                "passive": passive,
            },
        }
    )
    assert isinstance(env, OptionsEnvelope)
    return env


def sip_options(
    t: float,
    *,
    status: int | None = None,
    call_id: str = "ping-1@10.0.0.2",
    cseq: int = 1,
    branch: str | None = "z9hG4bK-ping1",
    node: str = "kam1",
    proxy: tuple[str, int] = ("10.0.0.2", 5060),
    target: tuple[str, int] = ("192.0.2.10", 5060),
    method: str = "OPTIONS",
    transport: str = "udp",
    server: str | None = None,
) -> SipEnvelope:
    """One message of an OPTIONS transaction from ``proxy`` to ``target`` as HEP shows it on ``node``."""
    is_request = status is None
    src, dst = (proxy, target) if is_request else (target, proxy)
    body: dict[str, Any] = {
        "src": {"ip": src[0], "port": src[1]},
        "dst": {"ip": dst[0], "port": dst[1]},
        "transport": transport,
        "is_request": is_request,
        "method": method,
        "status": status,
        "reason": {None: None, 100: "Trying", 200: "OK", 404: "Not Found"}.get(status, "Other"),
        "call_id": call_id,
        "cseq": cseq,
        "via_branch": branch,
        "via_branches": [branch] if branch else [],
        "request_uri": f"sip:{target[0]}:{target[1]}" if is_request else None,
        "server": server,
        "raw": f"{method} sip:{target[0]} SIP/2.0\r\nCSeq: {cseq} {method}\r\n\r\n",
    }
    ident = hashlib.blake2b(repr((node, t, status, call_id, cseq, branch)).encode(), digest_size=12).hexdigest()
    env = validate(
        {
            "kind": "sip",
            "id": ident,
            "node": node,
            "role": "registrar",
            "ts": at(t).isoformat(),
            "received": at(t).isoformat(),
            "key": call_id,
            "body": body,
        }
    )
    assert isinstance(env, SipEnvelope)
    return env
