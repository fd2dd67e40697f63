"""The one exception tree of callscope.

- :class:`DecodeError` and its children: bad input. Counted, dead-lettered, never retried.
- :class:`TransientError`: a peer (bus, store, network) failed in a way that may pass.
  Retried with capped exponential backoff.
- :class:`ConfigError`: fatal at start; the message names the option.
"""

from __future__ import annotations


class CallscopeError(Exception):
    """Root of every error callscope raises on purpose."""


class DecodeError(CallscopeError):
    """Input that cannot be parsed. ``reason`` is a short, bounded label for metrics."""

    reason: str = "decode"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class EnvelopeError(DecodeError):
    """An envelope that fails JSON decoding or schema validation."""

    reason = "envelope"


class TransientError(CallscopeError):
    """A failure of a peer that may go away: retried with backoff."""


class BusError(TransientError):
    """The bus (in-process or Kafka) refused or lost a request."""


class StoreError(TransientError):
    """The store (chDB or a ClickHouse server) failed a request."""


class ConfigError(CallscopeError):
    """A configuration problem, fatal at start. ``errors`` holds (option path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in errors))


class StartupError(CallscopeError):
    """A resource needed at start cannot be had (data directory locked, port taken)."""
