"""queue_log parser: the file layout and the DB layout of Wazo's samples."""

from __future__ import annotations

import pytest

from collectors.queue_log.parse import QueueLogParser
from schemas.bodies import QueueLogBody
from schemas.errors import DecodeError
from tests.files import wazo_rows


def _parse(line: str, zone: str = "UTC") -> tuple[str, int | None, QueueLogBody]:
    parsed = QueueLogParser(zone).parse(line)
    assert parsed is not None
    key, ts, body = parsed
    return key, ts, QueueLogBody.model_validate(body)


def test_wazo_db_rows() -> None:
    rows = wazo_rows()
    assert len(rows) == 12
    parsed = [_parse(row, "America/Montreal") for row in rows]
    by_event = {body.event: (key, ts, body) for key, ts, body in parsed}
    assert set(by_event) == {
        "AGENTCALLBACKLOGIN",
        "UNPAUSE",
        "UNPAUSEALL",
        "AGENTCALLBACKLOGOFF",
        "JOINEMPTY",
        "CONNECT",
        "ENTERQUEUE",
        "COMPLETEAGENT",
        "FULL",
        "CLOSED",
        "ABANDON",
    }
    key, ts, enter = by_event["ENTERQUEUE"]
    assert key == "1341401601.24"
    assert (enter.queue, enter.agent, enter.data[:3]) == ("q1", "NONE", ["", "1000", "1"])
    # The table time is local (EDT, UTC-4): it lands two seconds after the uniqueid's epoch.
    assert ts == 1341401601_165823
    _, _, connect = by_event["CONNECT"]
    assert (connect.agent, connect.data[:3]) == ("Agent/3001", ["2", "1341401601.27", "1"])
    _, _, abandon = by_event["ABANDON"]
    assert abandon.data[:3] == ["1", "1", "6"]  # position, original position, wait
    _, _, logoff = by_event["AGENTCALLBACKLOGOFF"]
    assert (logoff.callid, logoff.data[:3]) == ("NONE", ["1002@pcm-dev", "43", "CommandLogoff"])
    for key, ts, body in parsed:
        assert key == body.callid
        assert ts is not None
        assert 0 <= ts / 1e6 - 1341343000 < 60_000  # all on 2012-07-03/04


@pytest.mark.parametrize(
    ("line", "event", "data"),
    [
        ("1700000000|1700000000.5|support|NONE|ENTERQUEUE||+33144556677|1", "ENTERQUEUE", ["", "+33144556677", "1"]),
        ("1700000010|1700000000.5|support|PJSIP/201|RINGNOANSWER|15000", "RINGNOANSWER", ["15000"]),
        ("1700000012|1700000000.5|support|PJSIP/202|CONNECT|12|1700000011.9|3", "CONNECT", ["12", "1700000011.9", "3"]),
        (
            "1700000100|1700000000.5|support|PJSIP/202|TRANSFER|300|default|12|88|1",
            "TRANSFER",
            ["300", "default", "12", "88", "1"],
        ),
        ("1700000000|NONE|support|NONE|QUEUESTART|", "QUEUESTART", [""]),
        ("1700000000|1700000000.6|support|NONE|FULL", "FULL", []),
    ],
)
def test_file_layout_variable_field_count(line: str, event: str, data: list[str]) -> None:
    key, ts, body = _parse(line)
    assert (body.event, body.data, key == body.callid) == (event, data, True)
    assert ts == int(line.split("|", 1)[0]) * 1_000_000


def test_table_printer_lines_are_not_records() -> None:
    parser = QueueLogParser("UTC")
    for line in (
        "   time   |  callid  | queuename | agent | event | data1 | data2 | data3 | data4 | data5",
        "----------+----------+-----------+-------+-------+-------+-------+-------+-------+------",
        "(13 rows)",
    ):
        assert parser.parse(line) is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1700000000|1.1|q", "fields"),
        ("1700000000|1.1|q|NONE|", "event"),
        ("1700000000|1.1|q|NONE|" + "X" * 65, "event"),
        ("yesterday|1.1|q|NONE|ENTERQUEUE", "time"),
        ("1700000000|1.1|q|NONE|E|" + "|".join(["d"] * 17), "fields"),
        ("²|1.1|q|NONE|ENTERQUEUE", "time"),
    ],
)
def test_errors(line: str, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        QueueLogParser("UTC").parse(line)
    assert err.value.reason == reason
