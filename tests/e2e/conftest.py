"""End-to-end fixtures: `callscope run` as a process with its HEP collector, fed by real peers.

One callscope per test module (``pipeline``), started the way a user starts it:
``callscope run --data-dir <tmp> --api-listen 127.0.0.1:0 --hep-listen 127.0.0.1:0 --config <topology>``,
the HEP port read from its banner, readiness probed over HTTP. The topology names the peers'
HEP capture ids, so each message lands on a known node.

A missing peer binary skips the test with the package to install; under ``CI=true`` it fails.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ci import unavailable
from tests.cli_process import Running, start
from tests.peers import harness

KAMAILIO_CAPTURE_ID = 4242
RTPENGINE_CAPTURE_ID = 2301
#: sngrep 1.6's default capture id is 2002, but its capture-id chunk carries the bytes 07 D2 00 00:
#: the 16-bit id in the first half of the 32-bit field, read as 0x07D20000 = 131203072
#: (observed on the wire here; a 32-bit byte swap of 2002 would be D2 07 00 00).
SNGREP_CAPTURE_ID = 2002
SNGREP_CAPTURE_ID_AS_SENT = SNGREP_CAPTURE_ID << 16

HEP_LINE = re.compile(r"^\s*hep:\s+\S+\s+127\.0\.0\.1:(\d+)\b")

TOPOLOGY = f"""\
node: collector1
topology:
  nodes:
    - {{name: proxy1, role: registrar, hep_capture_id: {KAMAILIO_CAPTURE_ID}}}
    - {{name: rtp1, role: media, hep_capture_id: {RTPENGINE_CAPTURE_ID}}}
    - {{name: capture1, role: sbc, hep_capture_id: {SNGREP_CAPTURE_ID}}}
collectors:
  hep:
    capture_id_byteswap: [{SNGREP_CAPTURE_ID_AS_SENT}]
store:
  batch_max_age_secs: 0.2
"""


def need_peers(*binaries: str) -> None:
    """Skip (outside CI) or fail (``CI=true``) when a peer is not installed."""
    try:
        harness.require(*binaries)
    except harness.PeerMissing as exc:
        unavailable(str(exc))


@dataclass
class Pipeline:
    """A running `callscope run` with its HEP collector, and the API calls the tests make."""

    run: Running
    hep_port: int

    @property
    def url(self) -> str:
        return self.run.url

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.run.url}{path}", params=params, headers=self.run.headers(), timeout=10)

    def wait_json(
        self, path: str, until: Callable[[dict[str, Any]], bool], timeout: float = 20.0, **params: Any
    ) -> dict[str, Any]:
        """GET ``path`` until it answers 200 with a document ``until`` accepts; fail with the last answer."""
        deadline = time.monotonic() + timeout
        last = "(no answer)"
        while True:
            resp = self.get(path, **params)
            if resp.status_code == 200:
                doc: dict[str, Any] = resp.json()
                if until(doc):
                    return doc
                last = resp.text
            else:
                last = f"{resp.status_code} {resp.text}"
            if time.monotonic() > deadline:
                pytest.fail(
                    f"GET {path} {params or ''} never satisfied the test within {timeout:.0f} s; last: {last[-3000:]}"
                )
            time.sleep(0.1)

    def call(self, call_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> dict[str, Any]:
        return self.wait_json(f"/api/v1/calls/{call_id}", until, timeout)

    def ladder(self, call_id: str) -> dict[str, Any]:
        resp = self.get(f"/api/v1/calls/{call_id}/ladder")
        assert resp.status_code == 200, resp.text
        doc: dict[str, Any] = resp.json()
        return doc


def hep_port_from_banner(lines: list[str]) -> int:
    for line in lines:
        match = HEP_LINE.search(line)
        if match:
            return int(match.group(1))
    raise AssertionError(
        "the banner of `callscope run --hep-listen 127.0.0.1:0` names no bound HEP port "
        f"(expected a line like '  hep:   udp+tcp 127.0.0.1:PORT (HEP v1/v2/v3)'): {''.join(lines)}"
    )


@pytest.fixture(scope="module")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """Work directory of the module: peers' configs and logs, callscope's data directory."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def pipeline(e2e_dir: Path) -> Iterator[Pipeline]:
    config = e2e_dir / "callscope.yaml"
    config.write_text(TOPOLOGY)
    run = start(e2e_dir / "callscope" / "data", "--config", str(config), "--hep-listen", "127.0.0.1:0")
    try:
        yield Pipeline(run, hep_port_from_banner(run.stdout_lines))
        code = run.stop()
        assert code == 0, f"callscope run exited {code}: {run.stderr[-3000:]}"
        assert "Traceback" not in run.stderr, run.stderr[-5000:]
    finally:
        run.close()


@pytest.fixture(scope="module")
def kamailio(pipeline: Pipeline, e2e_dir: Path) -> Iterator[harness.Kamailio]:
    """Kamailio relaying to sipp and mirroring every transaction to the pipeline's HEP port."""
    need_peers("kamailio", "sipp")
    kam = harness.start_kamailio(e2e_dir / "kamailio", hep_port=pipeline.hep_port, capture_id=KAMAILIO_CAPTURE_ID)
    try:
        yield kam
    finally:
        kam.stop()


@pytest.fixture
def uas_factory(e2e_dir: Path) -> Iterator[Callable[[str, str], harness.Uas]]:
    """Start sipp UASes by scenario file name; all are stopped after the test."""
    started: list[harness.Uas] = []

    def make(scenario_name: str, name: str) -> harness.Uas:
        uas = harness.start_uas(harness.SIPP_DIR / scenario_name, e2e_dir / "sipp", name=name)
        started.append(uas)
        return uas

    yield make
    for uas in started:
        uas.stop()
