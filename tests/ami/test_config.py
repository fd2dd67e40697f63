"""``collectors.ami`` options: bad values name the option; secrets come from config, environment or file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callscope.bus.memory import MemoryBus
from callscope.cli import main
from callscope.settings import MemoryBusConfig, load_settings
from callscope.telemetry import Telemetry
from collectors.ami.config import AmiEventFilter
from collectors.registry import build_collectors
from schemas.errors import ConfigError


def _conn(**over: Any) -> dict[str, Any]:
    return {"node": "ast-1", "host": "10.0.0.21", "username": "callscope", "secret": "s3cret", **over}


def _settings(*conns: dict[str, Any], **top: Any) -> Any:
    return load_settings(None, {"collectors": {"ami": {"connections": list(conns)}}, **top})


def _paths(exc: ConfigError) -> list[str]:
    return [path for path, _ in exc.errors]


@pytest.mark.parametrize(
    ("over", "path"),
    [
        ({"port": 70000}, "collectors.ami.connections.0.port"),
        ({"ping_interval_secs": 0}, "collectors.ami.connections.0.ping_interval_secs"),
        ({"ping_timeout_secs": -1}, "collectors.ami.connections.0.ping_timeout_secs"),
        ({"node": "bad name"}, "collectors.ami.connections.0.node"),
        ({"username": ""}, "collectors.ami.connections.0.username"),
        ({"secret_env": "1BAD"}, "collectors.ami.connections.0.secret_env"),
        ({"events": {"deny": ["Var Set"]}}, "collectors.ami.connections.0.events.deny"),
        ({"colour": "blue"}, "collectors.ami.connections.0.colour"),
        ({"reconnect_backoff_initial_secs": 5, "reconnect_backoff_max_secs": 1}, "collectors.ami.connections.0"),
    ],
)
def test_bad_values_name_the_option(over: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as err:
        _settings(_conn(**over))
    assert path in _paths(err.value)


def test_exactly_one_secret_source() -> None:
    with pytest.raises(ConfigError) as err:
        _settings(_conn(secret_env="AMI_SECRET"))
    assert "exactly one of secret, secret_env, secret_file (given: secret, secret_env)" in str(err.value)
    conn = _conn()
    del conn["secret"]
    with pytest.raises(ConfigError) as err:
        _settings(conn)
    assert "(given: none)" in str(err.value)


def test_one_connection_per_node() -> None:
    with pytest.raises(ConfigError) as err:
        _settings(_conn(), _conn(host="10.0.0.22"))
    assert _paths(err.value) == ["collectors.ami.connections"]


def test_secret_is_masked_in_reprs() -> None:
    settings = _settings(_conn(secret="hunter2-very-secret"))
    assert "hunter2-very-secret" not in repr(settings)
    assert "hunter2-very-secret" not in str(settings.collectors.ami)
    assert "hunter2-very-secret" not in settings.model_dump_json()


async def _build(settings: Any) -> list[Any]:
    telemetry = Telemetry()
    bus = MemoryBus(MemoryBusConfig(), telemetry)
    await bus.start()
    try:
        return [c for c in build_collectors(settings, bus.producer(), telemetry) if c.name == "ami"]
    finally:
        await bus.stop()


async def test_missing_environment_variable_is_a_config_error_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMI_SECRET_TEST", raising=False)
    conn = _conn(secret_env="AMI_SECRET_TEST")
    del conn["secret"]
    settings = _settings(conn)  # loading is fine: the variable is read when the collector starts
    with pytest.raises(ConfigError) as err:
        await _build(settings)
    assert _paths(err.value) == ["collectors.ami.connections.0.secret_env"]
    assert "AMI_SECRET_TEST is not set" in str(err.value)
    monkeypatch.setenv("AMI_SECRET_TEST", "from-env")
    (collector,) = await _build(settings)
    assert collector.name == "ami"
    assert collector.sessions[0]._secret == "from-env"


async def test_secret_file_missing_empty_or_good(tmp_path: Path) -> None:
    path = tmp_path / "ami-secret"
    conn = _conn(secret_file=str(path))
    del conn["secret"]
    settings = _settings(conn)
    with pytest.raises(ConfigError) as err:
        await _build(settings)
    assert _paths(err.value) == ["collectors.ami.connections.0.secret_file"]
    assert "cannot read" in str(err.value)
    path.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        await _build(settings)
    path.write_text("from-file\n")
    (collector,) = await _build(settings)
    assert collector.sessions[0]._secret == "from-file"


async def test_host_defaults_to_the_topology_address() -> None:
    conn = _conn()
    del conn["host"]
    with pytest.raises(ConfigError) as err:
        await _build(_settings(conn))
    assert _paths(err.value) == ["collectors.ami.connections.0.host"]
    settings = _settings(conn, topology={"nodes": [{"name": "ast-1", "role": "logic", "address": "10.9.9.9"}]})
    (collector,) = await _build(settings)
    assert collector.sessions[0].address == "10.9.9.9:5038"
    assert collector.sessions[0].role == "logic"
    assert collector.describe() == "1 connection: ast-1 10.9.9.9:5038 (connecting)"


def test_config_check_prints_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("collectors:\n  ami:\n    connections:\n      - {node: ast-1, username: u, secret: s, port: 0}\n")
    assert main(["config", "check", str(path)]) == 2
    assert "collectors.ami.connections.0.port" in capsys.readouterr().err


def test_event_filters() -> None:
    everything = AmiEventFilter().compile()
    assert everything.passes("VarSet")
    deny = AmiEventFilter(deny=("VarSet", "rtcp*", "Newexten")).compile()
    assert not deny.passes("VarSet")
    assert not deny.passes("RTCPSent")
    assert not deny.passes("newexten")
    assert deny.passes("Hangup")
    allow = AmiEventFilter(allow=("Queue*", "Agent*", "Hangup"), deny=("QueueMemberStatus",)).compile()
    assert allow.passes("QueueCallerJoin")
    assert allow.passes("AgentConnect")
    assert allow.passes("hangup")
    assert not allow.passes("QueueMemberStatus")
    assert not allow.passes("Newchannel")
