"""Parser bugs the fuzzer found, each pinned by the input class that triggered it."""

from __future__ import annotations

import io
import struct

import pytest

from collectors.ami.events import envelope_from_fields, timestamp_us
from collectors.hep.pcap import PcapError, PcapReader
from collectors.queue_log.parse import QueueLogParser
from collectors.tail.translate import EnvelopeMaker, translate
from schemas.errors import DecodeError


@pytest.mark.parametrize("value", ["\u00b2", "1529939196.\u00b2", "\u0663\u0663", "1529939196.\u00b9\u00b9"])
def test_ami_timestamp_with_non_ascii_digits_is_not_a_time(value: str) -> None:
    # str.isdigit() accepts superscripts and other scripts' digits; int() refuses the superscripts
    assert timestamp_us({"Timestamp": value}) is None
    _, envelope = envelope_from_fields(
        {"Event": "Hangup", "Timestamp": value},
        node="pbx1",
        role="pbx",
        dialect="asterisk13",
        received_us=1_700_000_000_000_000,
        id_parts=("s", "1"),
    )
    assert b'"ts":"2023-11-14T22:13:20.000000Z"' in envelope


def test_ami_timestamp_still_read() -> None:
    assert timestamp_us({"Timestamp": "1529939196.123456"}) == 1_529_939_196_123_456


@pytest.mark.parametrize("digits", [13, 4301, 5000])
def test_queue_log_epoch_with_too_many_digits_is_a_decode_error(digits: int) -> None:
    line = "9" * digits + "|1.1|q1|SIP/1|CONNECT|1"
    with pytest.raises(DecodeError) as err:
        QueueLogParser("UTC").parse(line)
    assert err.value.reason == "time"
    # and the batch path dead-letters it without losing the good line beside it
    good = b"1366720340|1.1|q1|SIP/1|CONNECT|1"
    out = translate(
        [line.encode(), good], QueueLogParser("UTC"), EnvelopeMaker("queue_log", "pbx1", "pbx"), 1, component="t"
    )
    assert len(out.envelopes) == 1
    assert out.reasons == {"time": 1}


def _pcapng_with_idb_options(options: bytes) -> bytes:
    body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    shb = struct.pack("<II", 0x0A0D0D0A, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    idb = struct.pack("<HHI", 1, 0, 65535) + options
    return shb + struct.pack("<II", 1, 12 + len(idb)) + idb + struct.pack("<I", 12 + len(idb))


@pytest.mark.parametrize(
    "options",
    [
        struct.pack("<HH", 9, 1),  # if_tsresol whose value byte is missing
        struct.pack("<HH", 14, 8) + b"\x00" * 4,  # if_tsoffset with 4 of its 8 bytes
        struct.pack("<HH", 2, 200) + b"name",  # a name longer than the block
    ],
    ids=["tsresol", "tsoffset", "name"],
)
def test_pcapng_interface_option_past_its_block_is_a_pcap_error(options: bytes) -> None:
    with pytest.raises(PcapError) as err:
        list(PcapReader(io.BytesIO(_pcapng_with_idb_options(options))))
    assert err.value.reason == "corrupt"


def test_pcapng_interface_options_that_fit_are_read() -> None:
    options = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)  # if_tsresol 10^-9, end of options
    assert list(PcapReader(io.BytesIO(_pcapng_with_idb_options(options)))) == []
