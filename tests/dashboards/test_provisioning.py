"""The provisioning files: both datasources with the uids the dashboards default to, and a provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dashboards.grafana.gen.panels import CLICKHOUSE_TYPE, CLICKHOUSE_UID, PROMETHEUS_TYPE, PROMETHEUS_UID
from dashboards.grafana.gen.render import OUTPUT_DIR
from tests.dashboards.model import dashboards

PROVISIONING = OUTPUT_DIR / "provisioning"
#: jsonData keys the ClickHouse plugin documents for provisioning (its README).
CLICKHOUSE_JSON_DATA = {
    "host", "port", "protocol", "secure", "username", "defaultDatabase", "defaultTable", "tlsSkipVerify",
    "tlsAuth", "tlsAuthWithCACert", "dialTimeout", "queryTimeout", "httpHeaders", "logs", "traces",
}  # fmt: skip


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def _datasources() -> dict[str, dict[str, Any]]:
    [path] = sorted((PROVISIONING / "datasources").glob("*.yaml"))
    data = _load(path)
    assert data["apiVersion"] == 1
    return {ds["type"]: ds for ds in data["datasources"]}


def test_clickhouse_datasource_uses_the_official_plugin() -> None:
    ds = _datasources()[CLICKHOUSE_TYPE]
    assert ds["uid"] == CLICKHOUSE_UID
    assert set(ds["jsonData"]) <= CLICKHOUSE_JSON_DATA
    assert {"host", "port", "protocol", "username", "defaultDatabase"} <= set(ds["jsonData"])
    assert ds["jsonData"]["protocol"] in ("native", "http")
    assert set(ds["secureJsonData"]) == {"password"}
    # Settings come from Grafana's environment, so no secret is committed.
    assert ds["secureJsonData"]["password"].startswith("${")


def test_prometheus_datasource() -> None:
    ds = _datasources()[PROMETHEUS_TYPE]
    assert ds["uid"] == PROMETHEUS_UID
    assert ds["access"] == "proxy"
    assert ds["url"] == "${CALLSCOPE_PROMETHEUS_URL}"


def test_dashboards_default_to_the_provisioned_datasources() -> None:
    uids = {ds["uid"] for ds in _datasources().values()}
    for board in dashboards().values():
        defaults = {v["current"]["value"] for v in board["templating"]["list"] if v["type"] == "datasource"}
        assert defaults == uids


def test_dashboard_provider_points_at_the_json_folder() -> None:
    [path] = sorted((PROVISIONING / "dashboards").glob("*.yaml"))
    data = _load(path)
    assert data["apiVersion"] == 1
    [provider] = data["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "callscope"
    assert provider["allowUiUpdates"] is False
    # The README mounts dashboards/grafana (where the JSON is) at this path.
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/callscope"
    readme = (OUTPUT_DIR.parent / "README.md").read_text(encoding="utf-8")
    assert "dashboards/grafana:/var/lib/grafana/dashboards/callscope" in readme
    assert len(list(OUTPUT_DIR.glob("*.json"))) == len(dashboards())
