"""Passive results arrive late (a timeout is known passive_timeout_secs after its request): regressions."""

from __future__ import annotations

from typing import Any

from callscope.settings import NodeConfig, TopologyConfig
from collectors.options.config import OptionsConfig, OptionsTarget
from processors.health.app import own_addresses
from processors.health.config import HealthConfig
from processors.health.passive import Dropped, PassiveCorrelator
from processors.health.policy import Policies
from processors.health.results import Ignored, Transition
from processors.health.state import HealthCore
from tests.health.gen import fail, ok, sip_options, us

OPTIONS = OptionsConfig(
    interval_secs=5,
    timeout_secs=1,
    targets=(OptionsTarget(name="carrier-a", uri="sip:192.0.2.10:5060"),),
)


def core(**health: Any) -> HealthCore:
    config = HealthConfig(**health)
    return HealthCore(config, Policies(config, OPTIONS))


def test_a_passive_pair_is_not_stale_while_its_timeouts_are_on_their_way() -> None:
    # Kamailio pings every 10 s (its own interval; the prober's is 5 s: stale 16 s by default).
    c = core(failures_to_down=2, passive_timeout_secs=32)
    for t in (0, 10, 20):
        c.feed(ok(t, passive=True))
    # The pings at 30 and 40 are not answered: their timeouts are known at 62 and 72 (+ expiry rounds).
    assert [o for o in c.expire(us(61)) if isinstance(o, Transition)] == []
    c.feed(fail(30, passive=True))
    assert [o for o in c.expire(us(71)) if isinstance(o, Transition)] == []
    out = c.feed(fail(40, passive=True))
    assert [(o.from_state, o.to_state) for o in out if isinstance(o, Transition) and o.scope == "node"] == [
        ("up", "down")
    ]


def test_a_result_overtaken_by_a_newer_one_does_not_change_the_state() -> None:
    c = core(failures_to_down=2, successes_to_up=2)
    c.feed(ok(0, passive=True))
    c.feed(fail(1, passive=True))
    c.feed(fail(2, passive=True))  # down
    c.feed(ok(5, passive=True))
    assert c.feed(fail(3, passive=True)) == [Ignored("late")]  # the timeout of a ping sent before the answer
    out = c.feed(ok(6, passive=True))
    assert [(o.from_state, o.to_state) for o in out if isinstance(o, Transition) and o.scope == "node"] == [
        ("down", "up")
    ]


def test_a_node_address_with_a_port_ignores_requests_to_that_port_only() -> None:
    topology = TopologyConfig(nodes=(NodeConfig(name="kam1", role="registrar", address="10.0.0.2:5060"),))
    c = PassiveCorrelator(HealthConfig(), OPTIONS, own_addresses(topology))
    assert c.feed(sip_options(0, proxy=("198.51.100.9", 5060), target=("10.0.0.2", 5060))) == [Dropped("inbound")]
    assert c.feed(sip_options(1, call_id="p2", target=("10.0.0.2", 5080))) == []  # a co-located PBX
    assert c.passive_targets == 1
