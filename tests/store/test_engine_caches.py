"""store.embedded_cache_bytes: the embedded engine starts with its caches bounded, not at 5 GiB each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from callscope.settings import StoreConfig, load_settings
from callscope.store.client import Store, engine_options
from schemas.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CACHES = ("mark_cache_size", "index_mark_cache_size", "primary_index_cache_size")
_SQL = "SELECT name, value FROM system.server_settings WHERE name IN ('" + "', '".join(CACHES) + "')"


def _caches(store: Store) -> dict[str, int]:
    return {row["name"]: int(row["value"]) for row in store.query(_SQL)}


def test_the_session_engine_runs_with_the_default_bound(store: Store) -> None:
    # The session's engine was started by a Store with the default config.
    default = StoreConfig().embedded_cache_bytes
    assert default < 5 * 1024**3
    assert _caches(store) == dict.fromkeys(CACHES, default)


def test_a_configured_bound_reaches_the_engine(tmp_path: Path) -> None:
    # A process of its own: the engine takes server settings only when it starts.
    script = (
        "import json, sys\n"
        "from callscope.settings import StoreConfig\n"
        "from callscope.store.client import Store\n"
        "config = StoreConfig(dsn='chdb://' + sys.argv[1], embedded_cache_bytes=48 * 1024 * 1024)\n"
        "with Store.open(config) as store:\n"
        f"    rows = store.query({_SQL!r})\n"
        "print(json.dumps({r['name']: int(r['value']) for r in rows}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "chdb")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == dict.fromkeys(CACHES, 48 * 1024 * 1024)


def test_engine_options_name_every_bounded_cache() -> None:
    assert engine_options(StoreConfig(embedded_cache_bytes=2**24)) == dict.fromkeys(CACHES, 2**24)


@pytest.mark.parametrize("value", ["0", "1000", "lots"])
def test_bad_cache_bound_is_named(tmp_path: Path, value: str) -> None:
    path = tmp_path / "callscope.yaml"
    path.write_text(f"store:\n  embedded_cache_bytes: {value}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "store.embedded_cache_bytes" in [p for p, _ in info.value.errors]
