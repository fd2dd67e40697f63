"""Fixtures for the bus tests.

``bus`` runs each contract test against every implementation: the in-process bus
always, Kafka only under the ``kafka`` marker, both with the process's groups sharing one
fetch (the default) and with a fetch per group (``shared_fetch: false``). The Kafka cases
ask for the session's broker (``kafka_bootstrap``, from tests/conftest.py) only when they
run, so the memory case never needs Java.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from callscope.bus.base import Bus
from callscope.bus.memory import MemoryBus
from callscope.settings import KafkaConfig, MemoryBusConfig
from callscope.telemetry import Telemetry

PARTITIONS = 3


@pytest.fixture(
    params=[
        "memory",
        pytest.param("kafka", marks=pytest.mark.kafka),
        pytest.param("kafka-per-group", marks=pytest.mark.kafka),
    ]
)
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    """A started bus whose topics get ``PARTITIONS`` partitions unless told otherwise."""
    impl: Bus
    if request.param == "memory":
        impl = MemoryBus(MemoryBusConfig(partitions=PARTITIONS), Telemetry())
    else:
        bootstrap: str = request.getfixturevalue("kafka_bootstrap")
        from callscope.bus.kafka import KafkaBus

        shared = request.param == "kafka"
        impl = KafkaBus(
            KafkaConfig(bootstrap_servers=bootstrap, partitions=PARTITIONS, shared_fetch=shared), Telemetry()
        )
    await impl.start()
    try:
        yield impl
    finally:
        await impl.stop()


@pytest.fixture
def topic() -> str:
    """A topic name no other test uses (the Kafka broker is shared by the session)."""
    return f"test.bus.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def group() -> str:
    """A consumer group name no other test uses."""
    return f"test-group-{uuid.uuid4().hex[:12]}"
