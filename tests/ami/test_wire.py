"""The AMI wire framing: every corpus transcript, the protocol's corners, and fuzzing."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.ami.wire import AmiFramer, Banner, Block, Garbage, Item, WireError, encode_block, parse_wire
from tests.ami.corpus import PANORAMISK, transcript_names
from tests.corpus import corpus_file


def _kinds(items: list[Item]) -> Counter[str]:
    out: Counter[str] = Counter()
    for item in items:
        if isinstance(item, Block):
            out[item.kind] += 1
        elif isinstance(item, Banner):
            out["banner"] += 1
        else:
            out["garbage"] += 1
    return out


def _careful_count(text: str) -> Counter[str]:
    """An independent count: paragraphs between blank lines, classified by their first line's key.

    A first line that is glued to capture debris (``[218 bytes missing ...]Event: X``) counts as
    garbage plus a block; a banner counts as a banner and its paragraph goes on with the block.
    """
    out: Counter[str] = Counter()
    for para in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        lines = [line for line in para.split("\n") if line.strip()]
        if not lines:
            continue
        first = lines[0]
        if first.startswith("Asterisk Call Manager"):
            out["banner"] += 1
            if len(lines) == 1:
                continue
            first = lines[1]
        if "]" in first.partition(":")[0]:
            out["garbage"] += 1
            first = first.split("]", 1)[1]
        key = first.partition(":")[0].strip().lower()
        out[key if key in ("event", "response", "action") else "garbage"] += 1
    return out


# Blocks per transcript as the corpus MANIFEST describes them (events + responses + actions).
_MANIFEST_BLOCKS = {"agent_loggued_in.yaml": 163, "agent_not_in_pause.yaml": 61, "originate_with_events.yaml": 750}


@pytest.mark.parametrize("name", transcript_names())
def test_every_transcript_parses_to_the_careful_count(name: str) -> None:
    path = corpus_file(f"{PANORAMISK}/{name}")
    items = parse_wire(path.read_bytes())
    counts = _kinds(items)
    assert counts == _careful_count(path.read_text()), name
    if name in _MANIFEST_BLOCKS:
        assert counts["event"] + counts["response"] + counts["action"] == _MANIFEST_BLOCKS[name]
    # LF-only fixtures and their CRLF form (what Asterisk really sends) parse the same.
    crlf = path.read_bytes().replace(b"\n", b"\r\n")
    assert [_strip(i) for i in parse_wire(crlf)] == [_strip(i) for i in items]


def _strip(item: Item) -> object:
    return (type(item).__name__, item.error.reason) if isinstance(item, Garbage) else item


def test_capture_gaps_are_garbage_and_the_glued_event_is_kept() -> None:
    items = parse_wire(corpus_file(f"{PANORAMISK}/agent_loggued_in.yaml").read_bytes())
    garbage = [i for i in items if isinstance(i, Garbage)]
    assert [g.raw for g in garbage] == [b"[218 bytes missing in capture file]", b"[1613 bytes missing in capture file]"]
    assert all(isinstance(g.error, WireError) and g.error.reason == "garbage" for g in garbage)
    after = items[items.index(garbage[0]) + 1]
    assert isinstance(after, Block)
    assert after.name == "Newexten"
    assert after.fields["Extension"] == "*30402"
    assert after.fields["Uniqueid"] == "1409169987.2"
    # An Action key inside an event (UserEvent carries "Action: UserEvent") is a field, not a block.
    user = next(i for i in items if isinstance(i, Block) and i.name == "UserEvent")
    assert user.fields["Action"] == "UserEvent"
    assert user.fields["UserEvent"] == "AgentLogin"


def test_banner_then_blocks_without_a_blank_line() -> None:
    items = parse_wire(corpus_file(f"{PANORAMISK}/login_ok.yaml").read_bytes())
    assert items[0] == Banner("Asterisk Call Manager/1.3", "1.3")
    action, response, event = items[1:]
    assert isinstance(action, Block)
    assert action.kind == "action"
    assert action.name == "login"
    assert action.get("Secret") == "yyyyyyyyyyyy"  # keys case-insensitive for lookups, kept as sent
    assert "secret" in action.fields
    assert isinstance(response, Block)
    assert response.fields["Message"] == "Authentication accepted"
    assert isinstance(event, Block)
    assert event.name == "FullyBooted"
    banner = parse_wire(corpus_file(f"{PANORAMISK}/login_md5.yaml").read_bytes())[0]
    assert banner == Banner("Asterisk Call Manager/7.0.3", "7.0.3")


def test_command_output_until_end_command() -> None:
    items = parse_wire(corpus_file(f"{PANORAMISK}/rasterisk_command.yaml").read_bytes())
    response = items[1]
    assert isinstance(response, Block)
    assert response.name == "Follows"
    assert response.fields == {"Response": "Follows", "Privilege": "Command", "ActionID": "generated_id"}
    assert response.output is not None
    assert response.output.splitlines()[1:] == ["0 active channels", "0 active calls", "2 calls processed"]
    # Output lines that look like "Key: value", blank lines, and the marker glued to the last line.
    text = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: 7\r\nName: value\r\n\r\nlast line--END COMMAND--\r\n\r\n"
        b"Event: Next\r\n\r\n"
    )
    first, second = parse_wire(text)
    assert isinstance(first, Block)
    assert first.output == "Name: value\n\nlast line"
    assert first.fields == {"Response": "Follows", "Privilege": "Command", "ActionID": "7"}
    assert isinstance(second, Block)
    assert second.name == "Next"


def test_command_output_without_its_end_marker_stops_at_the_next_block() -> None:
    items = parse_wire(b"Response: Follows\nActionID: 1\nsome output\n\nEvent: Hangup\nUniqueid: 1.1\n\n")
    first, second = items
    assert isinstance(first, Block)
    assert first.output == "some output"
    assert not first.complete
    assert isinstance(second, Block)
    assert second.name == "Hangup"
    assert second.fields["Uniqueid"] == "1.1"


def test_empty_values_repeated_keys_and_colons_in_values() -> None:
    text = (
        b"Event: VarSet\r\nValue: \r\nEmpty:\r\nVariable: a\r\nVariable: b\r\nAppData: x: y: z\r\nKey:nospace\r\n\r\n"
    )
    (block,) = parse_wire(text)
    assert isinstance(block, Block)
    assert block.fields == {
        "Event": "VarSet",
        "Value": "",
        "Empty": "",
        "Variable": "a\nb",
        "AppData": "x: y: z",
        "Key": "nospace",
    }
    assert encode_block(block.fields) == (
        b"Event: VarSet\r\nValue: \r\nEmpty: \r\nVariable: a\r\nVariable: b\r\nAppData: x: y: z\r\nKey: nospace\r\n\r\n"
    )


def test_garbage_between_and_inside_blocks() -> None:
    text = (
        b"\x00\xff binary junk\r\nmore junk\r\n\r\n"
        b"Event: A\r\nthis line is not a field\r\nKey: 1\r\n\r\n"
        b"Orphan: field without a block\r\n\r\n"
        b"junk]Response: Success\r\nActionID: 9\r\n\r\n"
    )
    items = parse_wire(text)
    assert [type(i).__name__ for i in items] == ["Garbage", "Garbage", "Block", "Garbage", "Garbage", "Block"]
    assert isinstance(items[2], Block)
    assert items[2].fields == {"Event": "A", "Key": "1"}
    assert isinstance(items[5], Block)
    assert items[5].name == "Success"
    assert items[5].fields["ActionID"] == "9"
    assert isinstance(items[4], Garbage)
    assert items[4].raw == b"junk]"


def test_bounds_cut_long_lines_and_big_blocks() -> None:
    framer = AmiFramer(max_line_bytes=100, max_fields=5)
    out = framer.feed(b"Event: A\r\nLong: " + b"x" * 500)
    out += framer.feed(b"x" * 500 + b"\r\nKey: 1\r\n\r\n")
    reasons = [i.error.reason for i in out if isinstance(i, Garbage)]
    assert reasons == ["line_too_long"]
    assert [i.fields for i in out if isinstance(i, Block)] == [{"Event": "A", "Key": "1"}]
    many = b"Event: B\r\n" + b"".join(f"K{i}: v\r\n".encode() for i in range(20)) + b"\r\nEvent: C\r\n\r\n"
    items = framer.feed(many)
    assert [i.error.reason for i in items if isinstance(i, Garbage)] == ["block_too_large"]
    assert [i.name for i in items if isinstance(i, Block)] == ["C"]
    assert not framer.pending


def test_incremental_feeding_in_every_split() -> None:
    data = corpus_file(f"{PANORAMISK}/agent_not_in_pause.yaml").read_bytes()
    whole = parse_wire(data)
    for step in (1, 7, 64, 1000):
        framer = AmiFramer()
        got: list[Item] = []
        for i in range(0, len(data), step):
            got += framer.feed(data[i : i + step])
        got += framer.close()
        assert got == whole


# -- property tests: only our DecodeError (as Garbage items), never an exception, never a hang -----------

_KEY = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True).filter(
    lambda k: k.lower() not in ("event", "response", "action")
)
_VALUE = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40).map(str.strip)
_BLOCK = st.tuples(
    st.sampled_from(["Event", "Response", "Action"]),
    st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,15}", fullmatch=True).filter(lambda n: n.lower() != "follows"),
    st.dictionaries(_KEY, _VALUE, max_size=8),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_BLOCK, max_size=8), st.booleans(), st.lists(st.integers(1, 50), max_size=20))
def test_round_trip(blocks: list[tuple[str, str, dict[str, str]]], crlf: bool, cuts: list[int]) -> None:
    data = b"".join(encode_block({kind: name, **fields}, crlf=crlf) for kind, name, fields in blocks)
    framer = AmiFramer()
    got: list[Item] = []
    pos = 0
    for cut in cuts:
        got += framer.feed(data[pos : pos + cut])
        pos += cut
    got += framer.feed(data[pos:]) + framer.close()
    assert all(isinstance(i, Block) for i in got)
    parsed = [(i.fields, i.kind) for i in got if isinstance(i, Block)]
    assert parsed == [({kind: name, **fields}, kind.lower()) for kind, name, fields in blocks]


_NOISE = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.sampled_from(
            [
                b"Event: X\r\n",
                b"Response: Follows\r\n",
                b"--END COMMAND--\r\n",
                b"\r\n",
                b"\n",
                b"Key: v\r\n",
                b"Asterisk Call Manager/1.3\r\n",
                b"[9 bytes missing]Event: Y\n",
                b"no colon here\n",
                b"\xff\xfe\x00",
                b"a" * 70,
            ]
        ),
        max_size=40,
    ).map(b"".join),
)


@settings(max_examples=500, deadline=None)
@given(_NOISE, st.lists(st.integers(1, 64), max_size=30))
def test_any_bytes_in_any_split_never_raise_and_split_does_not_matter(data: bytes, cuts: list[int]) -> None:
    whole = parse_wire(data, max_line_bytes=64, max_fields=8, max_output_bytes=128)
    framer = AmiFramer(max_line_bytes=64, max_fields=8, max_output_bytes=128)
    got: list[Item] = []
    pos = 0
    for cut in cuts:
        got += framer.feed(data[pos : pos + cut])
        pos += cut
    got += framer.feed(data[pos:]) + framer.close()
    assert [_strip(i) for i in got] == [_strip(i) for i in whole]
    for item in got:
        if isinstance(item, Block):
            assert len(item.fields) <= 8
            assert item.kind in ("event", "response", "action")
        elif isinstance(item, Garbage):
            assert isinstance(item.error, WireError)
            assert len(item.raw) <= 4096
    assert not framer.pending


def test_a_whole_transcript_as_one_line_is_bounded(tmp_path: Path) -> None:
    data = corpus_file(f"{PANORAMISK}/originate_with_events.yaml").read_bytes().replace(b"\n", b" ")
    items = parse_wire(data)
    assert [i.error.reason for i in items if isinstance(i, Garbage)] == ["line_too_long"]
    assert not any(isinstance(i, Block) for i in items)
