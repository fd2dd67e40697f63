"""Fixtures: a recording stand-in for Grafana and a directory of dashboards and datasources."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboards_push.fake_grafana import FakeGrafana

TOKEN = "glsa_Push7estToken_0123456789abcdef"

DATASOURCES_YAML = """\
apiVersion: 1
deleteDatasources: []
datasources:
  - name: callscope ClickHouse
    type: grafana-clickhouse-datasource
    uid: callscope-clickhouse
    orgId: 1
    editable: false
    jsonData:
      host: ${CLICKHOUSE_HOST}
      port: 8123
      protocol: http
      username: grafana
      defaultDatabase: callscope
    secureJsonData:
      password: $CLICKHOUSE_PASSWORD
  - name: callscope Prometheus
    type: prometheus
    uid: callscope-prometheus
    access: proxy
    url: http://prometheus:9090
    jsonData:
      timeInterval: 15s
"""

PROVIDER_YAML = """\
apiVersion: 1
providers:
  - name: callscope
    folder: callscope
    type: file
    options:
      path: /var/lib/grafana/dashboards/callscope
"""


def dashboard(uid: str, title: str, *, stat_title: str = "Active calls") -> dict[str, object]:
    return {
        "id": 42,  # an instance id from an export: the push drops it
        "uid": uid,
        "title": title,
        "schemaVersion": 39,
        "tags": ["callscope"],
        "time": {"from": "now-6h", "to": "now"},
        "panels": [
            {
                "id": 1,
                "type": "stat",
                "title": stat_title,
                "description": "Calls now in progress.",
                "datasource": {"type": "grafana-clickhouse-datasource", "uid": "callscope-clickhouse"},
                "fieldConfig": {"defaults": {"unit": "none"}, "overrides": []},
                "gridPos": {"h": 6, "w": 6, "x": 0, "y": 0},
            }
        ],
    }


def write_files(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "noc.json").write_text(json.dumps(dashboard("callscope-noc", "NOC wallboard"), sort_keys=True))
    (directory / "trunks.json").write_text(json.dumps(dashboard("callscope-trunks", "Trunks"), sort_keys=True))
    ds = directory / "provisioning" / "datasources"
    ds.mkdir(parents=True, exist_ok=True)
    (ds / "callscope.yaml").write_text(DATASOURCES_YAML)
    providers = directory / "provisioning" / "dashboards"
    providers.mkdir(parents=True, exist_ok=True)
    (providers / "callscope.yaml").write_text(PROVIDER_YAML)
    return directory


@pytest.fixture
def files(tmp_path: Path) -> Path:
    return write_files(tmp_path / "grafana")


@pytest.fixture
def grafana_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKHOUSE_HOST", "clickhouse.db.svc")
    monkeypatch.setenv("CLICKHOUSE_PASSWORD", "ch-secret")
    monkeypatch.delenv("GRAFANA_URL", raising=False)
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    server = FakeGrafana(TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.stop()
