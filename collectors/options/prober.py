"""The prober: one OPTIONS transaction to one target, over UDP, TCP or TLS, as a :class:`ProbeResult`.

Steps: resolve the host (:mod:`.resolve`, bounded by ``dns_timeout_secs``: ``dns``),
then run the transaction (:mod:`.udp` on the shared sockets, :mod:`.stream` on a
connection of its own) within the target's timeout, then classify: a final answer in the
expected codes is reachable (``error`` None), another final answer is
``unexpected_code``; otherwise ``timeout``, ``refused``, ``tls`` or ``malformed``.

The collector and ``callscope probe`` share it. Metrics it keeps (registered once per
registry): ``callscope_options_stray_answers_total{reason}`` (bounded reasons, see
:data:`collectors.options.udp.STRAY_REASONS`), ``callscope_options_inflight``,
``callscope_options_retransmissions_total``; caught I/O errors go to
``callscope_errors_total{component="options"}``.
"""

from __future__ import annotations

import ssl
import time
import weakref
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from callscope.telemetry import Telemetry
from collectors.options.config import OptionsConfig
from collectors.options.events import ProbeResult, ProbeSpec
from collectors.options.message import Outcome, build_request, classify, new_ids
from collectors.options.resolve import DnsError, Resolver
from collectors.options.stream import StreamError, transact_stream
from collectors.options.udp import STRAY_REASONS, UdpTransport
from schemas.errors import ConfigError

__all__ = ["COMPONENT", "OptionsMetrics", "Prober", "make_ssl_context", "options_metrics"]

COMPONENT = "options"


@dataclass(frozen=True, slots=True)
class OptionsMetrics:
    stray: Counter
    inflight: Gauge
    retransmissions: Counter
    skipped: Counter


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, OptionsMetrics] = weakref.WeakKeyDictionary()


def options_metrics(telemetry: Telemetry) -> OptionsMetrics:
    """The collector-side OPTIONS metrics, registered once per registry."""
    metrics = _METRICS.get(telemetry.registry)
    if metrics is None:
        r = telemetry.registry
        metrics = OptionsMetrics(
            stray=Counter(
                "callscope_options_stray_answers_total",
                "Datagrams and answers the prober ignored, by reason.",
                ["reason"],
                registry=r,
            ),
            inflight=Gauge("callscope_options_inflight", "OPTIONS probes in flight.", registry=r),
            retransmissions=Counter(
                "callscope_options_retransmissions_total", "OPTIONS requests sent again over UDP (timer E).", registry=r
            ),
            skipped=Counter(
                "callscope_options_skipped_total",
                "Scheduled probes not sent because the target's previous probe was still in flight.",
                registry=r,
            ),
        )
        for reason in STRAY_REASONS:
            metrics.stray.labels(reason)
        _METRICS[r] = metrics
    return metrics


def make_ssl_context(config: OptionsConfig, option: str = "collectors.options.tls_ca_file") -> ssl.SSLContext:
    """The client TLS context of the configuration; :class:`ConfigError` naming ``option`` for a bad CA file."""
    try:
        ctx = ssl.create_default_context(cafile=str(config.tls_ca_file) if config.tls_ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            [(option, f"cannot load {config.tls_ca_file}: {getattr(exc, 'strerror', None) or exc}")]
        ) from None
    if not config.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Prober:
    """Sends OPTIONS probes; one per :meth:`probe` call. Call :meth:`close` when done."""

    def __init__(self, config: OptionsConfig, telemetry: Telemetry, *, tls: ssl.SSLContext | None = None) -> None:
        self.config = config
        self.telemetry = telemetry
        self.metrics = options_metrics(telemetry)
        self._stray = {reason: self.metrics.stray.labels(reason) for reason in STRAY_REASONS}
        self._errors = telemetry.errors
        self._tls = tls
        self.resolver = Resolver(config.dns_timeout_secs, config.dns_cache_secs)
        self.udp = UdpTransport(config, self._on_stray, self._on_error, self.metrics.retransmissions.inc)

    def _on_stray(self, reason: str) -> None:
        child = self._stray.get(reason)
        if child is None:  # pragma: no cover - reasons are a closed set
            child = self._stray["garbage"]
        child.inc()

    def _on_error(self, error: str) -> None:
        self._errors.labels(COMPONENT, error).inc()

    def healthy(self) -> bool:
        return self.udp.healthy()

    def close(self) -> None:
        self.udp.close()
        self.resolver.close()

    def tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = make_ssl_context(self.config)
        return self._tls

    async def probe(self, spec: ProbeSpec, cseq: int = 1) -> ProbeResult:
        """One probe of ``spec``; never raises but for cancellation."""
        self.metrics.inflight.inc()
        try:
            return await self._probe(spec, cseq)
        finally:
            self.metrics.inflight.dec()

    async def _probe(self, spec: ProbeSpec, cseq: int) -> ProbeResult:
        start_us = time.time_ns() // 1000
        target = spec.sip
        try:
            family, ip = await self.resolver.resolve(target.host)
        except DnsError as exc:
            return ProbeResult(start_us, "dns", error_detail=str(exc))
        remote = (ip, target.port)
        shown = f"[{ip}]:{target.port}" if ":" in ip else f"{ip}:{target.port}"
        ids = new_ids()

        def build(local: tuple[str, int]) -> bytes:
            return build_request(
                request_uri=target.request_uri,
                transport=target.transport,
                local=local,
                ids=ids,
                cseq=cseq,
                from_uri=spec.from_uri,
                to_uri=spec.to_uri,
                user_agent=self.config.user_agent,
            )

        if target.transport == "udp":
            try:
                outcome = await self.udp.transact(
                    family, remote, build, ids.branch, ids.call_id, timeout_secs=spec.timeout_secs
                )
            except OSError as exc:  # the shared socket could not be opened (bind address)
                self._on_error("udp_socket")
                return ProbeResult(start_us, "refused", error_detail=f"socket: {exc.strerror or exc}", remote=shown)
        else:
            try:
                outcome = await transact_stream(
                    remote,
                    build,
                    ids.branch,
                    ids.call_id,
                    timeout_secs=spec.timeout_secs,
                    tls=self.tls_context() if target.transport == "tls" else None,
                    server_hostname=target.host,
                    on_stray=self._on_stray,
                )
            except StreamError as exc:
                return ProbeResult(
                    exc.outcome.first_send_us or start_us,
                    exc.error,
                    error_detail=exc.detail,
                    remote=shown,
                    attempts=exc.outcome.attempts,
                    call_id=ids.call_id,
                )
        return _result(spec, outcome, shown, ids.call_id, start_us)


def _result(spec: ProbeSpec, outcome: Outcome, remote: str, call_id: str, start_us: int) -> ProbeResult:
    ts_us = outcome.first_send_us or start_us
    answer = outcome.answer
    if answer is not None:
        rtt_ms = round(max(outcome.received - outcome.first_send, 0.0) * 1000, 3)
        error = classify(answer.status, spec.expect)
        return ProbeResult(
            ts_us,
            error,
            status=answer.status,
            reason=answer.reason,
            rtt_ms=rtt_ms,
            server=answer.server,
            error_detail=None if error is None else f"{answer.status} is not in {list(spec.expect)}",
            remote=remote,
            attempts=outcome.attempts,
            call_id=call_id,
        )
    if outcome.refused is not None:
        return ProbeResult(
            ts_us, "refused", error_detail=outcome.refused, remote=remote, attempts=outcome.attempts, call_id=call_id
        )
    if outcome.garbled:
        detail = f"no usable answer within {spec.timeout_secs:g} s, only bytes that are not SIP"
        return ProbeResult(
            ts_us, "malformed", error_detail=detail, remote=remote, attempts=outcome.attempts, call_id=call_id
        )
    detail = f"no final answer within {spec.timeout_secs:g} s ({outcome.attempts} sent)"
    return ProbeResult(ts_us, "timeout", error_detail=detail, remote=remote, attempts=outcome.attempts, call_id=call_id)
