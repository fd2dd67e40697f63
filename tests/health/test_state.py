"""The health state machine per (node, target), flapping, staleness and the aggregate, stepping event time."""

from __future__ import annotations

from typing import Any

import pytest

from collectors.options.config import OptionsConfig, OptionsTarget
from processors.health.config import HealthConfig
from processors.health.policy import Policies
from processors.health.results import Ignored, Output, ProbeResult, Stale, State, Transition
from processors.health.state import HealthCore, aggregate
from tests.health.gen import US, fail, ok, us

OPTIONS = OptionsConfig(
    interval_secs=30,
    timeout_secs=5,
    targets=(
        OptionsTarget(name="carrier-a", uri="sip:192.0.2.10:5060"),
        OptionsTarget(name="carrier-slow", uri="sip:192.0.2.11", rtt_degraded_ms=1000, interval_secs=10),
    ),
)


def core(**health: Any) -> HealthCore:
    return HealthCore(HealthConfig(**health), Policies(HealthConfig(**health), OPTIONS))


def rows(outputs: list[Output], scope: str | None = None) -> list[tuple[str, str, str]]:
    """(scope, from, to) of the transitions, optionally of one scope."""
    return [
        (o.scope, o.from_state, o.to_state)
        for o in outputs
        if isinstance(o, Transition) and (scope is None or o.scope == scope)
    ]


def feed_all(c: HealthCore, results: list[ProbeResult]) -> list[Output]:
    out: list[Output] = []
    for r in results:
        out.extend(c.feed(r))
    return out


def test_first_answer_is_up_for_the_vantage_point_and_the_target() -> None:
    c = core()
    out = c.feed(ok(0))
    assert rows(out) == [("node", "unknown", "up"), ("target", "unknown", "up")]
    node_row, target_row = (o for o in out if isinstance(o, Transition))
    assert (node_row.node, node_row.at, node_row.status, node_row.rtt_ms) == ("sbc1", us(0), 200, 12.0)
    assert node_row.reason == "answered 200 OK in 12 ms"
    assert (target_row.node, target_row.reason) == ("", "up from 1 vantage point")
    assert c.feed(ok(30)) == []
    view = c.target("carrier-a")
    assert view is not None
    assert (view.state, view.since, view.pairs[0].state) == ("up", us(0), "up")


def test_down_after_three_consecutive_failures_without_passing_through_degraded() -> None:
    c = core()
    c.feed(ok(0))
    assert c.feed(fail(30)) == []
    assert c.feed(fail(60)) == []
    out = c.feed(fail(90))
    assert rows(out) == [("node", "up", "down"), ("target", "up", "down")]
    node_row = out[0]
    assert isinstance(node_row, Transition)
    assert node_row.reason == "3 consecutive timeouts"
    assert (node_row.at, node_row.error, node_row.status, node_row.rtt_ms) == (us(90), "timeout", 0, None)
    target_row = out[1]
    assert isinstance(target_row, Transition)
    assert target_row.reason == "down from every vantage point (sbc1)"
    assert c.feed(fail(120)) == []  # already down


def test_mixed_failures_and_a_configured_threshold() -> None:
    c = core(failures_to_down=2)
    c.feed(ok(0))
    c.feed(fail(30, "refused"))
    out = c.feed(fail(60, "dns"))
    assert rows(out, "node") == [("node", "up", "down")]
    assert isinstance(out[0], Transition)
    assert out[0].reason == "2 consecutive failures (dns x1, refused x1)"


def test_unexpected_code_reason_names_the_answer() -> None:
    c = core()
    out = feed_all(c, [fail(t, "unexpected_code", status=503) for t in (0, 30, 60)])
    assert rows(out, "node") == [("node", "unknown", "down")]
    assert isinstance(out[0], Transition)
    assert out[0].reason == "3 consecutive unexpected answers (last 503 in 20 ms)"
    assert out[0].status == 503


def test_back_up_after_two_consecutive_successes() -> None:
    c = core()
    feed_all(c, [ok(0), fail(30), fail(60), fail(90)])
    assert c.feed(ok(120)) == []  # one answer is not enough
    assert c.feed(fail(150)) == []  # and a failure restarts the count
    assert c.feed(ok(180)) == []
    out = c.feed(ok(210))
    assert rows(out) == [("node", "down", "up"), ("target", "down", "up")]
    assert isinstance(out[0], Transition)
    assert out[0].reason == "2 consecutive answers, last 200 OK in 12 ms"
    # The outage does not count as intermittent failures afterwards.
    assert c.feed(ok(240)) == []


def test_unknown_vantage_point_goes_down_after_three_failures() -> None:
    c = core()
    assert feed_all(c, [fail(0), fail(30)]) == []
    assert rows(c.feed(fail(60))) == [("node", "unknown", "down"), ("target", "unknown", "down")]


def test_slow_answers_degrade_after_two_and_recover_after_two_good() -> None:
    c = core()
    c.feed(ok(0))
    assert c.feed(ok(30, rtt=812)) == []  # one slow answer is noise
    out = c.feed(ok(60, rtt=812))
    assert rows(out) == [("node", "up", "degraded"), ("target", "up", "degraded")]
    assert isinstance(out[0], Transition)
    assert out[0].reason == "2 slow answers, rtt 812 ms > 500 ms"
    assert out[0].rtt_ms == 812
    assert isinstance(out[1], Transition)
    assert out[1].reason == "degraded from sbc1 (1 of 1 vantage points)"
    assert c.feed(ok(90, rtt=20)) == []
    assert rows(c.feed(ok(120, rtt=20))) == [("node", "degraded", "up"), ("target", "degraded", "up")]


def test_rtt_threshold_is_the_targets_own() -> None:
    c = core(slow_probes_to_degraded=1)
    assert rows(c.feed(ok(0, target="carrier-slow", rtt=812)), "node") == [("node", "unknown", "up")]
    out = c.feed(ok(10, target="carrier-slow", rtt=1200))
    assert rows(out, "node") == [("node", "up", "degraded")]
    assert isinstance(out[0], Transition)
    assert out[0].reason == "rtt 1200 ms > 1000 ms"
    # A target the config does not know uses the default threshold (500 ms).
    assert rows(c.feed(ok(0, target="elsewhere", rtt=600)), "node") == [("node", "unknown", "degraded")]


def test_intermittent_failures_degrade_when_an_answer_comes_back() -> None:
    c = core()
    c.feed(ok(0))
    assert c.feed(fail(30)) == []
    assert c.feed(ok(60)) == []  # one failure in the window
    assert c.feed(fail(90)) == []  # the second: judged on the next answer
    out = c.feed(ok(120))
    assert rows(out, "node") == [("node", "up", "degraded")]
    assert isinstance(out[0], Transition)
    assert out[0].reason == "intermittent: 2 of the last 5 probes failed"
    # Good answers do not bring it back while 2 failures are within the last 10 probes.
    assert feed_all(c, [ok(150 + 30 * i) for i in range(6)]) == []
    # The 10th probe after the first failure pushes it out of the window: up again.
    out = c.feed(ok(330))
    assert rows(out, "node") == [("node", "degraded", "up")]


def test_first_answer_after_failures_can_be_degraded() -> None:
    c = core()
    feed_all(c, [fail(0), fail(30)])
    out = c.feed(ok(60))
    assert rows(out, "node") == [("node", "unknown", "degraded")]


def test_flapping_is_set_by_four_changes_and_cleared_after_a_quiet_window() -> None:
    c = core(failures_to_down=1, successes_to_up=1, flap_transitions=4, flap_window_secs=600)
    c.feed(ok(0))  # unknown -> up does not count
    outs = [c.feed(r) for r in (fail(30), ok(60), fail(90))]
    assert all(not o.flapping for out in outs for o in out if isinstance(o, Transition))
    out = c.feed(ok(120))  # the 4th change within 600 s
    node_row, target_row = (o for o in out if isinstance(o, Transition))
    assert (node_row.to_state, node_row.flapping) == ("up", True)
    assert (target_row.to_state, target_row.flapping) == ("up", True)
    view = c.target("carrier-a")
    assert view is not None
    assert view.flapping
    assert view.pairs[0].flapping
    # Stable answers since the last change keep the pair fresh; quiet for 600 s clears flapping.
    for t in range(150, 720, 30):
        assert c.feed(ok(t)) == []
    assert c.expire(us(120 + 599)) == []
    out = c.expire(us(721))
    cleared = [o for o in out if isinstance(o, Transition)]
    assert [(o.scope, o.from_state, o.to_state, o.flapping, o.at) for o in cleared] == [
        ("node", "up", "up", False, us(720)),
        ("target", "up", "up", False, us(720)),
    ]
    assert cleared[0].reason == "flapping cleared: no state change for 600 s"
    view = c.target("carrier-a")
    assert view is not None
    assert not view.flapping


def test_changes_spread_wider_than_the_window_are_not_flapping() -> None:
    c = core(failures_to_down=1, successes_to_up=1, flap_transitions=4, flap_window_secs=100)
    c.feed(ok(0))
    for i, t in enumerate(range(60, 600, 60)):
        out = c.feed(fail(t) if i % 2 == 0 else ok(t))
        assert rows(out, "node"), t
        assert all(not o.flapping for o in out if isinstance(o, Transition))


def test_stale_vantage_point_becomes_unknown_at_last_result_plus_stale_time() -> None:
    c = core()
    c.feed(ok(0))
    stale_secs = 3 * 30 + 5  # 3 x interval + timeout of carrier-a
    assert c.expire(us(stale_secs) - 1) == []
    out = c.expire(us(stale_secs + 7))
    assert out[0] == Stale("sbc1", "carrier-a", "trunk")
    transitions = [o for o in out if isinstance(o, Transition)]
    assert [(o.scope, o.from_state, o.to_state, o.at) for o in transitions] == [
        ("node", "up", "unknown", us(stale_secs)),
        ("target", "up", "unknown", us(stale_secs)),
    ]
    assert transitions[0].reason == "stale: no result for 95 s"
    assert transitions[1].reason == "no fresh result from any vantage point"
    assert c.expire(us(1000)) == []  # once
    assert rows(c.feed(ok(1000))) == [("node", "unknown", "up"), ("target", "unknown", "up")]


def test_stale_time_per_target_and_from_the_config() -> None:
    c = core()
    c.feed(ok(0, target="carrier-slow"))  # 3 x 10 + 5
    assert c.expire(us(34)) == []
    assert Stale("sbc1", "carrier-slow", "trunk") in c.expire(us(35))
    c = core(stale_secs=10)
    c.feed(ok(0))
    assert Stale("sbc1", "carrier-a", "trunk") in c.expire(us(10))


def test_a_vantage_point_without_a_verdict_still_goes_stale() -> None:
    c = core()
    c.feed(fail(0))  # unknown, one failure: the options_up series exists
    assert c.expire(us(200)) == [Stale("sbc1", "carrier-a", "trunk")]


def test_aggregate_down_everywhere_vs_partial_vs_up() -> None:
    c = core(failures_to_down=1)
    assert rows(feed_all(c, [ok(0, node="sbc1"), ok(0.5, node="sbc2")]), "target") == [("target", "unknown", "up")]
    out = c.feed(fail(30, node="sbc1"))
    assert rows(out, "target") == [("target", "up", "partial")]
    target_row = out[-1]
    assert isinstance(target_row, Transition)
    assert target_row.reason == "down from sbc1 (1 of 2 vantage points)"
    out = c.feed(fail(30.5, node="sbc2"))
    assert rows(out, "target") == [("target", "partial", "down")]
    assert isinstance(out[-1], Transition)
    assert out[-1].reason == "down from every vantage point (sbc1, sbc2)"
    # sbc2 goes quiet: the aggregate is over the vantage points with fresh data.
    c.feed(ok(60, node="sbc1"))
    c.feed(ok(90, node="sbc1"))
    out = c.expire(us(30.5 + 95))
    assert rows(out) == [("node", "down", "unknown"), ("target", "partial", "up")]


def test_aggregate_rules() -> None:
    assert aggregate({})[0] == "unknown"
    assert aggregate({"a": "unknown", "b": "unknown"})[0] == "unknown"
    assert aggregate({"a": "down", "b": "unknown"})[0] == "down"
    assert aggregate({"a": "down", "b": "degraded"})[0] == "partial"
    assert aggregate({"a": "degraded", "b": "up"}) == ("degraded", "degraded from a (1 of 2 vantage points)")
    assert aggregate({"a": "up", "b": "up"}) == ("up", "up from 2 vantage points")
    many: dict[str, State] = {f"n{i}": "down" for i in range(8)}
    assert aggregate(many)[1] == "down from every vantage point (n0, n1, n2, n3, n4 and 3 more)"


def test_one_flapping_vantage_point_makes_the_target_flapping() -> None:
    c = core(failures_to_down=1, successes_to_up=1, slow_probes_to_degraded=1, flap_transitions=4)
    feed_all(c, [ok(0, node="sbc1"), ok(0, node="sbc2", rtt=900)])  # sbc2 degraded keeps the target degraded
    out: list[Output] = []
    for i, t in enumerate((30, 60, 90, 120)):
        out = c.feed(ok(t, node="sbc1", rtt=900 if i % 2 == 0 else 10))
    target_rows = [o for o in out if isinstance(o, Transition) and o.scope == "target"]
    assert [(o.from_state, o.to_state, o.flapping, o.reason) for o in target_rows] == [
        ("degraded", "degraded", True, "flapping from sbc1")
    ]


def test_duplicates_are_ignored_and_targets_are_bounded() -> None:
    c = core(max_targets=2)
    r = ok(0)
    assert c.feed(r)
    assert c.feed(r) == [Ignored("duplicate")]
    assert c.feed(ok(0, target="x1"))
    assert c.feed(ok(0, target="x2"))
    assert c.feed(ok(0, target="x3")) == [Ignored("target_limit")]
    assert c.feed(ok(0, target="carrier-slow"))  # configured targets are always tracked
    assert c.feed(ok(30, target="x1")) == []  # known ones keep going


def test_restored_state_emits_nothing_until_something_changes() -> None:
    c = core()
    c.restore_pair("sbc1", "carrier-a", kind="trunk", state="down", since=us(0), flapping=False, changes=[us(0)])
    c.restore_target("carrier-a", kind="trunk", state="down", since=us(0), flapping=False, changes=[])
    c.restore_last(fail(60))
    assert c.feed(fail(90)) == []
    assert c.feed(ok(120)) == []
    assert rows(c.feed(ok(150))) == [("node", "down", "up"), ("target", "down", "up")]


def test_restored_flapping_clears_at_the_stored_last_change_plus_window() -> None:
    c = core(flap_window_secs=600)
    c.restore_pair("sbc1", "carrier-a", kind="trunk", state="up", since=us(100), flapping=True, changes=[us(100)])
    c.restore_target("carrier-a", kind="trunk", state="up", since=us(100), flapping=True, changes=[])
    c.restore_last(ok(650))
    out = c.expire(us(701))
    assert [(o.scope, o.flapping, o.at) for o in out if isinstance(o, Transition)] == [
        ("node", False, us(700)),
        ("target", False, us(700)),
    ]


def test_transition_ids_are_stable_and_distinct() -> None:
    a = Transition("node", "sbc1", "t", "trunk", "up", "down", us(1), "x")
    assert a.id == Transition("node", "sbc1", "t", "trunk", "up", "down", us(1), "other words").id
    assert a.id != Transition("node", "sbc2", "t", "trunk", "up", "down", us(1), "x").id
    assert a.id != Transition("node", "sbc1", "t", "trunk", "up", "down", us(1) + 1, "x").id
    assert len(a.values()) == 14


@pytest.mark.parametrize("bad", [{"intermittent_failures": 11}, {"expire_interval_secs": 2}])
def test_config_rejects(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        HealthConfig(**bad)


def test_stale_default_covers_three_intervals() -> None:
    p = Policies(HealthConfig(), OPTIONS)
    assert p("carrier-a").stale_secs == 95
    assert p("carrier-slow").stale_secs == 35
    assert p("not-configured").stale_secs == 95
    assert p.max_stale_secs == 95
    assert US == 1_000_000
