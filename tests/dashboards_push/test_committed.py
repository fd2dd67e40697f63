"""Pushing the committed ``dashboards/grafana/`` files: the default --dir, as a user would."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from callscope.cli import main
from callscope.dashboards import DATASOURCES_SUBDIR, default_dir, load_dashboards, load_datasources
from tests.dashboards_push.conftest import TOKEN
from tests.dashboards_push.fake_grafana import FakeGrafana

COMMITTED = Path(__file__).resolve().parents[2] / "dashboards" / "grafana"
BUILT_IN = {"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"}


def _variables_of_datasource_files() -> dict[str, str]:
    """A value for every variable the committed datasource files use, whatever their names."""
    names: set[str] = set()
    for path in (COMMITTED / DATASOURCES_SUBDIR).glob("*.y*ml"):
        names |= set(re.findall(r"\$\{?(?:__env\{)?([A-Za-z_][A-Za-z0-9_]*)", path.read_text()))
    return {name: f"value-of-{name.lower()}" for name in names}


@pytest.fixture
def committed_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = _variables_of_datasource_files()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GRAFANA_URL", raising=False)
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    return env


def test_default_dir_is_the_committed_one() -> None:
    assert default_dir() == COMMITTED


def test_push_the_committed_files_twice(
    grafana: FakeGrafana, committed_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    dashboards = load_dashboards(COMMITTED)
    datasources = load_datasources(COMMITTED, committed_env)
    assert datasources, "the committed provisioning has datasources to push"

    assert main(["dashboards", "push", "--url", grafana.url, "--token", TOKEN]) == 0
    out, err = capsys.readouterr()
    assert TOKEN not in out + err
    assert sorted(grafana.state.dashboards) == sorted(d.uid for d in dashboards)
    assert sorted(grafana.state.datasources) == sorted(d.uid for d in datasources)
    (folder_uid,) = grafana.state.folders
    assert all(folder == folder_uid for _, folder in grafana.state.dashboards.values())
    assert f"{len(dashboards) + len(datasources)} created" in out

    grafana.clear()
    assert main(["dashboards", "push", "--url", grafana.url, "--token", TOKEN]) == 0
    writes = [line for line in grafana.lines() if not line.startswith("GET ")]
    with_secrets = [f"PUT /api/datasources/uid/{d.uid}" for d in datasources if d.has_secrets]
    assert writes == with_secrets
    assert f"{len(dashboards) + len(datasources) - len(with_secrets)} unchanged" in capsys.readouterr().out


def _datasource_refs(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node["datasource"]] if isinstance(node.get("datasource"), dict) else []
        return found + [ref for value in node.values() for ref in _datasource_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _datasource_refs(value)]
    return []


def test_dashboards_point_at_the_pushed_datasources(committed_env: dict[str, str]) -> None:
    """What the push creates is what the dashboards use, so they work right after a push."""
    pushed = {d.uid: d.body["type"] for d in load_datasources(COMMITTED, committed_env)}
    for board in load_dashboards(COMMITTED):
        model = json.loads(json.dumps(board.model))
        for ref in _datasource_refs(model):
            uid = str(ref.get("uid", ""))
            if uid.startswith("$") or uid in BUILT_IN:
                continue
            assert pushed.get(uid) == ref.get("type"), f"{board.path.name}: datasource {ref} is not pushed"
        for variable in model.get("templating", {}).get("list", []):
            if variable.get("type") != "datasource":
                continue
            current = variable.get("current", {}).get("value")
            assert pushed.get(current) == variable.get("query"), (
                f"{board.path.name}: variable {variable.get('name')} defaults to {current!r}, not a pushed datasource"
            )
