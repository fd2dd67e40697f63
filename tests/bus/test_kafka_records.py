"""The Kafka consumer's record conversion: the same :class:`Record` values as the dataclass builds."""

from __future__ import annotations

import dataclasses

from aiokafka.structs import ConsumerRecord

from callscope.bus.base import Record
from callscope.bus.kafka.consumer import records_of


def _consumer_record(offset: int, key: bytes | None, value: bytes | None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="callscope.sip",
        partition=7,
        offset=offset,
        timestamp=1_700_000_000_000 + offset,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key) if key is not None else -1,
        serialized_value_size=len(value) if value is not None else -1,
        headers=(),
    )


def test_records_equal_what_the_dataclass_builds() -> None:
    batch = [
        _consumer_record(10, b"call-1@host", b'{"v":1}'),
        _consumer_record(11, None, b"x" * 2000),
        _consumer_record(12, b"call-2@host", None),  # a tombstone reads as an empty value
    ]
    got = records_of("callscope.sip", 7, batch)
    want = [Record("callscope.sip", 7, r.offset, r.key, r.value or b"", r.timestamp) for r in batch]
    assert got == want
    assert [hash(r) for r in got] == [hash(r) for r in want]
    assert got[0].tp == want[0].tp
    assert got[2].value == b""


def test_records_fill_every_field_of_record() -> None:
    # A field added to Record must be filled by records_of too: this fails until it is.
    names = {f.name for f in dataclasses.fields(Record)}
    assert names == {"topic", "partition", "offset", "key", "value", "timestamp_ms", "envelope"}
    (rec,) = records_of("t", 0, [_consumer_record(0, b"k", b"v")])
    for name in names:
        getattr(rec, name)  # AttributeError for a slot left empty
    assert rec.envelope is None  # nothing decoded yet
