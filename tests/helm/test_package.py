"""The chart as it is shipped: `helm package`, then rendered from the archive; and a chart
directory copied without its rule files refuses to render an empty PrometheusRule."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path
from typing import Any

import yaml

from tests.helm.chart import CHART, DASHBOARD_FILES, RULE_FILES, SCENARIOS, Helm, by_kind, one


def test_packaged_chart_carries_rules_and_dashboards(helm: Helm, tmp_path: Path) -> None:
    result = helm.run("package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("callscope-*.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {f"callscope/files/prometheus/{p.name}" for p in RULE_FILES} <= names
    assert {f"callscope/files/grafana/{p.name}" for p in DASHBOARD_FILES} <= names
    assert "callscope/values.schema.json" in names
    assert not [n for n in names if n.startswith("callscope/ci/")]  # test scenarios stay out (.helmignore)

    manifests = helm.render(SCENARIOS / "monitoring-values.yaml", chart=archive)
    expected: list[Any] = []
    for path in RULE_FILES:
        expected.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
    assert one(manifests, "PrometheusRule", "cs-callscope")["spec"]["groups"] == expected
    dashboards = [m for m in by_kind(manifests, "ConfigMap") if "grafana_dashboard" in m["metadata"]["labels"]]
    assert len(dashboards) == len(DASHBOARD_FILES)


def test_chart_without_rule_files_refuses_an_empty_prometheus_rule(helm: Helm, tmp_path: Path) -> None:
    copy = tmp_path / "callscope"
    shutil.copytree(CHART, copy)
    shutil.rmtree(copy / "files" / "prometheus")
    result = helm.template(SCENARIOS / "monitoring-values.yaml", chart=copy)
    assert result.returncode != 0
    assert "prometheusRule.enabled" in result.stderr
    # Without the PrometheusRule the same copy renders.
    assert helm.render(chart=copy)


def test_install_notes_render(helm: Helm, tmp_path: Path) -> None:
    """NOTES.txt renders only on install; a copy of the chart renders it into a ConfigMap instead."""
    copy = tmp_path / "callscope"
    shutil.copytree(CHART, copy)
    notes = (copy / "templates" / "NOTES.txt").read_text(encoding="utf-8")
    (copy / "templates" / "NOTES.txt").unlink()
    (copy / "templates" / "_notes_check.tpl").write_text(
        '{{- define "notes-check" -}}\n' + notes + "{{- end -}}\n", encoding="utf-8"
    )
    (copy / "templates" / "notes-check.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes-check}\n"
        'data:\n  notes: |\n    {{- include "notes-check" . | nindent 4 }}\n',
        encoding="utf-8",
    )
    default = one(helm.render(chart=copy), "ConfigMap", "notes-check")["data"]["notes"]
    assert "port-forward svc/cs-callscope-api 8080" in default
    assert "generated admin token: kubectl -n voip get secret cs-callscope-secrets" in default
    assert "udp+tcp svc/cs-callscope-collector:9060 (ClusterIP)" in default
    host = one(helm.render(SCENARIOS / "hostnetwork-daemonset-values.yaml", chart=copy), "ConfigMap", "notes-check")[
        "data"
    ]["notes"]
    assert "<node address>:9060 on every node (hostNetwork)" in host
    assert "generated admin token" not in host
