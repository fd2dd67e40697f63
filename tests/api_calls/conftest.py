"""Fixtures for the call and registration routes: the session engine (tests/conftest.py), seeded scenarios."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.context import ApiContext
from callscope.settings import ApiConfig, AuthConfig, NodeConfig, Settings, TopologyConfig
from callscope.store.client import Store
from callscope.telemetry import Telemetry
from tests.api.conftest import READ_TOKEN, TOKENS, bearer, client_for
from tests.api_calls.scenario import seed_scenario

TOPOLOGY = TopologyConfig(
    nodes=(
        NodeConfig(name="sbc1", role="sbc", address="10.0.0.10"),
        NodeConfig(name="ast1", role="logic", address="10.0.0.20:5060"),
    )
)
READ = bearer(READ_TOKEN)


def make_calls_context(data_dir: Path, store: Store) -> ApiContext:
    settings = Settings(
        node="api-test",
        data_dir=data_dir,
        api=ApiConfig(listen="127.0.0.1:0", auth=AuthConfig(enabled=True, tokens=TOKENS)),
        topology=TOPOLOGY,
    )
    return ApiContext(settings=settings, telemetry=Telemetry(node="api-test"), store=store)


@pytest.fixture
def ab_answered_via_sbc(migrated_store: Store) -> Store:
    """The store with the ab_answered_via_sbc scenario (see scenario.py)."""
    seed_scenario(migrated_store)
    return migrated_store


@pytest.fixture
async def calls_client(tmp_path: Path, ab_answered_via_sbc: Store) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(make_calls_context(tmp_path, ab_answered_via_sbc))) as client:
        client.headers.update(READ)
        yield client
