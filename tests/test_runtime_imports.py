"""What a role's process imports: a collector runs without the store's libraries.

The store's stack (clickhouse-connect, chDB, pyarrow, pandas) and the processors cost a
collector process resident memory and start-up time it never uses. Each role runs here in a
fresh interpreter up to ready (the in-process bus, HEP on an OS-given port), and the modules
it loaded by then are read from ``sys.modules``. The processor role is the control: the same
check sees the store there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs one role of the runtime until it is ready, stops it, prints the modules loaded meanwhile.
_RUN_ROLE = textwrap.dedent(
    """
    import asyncio, json, sys

    import callscope.bus.kafka  # the bus a collector role runs on in production (no broker here)
    from callscope.runtime import Runtime
    from callscope.settings import load_settings
    from callscope.telemetry import Telemetry, configure_logging

    role, data_dir = sys.argv[1], sys.argv[2]
    configure_logging("warning", "json")
    settings = load_settings(
        overrides={
            "data_dir": data_dir,
            "api": {"listen": "127.0.0.1:0"},
            "collectors": {"hep": {"listen": "127.0.0.1:0"}},
        }
    )

    async def main() -> list[str]:
        runtime = Runtime(settings, Telemetry(), role=role)
        runtime.open_resources()
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        await asyncio.wait_for(runtime.ready.wait(), 120)
        loaded = sorted(sys.modules)
        stop.set()
        await task
        return loaded

    print(json.dumps({"modules": asyncio.run(main())}))
    """
)

STORE_STACK = ("chdb", "pyarrow", "pandas", "numpy", "clickhouse_connect", "callscope.store")
PROCESSOR_CODE = ("processors.registry", "processors.events.app", "processors.call_legs.app", "callscope.bus.envelopes")


def _loaded(role: str, data_dir: Path) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_ROLE, role, str(data_dir)],
        capture_output=True,
        text=True,
        check=False,  # the assertion below shows stderr
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1])["modules"])


def _of(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


def test_collector_role_runs_without_the_store_and_the_processors(tmp_path: Path) -> None:
    modules = _loaded("collector", tmp_path / "data")
    assert "collectors.hep.collector" in modules  # it did start its collector
    # The processors' config models are part of the settings; their apps and cores are not.
    for package in (*STORE_STACK, *PROCESSOR_CODE):
        assert not _of(modules, package), f"the collector role imported {_of(modules, package)[:5]}"


@pytest.mark.slow
def test_processor_role_loads_the_store_the_check_looks_for(tmp_path: Path) -> None:
    modules = _loaded("processor", tmp_path / "data")
    for package in ("chdb", "clickhouse_connect", "callscope.store", "processors.registry"):
        assert _of(modules, package), f"the processor role should import {package}"
