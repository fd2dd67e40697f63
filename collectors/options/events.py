"""Probe specs, probe results and their envelopes. Pure, no I/O.

A :class:`ProbeSpec` is everything the prober needs for one target (built from the
configuration by :func:`spec_for`); a :class:`ProbeResult` is what one probe found;
:func:`envelope_from_result` turns a result into the bytes of one ``options`` envelope
(:class:`schemas.bodies.OptionsBody`), keyed by the target's name.

Envelope fields: ``node`` = the vantage point (this process's node), ``ts`` = the first
send of the transaction (the start of the probe when nothing was sent, e.g. a DNS
failure), ``received`` = when the result was known, ``id`` = a hash of the node, target,
``ts`` and the probe's Call-ID (unique per probe, the same when the envelope is re-sent).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from collectors.hep.events import ts_text
from collectors.options.config import OptionsConfig, OptionsTarget, SipTarget, TargetKind
from collectors.options.message import ErrorClass
from schemas.envelope import SCHEMA_VERSION, Role, event_id

__all__ = ["ProbeResult", "ProbeSpec", "envelope_from_result", "spec_for"]


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """One target as the prober sees it."""

    name: str
    kind: TargetKind
    sip: SipTarget
    from_uri: str
    to_uri: str | None
    timeout_secs: float
    expect: tuple[int, ...]

    @property
    def request_uri(self) -> str:
        return self.sip.request_uri


def spec_for(target: OptionsTarget, config: OptionsConfig, node: str) -> ProbeSpec:
    """The effective values for ``target``: its own, else the collector's defaults."""
    return ProbeSpec(
        name=target.name,
        kind=target.kind,
        sip=target.sip,
        from_uri=target.from_uri or config.from_uri or f"sip:callscope@{node}",
        to_uri=target.to_uri,
        timeout_secs=config.effective_timeout(target),
        expect=config.effective_expect(target),
    )


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe found. ``error`` is None exactly when the target counts as reachable."""

    ts_us: int  # wall clock of the first send (of the probe's start when nothing was sent)
    error: ErrorClass | None
    status: int | None = None
    reason: str | None = None
    rtt_ms: float | None = None
    server: str | None = None
    error_detail: str | None = None
    remote: str | None = None  # IP:PORT probed
    attempts: int = 0  # transmissions (UDP retransmissions included)
    call_id: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def envelope_from_result(
    spec: ProbeSpec, result: ProbeResult, *, node: str, role: Role, received_us: int
) -> tuple[bytes, bytes]:
    """``(key, envelope bytes)`` of one probe result; validates as :class:`schemas.envelope.OptionsEnvelope`."""
    body = {
        "target": spec.name,
        "target_kind": spec.kind,
        "uri": spec.request_uri,
        "transport": spec.sip.transport,
        "passive": False,
        "status": result.status,
        "reason": result.reason,
        "rtt_ms": result.rtt_ms,
        "server": result.server,
        "error": result.error,
        "error_detail": result.error_detail[:256] if result.error_detail else None,
        "remote": result.remote,
        "attempts": result.attempts,
    }
    envelope = {
        "v": SCHEMA_VERSION,
        "kind": "options",
        "id": event_id("options", node, spec.name, str(result.ts_us), result.call_id),
        "node": node,
        "role": role,
        "ts": ts_text(result.ts_us),
        "received": ts_text(max(received_us, result.ts_us)),
        "key": spec.name,
        "body": body,
    }
    return spec.name.encode(), orjson.dumps(envelope)
