"""``callscope demo`` against a live HepCollector: the traffic it promises arrives."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson
import pytest

from callscope.cli import main
from callscope.demo import generate
from collectors.hep.decode import decode
from tests.hep_collector.conftest import Harness


def test_same_seed_same_traffic_and_the_promised_mix() -> None:
    a = generate(40, seed=7, start_us=1_700_000_000_000_000)
    b = generate(40, seed=7, start_us=1_700_000_000_000_000)
    assert a.packets == b.packets
    assert generate(40, seed=8, start_us=1_700_000_000_000_000).packets != a.packets
    assert {"answered", "busy", "cancelled", "registration", "options"} <= set(a.scenarios)
    assert any(s.startswith("failed_") for s in a.scenarios)
    decoded = [decode(p) for p in a.packets]
    assert Counter(p.payload_type for p in decoded) == {1: a.kinds["sip"], 5: a.kinds["rtcp"], 100: a.kinds["log"]}
    assert {p.capture_id for p in decoded} == {101, 102}
    times = [p.ts_us for p in decoded]
    assert times == sorted(times)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_demo_traffic_lands_by_kind(hep_harness: Any, transport: str, capsys: pytest.CaptureFixture[str]) -> None:
    h: Harness = await hep_harness()
    args = ["demo", "--hep", f"127.0.0.1:{h.port}", "--calls", "30", "--seed", "3", "--rate", "2000"]
    if transport == "tcp":
        args.append("--tcp")
    code = await asyncio.to_thread(main, args)
    assert code == 0
    expected = generate(30, seed=3)
    total = len(expected.packets)
    await h.collect(total)
    await h.shutdown()
    await h.drain()
    kinds = Counter(r.topic.rsplit(".", 1)[1] for r in h.records)
    assert kinds == dict(expected.kinds)
    sip = [orjson.loads(r.value) for r in h.records if r.topic == "callscope.sip"]
    assert {e["node"] for e in sip} == {"sbc1", "proxy1"}
    linked = [e for e in sip if e["body"]["correlation"].get("x-cid")]
    assert linked
    assert all(e["node"] == "proxy1" for e in linked)
    statuses = {e["body"]["status"] for e in sip if not e["body"]["is_request"]}
    finals = {"answered": 200, "busy": 486, "cancelled": 487, "failed_404": 404, "failed_408": 408, "failed_503": 503}
    want = {finals[s] for s in expected.scenarios if s in finals} | {100, 180, 401}
    assert statuses == want | {200}
    out = capsys.readouterr().out
    assert f"sent {total} HEP3 packets over {transport.upper()}" in out


def test_demo_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--hep", "127.0.0.1:0"]) == 2
    assert "--hep" in capsys.readouterr().err
