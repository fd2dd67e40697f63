"""The pure core on cacofonisk's real AMI recordings (Asterisk 13, AMI v2), fed in order.

- one golden file per scenario family (what the core writes for a representative recording);
- every recording against the outcome MANIFEST.md states for it (cacofonisk's expected
  callback sequence): the dial statuses, whether the parties were connected ("up"), the
  transfer kinds and how the call ended;
- properties on every recording: the order in which partitions are read does not matter,
  a redelivered event changes nothing, a restart from the stored checkpoint continues the call.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

import pytest

from processors.asterisk_calls.correlator import AsteriskCorrelator
from schemas.envelope import AmiEnvelope
from schemas.topics import partition_for
from tests.asterisk_calls.corpus import (
    FAMILIES,
    Observed,
    all_recordings,
    assert_matches_manifest,
    envelopes,
    recording,
)
from tests.asterisk_calls.support import Final, check_golden, document, feed


def run(name: str) -> tuple[AsteriskCorrelator, Final, list[AmiEnvelope]]:
    envs = envelopes(recording(name), tag=name)
    core, final = feed(envs)
    final.add(core.expire(envs[-1].ts + timedelta(seconds=1)))
    return core, final, envs


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_golden(family: str) -> None:
    core, final, _ = run(FAMILIES[family])
    assert not core.problems
    check_golden(family, document(final))


def observed(final: Final) -> Observed:
    return Observed(
        calls=[asdict(c) for c in final.calls.values()],
        legs=[asdict(leg) for leg in final.legs.values()],
        kinds={t.kind for t in final.transfers.values()},
    )


@pytest.mark.parametrize("name", all_recordings())
def test_recording_matches_manifest(name: str) -> None:
    core, final, _ = run(name)
    assert not core.problems, dict(core.problems)
    assert_matches_manifest(name, observed(final))
    for call in final.calls.values():
        if call.connected_at is not None:
            assert call.talk_secs is not None
            assert call.wait_secs is not None


def test_simple_answered_call_in_detail() -> None:
    _, final, envs = run(FAMILIES["simple_answered"])
    call = final.call()
    assert (call.caller_channel, call.caller_num, call.caller_name, call.callee) == (
        "SIP/150010001-00000004",
        "201",
        "Andrew Garza",
        "202",
    )
    assert (call.state, call.outcome, call.hangup_cause, call.hangup_cause_text) == (
        "ended",
        "completed",
        16,
        "Normal Clearing",
    )
    assert call.channels == 4
    callee = next(leg for leg in final.legs.values() if leg.channel == "SIP/150010002-00000005")
    assert (callee.direction, callee.caller_num, callee.connected_num, callee.dial_status) == (
        "out",
        "202",
        "201",
        "ANSWER",
    )
    assert callee.connected_to == ("SIP/150010001-00000004",)
    assert callee.dialed_by.endswith(".47")  # the Local ;2 half that dialed it
    caller = final.legs[call.linkedid]
    assert caller.connected_to == ("SIP/150010002-00000005",)
    assert caller.answered_at is not None
    assert caller.ended_at is not None
    assert caller.duration_secs == pytest.approx((caller.ended_at - caller.answered_at).total_seconds())
    assert call.ended_at == envs[-1].ts


def test_pickup_moves_the_picking_phone_into_the_call() -> None:
    _, final, _ = run(FAMILIES["star_pickup"])
    (pickup,) = final.transfers.values()
    assert (pickup.kind, pickup.transferer_channel, pickup.target_exten) == ("pickup", "SIP/150010003-00000024", "*8")
    assert pickup.transferee_channel == "SIP/150010001-00000022"  # the caller whose call was picked up
    picker = next(leg for leg in final.legs.values() if leg.channel == "SIP/150010003-00000024")
    main, own = picker.linkedids[1], picker.linkedids[0]
    assert picker.linkedid == main
    assert final.calls[own].state == "merged"
    assert final.calls[own].merged_into == main
    assert final.calls[main].outcome == "completed"
    assert "SIP/150010001-00000022" in picker.connected_to


def test_attended_transfer_without_transferee_fields_is_resolved_from_the_bridge() -> None:
    # xfer_abacbc's AttendedTransfer names neither Transferee nor TransferTarget.
    _, final, _ = run(FAMILIES["attended_transfer"])
    (t,) = final.transfers.values()
    assert (t.kind, t.transferer_channel) == ("attended", "SIP/150010001-00000028")
    assert (t.transferee_channel, t.target_channel) == ("SIP/150010002-00000029", "SIP/150010003-0000002b")
    assert sorted(c.outcome for c in final.calls.values()) == ["completed", "transferred"]


def _partitioned(envs: list[AmiEnvelope], n: int, reverse: bool) -> list[AmiEnvelope]:
    parts: list[list[AmiEnvelope]] = [[] for _ in range(n)]
    for env in envs:
        parts[partition_for(env.key.encode(), n)].append(env)
    if reverse:
        parts.reverse()
    return [env for part in parts for env in part]


def _comparable(final: Final) -> dict[str, object]:
    doc = document(final)
    for section in ("calls", "legs"):
        for row in doc[section].values():
            row.pop("created")  # when callscope first saw it: depends on the reading order, by definition
    return doc


@pytest.mark.parametrize("name", all_recordings())
def test_partition_reading_order_does_not_matter(name: str) -> None:
    """Whole partitions read one after the other (the worst interleaving the bus allows) give the same rows."""
    envs = envelopes(recording(name), tag=name)
    straight = _comparable(feed(envs)[1])
    for n in (2, 3):
        for reverse in (False, True):
            assert _comparable(feed(_partitioned(envs, n, reverse))[1]) == straight, (n, reverse)


@pytest.mark.parametrize("family", ["blind_transfer", "sip_pickup", "group"])
def test_redelivered_events_change_nothing(family: str) -> None:
    envs = envelopes(recording(FAMILIES[family]), tag=family)
    _, once = feed(envs)
    _, twice = feed([e for env in envs for e in (env, env)])
    assert document(twice) == document(once)
    assert twice.versions == once.versions


@pytest.mark.parametrize("family", ["attended_transfer", "star_pickup", "simple_answered"])
def test_restart_from_checkpoints_continues_the_calls(family: str) -> None:
    envs = envelopes(recording(FAMILIES[family]), tag=family)
    _, straight = feed(envs)
    half = len(envs) // 2
    first, before = feed(envs[:half])
    assert before.calls, "the first half wrote call rows"
    resumed = AsteriskCorrelator()
    for call in before.calls.values():
        resumed.restore(call.checkpoint)
    # The shell re-reads what was not committed: the last few events again, then the rest.
    _, after = feed(envs[half - 5 :], resumed)
    merged = Final()
    for part in (before, after):
        merged.legs.update(part.legs)
        merged.calls.update(part.calls)
        merged.transfers.update(part.transfers)
        merged.links.update(part.links)
    assert _comparable(merged) == _comparable(straight)
    assert first.nodes["ast1"].legs  # the first process held state


def test_forgotten_calls_ignore_late_events() -> None:
    envs = envelopes(recording(FAMILIES["simple_answered"]), tag="late")
    core, _ = feed(envs)
    assert core.expire(envs[-1].ts + timedelta(seconds=61)) == []
    assert len(core) == 0
    assert not core.nodes["ast1"].legs
    late = envelopes(recording(FAMILIES["simple_answered"]), tag="late-again")  # same events, new ids
    assert core.feed(late[-1]) == []
    assert core.take_problems()["late_event"] == 1
