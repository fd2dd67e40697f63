"""The registrations core: challenge cycle, refresh, de-registration, failure, timeout, restore."""

from __future__ import annotations

from typing import Any

from processors.registrations.correlator import RegistrationCorrelator, RegistrationRow, RegistrationTimeouts
from schemas.envelope import SipEnvelope
from tests.call_legs.sipgen import CALLER, SBC, Dialog, at

UA = Dialog(call_id="reg-1@10.0.0.1", caller="1001", callee="1001", from_tag="rt-1")
CONTACT = "<sip:1001@10.0.0.1:5060>"


def register(t: float, cseq: int, *, expires: int | None = 3600, **kw: Any) -> SipEnvelope:
    return UA.msg(
        t,
        "REGISTER",
        cseq=cseq,
        branch=f"z9hG4bK-r{cseq}",
        contact=CONTACT,
        expires=expires,
        user_agent="Zoiper",
        request_uri="sip:example.com",
        **kw,
    )


def answer(t: float, cseq: int, status: int, reason: str, **kw: Any) -> SipEnvelope:
    return UA.msg(
        t,
        "REGISTER",
        status=status,
        reason=reason,
        cseq=cseq,
        branch=f"z9hG4bK-r{cseq}",
        to_tag="reg-tt",
        src=SBC,
        dst=CALLER,
        **kw,
    )


def challenge_cycle() -> list[SipEnvelope]:
    return [
        register(0, 1),
        answer(0.01, 1, 401, "Unauthorized"),
        register(0.05, 2),
        answer(0.07, 2, 200, "OK", expires=600, contact=CONTACT + ";expires=600"),
    ]


def feed(c: RegistrationCorrelator, msgs: list[SipEnvelope]) -> list[RegistrationRow]:
    out: list[RegistrationRow] = []
    for m in msgs:
        out.extend(c.feed(m))
    return out


def final_rows(rows: list[RegistrationRow]) -> dict[str, RegistrationRow]:
    newest: dict[str, RegistrationRow] = {}
    for r in rows:
        if r.id not in newest or r.version > newest[r.id].version:
            newest[r.id] = r
    return newest


def test_challenge_then_ok() -> None:
    msgs = challenge_cycle()
    rows = final_rows(feed(RegistrationCorrelator(), msgs))
    first, second = rows[msgs[0].id], rows[msgs[2].id]
    assert first.values() == (
        msgs[0].id,
        "1001@example.com",
        CONTACT,
        3600,
        401,
        "Unauthorized",
        "sbc1",
        ["sbc1"],
        "Zoiper",
        "10.0.0.1",
        UA.call_id,
        1,
        at(0),
        at(0.01),
        True,
        first.version,
    )
    assert second.values() == (
        msgs[2].id,
        "1001@example.com",
        CONTACT,
        600,
        200,
        "OK",
        "sbc1",
        ["sbc1"],
        "Zoiper",
        "10.0.0.1",
        UA.call_id,
        2,
        at(0.05),
        at(0.07),
        False,
        second.version,
    )


def test_request_row_first_then_final_version() -> None:
    c = RegistrationCorrelator()
    (pending,) = c.feed(register(0, 1))
    assert (pending.status, pending.answered_at) == (0, None)
    (done,) = c.feed(answer(0.02, 1, 200, "OK", expires=3600))
    assert done.version > pending.version
    assert c.feed(answer(0.5, 1, 200, "OK", expires=3600)) == []  # retransmitted answer: nothing new


def test_refresh_deregister_and_failure() -> None:
    c = RegistrationCorrelator()
    rows = final_rows(
        feed(
            c,
            [
                register(0, 1),
                answer(0.01, 1, 200, "OK", expires=3600),
                register(1800, 2),
                answer(1800.01, 2, 200, "OK", expires=3600),
                register(2000, 3, expires=0),
                answer(2000.01, 3, 200, "OK", expires=0),
                register(2100, 4),
                answer(2100.02, 4, 403, "Forbidden"),
            ],
        )
    )
    assert [(r.cseq, r.status, r.expires, r.challenge) for r in rows.values()] == [
        (1, 200, 3600, False),
        (2, 200, 3600, False),
        (3, 200, 0, False),
        (4, 403, 3600, False),
    ]


def test_unanswered_register_times_out() -> None:
    c = RegistrationCorrelator(RegistrationTimeouts(transaction_timeout_secs=32, final_linger_secs=5))
    c.feed(register(0, 1))
    assert c.expire(at(31)) == []
    (row,) = c.expire(at(32))
    assert (row.status, row.reason) == (0, "timeout")
    assert c.expire(at(40)) == []
    assert len(c) == 0


def test_restored_transaction_completes() -> None:
    c = RegistrationCorrelator()
    (pending,) = c.feed(register(0, 1))
    fresh = RegistrationCorrelator()
    fresh.restore(pending)
    assert fresh.feed(register(0, 1)) == []  # re-fed after a restart: no change
    (done,) = fresh.feed(answer(0.02, 1, 200, "OK", expires=120))
    assert (done.id, done.status, done.expires, done.requested_at) == (pending.id, 200, 120, at(0))


def test_other_methods_ignored() -> None:
    assert RegistrationCorrelator().feed(UA.msg(0, "INVITE")) == []
