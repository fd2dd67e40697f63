"""The leg correlator on generated message sequences, one scenario per test, golden values for every field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from processors.call_legs.config import CallLegsConfig
from processors.call_legs.correlator import LegCorrelator, LegRow, LinkRow, Output
from schemas.envelope import SipEnvelope
from tests.call_legs.sipgen import CALLEE, CALLEE2, CALLER, PROXY, SBC, Dialog, at

OFFER = ["PCMA/8000", "PCMU/8000", "telephone-event/8000"]
EXTRA: dict[str, Any] = {
    "user_agent": "Yealink T46",
    "from_display": "Alice",
    "pai": "sip:+4930123@example.com",
    "session_id": "ab30317f1a784dc48ff824d0d3715d86",
    "correlation": {"x-cid": "call-0@upstream"},
}
D = Dialog(extra=EXTRA)


def base(**overrides: Any) -> dict[str, Any]:
    """The golden row of the answered call hung up by the caller; scenarios override what differs."""
    row: dict[str, Any] = {
        "call_id": D.call_id,
        "leg_id": f"{D.call_id}:ft-a",
        "from_tag": "ft-a",
        "to_tag": "tt-b",
        "caller": "1001",
        "callee": "2002",
        "caller_display": "Alice",
        "pai": "sip:+4930123@example.com",
        "request_uri": "sip:2002@example.com",
        "started_at": at(0),
        "ringing_at": at(0.5),
        "answered_at": at(2),
        "ended_at": at(62),
        "pdd_ms": 500,
        "setup_ms": 2000,
        "duration_secs": 60.0,
        "status": 200,
        "reason": "OK",
        "reason_header": "Q.850;cause=16",
        "ended_by": "caller",
        "state": "completed",
        "nodes": ("sbc1",),
        "src_ip": "10.0.0.1",
        "dst_ip": "10.0.0.2",
        "user_agent": "Yealink T46",
        "codecs": ("PCMA/8000",),
        "correlation_ids": (),
        "x_cid": "call-0@upstream",
        "session_id": "ab30317f1a784dc48ff824d0d3715d86",
        "message_count": 7,
        "retransmissions": 0,
        "reinvites": 0,
        "updated_at": at(62.005),
    }
    row.update(overrides)
    return row


def invite(t: float = 0, **kw: Any) -> SipEnvelope:
    return D.msg(t, "INVITE", codecs=OFFER, **kw)


def resp(t: float, status: int, reason: str, *, method: str = "INVITE", **kw: Any) -> SipEnvelope:
    kw.setdefault("src", SBC)
    kw.setdefault("dst", CALLER)
    return D.msg(t, method, status=status, reason=reason, **kw)


def answered_setup() -> list[SipEnvelope]:
    return [
        invite(),
        resp(0.01, 100, "Trying"),
        resp(0.5, 180, "Ringing", to_tag="tt-b"),
        resp(2.0, 200, "OK", to_tag="tt-b", codecs=["PCMA/8000"]),
        D.msg(2.01, "ACK", to_tag="tt-b", branch="z9hG4bK-ack"),
    ]


def feed_all(
    messages: list[SipEnvelope], correlator: LegCorrelator | None = None
) -> tuple[LegCorrelator, list[Output]]:
    c = correlator or LegCorrelator()
    out: list[Output] = []
    for m in messages:
        out.extend(c.feed(m))
    return c, out


def legs(out: list[Output]) -> list[LegRow]:
    return [o for o in out if isinstance(o, LegRow)]


def last(out: list[Output]) -> LegRow:
    rows = legs(out)
    assert rows, "no leg row"
    versions = [r.version for r in rows]
    assert versions == sorted(versions), "versions must increase"
    assert len(set(versions)) == len(versions), "versions must increase"
    return rows[-1]


def test_ab_answered_a_hangup() -> None:
    msgs = [
        *answered_setup(),
        D.msg(62, "BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye", reason_header="Q.850;cause=16"),
        resp(62.005, 200, "OK", method="BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye"),
    ]
    _, out = feed_all(msgs)
    assert last(out).golden() == base()
    # every message changed the row: live legs are visible as they progress
    assert [r.state for r in legs(out)] == ["live", "live", "ringing", "answered", "answered", "completed", "completed"]


def test_ab_answered_b_hangup() -> None:
    msgs = [
        *answered_setup(),
        D.msg(30, "BYE", cseq=7, to_tag="tt-b", from_callee=True, branch="z9hG4bK-bbye", src=SBC, dst=CALLER),
        D.msg(30.01, "BYE", status=200, reason="OK", cseq=7, to_tag="tt-b", from_callee=True, branch="z9hG4bK-bbye"),
    ]
    _, out = feed_all(msgs)
    assert last(out).golden() == base(
        ended_at=at(30), duration_secs=28.0, ended_by="callee", reason_header="", updated_at=at(30.01)
    )


@pytest.mark.parametrize(
    ("status", "reason", "state"),
    [(486, "Busy Here", "failed"), (404, "Not Found", "failed"), (408, "Request Timeout", "failed")],
)
def test_failures(status: int, reason: str, state: str) -> None:
    msgs = [
        invite(),
        resp(0.01, 100, "Trying"),
        resp(1.2, status, reason, to_tag="tt-x"),
        D.msg(1.21, "ACK", to_tag="tt-x"),
    ]
    _, out = feed_all(msgs)
    assert last(out).golden() == base(
        to_tag="tt-x",
        ringing_at=None,
        answered_at=None,
        ended_at=at(1.2),
        pdd_ms=1200,
        setup_ms=1200,
        duration_secs=None,
        status=status,
        reason=reason,
        reason_header="",
        ended_by="",
        state=state,
        codecs=tuple(OFFER),
        message_count=4,
        updated_at=at(1.21),
    )


def test_cancelled_before_answer() -> None:
    msgs = [
        invite(),
        resp(0.4, 180, "Ringing", to_tag="tt-b"),
        D.msg(5, "CANCEL", reason_header="Q.850;cause=31"),
        resp(5.01, 200, "OK", method="CANCEL"),
        resp(5.02, 487, "Request Terminated", to_tag="tt-b"),
        D.msg(5.03, "ACK", to_tag="tt-b"),
    ]
    _, out = feed_all(msgs)
    assert last(out).golden() == base(
        ringing_at=at(0.4),
        answered_at=None,
        ended_at=at(5.02),
        pdd_ms=400,
        setup_ms=5020,
        duration_secs=None,
        status=487,
        reason="Request Terminated",
        reason_header="Q.850;cause=31",
        ended_by="caller",
        state="cancelled",
        codecs=tuple(OFFER),
        message_count=6,
        updated_at=at(5.03),
    )


def test_forked_two_180s_one_200_keeps_the_answered_fork() -> None:
    # The proxy forks to two phones; the second answers; the proxy cancels the first (487 on that branch).
    p: dict[str, Any] = {"node": "proxy1"}
    msgs = [
        invite(),
        resp(0.3, 180, "Ringing", to_tag="fork-1", **p),
        resp(0.35, 180, "Ringing", to_tag="fork-2", **p),
        resp(3.0, 200, "OK", to_tag="fork-2", codecs=["PCMU/8000"], **p),
        D.msg(3.01, "ACK", to_tag="fork-2", branch="z9hG4bK-ack"),
        D.msg(3.02, "CANCEL", branch="z9hG4bK-proxy-f1", src=PROXY, dst=CALLEE, **p),
        resp(3.05, 487, "Request Terminated", to_tag="fork-1", src=CALLEE, dst=PROXY, **p),
        D.msg(40, "BYE", cseq=2, to_tag="fork-2", branch="z9hG4bK-bye"),
        resp(40.01, 200, "OK", method="BYE", cseq=2, to_tag="fork-2", branch="z9hG4bK-bye"),
    ]
    _, out = feed_all(msgs)
    row = last(out)
    assert row.golden() == base(
        to_tag="fork-2",
        ringing_at=at(0.3),
        answered_at=at(3),
        ended_at=at(40),
        pdd_ms=300,
        setup_ms=3000,
        duration_secs=37.0,
        reason_header="",
        codecs=("PCMU/8000",),
        nodes=("proxy1", "sbc1"),
        message_count=9,
        updated_at=at(40.01),
    )


def test_reinvite_is_counted_and_does_not_restart() -> None:
    msgs = [
        *answered_setup(),
        D.msg(20, "INVITE", cseq=2, to_tag="tt-b", branch="z9hG4bK-re1", codecs=["PCMA/8000"]),
        resp(20.01, 200, "OK", cseq=2, to_tag="tt-b", branch="z9hG4bK-re1"),
        D.msg(20.02, "ACK", cseq=2, to_tag="tt-b", branch="z9hG4bK-reack"),
        D.msg(62, "BYE", cseq=3, to_tag="tt-b", branch="z9hG4bK-bye", reason_header="Q.850;cause=16"),
        resp(62.005, 200, "OK", method="BYE", cseq=3, to_tag="tt-b", branch="z9hG4bK-bye"),
    ]
    _, out = feed_all(msgs)
    assert last(out).golden() == base(reinvites=1, message_count=10)


def test_retransmissions_are_counted_not_as_messages() -> None:
    msgs = [
        invite(),
        invite(0.5),  # Timer A retransmission, same hop
        resp(0.6, 100, "Trying"),
        resp(0.7, 180, "Ringing", to_tag="tt-b"),
        resp(2.0, 200, "OK", to_tag="tt-b", codecs=["PCMA/8000"]),
        resp(2.5, 200, "OK", to_tag="tt-b", codecs=["PCMA/8000"]),  # 2xx retransmitted until the ACK
        D.msg(2.51, "ACK", to_tag="tt-b", branch="z9hG4bK-ack"),
        D.msg(62, "BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye", reason_header="Q.850;cause=16"),
        resp(62.005, 200, "OK", method="BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye"),
    ]
    _, out = feed_all(msgs)
    assert last(out).golden() == base(ringing_at=at(0.7), pdd_ms=700, retransmissions=2)


def test_same_dialog_on_two_nodes_counts_each_message_once() -> None:
    msgs: list[SipEnvelope] = []
    for m in answered_setup():
        msgs.append(m)
        # the proxy sees the same message relayed (its own hop, its own Via on top, the caller's at the bottom)
        b = m.body
        relayed = m.model_copy(
            update={
                "id": m.id + "-p",
                "node": "proxy1",
                "ts": m.ts.replace(microsecond=m.ts.microsecond + 2000),
                "body": b.model_copy(
                    update={
                        "src": b.src.model_copy(update={"ip": PROXY[0]}),
                        "via_branches": ["z9hG4bK-proxy", *b.via_branches],
                        "via_branch": "z9hG4bK-proxy",
                    }
                ),
            }
        )
        msgs.append(relayed)
    msgs.append(D.msg(62, "BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye", reason_header="Q.850;cause=16"))
    msgs.append(resp(62.005, 200, "OK", method="BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye"))
    _, out = feed_all(msgs)
    assert last(out).golden() == base(nodes=("proxy1", "sbc1"))


def test_out_of_order_bye_answer_and_late_180() -> None:
    # siptrace stamps when it mirrors: the BYE's 200 is stamped (and fed) before the BYE;
    # a 180 arrives after the 200.
    setup = answered_setup()
    msgs = [
        setup[0],
        setup[1],
        setup[3],  # 200
        setup[2],  # 180, fed late
        setup[4],
        resp(61.99, 200, "OK", method="BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye"),
        D.msg(62, "BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye", reason_header="Q.850;cause=16"),
    ]
    _, out = feed_all(msgs)
    assert last(out).golden() == base(ended_at=at(61.99), duration_secs=59.99, updated_at=at(62))


def test_never_answered_timeout_and_answered_never_byed_timeout() -> None:
    cfg = CallLegsConfig(setup_timeout_secs=10, ringing_timeout_secs=60, answered_max_secs=3600, final_linger_secs=5)
    c = LegCorrelator(cfg)
    ringing = Dialog(call_id="ring-1", extra=D.extra)
    c.feed(ringing.msg(0, "INVITE", codecs=OFFER, **D.extra))
    c.feed(ringing.msg(0.5, "INVITE", status=180, reason="Ringing", to_tag="tt-r", src=SBC, dst=CALLER))
    _, out = feed_all(answered_setup(), c)
    assert c.expire(at(59)) == []
    rows = legs(c.expire(at(61)))
    assert [r.call_id for r in rows] == ["ring-1"]
    assert rows[0].golden() == base(
        call_id="ring-1",
        leg_id="ring-1:ft-a",
        to_tag="",
        answered_at=None,
        ended_at=at(60.5),
        pdd_ms=500,
        setup_ms=None,
        duration_secs=None,
        status=0,
        reason="",
        reason_header="",
        ended_by="system",
        state="timeout",
        codecs=tuple(OFFER),
        message_count=2,
        updated_at=at(60.5),
    )
    rows = legs(c.expire(at(3603)))
    assert len(rows) == 1
    assert rows[0].golden() == base(
        ended_at=at(3602.01),
        duration_secs=None,
        reason_header="",
        ended_by="system",
        state="timeout",
        message_count=5,
        updated_at=at(3602.01),
    )
    assert rows[0].version > last(out).version
    assert c.expire(at(4000)) == []
    assert len(c) == 0


def test_setup_timeout_without_any_provisional() -> None:
    c = LegCorrelator(CallLegsConfig(setup_timeout_secs=32))
    c.feed(invite())
    (row,) = legs(c.expire(at(32)))
    assert (row.state, row.ended_by, row.status, row.ended_at, row.pdd_ms) == ("timeout", "system", 0, at(32), None)


def test_auth_challenge_then_answer_is_one_leg() -> None:
    msgs = [
        invite(),
        resp(0.02, 407, "Proxy Authentication Required", to_tag="auth-1"),
        D.msg(0.03, "ACK", to_tag="auth-1"),
        invite(0.1, cseq=2, branch="z9hG4bK-inv2"),
        resp(0.6, 180, "Ringing", cseq=2, to_tag="tt-b", branch="z9hG4bK-inv2"),
        resp(2.0, 200, "OK", cseq=2, to_tag="tt-b", branch="z9hG4bK-inv2", codecs=["PCMA/8000"]),
        D.msg(2.01, "ACK", cseq=2, to_tag="tt-b", branch="z9hG4bK-ack"),
        D.msg(62, "BYE", cseq=3, to_tag="tt-b", branch="z9hG4bK-bye", reason_header="Q.850;cause=16"),
        resp(62.005, 200, "OK", method="BYE", cseq=3, to_tag="tt-b", branch="z9hG4bK-bye"),
    ]
    _, out = feed_all(msgs)
    assert "failed" in [r.state for r in legs(out)]  # the 407 closed the first attempt
    assert last(out).golden() == base(ringing_at=at(0.6), pdd_ms=600, message_count=9)


def test_non_invite_dialogs_are_not_legs() -> None:
    c = LegCorrelator()
    for method in ("OPTIONS", "MESSAGE", "SUBSCRIBE", "NOTIFY", "REGISTER"):
        d = Dialog(call_id=f"x-{method}")
        assert c.feed(d.msg(0, method)) == []
        assert c.feed(d.msg(0.1, method, status=200, reason="OK", src=SBC, dst=CALLER)) == []
    assert len(c) == 0


def test_replayed_envelopes_change_nothing() -> None:
    msgs = answered_setup()
    c, out = feed_all(msgs)
    assert feed_all(msgs, c)[1] == []
    assert last(out).retransmissions == 0


def test_checkpoint_restores_a_leg_midcall() -> None:
    msgs = answered_setup()
    _, out = feed_all(msgs)
    fresh = LegCorrelator()
    fresh.restore(last(out).checkpoint)
    assert feed_all(msgs[-2:], fresh)[1] == []  # re-fed after a crash: already applied
    _, rest = feed_all(
        [
            D.msg(62, "BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye", reason_header="Q.850;cause=16"),
            resp(62.005, 200, "OK", method="BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye"),
        ],
        fresh,
    )
    assert last(rest).golden() == base()
    assert last(rest).version > last(out).version


def relayed(msg: SipEnvelope, src: tuple[str, int], dst: tuple[str, int]) -> SipEnvelope:
    """A copy of ``msg`` on another hop of the same node (a proxy's other side): it changes no row field."""
    b = msg.body
    hop = {
        "src": b.src.model_copy(update={"ip": src[0], "port": src[1]}),
        "dst": b.dst.model_copy(update={"ip": dst[0], "port": dst[1]}),
    }
    body = b.model_copy(update=hop)
    return msg.model_copy(update={"id": f"{msg.id}-relayed", "body": body})


def test_a_message_that_changes_nothing_writes_no_version_before_or_after_a_restore() -> None:
    msgs = answered_setup()
    c, out = feed_all(msgs)
    copy = relayed(msgs[0], PROXY, CALLEE)
    assert c.feed(copy) == []  # applied (a hop more), no row field changed
    fresh = LegCorrelator()
    fresh.restore(last(out).checkpoint)
    assert fresh.feed(relayed(msgs[0], PROXY, CALLEE2)) == []  # the restored leg knows its row's content
    bye = D.msg(62, "BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye")
    assert last(fresh.feed(bye)).state == "completed"


def test_checkpoints_of_earlier_versions_restore() -> None:
    """Checkpoints written before 2026-11-26 carry the leg's content digest as ``fingerprint``."""
    msgs = answered_setup()
    _, out = feed_all(msgs)
    data = orjson.loads(last(out).checkpoint)
    assert "fingerprint" not in data
    older = orjson.dumps({**data, "fingerprint": "0123456789abcdef01234567"}).decode()
    fresh = LegCorrelator()
    assert fresh.restore(older) == last(out).leg_id
    assert fresh.feed(relayed(msgs[0], PROXY, CALLEE)) == []
    assert feed_all(msgs, fresh)[1] == []  # re-fed after a crash: already applied


def test_links_hep_correlation_id_header_and_session_id() -> None:
    b_leg = Dialog(
        call_id="b-leg@asterisk",
        from_tag="ft-b",
        extra={"correlation": {"x-cid": "a-leg@sbc"}, "session_id": "sess-1"},
    )
    c = LegCorrelator()
    out = c.feed(b_leg.msg(0, "INVITE", correlation_id="a-leg@sbc", **b_leg.extra, src=PROXY, dst=CALLEE2))
    links = sorted((o.call_id, o.linked_call_id, o.via, o.value) for o in out if isinstance(o, LinkRow))
    assert links == [
        ("a-leg@sbc", "b-leg@asterisk", "header:x-cid", "a-leg@sbc"),
        ("a-leg@sbc", "b-leg@asterisk", "hep_correlation_id", "a-leg@sbc"),
        ("b-leg@asterisk", "", "header:x-cid", "a-leg@sbc"),
        ("b-leg@asterisk", "", "session_id", "sess-1"),
        ("b-leg@asterisk", "a-leg@sbc", "header:x-cid", "a-leg@sbc"),
        ("b-leg@asterisk", "a-leg@sbc", "hep_correlation_id", "a-leg@sbc"),
    ]
    (row,) = legs(out)
    assert (row.x_cid, row.session_id, row.correlation_ids) == ("a-leg@sbc", "sess-1", ("a-leg@sbc",))
    # the same facts again on the next message add no link rows
    again = c.feed(
        b_leg.msg(0.1, "INVITE", status=100, reason="Trying", correlation_id="a-leg@sbc", src=CALLEE2, dst=PROXY)
    )
    assert [o for o in again if isinstance(o, LinkRow)] == []


def test_own_call_id_as_correlation_id_is_no_link() -> None:
    c = LegCorrelator()
    out = c.feed(Dialog().msg(0, "INVITE", correlation_id="call-1@10.0.0.1"))
    assert [o for o in out if isinstance(o, LinkRow)] == []


def test_touch_then_rows_gives_the_newest_content_once_per_leg() -> None:
    """Rows built when the shell writes: one per changed leg, equal to what feeding one by one ends with."""
    msgs = [
        *answered_setup(),
        D.msg(62, "BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye", reason_header="Q.850;cause=16"),
        resp(62.005, 200, "OK", method="BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye"),
    ]
    _, eager = feed_all(msgs)
    lazy = LegCorrelator()
    links: list[LinkRow] = []
    for m in msgs:
        links.extend(lazy.touch(m))
    assert lazy.dirty_count == 1
    (row,) = lazy.rows()
    assert lazy.dirty_count == 0
    assert lazy.rows() == []
    assert row.golden() == last(eager).golden() == base()
    assert links == [o for o in eager if isinstance(o, LinkRow)]
    # A leg whose content did not change since its last row gives no new version.
    lazy.touch(msgs[-1])  # a replay: not even marked
    assert lazy.dirty_count == 0


def test_a_message_moves_the_deadline_and_closed_legs_are_forgotten_after_linger() -> None:
    cfg = CallLegsConfig(setup_timeout_secs=10, ringing_timeout_secs=60, answered_max_secs=3600, final_linger_secs=5)
    c = LegCorrelator(cfg)
    c.feed(invite())
    assert c.expire(at(9)) == []
    c.feed(resp(8, 180, "Ringing", to_tag="tt-b"))  # before the setup deadline: ringing runs to 68
    assert c.expire(at(11)) == []  # the setup deadline at 10 no longer holds
    assert len(c) == 1
    (row,) = legs(c.expire(at(68.5)))
    assert (row.state, row.ended_at) == ("timeout", at(68))
    assert len(c) == 1  # lingers for late messages
    assert c.expire(at(72)) == []
    assert len(c) == 1
    assert c.expire(at(73.1)) == []
    assert len(c) == 0

    done = LegCorrelator(cfg)
    out = [
        o
        for m in (*answered_setup(), D.msg(62, "BYE", cseq=2, to_tag="tt-b", branch="z9hG4bK-bye"))
        for o in done.feed(m)
    ]
    assert last(out).state == "completed"
    assert done.expire(at(66.9)) == []
    assert len(done) == 1
    assert done.expire(at(67.1)) == []
    assert len(done) == 0


def test_expire_looks_only_at_due_legs_among_many() -> None:
    cfg = CallLegsConfig(setup_timeout_secs=10, ringing_timeout_secs=60, answered_max_secs=3600, final_linger_secs=5)
    c = LegCorrelator(cfg)
    for i in range(2000):
        d = Dialog(call_id=f"held-{i}")
        c.feed(d.msg(i / 100, "INVITE", codecs=OFFER))
        c.feed(d.msg(i / 100 + 1, "INVITE", status=200, reason="OK", to_tag="tt", src=SBC, dst=CALLER))
    late = Dialog(call_id="late-1")
    c.feed(late.msg(0, "INVITE", codecs=OFFER))
    assert len(c) == 2001
    (row,) = legs(c.expire(at(10.5)))  # only the leg that never got an answer
    assert (row.call_id, row.state) == ("late-1", "timeout")
    # The answered legs time out one by one as their own deadlines (last message + 3600 s) pass.
    rows = legs(c.expire(at(3601 + 4.995)))
    assert [r.call_id for r in rows] == [f"held-{i}" for i in range(500)]
    assert all(r.state == "timeout" and r.ended_by == "system" for r in rows)


def test_row_values_are_the_table_columns_in_order() -> None:
    from schemas.tables import COLUMNS

    _, out = feed_all(answered_setup())
    row = last(out)
    values = row.values()
    names = [c[0] if isinstance(c, tuple) else c for c in COLUMNS["call_legs"]]
    assert list(LegRow._fields) == names
    assert len(values) == len(names)
    for name, value in zip(names, values, strict=True):
        assert value is getattr(row, name), name
    assert isinstance(row.nodes, tuple)  # an Array column: the store takes tuples (tests/store/test_arrow.py)
