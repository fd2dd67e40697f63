"""CEL parser on the Asterisk test suite's CELMaster files (cel_custom.conf's column order)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from collectors.cel.config import DEFAULT_COLUMNS, CelConfig
from collectors.cel.parse import CelParser, parse_extra
from schemas.bodies import CelBody
from schemas.errors import DecodeError
from tests.files import CEL1_CSV, CEL2_CSV, CEL_CUSTOM_CONF, corpus_file

# cel_custom.conf writes ${CSV_QUOTE(${X})} per column; the names the parser uses for each.
_CONF_NAMES = {
    "eventtype": "eventtype",
    "eventtime": "eventtime",
    "CALLERID(name)": "cid_name",
    "CALLERID(num)": "cid_num",
    "CALLERID(ANI)": "cid_ani",
    "CALLERID(RDNIS)": "cid_rdnis",
    "CALLERID(DNID)": "cid_dnid",
    "CHANNEL(exten)": "exten",
    "CHANNEL(context)": "context",
    "CHANNEL(channame)": "channame",
    "CHANNEL(appname)": "appname",
    "CHANNEL(appdata)": "appdata",
    "CHANNEL(amaflags)": "amaflags",
    "CHANNEL(accountcode)": "accountcode",
    "CHANNEL(uniqueid)": "uniqueid",
    "CHANNEL(linkedid)": "linkedid",
    "BRIDGEPEER": "bridgepeer",
    "CHANNEL(userfield)": "userfield",
    "userdeftype": "userdeftype",
    "eventextra": "eventextra",
}


def _events(relative: str) -> list[tuple[str, int | None, CelBody]]:
    parser = CelParser(timezone="UTC")
    out = []
    for line in corpus_file(relative).read_text().splitlines():
        parsed = parser.parse(line)
        assert parsed is not None
        key, ts, body = parsed
        out.append((key, ts, CelBody.model_validate(body)))
    return out


def test_default_mapping_is_the_test_suites_cel_custom_conf() -> None:
    text = corpus_file(CEL_CUSTOM_CONF).read_text()
    mapping = text.split("=>", 1)[1]
    variables = re.findall(r"\$\{CSV_QUOTE\(\$\{([^}]+)\}\)\}", mapping)
    assert tuple(_CONF_NAMES[v] for v in variables) == DEFAULT_COLUMNS == CelConfig().columns


def test_celmaster1_one_call_three_channels() -> None:
    events = _events(CEL1_CSV)
    assert len(events) == 16
    assert Counter(b.eventtype for _, _, b in events) == {
        "CHAN_START": 3,
        "ANSWER": 4,
        "BRIDGE_START": 1,
        "BRIDGE_END": 1,
        "HANGUP": 3,
        "CHAN_END": 3,
        "LINKEDID_END": 1,
    }
    assert {key for key, _, _ in events} == {"1335310195.0"}  # every event keyed by the call's linkedid
    assert {b.uniqueid for _, _, b in events} == {"1335310195.0", "1335310195.1", "1335310195.2"}
    assert events[0][1] == 1335310195_513823  # eventtime epoch.usec is the envelope time
    assert events[-1][2].eventtype == "LINKEDID_END"
    hangups = [(b.channame, b.extra) for _, _, b in events if b.eventtype == "HANGUP"]
    assert hangups == [
        ("Local/x@default-1545;2", "16,dialplan/builtin,"),
        ("Local/x@default-1545;1", "16,,"),
        ("TinCan/string", "16,,ANSWER"),
    ]
    bridge = next(b for _, _, b in events if b.eventtype == "BRIDGE_START")
    assert bridge.fields["bridgepeer"] == "Local/x@default-1545;1"
    assert bridge.fields["amaflags"] == "3"
    bridged = [ts or 0 for _, ts, b in events if b.eventtype in ("BRIDGE_START", "BRIDGE_END")]
    assert 17 <= (bridged[1] - bridged[0]) / 1e6 < 18  # bridged ~17 s


def test_celmaster2_lacks_the_callers_chan_end() -> None:
    events = _events(CEL2_CSV)
    assert len(events) == 14
    ends = [b.channame for _, _, b in events if b.eventtype == "CHAN_END"]
    assert "TinCan/string" not in ends
    assert events[-1][2].eventtype == "LINKEDID_END"
    assert {key for key, _, _ in events} == {"1335310697.0"}


def _line(eventtime: str = "1700000000.000001", extra: str = "") -> str:
    values = dict.fromkeys(DEFAULT_COLUMNS, "")
    values.update(
        eventtype="HANGUP",
        eventtime=eventtime,
        channame="PJSIP/100-00000001",
        uniqueid="1700000000.1",
        linkedid="1700000000.0",
        userfield="a84b4c76e66710@pc33.example.com",
        eventextra=extra,
    )
    return ",".join('"' + v.replace('"', '""') + '"' for v in values.values())


def test_json_extra_of_asterisk_12() -> None:
    extra = '{"hangupcause":16,"hangupsource":"PJSIP/100-00000001","dialstatus":"ANSWER"}'
    key, ts, raw = CelParser().parse(_line(extra=extra))  # type: ignore[misc]
    body = CelBody.model_validate(raw)
    assert body.extra == {"hangupcause": 16, "hangupsource": "PJSIP/100-00000001", "dialstatus": "ANSWER"}
    assert body.fields["eventextra"] == extra
    assert (key, ts) == ("1700000000.0", 1700000000_000001)
    assert body.fields["userfield"] == "a84b4c76e66710@pc33.example.com"


def test_eventtime_as_a_date_in_the_configured_zone() -> None:
    _, ts, _ = CelParser(timezone="UTC").parse(_line("2023-11-14 22:13:20"))  # type: ignore[misc]
    assert ts == 1700000000 * 1_000_000
    _, ts2, _ = CelParser(timezone="Europe/Paris").parse(_line("2023-11-14 23:13:20.5"))  # type: ignore[misc]
    assert ts2 == 1700000000 * 1_000_000 + 500_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", None), ("16,,ANSWER", "16,,ANSWER"), ('{"a":1}', {"a": 1}), ("{not json", "{not json"), ("[1]", "[1]")],
)
def test_parse_extra(text: str, expected: object) -> None:
    assert parse_extra(text) == expected


def test_errors() -> None:
    parser = CelParser()
    for line, reason in (
        (_line().replace('"HANGUP"', '""'), "eventtype"),
        (_line("yesterday"), "time"),
        ('"CHAN_START","1"', "columns"),
        (_line()[:-1], "csv"),
    ):
        with pytest.raises(DecodeError) as err:
            parser.parse(line)
        assert err.value.reason == reason, line


def test_custom_mapping_with_channel_and_extra_columns() -> None:
    parser = CelParser(("eventtype", "eventtime", "channel", "uniqueid", "linkedid", "extra"), timezone="UTC")
    key, ts, raw = parser.parse('"CHAN_START","1700000000","SIP/a-1","1.1","","{""x"":""y""}"')  # type: ignore[misc]
    body = CelBody.model_validate(raw)
    assert (key, ts, body.channame, body.extra, body.linkedid) == (
        "1.1",
        1700000000 * 10**6,
        "SIP/a-1",
        {"x": "y"},
        None,
    )
