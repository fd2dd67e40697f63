"""The shell's environment: the in-process bus over the session's migrated embedded store (as tests/call_legs)."""

from __future__ import annotations

from tests.call_legs.conftest import env

__all__ = ["env"]
