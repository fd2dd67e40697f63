"""The Helm chart: helm lint and helm template with the default values and each scenario
(deploy/helm/callscope/ci/*-values.yaml), the rendered manifests read back with PyYAML:
kinds, probes, security context, the ConfigMap loaded by callscope's own settings loader with
each workload's environment, secrets wired to existing keys, the PrometheusRule equal to
dashboards/prometheus, one dashboard ConfigMap per dashboards/grafana JSON, and bad values
refused with the field named."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
import yaml

from callscope.settings import Settings, load_settings
from tests.helm import sync_chart_files
from tests.helm.chart import (
    DASHBOARD_FILES,
    RULE_FILES,
    SCENARIOS,
    Helm,
    Manifest,
    by_kind,
    container_env,
    one,
    rendered_config,
    secret_data,
    workloads,
)

SCENARIO_FILES = sorted(SCENARIOS.glob("*-values.yaml"))
CASES: list[tuple[str, tuple[Path, ...]]] = [("default", ())] + [(p.stem, (p,)) for p in SCENARIO_FILES]
CASE_IDS = [name for name, _ in CASES]

# Secrets the existing-secrets scenario expects to find in the namespace.
EXISTING_SECRETS: dict[str, dict[str, str]] = {
    "callscope-clickhouse": {"dsn": "https://callscope:s3cret@ch.example.net:8443"},
    "callscope-kafka-user": {"password": "kafka-pass"},
    "callscope-api-tokens": {"tokens": json.dumps([{"name": "noc", "token": "x" * 24, "scope": "read"}])},
    "callscope-ami": {"ast-1": "one", "ast2-secret": "two"},
}


def test_scenarios_exist() -> None:
    names = {p.stem for p in SCENARIO_FILES}
    assert {
        "hostnetwork-daemonset-values",
        "service-deployment-values",
        "existing-secrets-values",
        "ingress-values",
        "monitoring-values",
    } <= names


@pytest.mark.parametrize(("name", "values"), CASES, ids=CASE_IDS)
def test_lint_passes(helm: Helm, name: str, values: tuple[Path, ...]) -> None:
    result = helm.lint(*values)
    assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(("name", "values"), CASES, ids=CASE_IDS)
def test_workloads_are_secure_probed_and_bounded(helm: Helm, name: str, values: tuple[Path, ...]) -> None:
    manifests = helm.render(*values)
    assert workloads(manifests), name
    for workload in workloads(manifests):
        what = f"{name}: {workload['kind']} {workload['metadata']['name']}"
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, what
        assert pod["securityContext"]["runAsUser"] > 0, what
        (container,) = pod["containers"]
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, what
        assert sc["allowPrivilegeEscalation"] is False, what
        assert sc["capabilities"]["drop"] == ["ALL"], what
        ports = {p["name"]: p for p in container["ports"]}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, what
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, what
        assert "http" in ports, what
        env = {e["name"]: e for e in container["env"]}
        assert env["CALLSCOPE_API__LISTEN"]["value"] == f"0.0.0.0:{ports['http']['containerPort']}", what
        assert container["resources"]["requests"], what
        assert container["resources"]["limits"]["memory"], what
        # Writable paths on a read-only root: the data directory and /tmp are emptyDirs.
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        for path in ("/var/lib/callscope", "/tmp"):
            assert path in mounts, what
            assert not mounts[path].get("readOnly"), what
            assert "emptyDir" in volumes[mounts[path]["name"]], what
        assert mounts["/etc/callscope/config"]["readOnly"] is True, what
        assert container["args"][:3] == ["run", "--role", container["args"][2]]
        assert container["args"][2] in ("collector", "processor", "api"), what
    kinds = {m["kind"] for m in manifests}
    assert {"ConfigMap", "ServiceAccount", "Service", "Deployment", "PodDisruptionBudget"} <= kinds


@pytest.mark.parametrize(("name", "values"), CASES, ids=CASE_IDS)
def test_config_loads_in_every_workload(
    helm: Helm, name: str, values: tuple[Path, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = helm.render(*values)
    config_path = tmp_path / "callscope.yaml"
    config_path.write_text(rendered_config(manifests), encoding="utf-8")
    secrets = secret_data(manifests, EXISTING_SECRETS)
    scenario = yaml.safe_load(values[0].read_text()) if values else {}
    for workload in workloads(manifests):
        what = f"{name}: {workload['metadata']['name']}"
        env = container_env(workload, secrets)
        with monkeypatch.context() as patch:
            for key in [k for k in os.environ if k.startswith("CALLSCOPE_")]:
                patch.delenv(key)
            for key, value in env.items():
                patch.setenv(key, value)
            settings = load_settings(config_path)
        _check_settings(settings, workload, manifests, secrets, scenario, what)


def _check_settings(
    settings: Settings,
    workload: Manifest,
    manifests: list[Manifest],
    secrets: dict[str, dict[str, str]],
    scenario: dict[str, Any],
    what: str,
) -> None:
    role = workload["spec"]["template"]["spec"]["containers"][0]["args"][2]
    component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
    kafka = scenario.get("kafka", {})
    assert settings.bus.kind == "kafka", what
    assert settings.bus.kafka.partitions == kafka.get("partitions", 12), what
    if "bootstrapServers" in kafka:
        assert settings.bus.kafka.bootstrap_servers == kafka["bootstrapServers"], what
    if kafka.get("sasl", {}).get("mechanism"):
        assert settings.bus.kafka.sasl_mechanism == kafka["sasl"]["mechanism"], what
        assert settings.bus.kafka.sasl_password == "kafka-pass", what
    assert str(settings.data_dir) == "/var/lib/callscope", what
    if role in ("processor", "api"):
        dsn = urlparse(settings.store.dsn)
        assert dsn.scheme in ("http", "https"), what
        assert dsn.hostname, what
        password = scenario.get("clickhouse", {}).get("password")
        if password:
            assert unquote(dsn.password or "") == password, what
    if role == "api":
        tokens = settings.api.auth.tokens
        assert settings.api.auth.enabled, what
        assert tokens, what
        wanted = scenario.get("api", {}).get("tokens")
        if wanted:
            got = [(t.name, t.token, t.scope) for t in tokens]
            assert got == [(t["name"], t["token"], t.get("scope", "read")) for t in wanted], what
    if component == "collector":
        assert settings.collectors.ami.enabled is False, what  # AMI has its own single pod
        assert settings.collectors.hep.listen.endswith(":9060"), what
        assert settings.node in ("worker-1", scenario.get("collector", {}).get("nodeName")), what
    if component == "ami":
        assert settings.collectors.hep.enabled is False, what
        assert settings.collectors.options.enabled is False, what
        assert settings.collectors.ami.connections, what
        pod = workload["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "ami-secrets"]
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "ami-secrets")
        assert mount["readOnly"] is True, what
        keys = secrets[volume["secret"]["secretName"]]
        for conn in settings.collectors.ami.connections:
            assert conn.secret is None, what
            assert conn.secret_file is not None, what
            assert str(conn.secret_file.parent) == mount["mountPath"], what
            assert conn.secret_file.name in keys, f"{what}: AMI secret key {conn.secret_file.name} missing"


def test_default_renders_the_distributed_layout(helm: Helm) -> None:
    manifests = helm.render()
    assert one(manifests, "DaemonSet", "cs-callscope-collector")
    assert one(manifests, "Deployment", "cs-callscope-processors")["spec"]["replicas"] == 2
    assert one(manifests, "Deployment", "cs-callscope-api")
    assert not by_kind(manifests, "Ingress")
    assert not by_kind(manifests, "ServiceMonitor")
    assert not by_kind(manifests, "PrometheusRule")
    assert not [m for m in workloads(manifests) if m["metadata"]["name"].endswith("-ami")]
    # No tokens given: one generated admin token all API replicas share.
    tokens = json.loads(secret_data(manifests)["cs-callscope-secrets"]["api-tokens"])
    assert [(t["name"], t["scope"], len(t["token"])) for t in tokens] == [("generated-admin", "admin", 40)]
    pdbs = {m["metadata"]["name"] for m in by_kind(manifests, "PodDisruptionBudget")}
    assert pdbs == {"cs-callscope-api", "cs-callscope-processors"}


def test_hostnetwork_daemonset_reads_asterisk_logs_read_only(helm: Helm) -> None:
    manifests = helm.render(SCENARIOS / "hostnetwork-daemonset-values.yaml")
    daemonset = one(manifests, "DaemonSet", "cs-callscope-collector")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    (container,) = pod["containers"]
    hep = {(p["containerPort"], p["protocol"]) for p in container["ports"] if p["name"].startswith("hep-")}
    assert hep == {(9060, "UDP"), (9060, "TCP")}
    logs = next(v for v in pod["volumes"] if v["name"] == "asterisk-logs")
    assert logs["hostPath"] == {"path": "/var/log/asterisk", "type": "Directory"}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "asterisk-logs")
    assert mount == {"name": "asterisk-logs", "mountPath": "/var/log/asterisk", "readOnly": True}
    state = next(m for m in container["volumeMounts"] if m["name"] == "state")
    assert state["mountPath"] == "/var/lib/callscope/checkpoints"
    assert not [s for s in by_kind(manifests, "Service") if s["metadata"]["name"].endswith("-collector")]
    assert one(manifests, "Deployment", "cs-callscope-processors")["spec"]["replicas"] == 6


def test_service_mode_exposes_hep_udp_and_tcp(helm: Helm) -> None:
    manifests = helm.render(SCENARIOS / "service-deployment-values.yaml")
    deployment = one(manifests, "Deployment", "cs-callscope-collector")
    assert deployment["spec"]["replicas"] == 2
    assert "hostNetwork" not in deployment["spec"]["template"]["spec"]
    service = one(manifests, "Service", "cs-callscope-collector")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    ports = {(p["name"], p["port"], p["protocol"], p.get("nodePort")) for p in service["spec"]["ports"]}
    assert ("hep-udp", 9060, "UDP", 30960) in ports
    assert ("hep-tcp", 9060, "TCP", 30960) in ports
    assert one(manifests, "PodDisruptionBudget", "cs-callscope-collector")["spec"]["maxUnavailable"] == 1
    dsn = secret_data(manifests)["cs-callscope-secrets"]["store-dsn"]
    assert dsn.startswith("https://callscope:")
    assert dsn.endswith("@clickhouse.example.net:8443")
    assert "ch-p@ss:word/1" not in dsn  # the password is percent-encoded inside the URL
    assert "cluster: voip" in rendered_config(manifests)
    assert "ch-p" not in rendered_config(manifests)


def test_existing_secrets_create_no_secret_of_their_own(helm: Helm) -> None:
    manifests = helm.render(SCENARIOS / "existing-secrets-values.yaml")
    assert not by_kind(manifests, "Secret")
    ami = one(manifests, "Deployment", "cs-callscope-ami")
    assert ami["spec"]["replicas"] == 1
    assert ami["spec"]["strategy"]["type"] == "Recreate"


def test_ingress_routes_to_the_api_service(helm: Helm) -> None:
    manifests = helm.render(SCENARIOS / "ingress-values.yaml")
    ingress = one(manifests, "Ingress", "cs-callscope-api")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "callscope-tls", "hosts": ["callscope.example.net"]}]
    (rule,) = ingress["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    service = one(manifests, "Service", backend["name"])
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert one(manifests, "Deployment", "cs-callscope-api")["spec"]["replicas"] == 3
    assert secret_data(manifests)["cs-callscope-ami"] == {"ast-1": "ami-secret-1"}
    assert "ami-secret-1" not in rendered_config(manifests)


def test_service_monitor_selects_every_metrics_service(helm: Helm) -> None:
    manifests = helm.render(SCENARIOS / "monitoring-values.yaml", SCENARIOS / "ingress-values.yaml")
    monitor = one(manifests, "ServiceMonitor", "cs-callscope")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s"
    selected = [s for s in by_kind(manifests, "Service") if selector.items() <= s["metadata"]["labels"].items()]
    names = {s["metadata"]["labels"]["app.kubernetes.io/component"] for s in selected}
    assert names == {"collector", "processors", "api", "ami"}
    for service in selected:
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_prometheus_rule_groups_equal_the_repository_rules(helm: Helm) -> None:
    assert RULE_FILES, "dashboards/prometheus/*.rules.yml not found"
    manifests = helm.render(SCENARIOS / "monitoring-values.yaml")
    rule = one(manifests, "PrometheusRule", "cs-callscope")
    expected: list[Any] = []
    for path in RULE_FILES:
        expected.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
    assert rule["spec"]["groups"] == expected


def test_chart_copies_equal_the_dashboards_directory() -> None:
    assert sync_chart_files.differences() == [], "run: .venv/bin/python -m tests.helm.sync_chart_files"


def test_one_grafana_dashboard_config_map_per_json(helm: Helm) -> None:
    manifests = helm.render(SCENARIOS / "monitoring-values.yaml")
    dashboards = [m for m in by_kind(manifests, "ConfigMap") if m["metadata"]["labels"].get("grafana_dashboard")]
    assert len(dashboards) == len(DASHBOARD_FILES)  # none until dashboards/grafana/*.json exist
    by_file = {name: body for cm in dashboards for name, body in cm["data"].items()}
    for cm in dashboards:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"]["grafana_folder"] == "VoIP"
    for path in DASHBOARD_FILES:
        assert json.loads(by_file[path.name]) == json.loads(path.read_text(encoding="utf-8"))
    off = helm.render(set_values=("grafanaDashboards.enabled=false",))
    assert not [m for m in by_kind(off, "ConfigMap") if m["metadata"]["labels"].get("grafana_dashboard")]


@pytest.mark.parametrize(("name", "values"), CASES, ids=CASE_IDS)
def test_processor_replicas_within_partitions(helm: Helm, name: str, values: tuple[Path, ...]) -> None:
    manifests = helm.render(*values)
    partitions = yaml.safe_load(rendered_config(manifests))["bus"]["kafka"]["partitions"]
    assert one(manifests, "Deployment", "cs-callscope-processors")["spec"]["replicas"] <= partitions, name


# Bad values: (values, a fragment the error must name, checked by the schema?). values.schema.json
# checks each value alone and fails `helm lint` and `helm template`; checks across values are the
# templates' `fail`, which fails `helm template`/`install` while `helm lint` reports it as "[INFO] Fail".
BAD_VALUES: list[tuple[str, dict[str, Any], str, bool]] = [
    ("partitions-zero", {"kafka": {"partitions": 0}}, "/kafka/partitions", True),
    ("bootstrap-without-port", {"kafka": {"bootstrapServers": "kafka"}}, "/kafka/bootstrapServers", True),
    ("clickhouse-credentials-in-url", {"clickhouse": {"endpoint": "http://u:p@ch:8123"}}, "/clickhouse/endpoint", True),
    ("collector-kind", {"collector": {"kind": "StatefulSet"}}, "/collector/kind", True),
    ("hep-port-privileged", {"collector": {"hepPort": 80}}, "/collector/hepPort", True),
    (
        "short-token",
        {"api": {"tokens": [{"name": "noc", "token": "short", "scope": "read"}]}},
        "/api/tokens/0/token",
        True,
    ),
    (
        "token-scope",
        {"api": {"tokens": [{"name": "n", "token": "x" * 20, "scope": "root"}]}},
        "/api/tokens/0/scope",
        True,
    ),
    ("writable-root", {"securityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem", True),
    ("root-user", {"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot", True),
    ("typo", {"processor": {"replicas": 2}}, "processor", True),
    ("config-owns-bus", {"config": {"bus": {"kind": "memory"}}}, "/config/bus", True),
    (
        "config-tokens",
        {"config": {"api": {"auth": {"tokens": [{"name": "n", "token": "x" * 20}]}}}},
        "/config/api",
        True,
    ),
    ("config-ami", {"config": {"collectors": {"ami": {"connections": []}}}}, "/config/collectors/ami", True),
    ("config-dsn", {"config": {"store": {"dsn": "http://u:p@ch:8123"}}}, "/config/store/dsn", True),
    (
        "replicas-over-partitions",
        {"kafka": {"partitions": 4}, "processors": {"replicas": 5}},
        "processors.replicas (5)",
        False,
    ),
    ("ami-no-secret", {"ami": {"connections": [{"node": "ast-1", "username": "cs"}]}}, "ami.connections[0]", False),
    (
        "hostnetwork-deployment",
        {"collector": {"kind": "Deployment", "hostNetwork": True}},
        "collector.hostNetwork",
        False,
    ),
    ("sasl-without-sasl-protocol", {"kafka": {"sasl": {"mechanism": "PLAIN"}}}, "kafka.sasl.mechanism", False),
]


@pytest.mark.parametrize(("name", "values", "field", "schema"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_values_are_refused_naming_the_field(
    helm: Helm, name: str, values: dict[str, Any], field: str, schema: bool, tmp_path: Path
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    template = helm.template(path)
    assert template.returncode != 0, f"{name}: helm template accepted {values}"
    assert field in template.stderr, f"{name}: template error does not name {field}:\n{template.stderr}"
    lint = helm.lint(path)
    output = lint.stdout + lint.stderr
    assert field in output, f"{name}: lint output does not name {field}:\n{output}"
    if schema:
        assert lint.returncode != 0, f"{name}: helm lint accepted {values}"
        assert "values don't meet the specifications of the schema" in output
    else:
        assert "Fail: " in output
