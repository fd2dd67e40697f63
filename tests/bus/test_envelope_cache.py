"""callscope.bus.envelopes: a record's envelope is validated once per process and shared by its processors."""

from __future__ import annotations

from typing import Any, cast

import orjson
import pytest

from callscope.bus.base import Record
from callscope.bus.envelopes import SHARED, EnvelopeCache
from callscope.bus.memory import MemoryBus
from callscope.settings import MemoryBusConfig, ProcessorConfig, StoreConfig
from callscope.store.client import Store
from callscope.telemetry import Telemetry
from processors.call_legs.app import CallLegsProcessor, CorrelatingShell
from processors.events.app import EventsProcessor
from processors.events.route import Rejected, route
from processors.media_quality.app import MediaQualityProcessor
from processors.registrations.app import RegistrationsProcessor
from schemas.envelope import ENVELOPE_ADAPTER, SipEnvelope
from schemas.topics import topic_for
from schemas.wire import WireSipEnvelope, to_model
from tests.samples import sample_envelope

SIP = topic_for("sip")


def _sip(n: int = 1, **body: Any) -> bytes:
    doc = sample_envelope("sip", id=f"sip-{n}")
    doc["body"].update(body)
    return orjson.dumps(doc)


def test_a_value_is_validated_once_and_equal_bytes_share_the_result() -> None:
    cache = EnvelopeCache()
    value = _sip()
    first = cache.decode(value)
    assert isinstance(first, WireSipEnvelope)  # a SIP envelope as the encoder writes it: msgspec's
    assert to_model(first) == ENVELOPE_ADAPTER.validate_json(value)
    assert cache.decode(bytes(bytearray(value))) is first  # another object with the same bytes (Kafka)
    assert (cache.hits, cache.misses) == (1, 1)
    assert cache.peek(value) is first


def test_invalid_values_fail_every_time_and_are_not_kept() -> None:
    cache = EnvelopeCache()
    bad = _sip(call_id=None)
    for _ in range(2):
        with pytest.raises(ValueError, match="call_id"):
            cache.decode(bad)
    with pytest.raises(ValueError, match="JSON"):
        cache.decode(b"{not json")
    assert len(cache) == 0
    assert cache.peek(bad) is None


def test_bounded_oldest_out_first() -> None:
    cache = EnvelopeCache(max_entries=2)
    values = [_sip(n) for n in range(3)]
    for value in values:
        cache.decode(value)
    assert len(cache) == 2
    assert cache.peek(values[0]) is None
    assert cache.peek(values[2]) is not None
    cache.decode(values[0])  # decoded again, as without a cache
    assert (cache.hits, cache.misses) == (0, 4)


def test_records_the_fast_path_refuses_are_read_by_pydantic() -> None:
    cache = EnvelopeCache()
    lax = _sip(cseq="5")  # pydantic's lax mode takes a numeric string for an int; msgspec does not
    env = cache.decode(lax)
    assert isinstance(env, SipEnvelope)
    assert env.body.cseq == 5
    ami = cache.decode(orjson.dumps(sample_envelope("ami")))
    assert ami.kind == "ami"
    assert (cache.hits, cache.misses) == (0, 2)


def test_unhashable_values_are_decoded_but_not_kept() -> None:
    cache = EnvelopeCache()
    value = bytearray(_sip())
    assert cache.decode(cast(bytes, value)).kind == "sip"
    assert len(cache) == 0
    assert cache.peek(cast(bytes, value)) is None


def _record(value: bytes, offset: int = 0) -> Record:
    return Record(SIP, 0, offset, None, value, 0)


def test_a_record_keeps_its_envelope_for_the_other_readers_however_far_behind() -> None:
    # Readers further apart than the value cache holds, taking the records in another order (the
    # processors' Kafka consumers take partitions in different orders): one decode per record.
    cache = EnvelopeCache(max_entries=2)
    records = [_record(_sip(i), i) for i in range(10)]
    first = [cache.decode(r.value, r) for r in records]
    assert cache.misses == 10
    assert [r.envelope for r in records] == first
    again = [cache.decode(r.value, r) for r in reversed(records)]
    assert again == list(reversed(first))
    assert all(a is b for a, b in zip(again, reversed(first), strict=True))
    assert (cache.misses, cache.hits) == (10, 10)
    assert cache.peek(records[0].value) is None  # out of the value cache, still on its record
    assert cache.peek(records[0].value, records[0]) is first[0]
    # Without the records, the same reading order decodes again.
    for r in records:
        cache.decode(r.value)
    assert cache.misses == 20


def test_a_record_that_fails_keeps_nothing_and_fails_for_every_reader() -> None:
    cache = EnvelopeCache()
    record = _record(_sip(call_id=None))
    for _ in range(2):
        with pytest.raises(ValueError, match="call_id"):
            cache.decode(record.value, record)
    assert record.envelope is None
    assert cache.peek(record.value, record) is None
    assert cache.misses == 0


def test_the_envelope_on_a_record_is_not_part_of_its_value() -> None:
    record = _record(_sip())
    plain = _record(record.value)
    EnvelopeCache().decode(record.value, record)
    assert record.envelope is not None
    assert record == plain  # compared, hashed and shown without it
    assert hash(record) == hash(plain)
    assert "envelope" not in repr(record)


async def test_the_memory_bus_gives_every_group_the_same_record_objects() -> None:
    # What lets the groups of a process share one decode per record (the shared Kafka fetch does
    # the same: tests/bus/test_kafka_shared_fetch.py).
    bus = MemoryBus(MemoryBusConfig(partitions=2), Telemetry())
    await bus.start()
    try:
        a = await bus.consumer("a", [SIP])
        b = await bus.consumer("b", [SIP])
        producer = bus.producer()
        await producer.send_many(SIP, [(f"k{i}".encode(), _sip(i)) for i in range(20)])
        got_a = await a.getmany(timeout_ms=1000, max_records=100)
        got_b = await b.getmany(timeout_ms=1000, max_records=100)
        assert len(got_a) == len(got_b) == 20
        by_offset = {(r.partition, r.offset): r for r in got_a}
        assert all(by_offset[r.partition, r.offset] is r for r in got_b)
        cache = EnvelopeCache(max_entries=1)
        for r in got_a:
            cache.decode(r.value, r)
        for r in got_b:
            cache.decode(r.value, r)
        assert (cache.misses, cache.hits) == (20, 20)
        # It keeps them until every group committed, though: the processors keep nothing on them.
        assert not a.carries_envelopes
    finally:
        await bus.stop()


def _shell(cls: type[CorrelatingShell], cache: EnvelopeCache) -> CorrelatingShell:
    telemetry = Telemetry()
    bus = MemoryBus(MemoryBusConfig(), telemetry)
    shell = cls(ProcessorConfig(), StoreConfig(), bus, cast(Store, object()), telemetry, node="t")
    shell.envelopes = cache
    return shell


def test_processors_of_a_process_share_one_cache_by_default() -> None:
    assert CorrelatingShell.envelopes is SHARED
    assert EventsProcessor.envelopes is SHARED


def test_the_events_route_decodes_through_the_cache() -> None:
    cache = EnvelopeCache()
    value = _sip()
    row = route(SIP, value, cache)
    assert not isinstance(row, Rejected)
    assert cache.peek(value) is not None
    assert route(SIP, value, cache) == row
    assert cache.hits == 1
    bad = _sip(call_id=None)
    assert isinstance(route(SIP, bad, cache), Rejected)


def test_call_legs_takes_what_the_events_processor_decoded() -> None:
    cache = EnvelopeCache()
    value = _sip(method="INVITE", is_request=True, from_tag="a1", to_tag=None)
    route(SIP, value, cache)
    shell = _shell(CallLegsProcessor, cache)
    shell._handle(Record(SIP, 0, 0, None, value, 0), None)
    assert (cache.hits, cache.misses) == (1, 1)
    assert shell._pending_count() > 0  # the INVITE opened a leg


@pytest.mark.parametrize(
    ("cls", "body", "wanted"),
    [
        (RegistrationsProcessor, {"method": "REGISTER"}, True),
        (RegistrationsProcessor, {"method": "register"}, True),
        (RegistrationsProcessor, {"method": "INVITE"}, False),
        (RegistrationsProcessor, {"method": None}, False),
        (MediaQualityProcessor, {"sdp": None, "vq_report": None}, False),
        (MediaQualityProcessor, {"sdp": {"media": []}, "vq_report": None}, True),
        (MediaQualityProcessor, {"sdp": None, "vq_report": {"CallID": "x"}}, True),
    ],
)
def test_prefilters_answer_the_same_from_a_decoded_envelope(
    cls: type[CorrelatingShell], body: dict[str, Any], wanted: bool
) -> None:
    cache = EnvelopeCache()
    shell = _shell(cls, cache)
    value = _sip(**body)
    record = Record(SIP, 0, 0, None, value, 0)
    assert shell._wants(SIP, value, record) is wanted  # nothing decoded yet: the JSON look
    cache.decode(value)
    assert shell._wants(SIP, value, record) is wanted  # from the envelope another processor decoded
    other = Record(SIP, 0, 0, None, bytes(bytearray(value)), 0)
    EnvelopeCache().decode(other.value, other)  # decoded by a reader of another cache: kept on the record
    assert shell._wants(SIP, other.value, other) is wanted
