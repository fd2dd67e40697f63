"""Settings: YAML + CALLSCOPE_* environment, validation errors name the option."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from callscope.settings import PROCESSOR_NAMES, load_settings
from schemas.errors import ConfigError
from tests.cli_process import CLI

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "callscope.yaml"
    path.write_text(text)
    return path


def test_example_config_is_valid() -> None:
    settings = load_settings(ROOT / "callscope.example.yaml")
    assert settings.node == "sbc1"
    assert [n.role for n in settings.topology.nodes] == ["sbc", "registrar", "logic", "media"]
    assert settings.role == "sbc"


def test_defaults_are_the_embedded_pipeline(tmp_path: Path) -> None:
    settings = load_settings(None, {"data_dir": str(tmp_path)})
    assert settings.bus.kind == "memory"
    assert settings.resolved_store().dsn == f"chdb://{tmp_path.resolve()}/chdb"
    assert settings.api.listen == "127.0.0.1:8080"


def test_environment_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "bus:\n  kind: memory\n  kafka:\n    partitions: 3\n")
    monkeypatch.setenv("CALLSCOPE_BUS__KIND", "kafka")
    monkeypatch.setenv("CALLSCOPE_BUS__KAFKA__BOOTSTRAP_SERVERS", "10.1.1.1:9092")
    settings = load_settings(path)
    assert settings.bus.kind == "kafka"
    assert settings.bus.kafka.bootstrap_servers == "10.1.1.1:9092"
    assert settings.bus.kafka.partitions == 3  # kept from the file


def test_processors_enabled_defaults_to_all_and_takes_a_subset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(None, {"data_dir": str(tmp_path)}).processors.enabled == PROCESSOR_NAMES
    path = _write(tmp_path, "processors:\n  enabled: [call_legs, events]\n")
    assert load_settings(path).processors.enabled == ("call_legs", "events")
    monkeypatch.setenv("CALLSCOPE_PROCESSORS__ENABLED", '["health"]')
    assert load_settings(path).processors.enabled == ("health",)
    with pytest.raises(ConfigError, match="unknown processor 'legs' \\(known: events, call_legs,"):
        load_settings(path, {"processors": {"enabled": ["events", "legs"]}})


def test_command_line_wins_over_environment_over_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(
        tmp_path, "node: from-yaml\ncollectors:\n  hep:\n    listen: 127.0.0.1:1001\n    recv_buffer_bytes: 1048576\n"
    )
    monkeypatch.setenv("CALLSCOPE_COLLECTORS__HEP__LISTEN", "127.0.0.1:1002")
    monkeypatch.setenv("CALLSCOPE_NODE", "from-env")
    settings = load_settings(path)
    assert (settings.node, settings.collectors.hep.listen) == ("from-env", "127.0.0.1:1002")
    settings = load_settings(path, {"node": "from-cli", "collectors": {"hep": {"listen": "127.0.0.1:1003"}}})
    assert (settings.node, settings.collectors.hep.listen) == ("from-cli", "127.0.0.1:1003")
    assert settings.collectors.hep.recv_buffer_bytes == 1048576  # the file's other options stay
    assert load_settings(path).node == "from-env"  # the command line of one load is not the next one's


def test_models_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(None, {"data_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="frozen"):
        settings.bus.memory.partitions = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("bus:\n  kind: rabbit\n", "bus.kind"),
        ("bus:\n  kafka:\n    partitions: 0\n", "bus.kafka.partitions"),
        ("store:\n  dsn: mysql://x\n", "store.dsn"),
        ("api:\n  listen: nowhere\n", "api.listen"),
        ("api:\n  listen: 0.0.0.0:8080\n  auth:\n    enabled: false\n", "api"),
        ("api:\n  auth:\n    tokens:\n      - {name: a, token: short}\n", "api.auth.tokens.0.token"),
        ("topology:\n  nodes:\n    - {name: a, role: pbx}\n", "topology.nodes.0.role"),
        ("topology:\n  nodes:\n    - {name: a, role: sbc}\n    - {name: a, role: logic}\n", "topology.nodes"),
        ("stor:\n  dsn: x\n", "stor"),
        ("processors:\n  enabled: [events, legs]\n", "processors.enabled"),
        ("processors:\n  enabled: []\n", "processors.enabled"),
        ("processors:\n  enabled: [events, events]\n", "processors.enabled"),
    ],
)
def test_bad_option_is_named(tmp_path: Path, text: str, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text))
    assert path in [p for p, _ in info.value.errors], info.value.errors


def test_bad_yaml_says_where(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_settings(_write(tmp_path, "bus:\n  kind: [memory\n"))


def test_config_check_cli_prints_every_error_and_exits_2(tmp_path: Path) -> None:
    path = _write(tmp_path, "bus:\n  kind: rabbit\napi:\n  listen: nowhere\n")
    proc = subprocess.run([*CLI, "config", "check", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "config error: bus.kind:" in proc.stderr
    assert "config error: api.listen:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_check_cli_accepts_a_good_file() -> None:
    proc = subprocess.run(
        [*CLI, "config", "check", str(ROOT / "callscope.example.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


def test_run_with_bad_config_starts_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path, "bus:\n  kind: rabbit\n")
    proc = subprocess.run(
        [*CLI, "run", "--config", str(path), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "bus.kind" in proc.stderr
    assert not (tmp_path / "d").exists()
