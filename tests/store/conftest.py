"""Store test fixtures; the engine fixtures (``store``, ``migrated_store`` ...) are in tests/conftest.py."""

from __future__ import annotations

import pytest

from callscope.telemetry import Telemetry


@pytest.fixture
def telemetry() -> Telemetry:
    return Telemetry(node="test")
