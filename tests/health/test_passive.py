"""Passive OPTIONS: transactions seen in HEP become probe results."""

from __future__ import annotations

from typing import Any

from collectors.options.config import OptionsConfig, OptionsTarget
from processors.health.app import sip_wants
from processors.health.config import HealthConfig
from processors.health.passive import Dropped, PassiveCorrelator, PassiveOutput
from schemas.envelope import OptionsEnvelope, encode, event_id
from tests.health.gen import at, sip_options, us

OPTIONS = OptionsConfig(
    targets=(
        OptionsTarget(name="carrier-a", uri="sip:192.0.2.10:5060", kind="trunk"),
        OptionsTarget(name="ast1", uri="sip:[2001:db8::20]:5080;transport=tcp", kind="node", expect_codes=(200, 404)),
        OptionsTarget(name="by-name", uri="sip:carrier-b.example.net:5060"),
    )
)


def correlator(**health: Any) -> PassiveCorrelator:
    return PassiveCorrelator(HealthConfig(**health), OPTIONS, {"kam1": frozenset({"10.0.0.2"})})


def results(outputs: list[PassiveOutput]) -> list[OptionsEnvelope]:
    return [o for o in outputs if isinstance(o, OptionsEnvelope)]


def test_answered_options_becomes_a_passive_result_for_the_configured_target() -> None:
    c = correlator()
    request = sip_options(0)
    assert c.feed(request) == []
    out = c.feed(sip_options(0.0125, status=200, server="carrier SBC 1.0"))
    (env,) = results(out)
    b = env.body
    assert (b.target, b.target_kind, b.passive, b.status, b.reason, b.error) == (
        "carrier-a",
        "trunk",
        True,
        200,
        "OK",
        None,
    )
    assert b.rtt_ms == 12.5
    assert (b.server, b.remote, b.attempts, b.uri, b.transport) == (
        "carrier SBC 1.0",
        "192.0.2.10:5060",
        1,
        "sip:192.0.2.10:5060",
        "udp",
    )
    assert (env.node, env.role, env.ts, env.key) == ("kam1", "registrar", at(0), "carrier-a")
    assert env.id == event_id("options", "kam1", "passive", request.id)
    # The same capture replayed gives the same envelope.
    again = correlator()
    again.feed(request)
    assert results(again.feed(sip_options(0.0125, status=200, server="carrier SBC 1.0"))) == [env]


def test_retransmissions_keep_the_rtt_from_the_first_send_and_1xx_is_ignored() -> None:
    c = correlator()
    c.feed(sip_options(0))
    assert c.feed(sip_options(0.5)) == []  # Timer E retransmission
    assert c.feed(sip_options(0.55, status=100)) == []
    (env,) = results(c.feed(sip_options(0.6, status=200)))
    assert env.body.rtt_ms == 600
    assert env.body.attempts == 2
    assert c.feed(sip_options(1.5, status=200)) == []  # the final answer again, for a late retransmission


def test_no_answer_times_out_at_timer_f() -> None:
    c = correlator()
    c.feed(sip_options(0))
    assert c.expire(us(31.9)) == []
    assert c.expire(us(32)) == []  # overdue: one more expire for an answer still in flight
    (env,) = results(c.expire(us(33)))
    b = env.body
    assert (b.error, b.status, b.rtt_ms, b.passive, b.target) == ("timeout", None, None, True, "carrier-a")
    assert env.ts == at(0)
    assert c.expire(us(34)) == []
    assert c.feed(sip_options(40, status=200)) == []  # too late: ignored, not unmatched
    assert len(c) == 1
    c.expire(us(32 + 32))
    assert len(c) == 0  # forgotten after the linger


def test_an_answer_in_the_next_batch_beats_the_overdue_expire() -> None:
    c = correlator(passive_timeout_secs=5)
    c.feed(sip_options(0))
    assert c.expire(us(100)) == []  # a replay: wall clock far ahead of the events
    (env,) = results(c.feed(sip_options(0.02, status=200)))
    assert env.body.error is None


def test_unmatched_answer_is_dropped_and_counted() -> None:
    c = correlator()
    assert c.feed(sip_options(0, status=200)) == []  # held: its request may be mirrored after it
    assert c.expire(us(1)) == []
    assert c.expire(us(2)) == [Dropped("unmatched_answer")]
    assert len(c) == 0


def test_an_answer_mirrored_before_its_request_completes_it() -> None:
    # siptrace trace_mode: Kamailio mirrors a ping after sending it; the answer, read by another
    # worker, was seen mirrored 0.1 ms before the ping (HEP times too).
    c = correlator()
    assert c.feed(sip_options(0.0001, status=200)) == []
    assert c.feed(sip_options(0.0001, status=200)) == []  # a copy of it
    (env,) = results(c.feed(sip_options(0.0002)))
    assert (env.body.target, env.body.status, env.body.error, env.body.rtt_ms) == ("carrier-a", 200, None, 0.0)
    assert c.expire(us(40)) == []
    assert c.expire(us(80)) == []


def test_unconfigured_destination_is_host_port_other_and_names_are_not_resolved() -> None:
    c = correlator()
    c.feed(sip_options(0, target=("198.51.100.7", 5062)))
    (env,) = results(c.feed(sip_options(0.01, status=200, target=("198.51.100.7", 5062))))
    assert (env.body.target, env.body.target_kind, env.key) == ("198.51.100.7:5062", "other", "198.51.100.7:5062")
    # A configured target with a host name is not matched by address (no DNS here).
    c.feed(sip_options(1, call_id="p2", target=("203.0.113.5", 5060)))
    (env,) = results(c.feed(sip_options(1.01, status=200, call_id="p2", target=("203.0.113.5", 5060))))
    assert env.body.target == "203.0.113.5:5060"
    # Same IP, other port: not the configured target either.
    c.feed(sip_options(2, call_id="p3", target=("192.0.2.10", 5070)))
    (env,) = results(c.feed(sip_options(2.01, status=200, call_id="p3", target=("192.0.2.10", 5070))))
    assert env.body.target == "192.0.2.10:5070"
    assert c.passive_targets == 3


def test_ipv6_target_matches_its_configured_address_and_expected_codes() -> None:
    c = correlator()
    dst = ("2001:db8:0:0::20", 5080)  # written differently from the config: compared as addresses
    c.feed(sip_options(0, target=dst, transport="tcp"))
    (env,) = results(c.feed(sip_options(0.004, status=404, target=dst, transport="tcp")))
    b = env.body
    assert (b.target, b.target_kind, b.status, b.error, b.transport) == ("ast1", "node", 404, None, "tcp")
    assert b.remote == "[2001:db8::20]:5080"


def test_a_code_outside_the_expected_ones_is_unexpected_code() -> None:
    c = correlator()
    c.feed(sip_options(0))
    (env,) = results(c.feed(sip_options(0.01, status=404)))
    assert (env.body.status, env.body.error, env.body.rtt_ms) == (404, "unexpected_code", 10.0)


def test_passive_targets_are_bounded() -> None:
    c = correlator(max_passive_targets=2)
    for i in range(2):
        c.feed(sip_options(i, call_id=f"p{i}", target=(f"198.51.100.{i}", 5060)))
    assert c.feed(sip_options(3, call_id="p3", target=("198.51.100.3", 5060))) == [Dropped("target_limit")]
    assert c.feed(sip_options(3.01, status=200, call_id="p3", target=("198.51.100.3", 5060))) == []
    # Known host:port targets and configured targets go on.
    assert c.feed(sip_options(4, call_id="p4", target=("198.51.100.1", 5060))) == []
    assert c.feed(sip_options(5, call_id="p5")) == []
    assert len(results(c.feed(sip_options(5.01, status=200, call_id="p5")))) == 1
    assert c.passive_targets == 2


def test_transactions_are_bounded() -> None:
    c = correlator(max_passive_transactions=1)
    c.feed(sip_options(0))
    assert c.feed(sip_options(1, call_id="p2")) == [Dropped("transaction_limit")]


def test_a_relayed_options_is_two_transactions_by_branch() -> None:
    c = correlator()
    caller, kam1 = ("198.51.100.9", 5060), ("10.0.0.2", 5060)
    c.feed(sip_options(0, branch="z9hG4bK-caller", proxy=caller, target=kam1))  # to kam1 itself: inbound, ignored
    assert c.feed(sip_options(0.001, branch="z9hG4bK-kam")) == []  # relayed on to the target
    (env,) = results(c.feed(sip_options(0.02, status=200, branch="z9hG4bK-kam")))
    assert (env.body.target, env.body.rtt_ms) == ("carrier-a", 19.0)
    assert c.feed(sip_options(0.021, status=200, branch="z9hG4bK-caller", proxy=caller, target=kam1)) == []


def test_inbound_options_to_the_capturing_node_is_not_a_probe() -> None:
    c = correlator()
    out = c.feed(sip_options(0, proxy=("198.51.100.9", 5060), target=("10.0.0.2", 5060)))
    assert out == [Dropped("inbound")]
    # The same address seen from another node is that node's probe of kam1.
    assert c.feed(sip_options(0, node="sbc1", proxy=("198.51.100.9", 5060), target=("10.0.0.2", 5060))) == []


def test_other_methods_and_the_same_transaction_on_another_node() -> None:
    c = correlator()
    assert c.feed(sip_options(0, method="INFO")) == []
    assert len(c) == 0
    c.feed(sip_options(0, node="kam1"))
    c.feed(sip_options(0, node="kam2"))
    assert len(c) == 2
    (env,) = results(c.feed(sip_options(0.01, status=200, node="kam2")))
    assert env.node == "kam2"


def test_without_a_branch_call_id_and_cseq_match() -> None:
    c = correlator()
    c.feed(sip_options(0, branch=None, cseq=7))
    assert c.feed(sip_options(0.01, status=200, branch=None, cseq=8)) == []  # not this request's
    assert len(results(c.feed(sip_options(0.01, status=200, branch=None, cseq=7)))) == 1
    assert c.expire(us(1)) == []
    assert c.expire(us(2)) == [Dropped("unmatched_answer")]


def test_the_shell_prefilter_reads_only_options() -> None:
    assert sip_wants(encode(sip_options(0)))
    assert sip_wants(encode(sip_options(0.1, status=200)))
    assert sip_wants(encode(sip_options(0, method="options")))
    # An INVITE that allows OPTIONS, or mentions it in a header, is not one.
    invite = sip_options(0, method="INVITE")
    allow = encode(invite).replace(b'"raw":"', b'"raw":"Allow: INVITE, OPTIONS\\r\\n', 1)
    assert b"OPTIONS" in allow
    assert not sip_wants(allow)
    assert not sip_wants(b'{"body":{"raw":"x \\"method\\":\\"OPTIONS\\""}}')
