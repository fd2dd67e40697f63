"""The correlating shells' prefilters: records their core would ignore skip the full validation.

The events processor validates (and dead-letters) every envelope; the registrations and
media_quality shells only read, so they look at the canonical encoding's bytes first
(processors/prefilter.py).
"""

from __future__ import annotations

from typing import Any, cast

import orjson
import pytest

from callscope.bus.base import Record
from callscope.bus.memory import MemoryBus
from callscope.settings import MemoryBusConfig, ProcessorConfig, StoreConfig
from callscope.store.client import Store
from callscope.telemetry import Telemetry
from processors.call_legs.app import CorrelatingShell
from processors.media_quality.app import MediaQualityProcessor
from processors.registrations.app import RegistrationsProcessor
from schemas.topics import topic_for
from tests.samples import sample_envelope

SIP = topic_for("sip")
RTCP = topic_for("rtcp")


def _shell(cls: type[CorrelatingShell]) -> CorrelatingShell:
    telemetry = Telemetry()
    bus = MemoryBus(MemoryBusConfig(), telemetry)
    return cls(ProcessorConfig(), StoreConfig(), bus, cast(Store, object()), telemetry, node="t")


def _sip(**body: Any) -> bytes:
    doc = sample_envelope("sip", id="sip-1")
    doc["body"].update(body)
    return orjson.dumps(doc)


def _record(topic: str, value: bytes) -> Record:
    return Record(topic, 0, 0, None, value, 0)


def _wants(shell: CorrelatingShell, topic: str, value: bytes) -> bool:
    return shell._wants(topic, value, _record(topic, value))


def _errors(shell: CorrelatingShell) -> float:
    value = shell._telemetry.errors.labels(shell.name, "envelope")._value.get()
    return float(value)


@pytest.mark.parametrize(
    ("method", "wanted"), [("REGISTER", True), ("register", True), ("INVITE", False), (None, False)]
)
def test_registrations_reads_only_register(method: str | None, wanted: bool) -> None:
    shell = _shell(RegistrationsProcessor)
    assert _wants(shell, SIP, _sip(method=method)) is wanted


def test_media_quality_reads_rtcp_sdp_and_vq_reports() -> None:
    shell = _shell(MediaQualityProcessor)
    assert _wants(shell, RTCP, orjson.dumps(sample_envelope("rtcp", id="rtcp-1")))
    assert not _wants(shell, SIP, _sip(sdp=None, vq_report=None))
    assert _wants(shell, SIP, _sip(sdp={"media": []}, vq_report=None))
    assert _wants(shell, SIP, _sip(sdp=None, vq_report={"CallID": "x"}))


@pytest.mark.parametrize("cls", [RegistrationsProcessor, MediaQualityProcessor])
def test_unreadable_records_are_skipped_or_counted_never_raised(cls: type[CorrelatingShell]) -> None:
    shell = _shell(cls)
    # Skipped by the byte check (registrations: no REGISTER in it) or counted once validation fails
    # (media_quality: nothing says "no SDP"); never raised. The events processor dead-letters them.
    shell._handle(_record(SIP, b"not json"), None)
    shell._handle(_record(SIP, b"[1, 2]"), None)
    before = _errors(shell)
    assert before == (2.0 if cls is MediaQualityProcessor else 0.0)
    wanted_but_broken = b'{"v":1,"kind":"sip","body":{"method":"REGISTER","sdp":{"media":[]},'
    shell._handle(_record(SIP, wanted_but_broken), None)
    assert _errors(shell) == before + 1


def test_the_byte_checks_agree_with_the_decoded_fields() -> None:
    from processors.prefilter import may_carry_media, method_is

    sdps: tuple[dict[str, Any] | None, ...] = (None, {"media": []})
    for method in ("REGISTER", "register", "OPTIONS", "INVITE", "BYE", None):
        for sdp in sdps:
            value = _sip(method=method, sdp=sdp, vq_report=None, raw='x "method":"REGISTER" "sdp":null')
            assert method_is(value, b"register") is ((method or "").upper() == "REGISTER")
            assert method_is(value, b"options") is ((method or "").upper() == "OPTIONS")
            assert may_carry_media(value) is (sdp is not None)
