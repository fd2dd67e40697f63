"""Helpers of the Helm chart tests: find or install helm, render the chart, read the manifests.

helm comes from the Go module proxy (``tests/helm/install-helm.sh``: ``go install
helm.sh/helm/v3/cmd/helm@v3.22.0`` into the git-ignored ``.cache/helm/bin``), built once.
"""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "callscope"
SCENARIOS = CHART / "ci"
INSTALL_SCRIPT = Path(__file__).with_name("install-helm.sh")
# helm built by `go install` reports Kubernetes v1.20 as its default target (the release
# binaries get theirs from build flags), which the chart's kubeVersion refuses; name one.
KUBE_VERSION = "1.30.0"
RULE_FILES = sorted((ROOT / "dashboards" / "prometheus").glob("*.rules.yml"))
DASHBOARD_FILES = sorted((ROOT / "dashboards" / "grafana").glob("*.json"))

Manifest = dict[str, Any]


class HelmUnavailableError(RuntimeError):
    """helm is not installed and could not be built (no Go toolchain, no proxy)."""


def ensure_helm() -> Path:
    """The helm binary, installed by the project's script when missing."""
    proc = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, check=False, timeout=1800)
    if proc.returncode != 0:
        raise HelmUnavailableError(f"tests/helm/install-helm.sh failed: {proc.stderr.strip()[-2000:]}")
    path = Path(proc.stdout.strip().splitlines()[-1])
    if not os.access(path, os.X_OK):
        raise HelmUnavailableError(f"install-helm.sh printed {path}, which is not an executable")
    return path


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Helm:
    binary: Path
    home: Path  # HELM_CACHE_HOME/CONFIG_HOME/DATA_HOME: nothing written to the user's home

    def run(self, *args: str) -> Result:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        proc = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, check=False, timeout=300, env=env
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def lint(self, *values: Path) -> Result:
        return self.run("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART), *_values_args(values))

    def template(self, *values: Path, set_values: tuple[str, ...] = (), chart: Path = CHART) -> Result:
        args = ["template", "cs", str(chart), "--namespace", "voip", "--kube-version", KUBE_VERSION]
        for item in set_values:
            args += ["--set", item]
        return self.run(*args, *_values_args(values))

    def render(self, *values: Path, set_values: tuple[str, ...] = (), chart: Path = CHART) -> list[Manifest]:
        result = self.template(*values, set_values=set_values, chart=chart)
        if result.returncode != 0:
            raise AssertionError(f"helm template failed: {result.stderr}")
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _values_args(values: tuple[Path, ...]) -> list[str]:
    out: list[str] = []
    for path in values:
        out += ["--values", str(path)]
    return out


def by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, (
        f"expected one {kind} {name}, got {[m['metadata']['name'] for m in by_kind(manifests, kind)]}"
    )
    return found[0]


def workloads(manifests: list[Manifest]) -> list[Manifest]:
    return [m for m in manifests if m["kind"] in ("Deployment", "DaemonSet", "StatefulSet")]


def rendered_config(manifests: list[Manifest]) -> str:
    config_map = one(manifests, "ConfigMap", "cs-callscope-config")
    text: str = config_map["data"]["callscope.yaml"]
    return text


def secret_data(
    manifests: list[Manifest], existing: dict[str, dict[str, str]] | None = None
) -> dict[str, dict[str, str]]:
    """Every Secret's decoded data by name: the rendered ones plus ``existing`` (made outside the chart)."""
    out = dict(existing or {})
    for secret in by_kind(manifests, "Secret"):
        data = secret.get("data") or {}
        out[secret["metadata"]["name"]] = {k: base64.b64decode(v).decode() for k, v in data.items()}
    return out


def container_env(
    workload: Manifest, secrets: dict[str, dict[str, str]], node_name: str = "worker-1"
) -> dict[str, str]:
    """The CALLSCOPE_* environment the kubelet would give the workload's container."""
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            assert ref["name"] in secrets, f"env {item['name']} names Secret {ref['name']}, which does not exist"
            assert ref["key"] in secrets[ref["name"]], (
                f"env {item['name']}: Secret {ref['name']} has no key {ref['key']}"
            )
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
        elif source.get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
            env[item["name"]] = node_name
        else:
            raise AssertionError(f"unexpected env source {source}")
    return env
