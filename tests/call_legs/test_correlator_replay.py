"""The correlator's whole output on rich generated traffic, pinned: rows, links, checkpoints, expiry.

The traffic is ``callscope.traffic`` (multi-hop relays, CANCEL, 487 and other failures, queues,
REGISTER and OPTIONS outside any dialog), perturbed by a seeded random walk: retransmissions (a
copy under another envelope id), bus replays (the same envelope again), neighbours swapped (out
of order), messages dropped (legs that time out), HEP correlation ids and correlation headers
(link rows), envelopes read by msgspec or by pydantic, ``rows()`` and ``expire(now)`` at uneven
intervals, and a restart half way (a fresh correlator restores every leg from its last row's
checkpoint and goes on).

:data:`GOLDEN` is the digest of everything the correlator returned, as computed by the
correlator before its CPU rework (``git show 2a2f7a7:processors/call_legs/correlator.py``): a
change of any row field, link, checkpoint byte or expiry moves it. Checkpoints are digested
without the ``fingerprint`` key that revision (and every one before 2026-11-26) wrote: the
leg's content digest, which is no longer in the checkpoint (a restore recomputes it) and which
the digest of the rows covers anyway. A deliberate change of output updates it (print
:func:`outputs` digest with the new code).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import msgspec
import orjson

from callscope.bus.envelopes import read
from callscope.settings import TopologyConfig
from callscope.traffic.generate import Stream
from collectors.hep.config import HepConfig
from collectors.hep.decode import decode as decode_hep
from collectors.hep.events import envelope_from_hep
from processors.call_legs import correlator
from processors.call_legs.config import CallLegsConfig
from schemas.wire import WireSipEnvelope, to_model

START_US = 1_709_287_200_000_000  # 2024-03-01T10:00:00Z
GOLDEN = "250afd334b299d5db85c7ab2289d57d8367f77c2407c65b1ce5a9ae4bd9bb168"


def envelopes(calls: int = 400, *, seed: int = 11) -> list[WireSipEnvelope]:
    """The SIP envelopes of ``calls`` generated calls, as the HEP collector writes them and a processor reads them."""
    topology, hep = TopologyConfig(), HepConfig()
    out: list[WireSipEnvelope] = []
    for item in Stream(seed=seed, start_us=START_US, calls=calls):
        if item.kind != "sip":
            continue
        _, _, value = envelope_from_hep(
            decode_hep(item.data), topology=topology, hep=hep, received_us=item.ts_us + 350, collector_node="t"
        )
        env = read(value)
        assert isinstance(env, WireSipEnvelope)
        out.append(env)
    return out


def perturbed(envs: list[WireSipEnvelope], *, seed: int = 3) -> Iterator[tuple[str, Any]]:
    """``("msg", envelope)``, ``("rows", None)``, ``("expire", now)`` and ``("restart", None)`` steps."""
    rng = random.Random(seed)
    envs = list(envs)
    for i in range(len(envs) - 1):  # neighbours swapped: out of order
        if rng.random() < 0.05:
            envs[i], envs[i + 1] = envs[i + 1], envs[i]
    restart_at = len(envs) // 2
    for i, original in enumerate(envs):
        if i == restart_at:
            yield "rows", None
            yield "restart", None
        r = rng.random()
        if r < 0.02:
            continue  # lost: its leg may time out
        body = original.body
        if r < 0.06:
            body = msgspec.structs.replace(body, correlation_id=f"hep-{body.call_id}" if r < 0.04 else "other@x")
        elif r < 0.09:
            body = msgspec.structs.replace(body, correlation={"x-cid": f"up-{i % 7}", "x-other": ""})
        elif r < 0.10:
            body = msgspec.structs.replace(body, session_id=f"sess-{i % 5}")
        env = msgspec.structs.replace(original, body=body)
        yield "msg", (to_model(env) if rng.random() < 0.25 else env)
        if body.is_request and body.method == "ACK" and body.to_tag and rng.random() < 0.3:
            # a re-INVITE in the dialog (its answer stays unseen)
            reinvite = msgspec.structs.replace(
                body, method="INVITE", cseq=(body.cseq or 0) + 10, via_branches=[f"z9hG4bK-re-{i}"]
            )
            yield "msg", msgspec.structs.replace(env, id=f"{env.id}-reinvite", body=reinvite)
        r = rng.random()
        if r < 0.04:
            yield "msg", env  # a replay: the same envelope id again
        elif r < 0.08:
            yield "msg", msgspec.structs.replace(env, id=f"{env.id}-re")  # a retransmission
        r = rng.random()
        if r < 0.05:
            yield "rows", None
        elif r < 0.08:
            yield "expire", env.ts + timedelta(seconds=rng.choice((0, 5, 40, 70, 400)))
        elif r < 0.0806:
            yield "expire", env.ts + timedelta(seconds=20_000)  # answered calls time out too
    yield "rows", None
    yield "expire", datetime(2100, 1, 1, tzinfo=UTC)


def comparable_checkpoint(checkpoint: str) -> str:
    """A checkpoint without the ``fingerprint`` key (the content digest revisions before 2026-11-26 kept there)."""
    data = orjson.loads(checkpoint)
    data.pop("fingerprint", None)
    return orjson.dumps(data).decode()


def outputs(module: ModuleType = correlator, calls: int = 400) -> tuple[str, dict[str, int]]:
    """The digest of all that ``module``'s correlator returns on the perturbed traffic, and counts."""
    config = CallLegsConfig(correlation_headers=("x-cid", "x-other"), seen_ids_max=16)
    c = module.LegCorrelator(config)
    digest = hashlib.sha256()
    counts = {"messages": 0, "rows": 0, "links": 0, "expired": 0, "restored": 0}
    checkpoints: dict[str, str] = {}

    def emit(kind: str, items: list[Any]) -> None:
        for o in items:
            values = o.values()
            if isinstance(o, module.LegRow):
                checkpoints[o.leg_id] = o.checkpoint
                values = (*values[:-1], comparable_checkpoint(o.checkpoint))
                counts["rows"] += 1
            else:
                counts["links"] += 1
            digest.update(orjson.dumps([kind, values]))

    for step, arg in perturbed(envelopes(calls)):
        if step == "msg":
            counts["messages"] += 1
            emit("touch", c.touch(arg))
        elif step == "rows":
            emit("rows", c.rows())
        elif step == "expire":
            out = c.expire(arg)
            counts["expired"] += len(out)
            emit(f"expire {arg.isoformat()}", out)
        else:
            c = module.LegCorrelator(config)
            for checkpoint in checkpoints.values():
                c.restore(checkpoint)
                counts["restored"] += 1
            digest.update(orjson.dumps(sorted(c.leg_ids())))
    digest.update(orjson.dumps([c.ignored, len(c)]))
    return digest.hexdigest(), counts


def test_output_is_pinned_on_rich_traffic() -> None:
    digest, counts = outputs()
    assert counts["rows"] > 1000, counts
    assert counts["links"] > 50, counts
    assert counts["expired"] > 10, counts
    assert digest == GOLDEN, counts


def test_checkpoint_holds_the_fields_only() -> None:
    c = correlator.LegCorrelator()
    rows = []
    for env in envelopes(5):
        c.touch(env)
        rows.extend(c.rows())
    assert rows
    names = list(correlator._Leg.__dataclass_fields__)
    for row in rows:
        data = orjson.loads(row.checkpoint)
        assert list(data) == names  # no private attribute (leading underscore) in the checkpoint
        leg = correlator._Leg(**data)
        assert leg.leg_id == row.leg_id


def test_a_new_leg_is_the_dataclass_default() -> None:
    made = correlator._Leg(call_id="c", from_tag="f", first_ts=5, last_ts=5)
    new = correlator._Leg.new("c", "f", 5)
    assert vars(new) == vars(made)
    assert list(vars(new)) == list(vars(made))  # the checkpoint's key order
    other = correlator._Leg.new("c", "g", 6)
    for f in dataclasses.fields(correlator._Leg):
        if f.default_factory is not dataclasses.MISSING:  # mutable defaults: fresh ones, never shared
            assert getattr(new, f.name) is not getattr(other, f.name), f.name
    assert new._datetimes is not other._datetimes
    assert orjson.dumps(new) == orjson.dumps(made)
