"""Envelopes decoded once per process: the processors of one process share what a record decodes to.

The processors of a process run on one event loop and read the same records: every SIP message is
read by the events, call_legs, registrations, media_quality and health processors, and validating an
envelope is the largest single cost of reading one. :class:`EnvelopeCache` keeps the envelopes of the
most recent record values, keyed by the bytes themselves, so the first processor to read a record
validates it and the others take the result. SIP envelopes are read by msgspec when it can vouch for
them (:mod:`schemas.wire`, a :class:`~schemas.wire.WireSipEnvelope`), by pydantic otherwise.

A processor that passes the :class:`~callscope.bus.base.Record` as well finds the envelope on the
record itself when another processor decoded that record object. The shared Kafka fetch hands the
same record objects to every group of the process, each group taking the partitions in its own
order: readers thousands of records apart missed the value cache (each SIP record was decoded about
twice), while on the record it is found however far apart they are. The envelope lives as long as
the record, so processors pass records only where the consumer says they may carry it
(``Consumer.carries_envelopes``): not on the in-process bus, which keeps records until every group
committed them (its groups read in the same order, and the value cache serves them).

Sharing is safe: decoding is a pure function of the bytes, and the envelope and body models are
frozen. A value that fails validation is not kept (every reader gets the same error). The cache holds
at most ``max_entries`` envelopes (oldest out first, about 8 KB each for SIP); a processor lagging
further behind than that validates again, which changes nothing but the cost. Used from one event
loop: no lock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from callscope.bus.base import Record
from schemas.envelope import ENVELOPE_ADAPTER, Envelope
from schemas.wire import SIP_PREFIX, Decoded, decode_sip

# Processors poll up to 5000 records at a time (ProcessorConfig.poll_max_records) and take turns on
# the loop, so readers of a record are usually within one or two polls of each other.
DEFAULT_ENTRIES = 8192

#: ``ENVELOPE_ADAPTER.validate_json`` without the adapter's Python wrapper around pydantic-core's
#: validator (same result, same errors; the wrapper only passes its default arguments on).
validate_json: Callable[[bytes], Envelope] = ENVELOPE_ADAPTER.validator.validate_json


_set_envelope = vars(Record)["envelope"].__set__  # the slot, past the frozen dataclass's __setattr__


def read(value: bytes) -> Decoded:
    """One record's envelope, uncached: msgspec for a SIP envelope it vouches for, else pydantic."""
    if value[: len(SIP_PREFIX)] == SIP_PREFIX:
        env = decode_sip(value)
        if env is not None:
            return env
    return validate_json(value)


class EnvelopeCache:
    """Validated envelopes of recent record values (see the module)."""

    def __init__(self, max_entries: int = DEFAULT_ENTRIES) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[bytes, Decoded] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def decode(self, value: bytes, record: Record | None = None) -> Decoded:
        """The envelope of ``value`` (``record``'s value, when given: the envelope is kept on it too).

        Raises pydantic's ``ValidationError`` (a ``ValueError``) when invalid.
        """
        if record is not None:
            found = record.envelope
            if found is not None:
                self.hits += 1
                return found  # type: ignore[return-value]  # only this class sets it
        if type(value) is not bytes:  # bytearray, memoryview: not hashable, not kept
            return read(value)
        items = self._items
        env = items.get(value)
        if env is not None:
            self.hits += 1
        else:
            env = read(value)
            self.misses += 1
            if len(items) >= self.max_entries:
                items.popitem(last=False)
            items[value] = env
        if record is not None:
            _set_envelope(record, env)
        return env

    def peek(self, value: bytes, record: Record | None = None) -> Decoded | None:
        """The envelope of ``value`` (of ``record``) if a reader decoded it already, else None (validates nothing)."""
        if record is not None and record.envelope is not None:
            return record.envelope  # type: ignore[return-value]  # only this class sets it
        return self._items.get(value) if type(value) is bytes else None

    def clear(self) -> None:
        self._items.clear()


# The cache of this process (what a processor uses unless given its own).
SHARED = EnvelopeCache()
