"""Reading the dashboards and datasource provisioning files, and deciding what is unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from callscope.dashboards import (
    DashboardFile,
    backoff_delays,
    dashboard_payload,
    dashboard_unchanged,
    datasource_unchanged,
    expand,
    load_dashboards,
    load_datasources,
)
from schemas.errors import ConfigError
from tests.dashboards_push.conftest import dashboard, write_files

ENV = {"CLICKHOUSE_HOST": "ch.svc", "CLICKHOUSE_PASSWORD": "pw", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("$CLICKHOUSE_HOST", "ch.svc"),
        ("http://${CLICKHOUSE_HOST}:8123", "http://ch.svc:8123"),
        ("$__env{CLICKHOUSE_PASSWORD}", "pw"),
        ("price $$5", "price $5"),
        ("$$CLICKHOUSE_HOST", "$CLICKHOUSE_HOST"),
        ("[$EMPTY]", "[]"),
        ("no variables", "no variables"),
        ("$1 is not a name", "$1 is not a name"),
    ],
)
def test_expand_like_grafana_provisioning(text: str, expanded: str) -> None:
    missing: set[str] = set()
    assert expand(text, ENV, missing, "f") == expanded
    assert missing == set()


def test_expand_walks_nested_values_and_collects_missing_names() -> None:
    missing: set[str] = set()
    value = {"a": ["$NOPE", {"b": "${ALSO_NOPE}-$CLICKHOUSE_HOST"}], "n": 3, "t": True}
    assert expand(value, ENV, missing, "f") == {"a": ["", {"b": "-ch.svc"}], "n": 3, "t": True}
    assert missing == {"NOPE", "ALSO_NOPE"}


@pytest.mark.parametrize("text", ["$__file{/etc/secrets/pw}", "$__vault{kv:pw}"])
def test_server_side_expansions_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="reads from the Grafana server"):
        expand(text, ENV, set(), "where")


def test_datasources_become_api_bodies(tmp_path: Path) -> None:
    specs = load_datasources(write_files(tmp_path), ENV)
    assert [s.uid for s in specs] == ["callscope-clickhouse", "callscope-prometheus"]
    clickhouse, prometheus = specs
    assert clickhouse.has_secrets
    assert clickhouse.body["jsonData"]["host"] == "ch.svc"
    assert clickhouse.body["secureJsonData"] == {"password": "pw"}
    assert "orgId" not in clickhouse.body  # provisioning-only keys stay out of the API body
    assert "editable" not in clickhouse.body
    assert not prometheus.has_secrets
    assert prometheus.body == {
        "name": "callscope Prometheus",
        "type": "prometheus",
        "uid": "callscope-prometheus",
        "access": "proxy",
        "url": "http://prometheus:9090",
        "jsonData": {"timeInterval": "15s"},
    }


def _write_ds(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "provisioning" / "datasources"
    folder.mkdir(parents=True)
    (folder / "ds.yml").write_text(text)
    return tmp_path


def test_legacy_top_level_password_moves_to_secure_json(tmp_path: Path) -> None:
    text = "apiVersion: 1\ndatasources:\n  - {name: P, type: postgres, uid: pg, password: s3cret}\n"
    (spec,) = load_datasources(_write_ds(tmp_path, text), {})
    assert spec.body["secureJsonData"] == {"password": "s3cret"}
    assert "password" not in spec.body


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("datasources:\n  - {name: P, type: prometheus}\n", "'uid' is required"),
        ("datasources:\n  - {name: P, type: prometheus, uid: 'bad uid'}\n", "is not 1-40 of"),
        ("datasources:\n  - {name: P, type: prometheus, uid: a}\n  - {name: Q, type: prometheus, uid: a}\n", "also in"),
        ("datasources: {name: P}\n", "a 'datasources' list"),
        ("datasources:\n  - just a string\n", "each datasource is a mapping"),
        ("datasources: [\n", "not a readable YAML file"),
        ("datasources:\n  - {name: P, type: prometheus, uid: a, jsonData: [1]}\n", "'jsonData' is a mapping"),
    ],
)
def test_bad_datasource_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_datasources(_write_ds(tmp_path, text), {})
    assert "ds.yml" in str(info.value)


def test_no_datasource_folder_means_no_datasources(tmp_path: Path) -> None:
    assert load_datasources(tmp_path, {}) == []


def test_dashboards_in_file_name_order_without_instance_fields(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text(json.dumps(dashboard("uid-b", "B")))
    # An export wrapped with its meta is accepted.
    (tmp_path / "a.json").write_text(json.dumps({"dashboard": {**dashboard("uid-a", "A"), "version": 7}, "meta": {}}))
    loaded = load_dashboards(tmp_path)
    assert [(d.uid, d.title, d.path.name) for d in loaded] == [("uid-a", "A", "a.json"), ("uid-b", "B", "b.json")]
    assert "id" not in loaded[0].model
    assert "version" not in loaded[0].model


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no dashboards"),
        ({"x.json": "[]"}, "one JSON object"),
        ({"x.json": json.dumps({"title": "T"})}, "uid None is not"),
        ({"x.json": json.dumps({"uid": "u" * 41, "title": "T"})}, "is not 1-40"),
        ({"x.json": json.dumps({"uid": "u", "title": " "})}, "has no title"),
        ({"x.json": json.dumps({"uid": "u", "title": "T"}), "y.json": json.dumps({"uid": "u", "title": "U"})}, "also"),
        ({"x.json": b"\xff\xfe".decode("latin-1")}, "not a readable JSON file"),
    ],
)
def test_bad_dashboard_files_name_the_problem(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_dashboards(tmp_path)


def _file(model: dict[str, Any]) -> DashboardFile:
    return DashboardFile(path=Path("x.json"), uid=str(model["uid"]), title=str(model["title"]), model=model)


def test_dashboard_unchanged_ignores_what_grafana_adds() -> None:
    model = {"uid": "u", "title": "T", "panels": []}
    stored = {"dashboard": {**model, "id": 3, "version": 9}, "meta": {"folderUid": "f"}}
    assert dashboard_unchanged(_file(model), "f", stored)
    assert not dashboard_unchanged(_file(model), "other", stored)
    assert not dashboard_unchanged(_file({**model, "panels": [{}]}), "f", stored)
    assert not dashboard_unchanged(_file(model), "f", {"dashboard": model})
    payload = dashboard_payload(_file(model), "f")
    assert payload == {
        "dashboard": {**model, "id": None},
        "folderUid": "f",
        "overwrite": True,
        "message": "pushed by callscope dashboards push",
    }


def test_datasource_unchanged_compares_with_grafana_defaults(tmp_path: Path) -> None:
    text = "datasources:\n  - {name: P, type: prometheus, uid: p, url: 'http://p:9090'}\n"
    (spec,) = load_datasources(_write_ds(tmp_path, text), {})
    stored = {
        **spec.body,
        "id": 4,
        "orgId": 1,
        "version": 2,
        "user": "",
        "database": "",
        "basicAuth": False,
        "isDefault": False,
        "jsonData": {},
        "readOnly": False,
        "secureJsonFields": {},
    }
    assert datasource_unchanged(spec, stored)
    assert not datasource_unchanged(spec, {**stored, "url": "http://elsewhere:9090"})
    assert not datasource_unchanged(spec, {**stored, "jsonData": {"httpMethod": "GET"}})
    assert not datasource_unchanged(spec, {**stored, "isDefault": True})


def test_backoff_doubles_up_to_a_cap() -> None:
    assert backoff_delays(0, 0.5) == []
    assert backoff_delays(3, 0.5) == [0.5, 1.0, 2.0]
    assert backoff_delays(6, 1.0, cap_secs=8.0) == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
