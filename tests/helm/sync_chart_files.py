"""Copy the Prometheus rules and Grafana dashboards into the Helm chart.

Helm reads only files inside the chart, and a symlink out of it is not something
``helm package`` and chart repositories can be trusted with, so the chart carries copies:
``dashboards/prometheus/*.rules.yml`` -> ``deploy/helm/callscope/files/prometheus/`` and
``dashboards/grafana/*.json`` -> ``deploy/helm/callscope/files/grafana/``.
``tests/helm/test_chart.py`` fails while a copy differs. Run: ``.venv/bin/python -m tests.helm.sync_chart_files``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART_FILES = ROOT / "deploy" / "helm" / "callscope" / "files"
SOURCES: tuple[tuple[Path, str, Path], ...] = (
    (ROOT / "dashboards" / "prometheus", "*.rules.yml", CHART_FILES / "prometheus"),
    (ROOT / "dashboards" / "grafana", "*.json", CHART_FILES / "grafana"),
)


def differences() -> list[str]:
    """What differs between the sources and the chart's copies (empty: in sync)."""
    out: list[str] = []
    for source, pattern, target in SOURCES:
        wanted = {p.name: p.read_bytes() for p in sorted(source.glob(pattern))}
        present = {p.name: p.read_bytes() for p in sorted(target.glob(pattern))} if target.is_dir() else {}
        for name in sorted(wanted.keys() | present.keys()):
            if name not in present:
                out.append(f"{target.relative_to(ROOT)}/{name} is missing")
            elif name not in wanted:
                out.append(f"{target.relative_to(ROOT)}/{name} has no source in {source.relative_to(ROOT)}")
            elif wanted[name] != present[name]:
                out.append(f"{target.relative_to(ROOT)}/{name} differs from {source.relative_to(ROOT)}/{name}")
    return out


def sync() -> list[str]:
    """Make the copies equal the sources; return what was changed."""
    changed = differences()
    for source, pattern, target in SOURCES:
        wanted = {p.name for p in source.glob(pattern)}
        if target.is_dir():
            for stale in target.glob(pattern):
                if stale.name not in wanted:
                    stale.unlink()
        if wanted:
            target.mkdir(parents=True, exist_ok=True)
        for name in sorted(wanted):
            shutil.copyfile(source / name, target / name)
    return changed


def main() -> int:
    for line in sync():
        print(f"synced: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
