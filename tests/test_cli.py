"""The CLI's smaller commands: help, migrate, cluster DDL, schemas export."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.cli_process import CLI


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, check=False)


def test_help_lists_every_command() -> None:
    proc = _run("--help")
    assert proc.returncode == 0
    for command in ("run", "migrate", "replay", "demo", "probe", "schemas", "config"):
        assert command in proc.stdout
    run_help = _run("run", "--help").stdout
    assert "--role" in run_help
    assert "--api-listen" in run_help
    assert "--probe" in run_help


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    first = _run("migrate", "--data-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout
    assert "0001_" in first.stdout
    second = _run("migrate", "--data-dir", str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("applied 0 migration(s)")


def test_print_cluster_ddl(tmp_path: Path) -> None:
    proc = _run("migrate", "--data-dir", str(tmp_path), "--print-cluster-ddl", "voip")
    assert proc.returncode == 0, proc.stderr
    assert "ON CLUSTER voip" in proc.stdout or "ON CLUSTER 'voip'" in proc.stdout
    assert "ReplicatedReplacingMergeTree" in proc.stdout
    assert "Distributed(" in proc.stdout
    assert not (tmp_path / "chdb").exists()  # printing touches no store


def test_schemas_export_check_passes_on_the_committed_files() -> None:
    proc = _run("schemas", "export", "--check")
    assert proc.returncode == 0, proc.stderr


def test_schemas_export_check_fails_on_a_stale_dir(tmp_path: Path) -> None:
    (tmp_path / "envelope.schema.json").write_text("{}\n")
    proc = _run("schemas", "export", "--check", "--dir", str(tmp_path))
    assert proc.returncode == 1
    assert "stale" in proc.stderr


def test_replay_unknown_format_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"\x00\x01\x02")
    proc = _run("replay", "--data-dir", str(tmp_path / "d"), str(path))
    assert proc.returncode == 2
    assert "--format" in proc.stderr
