"""The wheel carries what an installed callscope needs besides its code: the dashboards and rules.

Built with the project's own build backend (hatchling, without the build hook: the C accelerator
has tests of its own), unpacked, and used from there by a fresh interpreter outside the source tree.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hatchling.builders.wheel import WheelBuilder

    out = tmp_path_factory.mktemp("wheel")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HATCH_BUILD_NO_HOOKS", "true")
        (wheel,) = WheelBuilder(str(ROOT)).build(directory=str(out), versions=["standard"])
    site = out / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


def test_the_wheel_holds_the_dashboards_and_the_alert_rules(unpacked: Path) -> None:
    for source in ("dashboards/grafana", "dashboards/prometheus"):
        wanted = sorted(p.relative_to(ROOT) for p in (ROOT / source).glob("*.*") if p.suffix in (".json", ".yml"))
        assert wanted, source
        assert all((unpacked / path).is_file() for path in wanted), source


def test_an_installed_callscope_finds_its_dashboards_outside_the_source_tree(unpacked: Path, tmp_path: Path) -> None:
    script = (
        "import json, callscope.dashboards as d; "
        "print(json.dumps([d.__file__, str(d.default_dir()), len(d.load_dashboards(d.default_dir()))]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,  # no dashboards/ here: the ones beside the installed package
        env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    module, directory, count = json.loads(out.stdout)
    assert Path(module).is_relative_to(unpacked)  # the unpacked wheel's code, not the source tree's
    assert Path(directory) == unpacked / "dashboards" / "grafana"
    assert count == len(list((ROOT / "dashboards" / "grafana").glob("*.json")))
