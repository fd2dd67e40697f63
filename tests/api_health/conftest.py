"""Fixtures for the health routes: the session engine (tests/conftest.py) seeded by the real health core."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.context import ApiContext
from callscope.settings import ApiConfig, AuthConfig, CollectorsConfig, Settings
from callscope.store.client import Store
from callscope.telemetry import Telemetry
from collectors.options.config import OptionsConfig, OptionsTarget
from processors.health.config import HealthConfig
from processors.health.policy import Policies
from processors.health.results import ProbeResult, Transition
from processors.health.state import HealthCore
from schemas.envelope import OptionsEnvelope, validate
from schemas.tables import COLUMNS, row_for
from tests.api.conftest import READ_TOKEN, TOKENS, bearer, client_for

OPTIONS = OptionsConfig(
    interval_secs=30,
    timeout_secs=5,
    targets=(
        OptionsTarget(name="carrier-a", uri="sip:192.0.2.10:5060"),
        OptionsTarget(name="carrier-b", uri="sip:192.0.2.11:5060"),
        OptionsTarget(name="carrier-c", uri="sip:192.0.2.12:5060"),
        OptionsTarget(name="ast1", uri="sip:10.0.0.20:5060", kind="node"),
    ),
)


@dataclass(frozen=True)
class Seeded:
    """What the trunks_partial_outage scenario stored (times relative to when it was seeded)."""

    base: datetime
    transitions: list[Transition]

    def at(self, secs: float) -> datetime:
        return self.base + timedelta(seconds=secs)


def _probe(
    base: datetime, secs: float, node: str, target: str, **body: object
) -> tuple[ProbeResult, tuple[object, ...]]:
    ts = base + timedelta(seconds=secs)
    env = validate(
        {
            "kind": "options",
            "id": f"{node}-{target}-{secs}",
            "node": node,
            "role": "probe",
            "ts": ts.isoformat(),
            "received": ts.isoformat(),
            "key": target,
            "body": {"target": target, **body},
        }
    )
    _, row = row_for(env)
    assert isinstance(env, OptionsEnvelope)
    return ProbeResult.from_envelope(env), row


def seed_trunks_partial_outage(store: Store) -> Seeded:
    """carrier-a: down from sbc1 (timeouts), up from sbc2 -> partial. carrier-b: up from both, sbc2's
    probe old enough to be stale. carrier-c: configured, never probed. 198.51.100.7:5060: a passive
    target seen by kam1. The rows are what the health core makes of these results."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=300)
    ok = {"status": 200, "reason": "OK", "rtt_ms": 12.0, "server": "carrier SBC"}
    timeout = {"error": "timeout"}
    results = [
        _probe(base, 0, "sbc1", "carrier-a", **ok),
        _probe(base, 0.5, "sbc2", "carrier-a", **ok),
        _probe(base, 1, "sbc1", "carrier-b", **ok),
        _probe(base, 1.5, "sbc2", "carrier-b", **ok),
        _probe(base, 2, "kam1", "198.51.100.7:5060", target_kind="other", passive=True, **ok),
        _probe(base, 200, "sbc1", "carrier-a", **timeout),
        _probe(base, 230, "sbc1", "carrier-a", **timeout),
        _probe(base, 260, "sbc1", "carrier-a", **timeout),
        _probe(base, 260.5, "sbc2", "carrier-a", **ok),
        _probe(base, 261, "sbc1", "carrier-b", **ok),
        _probe(base, 262, "kam1", "198.51.100.7:5060", target_kind="other", passive=True, **ok),
    ]
    core = HealthCore(HealthConfig(), Policies(HealthConfig(), OPTIONS))
    transitions = [o for r, _ in results for o in core.feed(r) if isinstance(o, Transition)]
    store.insert("options_probes", [row for _, row in results], COLUMNS["options_probes"])
    store.insert("health_transitions", [t.values() for t in transitions], COLUMNS["health_transitions"])
    return Seeded(base, transitions)


def make_health_context(data_dir: Path, store: Store | None) -> ApiContext:
    settings = Settings(
        node="api-test",
        data_dir=data_dir,
        api=ApiConfig(listen="127.0.0.1:0", auth=AuthConfig(enabled=True, tokens=TOKENS)),
        collectors=CollectorsConfig(options=OPTIONS),
    )
    return ApiContext(settings=settings, telemetry=Telemetry(node="api-test"), store=store)


@pytest.fixture
def trunks_partial_outage(migrated_store: Store) -> Seeded:
    return seed_trunks_partial_outage(migrated_store)


@pytest.fixture
async def health_client(
    tmp_path: Path, migrated_store: Store, trunks_partial_outage: Seeded
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(make_health_context(tmp_path, migrated_store))) as client:
        client.headers.update(bearer(READ_TOKEN))
        yield client
