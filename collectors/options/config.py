"""Configuration of the OPTIONS prober (``collectors.options`` in the YAML file).

A target is a SIP URI (``sip:`` or ``sips:``, with ``;transport=``) or ``HOST[:PORT]``;
:func:`parse_target` turns it into a :class:`SipTarget` (scheme, host, port, transport).
Per-target values left unset fall back to the collector's defaults (``effective_*``).
The health processor reads the same targets (names, kinds, RTT thresholds), so this
module is the contract between the two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Transport = Literal["udp", "tcp", "tls"]
TargetKind = Literal["trunk", "node", "subscriber", "other"]

_DEFAULT_PORT = {"udp": 5060, "tcp": 5060, "tls": 5061}
_NAME = r"^[A-Za-z0-9_.:@-]+$"
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)$")


@dataclass(frozen=True, slots=True)
class SipTarget:
    """Where a probe goes: the Request-URI and the transport address (before DNS)."""

    scheme: Literal["sip", "sips"]
    user: str | None
    host: str  # without IPv6 brackets
    port: int
    transport: Transport

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def request_uri(self) -> str:
        user = f"{self.user}@" if self.user else ""
        params = "" if self.scheme == "sips" or self.transport == "udp" else f";transport={self.transport}"
        return f"{self.scheme}:{user}{self.hostport}{params}"


def parse_target(text: str, transport: Transport | None = None) -> SipTarget:
    """``sip:[user@]host[:port][;transport=x]``, ``sips:...`` or ``host[:port]``; ValueError says what is wrong.

    ``transport`` (from the config) overrides the URI's parameter; ``sips:`` means TLS.
    """
    raw = text.strip()
    if not raw:
        raise ValueError("empty target")
    scheme: Literal["sip", "sips"] = "sip"
    rest = raw
    lower = raw.lower()
    if lower.startswith("sips:"):
        scheme, rest = "sips", raw[5:]
    elif lower.startswith("sip:"):
        rest = raw[4:]
    elif "://" in raw or lower.startswith(("tel:", "http")):
        raise ValueError(f"{raw!r} is not a sip:/sips: URI or HOST[:PORT]")
    rest, _, header_part = rest.partition("?")
    del header_part
    hostpart, *params = rest.split(";")
    uri_transport: str | None = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "transport":
            uri_transport = value.strip().lower()
    user: str | None = None
    if "@" in hostpart:
        user, hostpart = hostpart.rsplit("@", 1)
        user = user or None
    host, port_text = hostpart, ""
    if hostpart.startswith("["):
        close = hostpart.find("]")
        if close < 0:
            raise ValueError(f"unclosed IPv6 bracket in {raw!r}")
        host, tail = hostpart[: close + 1], hostpart[close + 1 :]
        if tail:
            if not tail.startswith(":"):
                raise ValueError(f"unexpected {tail!r} after the IPv6 address in {raw!r}")
            port_text = tail[1:]
    elif hostpart.count(":") == 1:
        host, port_text = hostpart.split(":")
    elif hostpart.count(":") > 1:
        raise ValueError(f"IPv6 addresses must be in brackets: {raw!r}")
    if not host or not _HOST.match(host):
        raise ValueError(f"bad host {host!r} in {raw!r}")
    chosen: str = transport or uri_transport or ("tls" if scheme == "sips" else "udp")
    if chosen not in _DEFAULT_PORT:
        raise ValueError(f"transport must be udp, tcp or tls, got {chosen!r}")
    if scheme == "sips" and chosen != "tls":
        raise ValueError(f"sips: needs TLS, got transport {chosen!r}")
    final: Transport = chosen  # type: ignore[assignment]
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
            raise ValueError(f"bad port {port_text!r} in {raw!r}")
        port = int(port_text)
    else:
        port = _DEFAULT_PORT[final]
    return SipTarget(scheme=scheme, user=user, host=host.strip("[]"), port=port, transport=final)


def _codes(value: tuple[int, ...]) -> tuple[int, ...]:
    if not value:
        raise ValueError("at least one code")
    for code in value:
        if not 100 <= code <= 699:
            raise ValueError(f"{code} is not a SIP status code")
    return tuple(sorted(set(value)))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OptionsTarget(_Frozen):
    """One thing probed: a carrier trunk, a cluster node, a subscriber."""

    name: str = Field(min_length=1, max_length=128, pattern=_NAME, description="Label in metrics and the API.")
    uri: str = Field(min_length=1, max_length=512, description="sip:/sips: URI or HOST[:PORT].")
    kind: TargetKind = "trunk"
    transport: Transport | None = Field(default=None, description="Overrides the URI's ;transport=.")
    from_uri: str | None = Field(default=None, max_length=512)
    to_uri: str | None = Field(default=None, max_length=512, description="Default: the Request-URI.")
    interval_secs: float | None = Field(default=None, gt=0, le=86400)
    timeout_secs: float | None = Field(default=None, gt=0, le=300)
    expect_codes: tuple[int, ...] | None = Field(
        default=None, description="Answers that count as reachable (e.g. 200, 404, 405, 481)."
    )
    rtt_degraded_ms: float | None = Field(default=None, gt=0, description="RTT above which the target is degraded.")

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        parse_target(value)
        return value

    @field_validator("expect_codes")
    @classmethod
    def _expect(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        return None if value is None else _codes(value)

    @model_validator(mode="after")
    def _consistent(self) -> OptionsTarget:
        parse_target(self.uri, self.transport)
        if self.interval_secs is not None and self.timeout_secs is not None and self.timeout_secs > self.interval_secs:
            raise ValueError("timeout_secs must not exceed interval_secs")
        return self

    @property
    def sip(self) -> SipTarget:
        return parse_target(self.uri, self.transport)


class OptionsConfig(_Frozen):
    """SIP OPTIONS probes over UDP, TCP and TLS from this node to its targets."""

    enabled: bool = True
    targets: tuple[OptionsTarget, ...] = Field(default=(), max_length=100_000)
    interval_secs: float = Field(default=30.0, gt=0, le=86400, description="Time between probes of one target.")
    timeout_secs: float = Field(default=5.0, gt=0, le=300, description="No final answer by then: a timeout.")
    t1_ms: int = Field(default=500, ge=10, le=10000, description="RFC 3261 T1: first UDP retransmission.")
    t2_ms: int = Field(default=4000, ge=10, le=60000, description="RFC 3261 T2: retransmission interval cap.")
    jitter: float = Field(default=0.1, ge=0, le=1, description="Spread of start times, as a fraction of the interval.")
    max_concurrency: int = Field(default=1000, ge=1, le=100_000, description="Probes in flight at once.")
    expect_codes: tuple[int, ...] = Field(default=(200,), description="Answers that count as reachable.")
    rtt_degraded_ms: float = Field(default=500.0, gt=0)
    from_uri: str | None = Field(default=None, max_length=512, description="Default: sip:callscope@<node>.")
    user_agent: str = Field(default="callscope", max_length=128)
    bind: str = Field(default="0.0.0.0", description="Local address the probes are sent from.")
    tls_verify: bool = Field(default=True, description="Check the peer's certificate and name.")
    tls_ca_file: Path | None = Field(default=None, description="CA bundle for TLS targets (default: the system's).")
    dns_timeout_secs: float = Field(default=2.0, gt=0, le=60, description="A lookup slower than this: error dns.")
    dns_cache_secs: float = Field(
        default=60.0, ge=0, le=86400, description="How long a resolved host name is reused; 0 resolves every probe."
    )

    @field_validator("expect_codes")
    @classmethod
    def _expect(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return _codes(value)

    @field_validator("targets")
    @classmethod
    def _unique(cls, targets: tuple[OptionsTarget, ...]) -> tuple[OptionsTarget, ...]:
        seen: set[str] = set()
        for target in targets:
            if target.name in seen:
                raise ValueError(f"duplicate target name {target.name!r}")
            seen.add(target.name)
        return targets

    @model_validator(mode="after")
    def _timers(self) -> OptionsConfig:
        if self.t2_ms < self.t1_ms:
            raise ValueError("t2_ms must not be below t1_ms")
        return self

    def effective_interval(self, target: OptionsTarget) -> float:
        return target.interval_secs if target.interval_secs is not None else self.interval_secs

    def effective_timeout(self, target: OptionsTarget) -> float:
        timeout = target.timeout_secs if target.timeout_secs is not None else self.timeout_secs
        return min(timeout, self.effective_interval(target))

    def effective_expect(self, target: OptionsTarget) -> tuple[int, ...]:
        return target.expect_codes if target.expect_codes is not None else self.expect_codes

    def effective_rtt_degraded_ms(self, target: OptionsTarget) -> float:
        return target.rtt_degraded_ms if target.rtt_degraded_ms is not None else self.rtt_degraded_ms

    def target(self, name: str) -> OptionsTarget | None:
        for target in self.targets:
            if target.name == name:
                return target
        return None
