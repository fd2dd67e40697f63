"""The shared tailer on real files: growth, rotations during writes, truncation, restarts.

Every test writes distinct lines and compares the exact multiset read with what was
written: nothing lost, nothing read twice.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import orjson
import pytest

from tests.files.tailing import TailHarness, Writer, assert_exactly_once, line


def _append(path: Path, start: int, stop: int, width: int = 0) -> None:
    with path.open("ab") as fh:
        fh.write(b"".join(line(i, width) + b"\n" for i in range(start, stop)))


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "queue_log"


def _harness(log: Path, **config: object) -> TailHarness:
    return TailHarness(log, log.parent.parent / "checkpoints" / "queue_log.json", **config)


def test_reads_in_blocks_and_waits_for_the_newline(log: Path) -> None:
    log.parent.mkdir()
    _append(log, 0, 500, width=90)  # ~60 KB: many blocks, lines cut at block edges
    h = _harness(log, read_block_bytes=4096).start()
    h.poll()
    assert_exactly_once(h.lines, 500, width=90)
    with log.open("ab") as fh:
        fh.write(b"1700000999|partial|q|NONE|CONN")
    assert h.poll() == 0  # no newline yet: nothing delivered
    committed = log.stat().st_size - len(b"1700000999|partial|q|NONE|CONN")
    assert h.checkpoint()["files"][0]["offset"] == committed
    with log.open("ab") as fh:
        fh.write(b"ECT|1|2|3\n")
    h.poll()
    assert h.lines[-1] == b"1700000999|partial|q|NONE|CONNECT|1|2|3"
    assert h.checkpoint()["files"][0]["offset"] == log.stat().st_size
    h.stop()


ROTATE_AT = (800, 1600, 2400)  # lines written when each of the three rotations is due


@pytest.mark.parametrize("keep_open", [False, True], ids=["reopen-per-line", "logger-keeps-fd"])
def test_rename_rotations_during_writes(log: Path, keep_open: bool) -> None:
    log.parent.mkdir()
    n = 3000
    rotated = {at + 100: threading.Event() for at in ROTATE_AT}  # the writer waits there for the rotation
    writer = Writer(log, n, keep_open=keep_open, gates=rotated)
    h = _harness(log, rotated_linger_secs=0.5).start()

    def rotate() -> None:
        for k, at in enumerate(ROTATE_AT, start=1):
            writer.wait_written(at)
            _following(h, at - 300, seen=k - 1)
            os.rename(log, log.with_name(f"queue_log.{k}"))
            if keep_open:  # the logger writes into the renamed file a while, then reopens
                writer.wait_written(at + 60)
                writer.reopen.set()
            rotated[at + 100].set()

    rotator = threading.Thread(target=rotate, daemon=True)
    writer.start()
    rotator.start()
    h.settle(n)
    writer.finish()
    rotator.join(10)
    h.poll()
    assert_exactly_once(h.lines, n)
    assert h.events.count("rotated") + h.events.count("disappeared") >= 3
    assert h.events.count("rotated_finished") >= 3
    h.stop()


def _following(h: TailHarness, lines: int, seen: int, within: float = 30.0) -> None:
    """Wait until the tailer read ``lines`` lines and noticed ``seen`` rotations: it follows the file to rotate.

    Rotations are hours apart in life. A file rotated away before the tailer ever opened
    it, or two rotations within one poll interval, cannot be followed (docs/files.md).
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        noticed = sum(h.events.count(e) for e in ("rotated", "disappeared", "truncated"))
        if len(h.lines) >= lines and noticed >= seen:
            return
        time.sleep(0.002)


def test_copytruncate_during_writes(log: Path) -> None:
    log.parent.mkdir()
    n = 3000
    rotated = {at + 100: threading.Event() for at in ROTATE_AT}
    writer = Writer(log, n, gates=rotated)
    h = _harness(log, rotated_linger_secs=0.3).start()

    def rotate() -> None:
        for k, at in enumerate(ROTATE_AT, start=1):
            writer.wait_written(at)
            _following(h, at - 300, seen=k - 1)
            # logrotate's copytruncate: copy, then truncate. Lines written between the two are
            # lost by copytruncate itself (its documented window), so the writer waits meanwhile.
            with writer.lock:
                shutil.copyfile(log, log.with_name(f"queue_log.{k}"))
                os.truncate(log, 0)
            rotated[at + 100].set()

    rotator = threading.Thread(target=rotate, daemon=True)
    writer.start()
    rotator.start()
    h.settle(n)
    writer.finish()
    rotator.join(10)
    h.poll()
    assert_exactly_once(h.lines, n)
    assert h.events.count("truncated") == 3
    h.stop()


def test_copytruncate_lines_not_yet_read_come_from_the_copy(log: Path) -> None:
    log.parent.mkdir()
    _append(log, 0, 100)
    h = _harness(log).start()
    h.poll()
    _append(log, 100, 150)  # written, not read yet
    shutil.copyfile(log, log.with_name("queue_log.1"))
    os.truncate(log, 0)
    _append(log, 150, 400)  # more than before: the size alone would not show the truncation
    h.settle(400)
    assert_exactly_once(h.lines, 400)
    assert h.events.count("truncated") == 1
    assert h.events.count("copy_recovered") == 1
    h.stop()


def test_truncated_in_place_is_read_again_from_the_start(log: Path) -> None:
    log.parent.mkdir()
    _append(log, 0, 100)
    h = _harness(log).start()
    h.poll()
    with log.open("wb") as fh:  # "> queue_log" then new lines
        fh.write(b"".join(line(i) + b"\n" for i in range(100, 110)))
    h.until(lambda: len(h.lines) >= 110)
    assert_exactly_once(h.lines, 110)
    assert h.events == ["missing", "truncated"] or h.events == ["truncated"]
    h.stop()


def test_file_disappears_and_comes_back(log: Path) -> None:
    log.parent.mkdir()
    _append(log, 0, 100)
    h = _harness(log, rotated_linger_secs=0.2).start()
    h.poll()
    _append(log, 100, 120)  # written just before the delete: read from the open file
    log.unlink()
    for _ in range(5):
        h.poll()
    h.until(lambda: not h.tailer.rotated)
    assert "disappeared" in h.events
    assert h.events.count("missing") == 0
    _append(log, 120, 200)
    h.settle(200)
    assert_exactly_once(h.lines, 200)
    assert "reappeared" in h.events
    h.stop()


def test_zero_byte_fresh_file_after_rotation(log: Path) -> None:
    log.parent.mkdir()
    _append(log, 0, 50)
    h = _harness(log).start()
    h.poll()
    os.rename(log, log.with_name("queue_log.1"))
    log.touch()  # logrotate's create: a new empty file
    h.until(lambda: not h.tailer.rotated)
    assert h.tailer.current is not None
    assert h.tailer.current.fp_len == 0
    h.stop()
    h2 = _harness(log).start()  # a restart on the empty file resumes it, not the old one
    _append(log, 50, 80)
    h2.settle(30)
    assert_exactly_once(h.lines + h2.lines, 80)
    h2.stop()


def test_restart_resumes_and_finishes_a_file_rotated_while_stopped(log: Path) -> None:
    log.parent.mkdir()
    _append(log, 0, 300)
    h1 = _harness(log).start()
    h1.poll()
    _append(log, 300, 350)
    with log.open("ab") as fh:
        fh.write(line(350)[:10])  # half a line
    h1.stop()
    # While callscope is down: the line is completed, the file rotated, a new one written.
    with log.open("ab") as fh:
        fh.write(line(350)[10:] + b"\n")
    os.rename(log, log.with_name("queue_log.1"))
    _append(log, 351, 500)
    h2 = _harness(log).start()
    assert "rotated_resumed" in h2.events
    h2.settle(200)
    assert_exactly_once(h1.lines + h2.lines, 500)
    h2.stop()


def test_restart_after_a_truncation_while_stopped(log: Path) -> None:
    log.parent.mkdir()
    _append(log, 0, 100)
    h1 = _harness(log).start()
    h1.poll()
    _append(log, 100, 130)
    h1.stop()
    shutil.copyfile(log, log.with_name("queue_log.1"))
    os.truncate(log, 0)
    _append(log, 130, 140)
    h2 = _harness(log).start()
    h2.settle(40)
    assert_exactly_once(h1.lines + h2.lines, 140)
    assert {"truncated", "copy_recovered"} <= set(h2.events)
    h2.stop()


def test_restart_many_times_during_writes(log: Path) -> None:
    log.parent.mkdir()
    n = 2000
    writer = Writer(log, n)
    writer.start()
    got: list[bytes] = []
    for _ in range(6):
        h = _harness(log).start()
        for _ in range(5):
            h.poll()
            time.sleep(0.005)
        h.stop()
        got.extend(h.lines)
    writer.finish()
    h = _harness(log).start()
    h.until(lambda: len(got) + len(h.lines) >= n)
    h.stop()
    assert_exactly_once(got + h.lines, n)


def test_same_inode_other_content_is_read_from_the_start(log: Path) -> None:
    log.parent.mkdir()
    _append(log, 0, 20)
    h1 = _harness(log).start()
    h1.poll()
    h1.stop()
    doc = h1.checkpoint()
    doc["files"][0]["fingerprint"] = "0" * 32  # as if the inode now held another file
    h1.store.file.write_bytes(orjson.dumps(doc))
    h2 = _harness(log).start()
    h2.poll()
    assert h2.events == ["replaced"]
    assert len(h2.lines) == 20
    h2.stop()


def test_start_at_end_skips_history_not_the_line_being_written(log: Path) -> None:
    log.parent.mkdir()
    _append(log, 0, 100)
    with log.open("ab") as fh:
        fh.write(line(100)[:7])
    h = _harness(log, start_at="end").start()
    assert h.poll() == 0
    with log.open("ab") as fh:
        fh.write(line(100)[7:] + b"\n")
    _append(log, 101, 110)
    h.poll()
    assert h.lines == [line(i) for i in range(100, 110)]
    h.stop()
    h2 = _harness(log, start_at="end").start()  # a checkpoint exists now: start_at no longer applies
    _append(log, 110, 115)
    h2.poll()
    assert h2.lines == [line(i) for i in range(110, 115)]
    h2.stop()


@pytest.mark.parametrize("flush", [True, False])
def test_partial_last_line_of_a_rotated_file(log: Path, flush: bool) -> None:
    log.parent.mkdir()
    _append(log, 0, 10)
    with log.open("ab") as fh:
        fh.write(b"1700000100|cut|q|NONE|ENTER")
    h = _harness(log, rotated_linger_secs=0.1, flush_partial_on_rotation=flush).start()
    h.poll()
    os.rename(log, log.with_name("queue_log.1"))
    _append(log, 10, 20)
    h.until(lambda: not h.tailer.rotated and len(h.lines) >= 20)
    if flush:
        assert b"1700000100|cut|q|NONE|ENTER" in h.lines
        assert "partial_line_flushed" in h.events
    else:
        assert b"1700000100|cut|q|NONE|ENTER" not in h.lines
        assert "partial_line_dropped" in h.events
    assert sorted(x for x in h.lines if b"cut" not in x) == sorted(line(i) for i in range(20))
    h.stop()


def test_partial_line_at_stop_is_read_after_restart(log: Path) -> None:
    log.parent.mkdir()
    _append(log, 0, 5)
    with log.open("ab") as fh:
        fh.write(line(5)[:12])
    h1 = _harness(log).start()
    h1.poll()
    h1.stop()
    with log.open("ab") as fh:
        fh.write(line(5)[12:] + b"\n")
    h2 = _harness(log).start()
    h2.poll()
    assert h2.lines == [line(5)]
    assert_exactly_once(h1.lines + h2.lines, 6)
    h2.stop()


def test_over_long_line_is_cut_and_the_rest_is_read(log: Path) -> None:
    log.parent.mkdir()
    _append(log, 0, 3)
    with log.open("ab") as fh:
        fh.write(b"L" * 20_000 + b"\n")
    _append(log, 3, 6)
    h = _harness(log, max_line_bytes=1000, read_block_bytes=4096).start()
    h.poll()
    assert h.lines == [line(i) for i in range(6)]
    assert len(h.oversize) == 1
    assert h.oversize[0].startswith(b"LLLL")
    assert "line_too_long" in h.events
    h.stop()


def test_missing_file_is_reported_once_then_read_from_its_start(log: Path) -> None:
    log.parent.mkdir()
    h = _harness(log, start_at="end").start()
    for _ in range(5):
        h.poll()
    assert h.events == ["missing"]
    _append(log, 0, 10)
    h.poll()
    assert_exactly_once(h.lines, 10)
    h.stop()


def test_a_directory_at_the_path_is_reported_and_waited_out(log: Path) -> None:
    log.mkdir(parents=True)
    h = _harness(log).start()
    h.poll()
    h.poll()
    assert h.events == ["not_a_file"]
    log.rmdir()
    _append(log, 0, 10)
    h.poll()
    assert_exactly_once(h.lines, 10)
    h.stop()


def test_corrupt_checkpoint_starts_over(log: Path) -> None:
    log.parent.mkdir()
    _append(log, 0, 10)
    h1 = _harness(log).start()
    h1.poll()
    h1.stop()
    h1.store.file.write_text("{not json")
    h2 = _harness(log).start()
    h2.poll()
    assert h2.events[0] == "checkpoint_corrupt"
    assert len(h2.lines) == 10  # read again: at-least-once, and the ids deduplicate downstream
    h2.stop()


def test_checkpoint_written_atomically_with_what_was_committed(log: Path) -> None:
    log.parent.mkdir()
    _append(log, 0, 10)
    h = _harness(log).start()
    chunk = h.tailer.read(time.monotonic())
    assert chunk is not None
    assert len(chunk.lines) == 10
    h.tailer.save(time.monotonic(), force=True)
    assert h.checkpoint()["files"][0]["offset"] == 0  # read, not delivered: not in the checkpoint
    h.tailer.rewind()  # the bus refused it
    again = h.tailer.read(time.monotonic())
    assert again is not None
    assert again.lines == chunk.lines
    h.tailer.commit(again, time.monotonic())
    h.tailer.save(time.monotonic())
    doc = h.checkpoint()
    assert doc["files"][0]["offset"] == log.stat().st_size
    assert doc["files"][0]["inode"] == log.stat().st_ino
    assert doc["path"] == str(log)
    assert [p.name for p in h.store.file.parent.iterdir()] == [h.store.file.name]  # no temporary left
    h.stop()


def test_checkpoint_that_cannot_be_written_is_retried_not_fatal(log: Path, tmp_path: Path) -> None:
    log.parent.mkdir()
    _append(log, 0, 10)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the checkpoint directory should be")
    h = TailHarness(log, blocker / "queue_log.json", checkpoint_interval_secs=0).start()
    for _ in range(5):
        h.poll()
    assert_exactly_once(h.lines, 10)  # reading and delivering go on
    assert h.events.count("checkpoint_error") == 1  # retried about once a second, not on every poll
    blocker.unlink()
    blocker.mkdir()
    _append(log, 10, 12)
    h.until(h.store.file.exists)
    assert h.checkpoint()["files"][0]["offset"] == log.stat().st_size
    h.stop()
