"""memory.trim_interval_secs: the runtime hands freed C-heap pages back to the OS."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from callscope import runtime
from callscope.runtime import Runtime, heap_trimmer
from callscope.settings import load_settings
from callscope.telemetry import Telemetry
from schemas.errors import ConfigError
from tests.cli_process import CLI

ROOT = Path(__file__).resolve().parents[1]

# Fragments the C heap the way a busy pipeline does: many short-lived objects of malloc size
# (> 512 bytes, so not pymalloc's) with a few long-lived ones among them, up to the top of the
# heap, so glibc cannot give the freed pages back on its own; then trims and measures.
_FRAGMENT = textwrap.dedent(
    """
    import json
    from callscope.runtime import trim_heap

    def rss_anon_mib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no RssAnon")

    base = rss_anon_mib()
    blocks = [bytes(1500) + i.to_bytes(4, "little") for i in range(150_000)]
    kept = blocks[::64] + blocks[-1:]
    del blocks
    before = rss_anon_mib()
    released = trim_heap()
    after = rss_anon_mib()
    print(json.dumps({"base": base, "before": before, "after": after, "released": released, "kept": len(kept)}))
    """
)


def test_trim_heap_gives_freed_pages_back() -> None:
    assert heap_trimmer() is not None, "glibc's malloc_trim should be found on this machine"
    proc = subprocess.run(
        [sys.executable, "-c", _FRAGMENT], capture_output=True, text=True, check=True, cwd=ROOT, timeout=120
    )
    figures = json.loads(proc.stdout)
    freed = figures["before"] - figures["base"]
    assert freed > 100, figures  # ~215 MiB of blocks, 1/64 of them kept: the pages stay resident
    assert figures["released"] is True, figures
    # Most of what was freed leaves RSS: only the pages under the kept blocks stay (seen: 261 -> 52 MiB).
    assert figures["after"] < figures["before"] - 0.6 * freed, figures


def test_runtime_trims_on_its_interval(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[float] = []

    def counting_trim() -> bool:
        calls.append(0.0)
        return True

    monkeypatch.setattr(runtime, "trim_heap", counting_trim)
    settings = load_settings(None, {"data_dir": str(tmp_path), "memory": {"trim_interval_secs": 0.02}})
    rt = Runtime(settings, Telemetry())

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(rt._trim_heap(settings.memory.trim_interval_secs, stop))
        deadline = asyncio.get_running_loop().time() + 10
        while len(calls) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert len(calls) >= 3


def test_trim_interval_defaults_on_and_zero_turns_it_off(tmp_path: Path) -> None:
    assert load_settings(None, {"data_dir": str(tmp_path)}).memory.trim_interval_secs == 10.0
    assert load_settings(None, {"memory": {"trim_interval_secs": 0}}).memory.trim_interval_secs == 0


@pytest.mark.parametrize("value", ["-1", "7200", "often"])
def test_bad_trim_interval_is_named(tmp_path: Path, value: str) -> None:
    path = tmp_path / "callscope.yaml"
    path.write_text(f"memory:\n  trim_interval_secs: {value}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "memory.trim_interval_secs" in [p for p, _ in info.value.errors]


def test_config_check_names_a_bad_trim_interval(tmp_path: Path) -> None:
    path = tmp_path / "callscope.yaml"
    path.write_text("memory:\n  trim_interval_secs: -5\n  trim_every: 3\n")
    proc = subprocess.run([*CLI, "config", "check", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "config error: memory.trim_interval_secs:" in proc.stderr
    assert "config error: memory.trim_every: unknown option" in proc.stderr
