"""Lines -> envelopes: valid envelopes, stable ids, dead letters for bad lines; the batched CSV splitter."""

from __future__ import annotations

import base64

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.cdr.parse import CdrParser
from collectors.cel.parse import CelParser
from collectors.queue_log.parse import QueueLogParser
from collectors.tail.csv_lines import split_csv, split_csv_many
from collectors.tail.translate import EnvelopeMaker, LineParser, Translated, translate
from schemas.envelope import decode, event_id
from schemas.errors import DecodeError
from tests.files import CEL1_CSV, GOOD_CSV, MASTER_CSV, corpus_file, wazo_rows

RECEIVED = 1_800_000_000_000_000


def _translate(parser: LineParser, lines: list[bytes], node: str = "pbx1") -> Translated:
    return translate(lines, parser, EnvelopeMaker(parser.kind, node, "logic"), RECEIVED, component=parser.kind)


def test_every_corpus_line_is_a_valid_envelope() -> None:
    cases: list[tuple[LineParser, list[bytes], str]] = [
        (CdrParser(timezone="UTC"), corpus_file(MASTER_CSV).read_bytes().splitlines(), "cdr"),
        (CdrParser(timezone="UTC"), corpus_file(GOOD_CSV).read_bytes().splitlines(), "cdr"),
        (CelParser(timezone="UTC"), corpus_file(CEL1_CSV).read_bytes().splitlines(), "cel"),
        (QueueLogParser("America/Montreal"), [r.encode() for r in wazo_rows()], "queue_log"),
    ]
    for parser, lines, kind in cases:
        out = _translate(parser, lines)
        assert not out.deadletters, out.reasons
        assert len(out.envelopes) == len(lines)
        for (key, value), raw in zip(out.envelopes, lines, strict=True):
            env = decode(value)
            assert env.kind == kind
            assert (env.node, env.role) == ("pbx1", "logic")
            assert key == env.key.encode()
            assert env.id == event_id(kind, "pbx1", raw)  # the documented id: kind, node, the line's bytes
            assert env.received.timestamp() == RECEIVED / 1e6
            assert env.ts.year in (2009, 2010, 2012)  # the line's own time, not the read time


def test_ids_are_stable_and_per_node() -> None:
    lines = corpus_file(MASTER_CSV).read_bytes().splitlines()
    a = [decode(v).id for _, v in _translate(CdrParser(), lines).envelopes]
    b = [decode(v).id for _, v in _translate(CdrParser(), lines).envelopes]
    c = [decode(v).id for _, v in _translate(CdrParser(), lines, node="pbx2").envelopes]
    assert a == b
    assert len(set(a)) == 2
    assert set(a).isdisjoint(c)


def test_crlf_blank_and_latin1_lines() -> None:
    lines = [b"1700000000|1.1|q|NONE|ENTERQUEUE||Ren\xe9|1\r", b"", b"\r", b"1700000001|1.1|q|NONE|ABANDON|1|1|1"]
    out = _translate(QueueLogParser("UTC"), lines)
    assert out.skipped == 2
    bodies = [decode(v).body for _, v in out.envelopes]
    assert bodies[0].data == ["", "René", "1"]  # type: ignore[union-attr]
    assert decode(out.envelopes[0][1]).id == event_id("queue_log", "pbx1", lines[0][:-1])


def test_bad_lines_are_dead_lettered_with_reason_and_raw_bytes() -> None:
    lines = [
        b"1700000000|1.1|q|NONE|ENTERQUEUE||100|1",
        b"garbage",
        b"99999999999999|1.1|q|NONE|ENTERQUEUE||100|1",  # a time past year 9999
        b"1700000000|" + b"x" * 2000 + b"|q|NONE|ENTERQUEUE",  # a key over 1024 characters
        b"1700000002|1.1|q|NONE|CONNECT|1|2|3",
    ]
    out = _translate(QueueLogParser("UTC"), lines)
    assert len(out.envelopes) == 2
    assert out.reasons == {"time": 2, "key": 1}
    records = [orjson.loads(r) for r in out.deadletters]
    assert [base64.b64decode(r["raw_b64"]) for r in records] == lines[1:4]
    assert {r["component"] for r in records} == {"queue_log"}
    assert {r["node"] for r in records} == {"pbx1"}


def test_cel_extra_too_deep_to_encode_is_dead_lettered() -> None:
    deep = '{"a":' * 300 + "1" + "}" * 300  # valid JSON, deeper than orjson encodes (255)
    row = '"HANGUP","1700000000.1",' + '"",' * 17 + '"' + deep.replace('"', '""') + '"'
    good = '"HANGUP","1700000000.2",' + '"",' * 17 + '"16,,ANSWER"'
    out = _translate(CelParser(timezone="UTC"), [row.encode(), good.encode()])
    assert out.reasons == {"encode": 1}
    assert len(out.envelopes) == 1


def test_one_bad_csv_line_costs_no_other_line() -> None:
    good = corpus_file(GOOD_CSV).read_text().splitlines()
    lines = [good[0], 'x,"open', good[1], 'a"b,"c', good[2], '"unterminated', good[3], "", good[4]]
    results = [_outcome(r) for r in split_csv_many(lines)]
    assert results == [_split(line) for line in lines]
    assert [r[0] for r in results] == ["ok", "csv", "ok", "csv", "ok", "csv", "ok", "ok", "ok"]


def _outcome(value: list[str] | DecodeError) -> tuple[str, list[str]]:
    return (value.reason, []) if isinstance(value, DecodeError) else ("ok", value)


def _split(line: str) -> tuple[str, list[str]]:
    try:
        return "ok", split_csv(line)
    except DecodeError as exc:
        return exc.reason, []


_field = st.text(alphabet=st.sampled_from('ab,"\x00 é'), max_size=6)
_line = st.lists(st.one_of(_field, _field.map(lambda t: '"' + t.replace('"', '""') + '"')), max_size=6).map(",".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_line, st.text(alphabet=st.sampled_from('a,"\r'), max_size=8)), max_size=12))
def test_batched_split_equals_line_by_line(lines: list[str]) -> None:
    assert [_outcome(r) for r in split_csv_many(lines)] == [_split(line) for line in lines]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=20))
def test_only_decode_errors_come_out_of_any_bytes(lines: list[bytes]) -> None:
    for parser in (CdrParser(timezone="UTC"), CelParser(timezone="UTC"), QueueLogParser("UTC")):
        clean = [line.replace(b"\n", b"") for line in lines]
        out = _translate(parser, clean)
        n = len(out.envelopes) + len(out.deadletters) + out.skipped
        assert n == len(clean)
        for _, value in out.envelopes:
            decode(value)
