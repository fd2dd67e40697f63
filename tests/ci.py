"""What a test does when something it needs is not on this machine: skip, or fail under ``CI=true``.

CI installs everything the project's tests use (``make test``: the C accelerators, Java for the Kafka
broker, the Debian packages of the peers, the corpus beside the repository), so there a missing piece
is a failure; on a developer's machine it is a skip that says what to install.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test for ``reason``, or fail it under ``CI=true`` (where nothing may be skipped)."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)
