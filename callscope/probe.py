"""``callscope probe`` (OPTIONS from the command line, like sipsak) and ``callscope run --probe``.

``probe`` sends ``--count`` OPTIONS to one URI, ``--interval-secs`` apart, with the
collector's prober (:mod:`collectors.options.prober`), and prints one line per probe:
code, reason, RTT and Server, or the error class and why; ``--json`` prints one JSON
object per probe instead. Exit 0 when every probe was reachable, 1 otherwise; bad
options raise :class:`ConfigError` naming the option (exit 2).

``run --probe NAME=URI`` adds trunk targets to ``collectors.options.targets`` on top of
the configuration file, each probed every ``--probe-interval-secs``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson
from pydantic import ValidationError

from callscope.settings import Settings, load_settings
from callscope.telemetry import Telemetry
from collectors.options.config import OptionsConfig, OptionsTarget, SipTarget, Transport, parse_target
from collectors.options.events import ProbeResult, ProbeSpec
from collectors.options.prober import Prober, make_ssl_context
from schemas.errors import ConfigError

__all__ = ["ProbeOptions", "add_probe_targets", "format_result", "run_probe"]


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    return str(err["msg"]).removeprefix("Value error, ")


def add_probe_targets(settings: Settings, probes: Sequence[str], interval_secs: float, role: str = "all") -> Settings:
    """``settings`` with one trunk target per ``NAME=URI`` added; ConfigError names ``--probe``."""
    if not 0 < interval_secs <= 86400:
        raise ConfigError([("--probe-interval-secs", "must be more than 0 and at most 86400")])
    if role not in ("all", "collector"):
        raise ConfigError([("--probe", f"probes run in the collector; role {role} runs none (use all or collector)")])
    options = settings.collectors.options
    taken = {t.name for t in options.targets}
    added: list[OptionsTarget] = []
    for item in probes:
        name, sep, uri = item.partition("=")
        name, uri = name.strip(), uri.strip()
        if not sep or not name or not uri:
            raise ConfigError([("--probe", f"{item!r}: expected NAME=URI, e.g. carrier-a=sip:sbc.carrier.example")])
        if name in taken:
            raise ConfigError([("--probe", f"{item!r}: target name {name!r} is already used")])
        try:
            added.append(OptionsTarget(name=name, uri=uri, kind="trunk", interval_secs=interval_secs))
        except ValidationError as exc:
            raise ConfigError([("--probe", f"{item!r}: {_first_error(exc)}")]) from None
        taken.add(name)
    merged = options.model_copy(update={"enabled": True, "targets": (*options.targets, *added)})
    return settings.model_copy(update={"collectors": settings.collectors.model_copy(update={"options": merged})})


class ProbeOptions:
    """The checked options of one ``callscope probe`` run."""

    def __init__(
        self,
        uri: str,
        *,
        count: int = 1,
        interval_secs: float = 1.0,
        timeout_secs: float = 5.0,
        transport: Transport | None = None,
        expect: Sequence[int] | None = None,
        verify: bool = True,
        ca_file: Path | None = None,
        config: Path | None = None,
    ) -> None:
        try:
            self.target: SipTarget = parse_target(uri, transport)
        except ValueError as exc:
            raise ConfigError([("URI", str(exc))]) from None
        if count < 1:
            raise ConfigError([("--count", "must be at least 1")])
        if not 0 < interval_secs <= 86400:
            raise ConfigError([("--interval-secs", "must be more than 0 and at most 86400")])
        if not 0 < timeout_secs <= 300:
            raise ConfigError([("--timeout-secs", "must be more than 0 and at most 300")])
        for code in expect or ():
            if not 100 <= code <= 699:
                raise ConfigError([("--expect", f"{code} is not a SIP status code (100-699)")])
        settings = load_settings(config) if config is not None else load_settings(None, {})
        base = settings.collectors.options
        update: dict[str, Any] = {"targets": (), "timeout_secs": timeout_secs, "tls_verify": verify and base.tls_verify}
        if expect:
            update["expect_codes"] = tuple(sorted(set(expect)))
        if ca_file is not None:
            update["tls_ca_file"] = ca_file
        self.config: OptionsConfig = base.model_copy(update=update)
        self.count = count
        self.interval_secs = interval_secs
        self.uri = uri
        self.spec = ProbeSpec(
            name="cli",
            kind="other",
            sip=self.target,
            from_uri=self.config.from_uri or f"sip:callscope@{settings.node}",
            to_uri=None,
            timeout_secs=timeout_secs,
            expect=self.config.expect_codes,
        )


def format_result(seq: int, result: ProbeResult) -> str:
    """One human line per probe."""
    to = f"  [{result.remote}]" if result.remote else ""
    if result.status is not None:
        line = f"{seq}: {result.status} {result.reason or ''}".rstrip()
        line += f"  rtt {result.rtt_ms:.3f} ms" if result.rtt_ms is not None else ""
        line += f'  server "{result.server}"' if result.server else ""
        line += f"  sent {result.attempts}x" if result.attempts > 1 else ""
        if result.error is not None:
            line += f"  {result.error}: {result.error_detail}"
        return line + to
    return f"{seq}: {result.error}  {result.error_detail or ''}".rstrip() + to


def _json(seq: int, uri: str, spec: ProbeSpec, result: ProbeResult) -> bytes:
    return orjson.dumps(
        {
            "seq": seq,
            "uri": uri,
            "request_uri": spec.request_uri,
            "transport": spec.sip.transport,
            "remote": result.remote,
            "ts_us": result.ts_us,
            "status": result.status,
            "reason": result.reason,
            "rtt_ms": result.rtt_ms,
            "server": result.server,
            "reachable": result.error is None,
            "error": result.error,
            "error_detail": result.error_detail,
            "attempts": result.attempts,
        }
    )


async def _probe_all(opts: ProbeOptions, out: TextIO, as_json: bool) -> list[ProbeResult]:
    tls = make_ssl_context(opts.config, option="--ca-file") if opts.target.transport == "tls" else None
    prober = Prober(opts.config, Telemetry(node="cli"), tls=tls)
    results: list[ProbeResult] = []
    try:
        for seq in range(1, opts.count + 1):
            started = time.monotonic()
            result = await prober.probe(opts.spec, cseq=seq)
            results.append(result)
            if as_json:
                print(_json(seq, opts.uri, opts.spec, result).decode(), file=out, flush=True)
            else:
                print(format_result(seq, result), file=out, flush=True)
            if seq < opts.count:
                await asyncio.sleep(max(0.0, opts.interval_secs - (time.monotonic() - started)))
    finally:
        prober.close()
    return results


def run_probe(opts: ProbeOptions, out: TextIO, *, as_json: bool = False) -> int:
    """Probe, print, and return the exit code (0 when every probe was reachable)."""
    if not as_json:
        expect = ",".join(str(c) for c in opts.spec.expect)
        print(
            f"OPTIONS {opts.spec.request_uri} over {opts.target.transport}"
            f" (timeout {opts.spec.timeout_secs:g} s, reachable on {expect})",
            file=out,
            flush=True,
        )
    results = asyncio.run(_probe_all(opts, out, as_json))
    ok = [r for r in results if r.error is None]
    if not as_json:
        rtts = [r.rtt_ms for r in results if r.rtt_ms is not None]
        noun = "probe" if len(results) == 1 else "probes"
        summary = f"--- {len(results)} {noun}, {len(ok)} reachable, {len(results) - len(ok)} failed"
        if rtts:
            summary += f"; rtt min/median/max {min(rtts):.3f}/{statistics.median(rtts):.3f}/{max(rtts):.3f} ms"
        print(summary, file=out, flush=True)
    return 0 if len(ok) == len(results) else 1
