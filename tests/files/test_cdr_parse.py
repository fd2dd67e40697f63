"""CDR parser on the Asterisk test suite's Master.csv files and on cdr_csv / cdr_custom layouts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from collectors.cdr.parse import BASE, CDR_CSV_LAYOUTS, CdrParser
from collectors.tail.csv_lines import split_csv
from schemas.bodies import CdrBody
from schemas.errors import DecodeError
from tests.files import BUGGY_CSV, GOOD_CSV, MASTER2_CSV, MASTER_CSV, corpus_file


def _rows(relative: str, parser: CdrParser | None = None) -> list[tuple[str, int | None, CdrBody]]:
    parser = parser or CdrParser(timezone="UTC")
    out = []
    for line in corpus_file(relative).read_text().splitlines():
        parsed = parser.parse(line)
        assert parsed is not None
        key, ts, body = parsed
        out.append((key, ts, CdrBody.model_validate(body)))
    return out


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1_000_000)


def test_master_csv_golden() -> None:
    rows = _rows(MASTER_CSV)
    assert [key for key, _, _ in rows] == ["1270167992.0", "1270168442.0"]  # no linkedid: the uniqueid
    for _, _, body in rows:
        assert (body.duration, body.billsec, body.disposition) == (7, 7, "ANSWERED")
        assert body.fields["amaflags"] == "DOCUMENTATION"
        assert body.fields["channel"] == "Console/dsp"
        assert (body.dst, body.src) == ("1", "")
        assert body.linkedid is None
        assert len(body.fields) == 18
    first = rows[0][2]
    assert (first.start, first.answer, first.end) == (
        "2010-04-02 00:26:32",
        "2010-04-02 00:26:32",
        "2010-04-02 00:26:39",
    )
    assert rows[0][1] == _us("2010-04-02 00:26:32")
    assert len(_rows(MASTER2_CSV)) == 1


def test_good_csv_quotes_and_dispositions() -> None:
    rows = _rows(GOOD_CSV)
    assert [body.disposition for _, _, body in rows] == ["ANSWERED", "ANSWERED", "FAILED", "NO ANSWER", "BUSY"]
    assert {body.fields["clid"] for _, _, body in rows} == {'"Test User" <test>'}  # doubled quotes undone
    assert (rows[1][2].duration, rows[1][2].billsec) == (5, 7)  # kept as written: billsec > duration in row 2
    assert {body.uniqueid for _, _, body in rows} == {"1231977075.0"}


def test_buggy_csv_is_a_decode_error_not_a_crash() -> None:
    text = corpus_file(BUGGY_CSV).read_text()
    assert text.endswith('"1231977075.0","\n')  # the userfield's quote is never closed
    with pytest.raises(DecodeError) as err:
        CdrParser().parse(text.rstrip("\n"))
    assert err.value.reason == "csv"


def test_local_time_follows_the_configured_zone() -> None:
    paris = _rows(MASTER_CSV, CdrParser(timezone="Europe/Paris"))[0][1]
    utc = _rows(MASTER_CSV)[0][1]
    assert paris is not None
    assert utc is not None
    assert utc - paris == 2 * 3600 * 1_000_000  # CEST in April: UTC+2


def _cdr_csv_line(*, answer: str = '"2024-01-27 16:16:40"', extra: str = "") -> str:
    return (
        '"acct","100","200","from-internal","""Alice"" <100>","PJSIP/100-00000001","PJSIP/200-00000002",'
        '"Dial","PJSIP/200,30,tT","2024-01-27 16:16:36",' + answer + ',"2024-01-27 16:16:51",15,11,'
        '"ANSWERED","DOCUMENTATION"' + extra
    )


def test_newcdrcolumns_21_columns() -> None:
    line = _cdr_csv_line(extra=',"1706372196.7","sip-call-id@10.0.0.1","peer","1706372196.5",42')
    key, ts, raw = CdrParser(timezone="UTC").parse(line)  # type: ignore[misc]
    body = CdrBody.model_validate(raw)
    assert key == "1706372196.5"  # linkedid
    assert (body.uniqueid, body.linkedid) == ("1706372196.7", "1706372196.5")
    assert (body.fields["sequence"], body.fields["peeraccount"]) == ("42", "peer")
    assert body.fields["userfield"] == "sip-call-id@10.0.0.1"
    assert body.fields["lastdata"] == "PJSIP/200,30,tT"  # a comma inside quotes
    assert ts == _us("2024-01-27 16:16:36")


def test_unanswered_call_has_a_bare_empty_answer() -> None:
    line = _cdr_csv_line(answer="", extra=',"1706372196.7",""').replace('"ANSWERED"', '"NO ANSWER"')
    assert ',"2024-01-27 16:16:36",,"2024-01-27 16:16:51",' in line
    _, _, raw = CdrParser(timezone="UTC").parse(line)  # type: ignore[misc]
    body = CdrBody.model_validate(raw)
    assert body.answer is None
    assert body.fields["answer"] == ""
    assert (body.start, body.end, body.disposition) == ("2024-01-27 16:16:36", "2024-01-27 16:16:51", "NO ANSWER")


@pytest.mark.parametrize("count", sorted(CDR_CSV_LAYOUTS))
def test_layout_by_column_count(count: int) -> None:
    names = CDR_CSV_LAYOUTS[count]
    assert names[:16] == BASE
    values = [f"v{i}" for i in range(count)]
    for name in ("start", "answer", "end"):
        values[names.index(name)] = "2024-01-27 16:16:36"
    values[names.index("duration")] = "15"
    values[names.index("billsec")] = "11"
    line = ",".join(f'"{v}"' if not v.isdigit() else v for v in values)
    _, _, raw = CdrParser().parse(line)  # type: ignore[misc]
    body = CdrBody.model_validate(raw)
    assert list(body.fields) == list(names)
    assert body.uniqueid == (values[names.index("uniqueid")] if "uniqueid" in names else "")
    assert (body.duration, body.billsec) == (15, 11)


def test_a_count_no_layout_has_is_refused() -> None:
    with pytest.raises(DecodeError) as err:
        CdrParser().parse(",".join(['"x"'] * 15))
    assert err.value.reason == "columns"


def test_cdr_custom_mapping() -> None:
    # cdr_custom's sample Master.csv mapping, plus a sipcallid column the dialplan fills.
    columns = (
        *("clid", "src", "dst", "dcontext", "channel", "dstchannel", "lastapp", "lastdata", "start", "answer"),
        *("end", "duration", "billsec", "disposition", "amaflags", "accountcode", "uniqueid", "userfield"),
        *("sequence", "sipcallid"),
    )
    parser = CdrParser(columns, timezone="UTC")
    line = (
        '"""Bob"" <300>","300","400","default","PJSIP/300-1","PJSIP/400-2","Dial","PJSIP/400","2024-02-01 10:00:00",'
        '"2024-02-01 10:00:03","2024-02-01 10:01:03","63","60","ANSWERED","BILLING","","1706781600.3","","7",'
        '"a84b4c76e66710@pc33.example.com"'
    )
    key, ts, raw = parser.parse(line)  # type: ignore[misc]
    body = CdrBody.model_validate(raw)
    assert key == "1706781600.3"
    assert body.fields["sipcallid"] == "a84b4c76e66710@pc33.example.com"
    assert (body.duration, body.billsec, body.fields["clid"]) == (63, 60, '"Bob" <300>')
    assert ts == _us("2024-02-01 10:00:00")
    with pytest.raises(DecodeError) as err:
        parser.parse(",".join(['"x"'] * 18))
    assert err.value.reason == "columns"


def test_numbers_out_of_range_or_text_become_none() -> None:
    line = _cdr_csv_line(extra=',"1.1",""').replace(",15,11,", ",99999999999999999999999,abc,")
    _, _, raw = CdrParser().parse(line)  # type: ignore[misc]
    body = CdrBody.model_validate(raw)
    assert (body.duration, body.billsec) == (None, None)
    assert body.fields["duration"] == "99999999999999999999999"


@pytest.mark.parametrize(
    "line",
    ['"a","b', '"a"b,"c"', '"a","b"x', 'x,"unterminated'],
)
def test_bad_quoting_is_a_csv_error(line: str) -> None:
    with pytest.raises(DecodeError) as err:
        split_csv(line)
    assert err.value.reason == "csv"


def test_time_falls_back_to_end_then_answer() -> None:
    parser = CdrParser(timezone="UTC")
    no_start = _cdr_csv_line(extra=',"1.1",""').replace('"2024-01-27 16:16:36",', '"",', 1)
    _, ts, _ = parser.parse(no_start)  # type: ignore[misc]
    assert ts == _us("2024-01-27 16:16:51")
    nothing = no_start.replace('"2024-01-27 16:16:40"', '""').replace('"2024-01-27 16:16:51"', '""')
    _, ts, raw = parser.parse(nothing)  # type: ignore[misc]
    assert ts is None  # the collector then stamps the time it read the line
    assert CdrBody.model_validate(raw).start is None
