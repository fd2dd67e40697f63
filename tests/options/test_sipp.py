"""End to end with real SIP software: ``callscope probe`` against sipp answering OPTIONS (Debian's sip-tester)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.ci import unavailable
from tests.cli_process import CLI
from tests.peers import harness

pytestmark = pytest.mark.e2e

ANSWER = re.compile(r"^(\d): 200 OK  rtt (\d+\.\d{3}) ms  \[127\.0\.0\.1:(\d+)\]$")


def _need_sipp() -> None:
    try:
        harness.require("sipp")
    except harness.PeerMissing as exc:
        unavailable(str(exc))


def test_probe_reports_three_answers_from_sipp(tmp_path: Path) -> None:
    _need_sipp()
    uas = harness.start_uas(harness.SIPP_DIR / "uas_options.xml", tmp_path, name="trunk", calls=3)
    try:
        proc = subprocess.run(
            [*CLI, "probe", f"sip:127.0.0.1:{uas.port}", "--count", "3", "--interval-secs", "0.2"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        context = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\n{uas.process.describe()}"
        assert proc.returncode == 0, context
        lines = proc.stdout.splitlines()
        assert lines[0] == f"OPTIONS sip:127.0.0.1:{uas.port} over udp (timeout 5 s, reachable on 200)"
        matches = [ANSWER.match(line) for line in lines[1:4]]
        assert all(matches), context
        assert [m.group(1) for m in matches if m] == ["1", "2", "3"]
        assert all(int(m.group(3)) == uas.port for m in matches if m)
        assert lines[4].startswith("--- 3 probes, 3 reachable, 0 failed")
        assert uas.wait(10) == 0, uas.process.describe()  # sipp counted three successful OPTIONS calls
    finally:
        uas.stop()
