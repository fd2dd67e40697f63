"""Settings: one YAML file plus ``CALLSCOPE_*`` environment overrides.

Precedence, highest first: explicit overrides from the command line, environment
variables (``CALLSCOPE_BUS__KIND=kafka``, nested with ``__``), the YAML file,
defaults. Every model is frozen and validated; a bad value raises
:class:`schemas.errors.ConfigError` naming the option's path, before anything
starts.
"""

from __future__ import annotations

import ipaddress
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from collectors.ami.config import AmiConfig
from collectors.cdr.config import CdrConfig
from collectors.cel.config import CelConfig
from collectors.hep.config import HepConfig
from collectors.options.config import OptionsConfig
from collectors.queue_log.config import QueueLogConfig
from processors.asterisk_calls.config import AsteriskCallsConfig
from processors.call_legs.config import CallLegsConfig
from processors.health.config import HealthConfig
from processors.queue_sessions.config import QueueSessionsConfig
from schemas.envelope import Role
from schemas.errors import ConfigError

ENV_PREFIX = "CALLSCOPE_"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6). Port 0 asks the OS for one."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port must be a number, got {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0-65535, got {port}")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NodeConfig(_Frozen):
    """One node of the VoIP cluster as callscope knows it."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    role: Role
    address: str | None = Field(default=None, description="Host or IP the node is reached at (for probes, AMI).")
    hep_capture_id: int | None = Field(
        default=None, ge=0, le=2**32 - 1, description="HEP capture agent id this node sends (maps HEP to the node)."
    )


class TopologyConfig(_Frozen):
    nodes: tuple[NodeConfig, ...] = ()

    @field_validator("nodes")
    @classmethod
    def _unique(cls, nodes: tuple[NodeConfig, ...]) -> tuple[NodeConfig, ...]:
        seen: set[str] = set()
        for node in nodes:
            if node.name in seen:
                raise ValueError(f"duplicate node name {node.name!r}")
            seen.add(node.name)
        return nodes

    def node_for_capture_id(self, capture_id: int | None) -> NodeConfig | None:
        if capture_id is None:
            return None
        for node in self.nodes:
            if node.hep_capture_id == capture_id:
                return node
        return None

    def role_of(self, name: str, default: Role = "collector") -> Role:
        for node in self.nodes:
            if node.name == name:
                return node.role
        return default


class MemoryBusConfig(_Frozen):
    partitions: int = Field(default=4, ge=1, le=256)
    max_bytes_per_partition: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Unconsumed bytes a partition holds before producers wait."
    )


class KafkaConfig(_Frozen):
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "callscope"
    partitions: int = Field(default=12, ge=1, le=10000, description="Partitions per topic when callscope creates it.")
    replication_factor: int = Field(default=1, ge=1, le=16)
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    linger_ms: int = Field(default=5, ge=0, le=10000)
    max_batch_bytes: int = Field(default=1024 * 1024, ge=1024)
    request_timeout_ms: int = Field(default=30000, ge=1000)
    buffer_max_messages: int = Field(
        default=100_000, ge=1, description="Messages held while the broker is unreachable before producers wait."
    )
    connect_backoff_initial_secs: float = Field(default=0.5, gt=0)
    connect_backoff_max_secs: float = Field(default=10.0, gt=0)
    connect_timeout_secs: float = Field(default=0, ge=0, description="0 retries forever.")
    fetch_min_bytes: int = Field(
        default=256 * 1024,
        ge=1,
        description=(
            "Bytes a consumer's fetch asks the broker to gather (waiting up to fetch_max_wait_ms) before it "
            "answers: fewer, fuller fetches for each of the process's consumer groups when they are caught up."
        ),
    )
    fetch_max_wait_ms: int = Field(
        default=250,
        ge=0,
        le=10000,
        description="Longest a fetch waits at the broker for fetch_min_bytes: the latency it may add at low rates.",
    )
    shared_fetch: bool = Field(
        default=True,
        description=(
            "One fetch per process shared by its consumer groups (the processors), instead of one fetch per group: "
            "each record is fetched and unpacked once. Each group still joins, rebalances and commits on its own."
        ),
    )
    shared_fetch_buffer_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1,
        description=(
            "With shared_fetch, the record bytes one group may hold unread per partition before the shared fetch "
            "pauses that partition: the slowest group of the process sets the pace, memory stays bounded."
        ),
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None


class BusConfig(_Frozen):
    kind: Literal["memory", "kafka"] = "memory"
    memory: MemoryBusConfig = MemoryBusConfig()
    kafka: KafkaConfig = KafkaConfig()


class StoreConfig(_Frozen):
    dsn: str = Field(
        default="",
        description=(
            "chdb://DIR for the embedded engine, http(s)://user:pass@host:port for a ClickHouse server;"
            " empty means chdb://<data_dir>/chdb."
        ),
    )
    database: str = Field(default="callscope", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    cluster: str | None = Field(
        default=None, description="ClickHouse cluster name: ON CLUSTER DDL with Replicated tables."
    )
    ttl_days: int = Field(default=30, ge=1, le=3650)
    batch_max_rows: int = Field(default=50_000, ge=1)
    batch_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    batch_max_age_secs: float = Field(default=1.0, gt=0, le=300)
    retry_initial_secs: float = Field(default=0.2, gt=0)
    retry_max_secs: float = Field(default=10.0, gt=0)
    embedded_cache_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=1024 * 1024,
        description=(
            "chdb:// only: the size bound of each of the engine's mark, index mark and primary index caches,"
            " which it would let grow to 5 GiB each (ClickHouse server defaults). Read at engine start."
        ),
    )

    @field_validator("dsn")
    @classmethod
    def _scheme(cls, dsn: str) -> str:
        if dsn and not dsn.startswith(("chdb://", "http://", "https://")):
            raise ValueError("must start with chdb://, http:// or https://")
        return dsn


class TokenConfig(_Frozen):
    name: str = Field(min_length=1)
    token: str = Field(min_length=16, description="Bearer token; at least 16 characters.")
    scope: Literal["read", "admin"] = "read"


class AuthConfig(_Frozen):
    enabled: bool = True
    tokens: tuple[TokenConfig, ...] = ()


class ApiConfig(_Frozen):
    listen: str = "127.0.0.1:8080"
    auth: AuthConfig = AuthConfig()
    ingest_max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Largest accepted ingest request body."
    )
    public_url: str | None = Field(default=None, description="Base URL users reach the API at (dashboard links).")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @model_validator(mode="after")
    def _auth_off_only_on_loopback(self) -> ApiConfig:
        host, _ = parse_listen(self.listen)
        if not self.auth.enabled and not is_loopback(host):
            raise ValueError("auth.enabled may be false only when api.listen is a loopback address")
        return self


#: Every processor, in the order a process starts them (``processors.enabled`` names a subset).
PROCESSOR_NAMES = (
    "events",
    "call_legs",
    "registrations",
    "asterisk_calls",
    "media_quality",
    "health",
    "queue_sessions",
)


class ProcessorConfig(_Frozen):
    enabled: tuple[str, ...] = Field(
        default=PROCESSOR_NAMES,
        description="The processors this process runs (default: all). Each has its own consumer group, so"
        " processes running different ones share the work of one bus; a table whose processor runs nowhere"
        " stays empty.",
    )
    group_prefix: str = Field(default="callscope", pattern=r"^[A-Za-z0-9_.-]+$")
    poll_max_records: int = Field(default=5000, ge=1)
    poll_timeout_ms: int = Field(default=200, ge=1)
    lag_report_secs: float = Field(default=5.0, gt=0, description="How often consumer lag is measured for /metrics.")
    call_legs: CallLegsConfig = CallLegsConfig()
    asterisk_calls: AsteriskCallsConfig = AsteriskCallsConfig()
    health: HealthConfig = HealthConfig()
    queue_sessions: QueueSessionsConfig = QueueSessionsConfig()

    @field_validator("enabled")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if not names:
            raise ValueError("name at least one processor (a process with none: --role collector or --role api)")
        unknown = [n for n in names if n not in PROCESSOR_NAMES]
        if unknown:
            raise ValueError(f"unknown processor {unknown[0]!r} (known: {', '.join(PROCESSOR_NAMES)})")
        if len(set(names)) != len(names):
            raise ValueError(f"{next(n for n in names if names.count(n) > 1)!r} is named twice")
        return names


class CollectorsConfig(_Frozen):
    """The collectors this process runs when its role is ``all`` or ``collector``."""

    hep: HepConfig = HepConfig()
    options: OptionsConfig = OptionsConfig()
    ami: AmiConfig = AmiConfig()
    cdr: CdrConfig = CdrConfig()
    cel: CelConfig = CelConfig()
    queue_log: QueueLogConfig = QueueLogConfig()


class MemoryConfig(_Frozen):
    """How the process keeps its resident memory in line with what it uses."""

    trim_interval_secs: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description=(
            "How often freed heap memory is handed back to the OS (glibc malloc_trim); 0 turns it off. "
            "Without it the C heap keeps the pages of freed messages and RSS creeps up under steady load."
        ),
    )


class LogConfig(_Frozen):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


#: The command line's options while :func:`load_settings` builds a :class:`Settings` (see :class:`_CommandLine`).
_COMMAND_LINE: ContextVar[dict[str, Any] | None] = ContextVar("callscope_command_line", default=None)


class _CommandLine(PydanticBaseSettingsSource):
    """The options given on the command line: the first source, so they win over the environment."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # not asked: __call__ gives the whole mapping

    def __call__(self) -> dict[str, Any]:
        return _COMMAND_LINE.get() or {}


class Settings(BaseSettings):
    """The whole configuration. Load it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    node: str = Field(
        default="local", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="This process's node name."
    )
    data_dir: Path = Path("./data")
    topology: TopologyConfig = TopologyConfig()
    bus: BusConfig = BusConfig()
    store: StoreConfig = StoreConfig()
    api: ApiConfig = ApiConfig()
    collectors: CollectorsConfig = CollectorsConfig()
    processors: ProcessorConfig = ProcessorConfig()
    memory: MemoryConfig = MemoryConfig()
    log: LogConfig = LogConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init_settings carries the YAML document; the command line's options come before the environment.
        return (_CommandLine(settings_cls), env_settings, init_settings)

    @property
    def role(self) -> Role:
        return self.topology.role_of(self.node)

    @property
    def embedded_store(self) -> bool:
        return self.resolved_store().dsn.startswith("chdb://")

    def resolved_store(self) -> StoreConfig:
        """The store config with an empty DSN resolved to ``chdb://<data_dir>/chdb``."""
        if self.store.dsn:
            return self.store
        return self.store.model_copy(update={"dsn": f"chdb://{(self.data_dir / 'chdb').resolve()}"})


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("<file>", f"cannot read {path}: {exc.strerror or exc}")]) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError([("<file>", f"{path} is not valid YAML{where}")]) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError([("<file>", f"{path} must hold a mapping at the top level")])
    return doc


def load_settings(path: Path | str | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Load and validate the configuration; raise :class:`ConfigError` naming every bad option."""
    doc: dict[str, Any] = _read_yaml(Path(path)) if path is not None else {}
    token = _COMMAND_LINE.set(overrides)
    try:
        return Settings(**doc)
    except ValidationError as exc:
        errors: list[tuple[str, str]] = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"]) or "<root>"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown option"
            errors.append((loc, msg))
        raise ConfigError(errors) from None
    finally:
        _COMMAND_LINE.reset(token)


def env_overrides_present() -> list[str]:
    return sorted(k for k in os.environ if k.startswith(ENV_PREFIX))
