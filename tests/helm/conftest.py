"""helm for the chart tests: installed by tests/helm/install-helm.sh when missing.

Without a Go toolchain the tests skip with the reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helm.chart import Helm, HelmUnavailableError, ensure_helm


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    try:
        binary = ensure_helm()
    except HelmUnavailableError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and helm cannot be installed: {exc}")
        pytest.skip(str(exc))
    home: Path = tmp_path_factory.mktemp("helm-home")
    return Helm(binary=binary, home=home)
