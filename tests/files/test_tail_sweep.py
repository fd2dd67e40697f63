"""Rotations the tailer did not see at the path: several between two looks (a storm, a backlog).

Each test rotates twice or more without the tailer looking, then polls: every line written
is read exactly once, the files rotated in between are found beside the path, and rotated
files that were already there (older, already read) are not read again.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from collectors.tail.files import OpenFile
from tests.files.tailing import TailHarness, assert_exactly_once, line


def _append(path: Path, start: int, stop: int) -> None:
    with path.open("ab") as fh:
        fh.write(b"".join(line(i) + b"\n" for i in range(start, stop)))


def _rename(path: Path, *, create: bool = True) -> None:
    """logrotate's numbered rename: shift ``.1`` -> ``.2`` ..., the file to ``.1``, a new empty file (``create``)."""
    siblings = sorted((p for p in path.parent.iterdir() if p.name.startswith(f"{path.name}.")), reverse=True)
    for p in siblings:
        p.rename(path.with_name(f"{path.name}.{int(p.suffix[1:]) + 1}"))
    path.rename(path.with_name(f"{path.name}.1"))
    if create:
        path.touch()


def _copytruncate(path: Path) -> None:
    siblings = sorted((p for p in path.parent.iterdir() if p.name.startswith(f"{path.name}.")), reverse=True)
    for p in siblings:
        p.rename(path.with_name(f"{path.name}.{int(p.suffix[1:]) + 1}"))
    shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    os.truncate(path, 0)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    (tmp_path / "logs").mkdir()
    return tmp_path / "logs" / "queue_log"


def _harness(log: Path, **config: object) -> TailHarness:
    return TailHarness(log, log.parent.parent / "checkpoint.json", **config).start()


@pytest.mark.parametrize("rotate", [_rename, _copytruncate], ids=["rename", "copytruncate"])
def test_rotations_between_two_looks_are_read_from_beside_the_path(log: Path, rotate: object) -> None:
    assert callable(rotate)
    _append(log, 0, 100)
    h = _harness(log)
    h.poll()
    _append(log, 100, 200)  # not read yet when the storm starts
    for k in range(2, 5):  # three rotations, each file written in between, no look
        rotate(log)
        _append(log, k * 100, k * 100 + 100)
    h.settle(500)
    assert_exactly_once(h.lines, 500)
    assert "rotation_recovered" in h.events
    h.stop()
    assert [f["offset"] for f in h.checkpoint()["files"]] == [log.stat().st_size]


def test_new_file_is_held_while_a_backlog_in_the_old_one_is_read(log: Path) -> None:
    """The file at the path is opened when the rotation is noticed, not after the old file's backlog."""
    _append(log, 0, 10)
    h = _harness(log, read_block_bytes=4096)
    h.poll()
    _append(log, 10, 2000)  # ~100 KB: many blocks still to read in the renamed file
    _rename(log)
    _append(log, 2000, 2100)
    chunk = h.tailer.read(time.monotonic())  # notices the rotation, returns the first block of the old file
    assert chunk is not None
    h.tailer.commit(chunk, time.monotonic())
    h.lines.extend(chunk.lines)
    _rename(log)  # the second file is rotated away while the first one's backlog is still being read
    _append(log, 2100, 2200)
    h.settle(2200)
    assert_exactly_once(h.lines, 2200)
    h.stop()


def test_a_file_truncated_before_any_of_it_was_delivered_is_read_from_its_copy(log: Path) -> None:
    _append(log, 0, 50)
    h = _harness(log)  # opened (fingerprinted), nothing delivered yet
    _copytruncate(log)
    _append(log, 50, 80)
    h.settle(80)
    assert_exactly_once(h.lines, 80)
    assert "copy_recovered" in h.events
    h.stop()


def test_rotated_files_already_beside_the_path_are_not_read_again(log: Path) -> None:
    old = log.with_name("queue_log.1")
    old.write_bytes(b"".join(line(i) + b"\n" for i in range(1000, 1050)))  # last week's, read long ago
    past = time.time() - 3600
    os.utime(old, (past, past))
    _append(log, 0, 100)
    h = _harness(log)
    h.poll()
    _rename(log)  # queue_log.1 -> .2, queue_log -> .1
    _append(log, 100, 150)
    _rename(log)
    _append(log, 150, 200)
    h.settle(200)
    assert_exactly_once(h.lines, 200)
    h.stop()


@pytest.mark.parametrize("created", [True, False], ids=["new-file-created", "path-missing"])
def test_a_file_renamed_away_empty_and_filled_later_by_the_logger_is_read(log: Path, created: bool) -> None:
    """Two renames between two looks, the second while the new file is still empty; the logger fills it later.

    A logger that keeps its descriptor (Asterisk's queue_log) reopens the path at the reload
    after a rotation; when the next rotation comes before it wrote anything, the lines due
    since are written into the renamed file afterwards. A tailer that looks in between finds
    that file beside the path, empty and never seen: it must hold it (and read it as it
    grows), not pass it over as having nothing to read. (With the path missing at that look,
    the sweep when a file is there again already found it.)
    """
    _append(log, 0, 100)
    h = _harness(log, rotated_linger_secs=0.5)
    h.poll()
    _rename(log)  # queue_log -> .1 and a new, empty queue_log: the tailer does not look
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)  # the logger's reload opens the new file ...
    try:
        _rename(log, create=created)  # ... and it is rotated (-> .1, the first file -> .2) still empty
        h.poll()  # the tailer looks now: a new file at the path (or none), the empty one beside it
        os.write(fd, b"".join(line(i) + b"\n" for i in range(100, 200)))  # the lines due, into the renamed file
    finally:
        os.close(fd)
    if created:
        time.sleep(0.2)  # the logger is held up before its reload (a loaded machine) ...
        h.poll()  # ... and the tailer looks at the still empty new file meanwhile
    _append(log, 200, 300)  # the logger reopened the path (creating it when it was missing)
    h.settle(300, within=5)
    assert_exactly_once(h.lines, 300)
    h.stop()


def test_a_rotation_shifting_the_names_during_the_sweep_hides_no_file(
    log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep lists the directory, then opens the files by name; a rotation renames them in between.

    Files are found by name and a rotation shifts every name (``.1`` -> ``.2`` ...): under
    ``.1`` the sweep then opens the next file, and the one it listed there is now under
    ``.2``, a name it passed over (it held a file the tailer holds). The new file at the path
    is written at once, so no later sweep looks back that far. Reading the directory again
    until two reads agree on every name finds the shifted file.
    """
    _append(log, 0, 100)
    h = _harness(log)
    h.poll()
    _rename(log)  # two rotations between two looks: the first file -> .2, the second -> .1
    _append(log, 100, 200)
    _rename(log)
    _append(log, 200, 300)
    real_open = OpenFile.open.__func__  # type: ignore[attr-defined]
    shifted: list[Path] = []

    def open_during_a_rotation(cls: type[OpenFile], path: Path, fp_bytes: int, now: float) -> OpenFile:
        if path.name != log.name and not shifted:  # the first file opened beside the path ...
            shifted.append(path)
            _rename(log)  # ... just after a third rotation: .2 -> .3, .1 -> .2, the file -> .1
            _append(log, 300, 310)  # and the new file written at once
        return real_open(cls, path, fp_bytes, now)  # type: ignore[no-any-return]

    monkeypatch.setattr(OpenFile, "open", classmethod(open_during_a_rotation))
    h.poll()
    monkeypatch.undo()
    assert shifted, "the sweep opened no file beside the path"
    _append(log, 310, 400)
    h.settle(400, within=5)
    assert_exactly_once(h.lines, 400)
    h.stop()
