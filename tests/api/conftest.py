"""Fixtures for the API tests.

The bus is replaced by :class:`RecordingProducer`, a test double that records what
it is given. That is enough here: these tests are about HTTP, auth and what the
ingest route publishes; the real buses (in-process and Kafka) are exercised by
their own contract suite in tests/bus/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.context import ApiContext, ReadyCheck
from callscope.bus.base import Producer
from callscope.settings import ApiConfig, AuthConfig, Settings, TokenConfig
from callscope.telemetry import Telemetry
from schemas.errors import BusError

ADMIN_TOKEN = "admin-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"
TOKENS = (
    TokenConfig(name="ops", token=ADMIN_TOKEN, scope="admin"),
    TokenConfig(name="grafana", token=READ_TOKEN, scope="read"),
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class RecordingProducer(Producer):
    """Records every message handed to it; can be told to fail like an unreachable bus."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.batches: list[tuple[str, int]] = []
        self.flushes = 0
        self.fail_with: Exception | None = None

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((topic, key, value))

    async def send_many(self, topic: str, items: Sequence[tuple[bytes | None, bytes]]) -> None:
        self.batches.append((topic, len(items)))
        await super().send_many(topic, items)

    async def flush(self) -> None:
        self.flushes += 1

    async def close(self) -> None:
        pass

    def on(self, topic: str) -> list[tuple[bytes | None, bytes]]:
        return [(key, value) for t, key, value in self.sent if t == topic]


def make_settings(
    data_dir: Path,
    *,
    auth_enabled: bool = True,
    tokens: tuple[TokenConfig, ...] = TOKENS,
    ingest_max_bytes: int = 64 * 1024,
    listen: str = "127.0.0.1:0",
) -> Settings:
    api = ApiConfig(
        listen=listen,
        auth=AuthConfig(enabled=auth_enabled, tokens=tokens),
        ingest_max_bytes=ingest_max_bytes,
    )
    return Settings(node="api-test", data_dir=data_dir, api=api)


def make_context(
    data_dir: Path,
    producer: Producer | None = None,
    *,
    ready_checks: dict[str, ReadyCheck] | None = None,
    ready_timeout_secs: float = 2.0,
    tokens: tuple[TokenConfig, ...] | None = None,
    auth_enabled: bool = True,
    configured_tokens: tuple[TokenConfig, ...] = TOKENS,
    ingest_max_bytes: int = 64 * 1024,
) -> ApiContext:
    settings = make_settings(
        data_dir, auth_enabled=auth_enabled, tokens=configured_tokens, ingest_max_bytes=ingest_max_bytes
    )
    return ApiContext(
        settings=settings,
        telemetry=Telemetry(node="api-test"),
        producer=producer,
        ready_checks=ready_checks or {},
        ready_timeout_secs=ready_timeout_secs,
        tokens=tokens,
    )


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
def producer() -> RecordingProducer:
    return RecordingProducer()


@pytest.fixture
def ctx(tmp_path: Path, producer: RecordingProducer) -> ApiContext:
    return make_context(tmp_path, producer)


@pytest.fixture
async def client(ctx: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(ctx)) as c:
        yield c


@pytest.fixture
def unreachable_bus(producer: RecordingProducer) -> RecordingProducer:
    producer.fail_with = BusError("broker unreachable")
    return producer
