"""Fixtures for the OPTIONS prober: a real SIP responder, test certificates, a prober, a collector on the bus."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from callscope.bus.base import Consumer, Record
from callscope.bus.memory import MemoryBus
from callscope.settings import MemoryBusConfig, Settings, load_settings
from callscope.telemetry import Telemetry
from collectors.options.config import OptionsConfig, OptionsTarget
from collectors.options.events import ProbeResult, spec_for
from collectors.options.prober import Prober
from schemas.topics import ALL_TOPICS
from tests.ci import unavailable
from tests.options.responder import SipResponder

FAST = {"t1_ms": 50, "t2_ms": 200, "timeout_secs": 2.0}


@dataclass(frozen=True)
class Certs:
    ca: Path  # the CA the prober trusts
    server_cert: Path  # signed by ``ca``, for 127.0.0.1 and localhost
    server_key: Path
    rogue_cert: Path  # self-signed, same names, not trusted
    rogue_key: Path

    def server_context(self, rogue: bool = False) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if rogue:
            ctx.load_cert_chain(self.rogue_cert, self.rogue_key)
        else:
            ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {proc.stderr}")


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A test CA, a server certificate it signed and a rogue self-signed one, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        unavailable("the openssl command is not installed (Debian package openssl)")
    d = tmp_path_factory.mktemp("certs")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=callscope test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=d,
    )  # fmt: skip
    _openssl(
        "req", "-x509", *ec, "-keyout", "rogue.key", "-out", "rogue.pem", "-days", "2", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        cwd=d,
    )  # fmt: skip
    return Certs(d / "ca.pem", d / "server.pem", d / "server.key", d / "rogue.pem", d / "rogue.key")


@pytest.fixture
def responder() -> Iterator[SipResponder]:
    """A responder on UDP and TCP (no TLS)."""
    r = SipResponder().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def make_responder() -> Iterator[Callable[..., SipResponder]]:
    made: list[SipResponder] = []

    def make(tls_context: ssl.SSLContext | None = None) -> SipResponder:
        r = SipResponder(tls_context=tls_context).start()
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (UDP and TCP), just handed out by the OS."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def config(targets: list[dict[str, Any]] | None = None, **overrides: Any) -> OptionsConfig:
    return OptionsConfig.model_validate({**FAST, "targets": targets or [], **overrides})


@dataclass
class ProbeKit:
    """A prober and the telemetry it counts into."""

    prober: Prober
    telemetry: Telemetry

    async def probe(self, uri: str, cseq: int = 1, **target: Any) -> ProbeResult:
        cfg = self.prober.config
        spec = spec_for(OptionsTarget(name="t", uri=uri, **target), cfg, "probe-node")
        return await self.prober.probe(spec, cseq)

    def stray(self, reason: str) -> float:
        return (
            self.telemetry.registry.get_sample_value("callscope_options_stray_answers_total", {"reason": reason}) or 0.0
        )


@pytest.fixture
async def make_prober() -> AsyncIterator[Callable[..., ProbeKit]]:
    """``make_prober(**options_config)`` with FAST timers unless overridden."""
    made: list[Prober] = []

    def make(**overrides: Any) -> ProbeKit:
        telemetry = Telemetry(node="probe-node")
        prober = Prober(config(**overrides), telemetry)
        made.append(prober)
        return ProbeKit(prober, telemetry)

    yield make
    for p in made:
        p.close()


@dataclass
class BusKit:
    bus: MemoryBus
    consumer: Consumer
    telemetry: Telemetry
    records: list[Record] = field(default_factory=list)

    async def collect(self, n: int, within: float = 20.0) -> list[Record]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self.records) < n and loop.time() < deadline:
            self.records.extend(await self.consumer.getmany(timeout_ms=100, max_records=20_000))
        return self.records

    async def drain(self) -> list[Record]:
        while True:
            got = await self.consumer.getmany(timeout_ms=50, max_records=20_000)
            if not got:
                return self.records
            self.records.extend(got)


@pytest.fixture
async def bus_kit() -> AsyncIterator[BusKit]:
    telemetry = Telemetry(node="vantage-1")
    bus = MemoryBus(MemoryBusConfig(), telemetry)
    await bus.start()
    await bus.ensure_topics(ALL_TOPICS)
    consumer = await bus.consumer("test", ALL_TOPICS)
    yield BusKit(bus, consumer, telemetry)
    await consumer.close()
    await bus.stop()


def settings_with(options: OptionsConfig, node: str = "vantage-1") -> Settings:
    base = load_settings(None, {"node": node, "topology": {"nodes": [{"name": node, "role": "sbc"}]}})
    return base.model_copy(update={"collectors": base.collectors.model_copy(update={"options": options})})
