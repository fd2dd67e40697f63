"""Configuration of the AMI collector (``collectors.ami`` in the YAML file).

One connection per Asterisk node::

    collectors:
      ami:
        connections:
          - node: ast-1                 # a topology node name: the envelopes' node
            host: 10.0.0.21             # default: the topology node's address
            port: 5038
            username: callscope
            secret_env: AMI_SECRET_AST1 # or secret: ..., or secret_file: /run/secrets/ami
            events: {deny: [VarSet, Newexten, "RTCP*"]}
            ping_interval_secs: 10
            ping_timeout_secs: 5

The secret is held as a :class:`pydantic.SecretStr` (its repr is masked) and is read from
its environment variable or file only when the collector starts
(:meth:`AmiConnection.resolve_secret`), so a missing variable or file is a configuration
error at start that names the option, never a log line with the secret in it.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from schemas.errors import ConfigError

_NODE = r"^[A-Za-z0-9_.-]+$"
_EVENT_NAME = re.compile(r"^[A-Za-z0-9_*?\[\]-]+$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AmiEventFilter(_Frozen):
    """Which events to publish: names or shell patterns (``Queue*``), matched case-insensitively.

    With ``allow`` set, only matching events pass; ``deny`` then removes what it matches.
    Resync results and gap markers always pass: the collector asked for them.
    """

    allow: tuple[str, ...] = Field(default=(), description="Event names or patterns to keep (empty: all).")
    deny: tuple[str, ...] = Field(default=(), description="Event names or patterns to drop.")

    @field_validator("allow", "deny")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = tuple(name.strip() for name in value)
        for name in out:
            if not _EVENT_NAME.match(name):
                raise ValueError(f"{name!r} is not an event name or pattern (letters, digits, _ - and * ? [ ])")
        return out

    def compile(self) -> EventFilter:
        return EventFilter(self.allow, self.deny)


class EventFilter:
    """The compiled form of :class:`AmiEventFilter`; ``passes(name)`` is cached per event name."""

    def __init__(self, allow: tuple[str, ...], deny: tuple[str, ...]) -> None:
        self._allow = _matcher(allow)
        self._deny = _matcher(deny)
        self._all = not allow and not deny
        self._cache: dict[str, bool] = {}

    def passes(self, event: str) -> bool:
        if self._all:
            return True
        hit = self._cache.get(event)
        if hit is None:
            lower = event.lower()
            allowed = self._allow is None or self._allow(lower) is not None
            denied = self._deny is not None and self._deny(lower) is not None
            hit = allowed and not denied
            if len(self._cache) < 4096:
                self._cache[event] = hit
        return hit


def _matcher(patterns: tuple[str, ...]) -> Callable[[str], re.Match[str] | None] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p.lower())})" for p in patterns)).match


class AmiConnection(_Frozen):
    """One AMI connection: the Asterisk node it belongs to, where it listens, how to log in."""

    node: str = Field(min_length=1, max_length=128, pattern=_NODE, description="Topology node name of the Asterisk.")
    host: str | None = Field(default=None, min_length=1, description="Default: the topology node's address.")
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = Field(min_length=1, max_length=256)
    secret: SecretStr | None = Field(default=None, description="The AMI secret itself (prefer secret_env/file).")
    secret_env: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable holding the secret."
    )
    secret_file: Path | None = Field(
        default=None, description="File holding the secret (one line; trailing newline dropped)."
    )
    events: AmiEventFilter = AmiEventFilter()
    event_classes: str = Field(
        default="on",
        min_length=1,
        pattern=r"^[A-Za-z,]+$",
        description="The Login Events value: on, off or classes such as call,agent (filtered by Asterisk).",
    )
    ping_interval_secs: float = Field(default=10.0, gt=0, le=3600, description="A Ping is sent this often.")
    ping_timeout_secs: float = Field(
        default=5.0, gt=0, le=600, description="No answer to a Ping within this: close and reconnect."
    )
    connect_timeout_secs: float = Field(default=10.0, gt=0, le=600, description="TCP connect plus the Login answer.")
    resync_timeout_secs: float = Field(
        default=30.0, gt=0, le=3600, description="Deadline for the CoreShowChannels and QueueStatus lists."
    )
    reconnect_backoff_initial_secs: float = Field(default=0.5, gt=0, le=3600)
    reconnect_backoff_max_secs: float = Field(default=30.0, gt=0, le=86400)

    @model_validator(mode="after")
    def _check(self) -> AmiConnection:
        given = [name for name in ("secret", "secret_env", "secret_file") if getattr(self, name) is not None]
        if len(given) != 1:
            what = ", ".join(given) if given else "none"
            raise ValueError(f"give exactly one of secret, secret_env, secret_file (given: {what})")
        if self.reconnect_backoff_max_secs < self.reconnect_backoff_initial_secs:
            raise ValueError("reconnect_backoff_max_secs must be >= reconnect_backoff_initial_secs")
        return self

    def resolve_secret(self, path: str) -> str:
        """The secret, read now from the config, the environment or the file.

        ``path`` is this connection's option path (``collectors.ami.connections.0``) for the
        :class:`ConfigError` raised when the variable is unset or the file unreadable/empty.
        """
        if self.secret is not None:
            value = self.secret.get_secret_value()
            if not value:
                raise ConfigError([(f"{path}.secret", "is empty")])
            return value
        if self.secret_env is not None:
            value = os.environ.get(self.secret_env, "")
            if not value:
                raise ConfigError(
                    [(f"{path}.secret_env", f"environment variable {self.secret_env} is not set or empty")]
                )
            return value
        assert self.secret_file is not None
        try:
            text = self.secret_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                [(f"{path}.secret_file", f"cannot read {self.secret_file}: {exc.strerror or exc}")]
            ) from None
        value = text.rstrip("\r\n")
        if not value:
            raise ConfigError([(f"{path}.secret_file", f"{self.secret_file} is empty")])
        return value


class AmiConfig(_Frozen):
    """Asterisk Manager Interface connections, one per Asterisk node."""

    enabled: bool = True
    connections: tuple[AmiConnection, ...] = ()
    batch_max_messages: int = Field(default=1000, ge=1, description="Envelopes per send to the bus.")
    batch_max_age_ms: int = Field(default=20, ge=1, le=10000, description="Longest an event waits for its batch.")

    @field_validator("connections")
    @classmethod
    def _one_per_node(cls, value: tuple[AmiConnection, ...]) -> tuple[AmiConnection, ...]:
        seen: set[str] = set()
        for conn in value:
            if conn.node in seen:
                raise ValueError(f"node {conn.node!r} has two connections; one connection per Asterisk node")
            seen.add(conn.node)
        return value
