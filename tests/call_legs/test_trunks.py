"""Per-trunk call counts (``callscope_trunk_calls_total``): the figures behind the TrunkAsrDrop alert."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from collectors.options.config import OptionsConfig, OptionsTarget
from processors.call_legs.app import CallLegsProcessor
from processors.call_legs.correlator import LegRow
from processors.call_legs.trunks import TrunkCounter, outcome, trunk_ips
from tests.call_legs.conftest import Env, drained, publish, running
from tests.call_legs.sipgen import CALLEE, CALLER, SBC
from tests.call_legs.test_app import wall
from tests.call_legs.test_correlator import D, answered_setup, feed_all, invite, resp


def _row(outputs: Sequence[object]) -> LegRow:
    rows = [o for o in outputs if isinstance(o, LegRow)]
    return rows[-1]


def test_trunk_ips_keeps_trunks_given_by_ip() -> None:
    cfg = OptionsConfig(
        targets=(
            OptionsTarget(name="carrier-a", uri=f"sip:{SBC[0]}:5060"),
            OptionsTarget(name="carrier-a-backup", uri=f"{SBC[0]}:5080"),  # same IP: the first wins
            OptionsTarget(name="carrier-b", uri="sips:sbc.carrier-b.example"),  # a name: not resolved
            OptionsTarget(name="kam1", uri=f"sip:{CALLEE[0]}", kind="node"),
            OptionsTarget(name="v6", uri="sip:[2001:db8::0001]:5060"),
        )
    )
    assert trunk_ips(cfg) == {SBC[0]: "carrier-a", "2001:db8::1": "v6"}


@pytest.mark.parametrize(
    ("final", "expected"),
    [
        ((486, "Busy Here"), "busy"),
        ((600, "Busy Everywhere"), "busy"),
        ((480, "Temporarily Unavailable"), "no_answer"),
        ((408, "Request Timeout"), "no_answer"),
        ((404, "Not Found"), "failed"),
        ((503, "Service Unavailable"), "failed"),
        ((487, "Request Terminated"), "cancelled"),
    ],
)
def test_outcome_of_a_failed_leg(final: tuple[int, str], expected: str) -> None:
    _, out = feed_all([invite(), resp(0.5, final[0], final[1], to_tag="tt-x")])
    assert outcome(_row(out)) == expected


def test_outcome_of_an_answered_leg() -> None:
    _, out = feed_all(answered_setup())
    assert outcome(_row(out)) == "answered"


def test_each_closed_leg_counted_once_against_the_hop_that_crossed_the_trunk() -> None:
    counter = TrunkCounter({CALLEE[0]: "carrier-a"})
    # The caller's hop (CALLER -> SBC) is the leg's first INVITE; the SBC -> carrier hop names the trunk.
    counter.invite(f"{D.call_id}:ft-a", SBC[0], CALLEE[0])
    _, out = feed_all([invite(), resp(0.5, 486, "Busy Here", to_tag="tt-x")])
    row = _row(out)
    assert (row.src_ip, row.dst_ip) == (CALLER[0], SBC[0])
    assert counter.closed(row) == ("carrier-a", "busy")
    assert counter.closed(row) is None  # a later version of the same closed leg
    live = _row(feed_all([invite()])[1])
    assert TrunkCounter({SBC[0]: "carrier-a"}).closed(live) is None  # not closed yet


def test_a_leg_reloaded_closed_is_not_counted_again() -> None:
    counter = TrunkCounter({SBC[0]: "carrier-a"})
    _, out = feed_all([invite(), resp(0.5, 404, "Not Found", to_tag="tt-x")])
    row = _row(out)
    counter.seen(row.leg_id)
    assert counter.closed(row) is None


async def test_processor_counts_trunk_calls_by_result(env: Env) -> None:
    async with running(env, CallLegsProcessor, wall=wall, trunks={SBC[0]: "carrier-a"}) as p:
        await publish(env, [*answered_setup(), D.msg(30, "BYE", to_tag="tt-b", branch="z9hG4bK-bye", cseq=2)])
        await drained(env, p)

    def value(result: str) -> float | None:
        return env.telemetry.registry.get_sample_value(
            "callscope_trunk_calls_total", {"trunk": "carrier-a", "result": result}
        )

    assert value("answered") == 1
    assert value("busy") is None
    registry = env.telemetry.registry
    assert registry.get_sample_value("callscope_trunk_call_duration_seconds_count", {"trunk": "carrier-a"}) == 1
    duration = registry.get_sample_value("callscope_trunk_call_duration_seconds_sum", {"trunk": "carrier-a"})
    assert duration == pytest.approx(28.0)  # answered at 2 s, BYE at 30 s
    # a restart reloads the closed leg and does not count it twice
    async with running(env, CallLegsProcessor, wall=wall, trunks={SBC[0]: "carrier-a"}) as p:
        await publish(env, [D.msg(30.1, "BYE", to_tag="tt-b", branch="z9hG4bK-bye", cseq=2)])
        await drained(env, p)
    assert value("answered") == 1
