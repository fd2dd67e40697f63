"""Replay formats cdr, cel and queue_log: detection, the live collector's envelopes, configured mappings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from callscope.formats import FORMATS, Item, detect, use_collector_settings
from callscope.settings import load_settings
from collectors.cdr.parse import CdrParser
from collectors.tail.translate import EnvelopeMaker, translate
from schemas.envelope import decode
from tests.files import BUGGY_CSV, CEL2_CSV, MASTER2_CSV, MASTER_CSV, corpus_file


def _items(fmt: str, path: Path) -> list[Item]:
    return list(FORMATS[fmt].read(path, node="pbx1", role="logic"))


@pytest.fixture
def formats() -> Iterator[None]:
    saved = dict(FORMATS)
    yield
    FORMATS.clear()
    FORMATS.update(saved)


def test_replay_gives_the_live_collectors_ids() -> None:
    path = corpus_file(MASTER_CSV)
    items = _items("cdr", path)
    live = translate(
        path.read_bytes().splitlines(), CdrParser(), EnvelopeMaker("cdr", "pbx1", "logic"), 0, component="cdr"
    )
    assert [decode(i.envelope).id for i in items if i.envelope] == [decode(v).id for _, v in live.envelopes]
    assert [i.key for i in items] == ["1270167992.0", "1270168442.0"]
    again = _items("cdr", path)
    assert [i.envelope for i in again] == [i.envelope for i in items]  # received = the line's time: identical
    env = decode(items[0].envelope or b"")
    assert env.received == env.ts


def test_truncated_file_and_its_last_line(tmp_path: Path) -> None:
    items = _items("cdr", corpus_file(BUGGY_CSV))
    assert len(items) == 1
    assert items[0].error is not None
    assert items[0].error.reason == "csv"
    no_newline = tmp_path / "Master.csv"
    no_newline.write_bytes(corpus_file(MASTER2_CSV).read_bytes().rstrip(b"\n"))
    assert [i.key for i in _items("cdr", no_newline)] == ["1270167992.0"]  # replay takes the last line as it is


def test_detection_is_by_content(tmp_path: Path) -> None:
    assert detect(corpus_file(CEL2_CSV)) is FORMATS["cel"]
    custom = tmp_path / "custom.csv"
    custom.write_text('"""Bob"" <300>","300","400","2024-02-01 10:00:00","63","ANSWERED","1706781600.3"\n')
    assert detect(custom) is None  # a cdr_custom layout: --format cdr, with its columns configured
    prose = tmp_path / "notes.txt"
    prose.write_text("queue_log samples | see the docs\n")
    assert detect(prose) is None


def test_configured_mapping_is_used_for_replay(tmp_path: Path, formats: None) -> None:
    del formats
    custom = tmp_path / "custom.csv"
    custom.write_text('"""Bob"" <300>","300","400","2024-02-01 10:00:00","63","ANSWERED","1706781600.3"\n')
    default = _items("cdr", custom)
    assert default[0].error is not None
    assert default[0].error.reason == "columns"
    columns = ["clid", "src", "dst", "start", "duration", "disposition", "uniqueid"]
    settings = load_settings(None, {"collectors": {"cdr": {"columns": columns, "timezone": "UTC"}}})
    use_collector_settings(settings.collectors)
    items = _items("cdr", custom)
    assert items[0].error is None
    env = decode(items[0].envelope or b"")
    assert env.key == "1706781600.3"
    assert env.ts.isoformat() == "2024-02-01T10:00:00+00:00"
    assert env.body.duration == 63  # type: ignore[union-attr]
