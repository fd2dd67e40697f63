"""Follow one path through rotations, truncations and restarts. Synchronous; the caller owns the clock.

The collector's loop is: ``chunk = tailer.read(now)``; deliver ``chunk.lines`` to the bus;
then ``tailer.commit(chunk, now)`` once the bus accepted them (producer flush returned), or
``tailer.rewind()`` when it refused them (they are read again). ``tailer.save(now)`` writes
the checkpoint of what was committed (at most every ``checkpoint_interval_secs``, at once
when the set of files changed, and at stop). Nothing is committed that was not delivered.

What happens to the file at the path, and what the tailer does (each is reported through
``on_event`` with a bounded name, see :data:`EVENTS`):

- grows: complete lines are read in blocks; a last line without its newline waits for it.
- renamed and a new file created (logrotate's default, Asterisk's ``logger rotate``):
  the renamed file is read to its end first, and kept open and read while it still grows
  (a writer that has not reopened yet) until it has been idle ``rotated_linger_secs``;
  meanwhile the new file is read from its first byte.
- truncated in place (logrotate ``copytruncate``, ``> file``): the size falls below the
  read position, or the first bytes no longer match the fingerprint. If a copy of the old
  content sits beside the file (same first bytes), the lines after the committed offset
  are read from the copy; then the file is read from 0. (Lines written between
  logrotate's copy and its truncation are lost by copytruncate itself.)
- deleted: the open file is finished as a renamed one; when a file appears at the path
  again it is read from 0. A file that is missing or unreadable (permissions) is retried
  every poll, reported once per episode.
- restart: the checkpoint says (device, inode, offset, fingerprint) per file. The file at
  the path with that inode and fingerprint resumes at the offset; a different file (the
  old one was rotated while callscope was down) is read from 0, and the old one is looked
  for beside it by inode and fingerprint and finished from its offset.

A last line without a newline in a rotated file that is finished is published when
``flush_partial_on_rotation`` is set (the default: nobody will complete it), else dropped
and counted. At stop it is neither published nor committed: the checkpoint stays before
it, and the next start reads it once its newline is there.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from collectors.tail.checkpoint import Checkpoint, CheckpointError, CheckpointStore, FileMark
from collectors.tail.config import TailConfig
from collectors.tail.files import Chunk, NotAFileError, OpenFile, find_sibling, recent_siblings

MAX_ROTATED = 8  # renamed files held open at once; the oldest is finished early beyond this
KNOWN_FILES = 64  # finished or truncated contents remembered, so a sweep never reads them again
SWEEP_MARGIN_SECS = 0.05  # file times come from a coarse kernel clock: look this much further back

#: Event name -> whether it is a problem (logged as a warning and counted as an error) or routine.
EVENTS: dict[str, bool] = {
    "rotated": False,  # a new file at the path; the old one is being finished
    "rotated_finished": False,  # a rotated file read to its end and closed
    "rotated_resumed": False,  # at start: a file rotated while stopped, found beside and finished
    "rotated_lost": True,  # at start: a checkpointed rotated file is gone (lines after its offset are lost)
    "truncated": True,  # the file shrank or was rewritten in place: read again from 0
    "copy_recovered": False,  # the lines not yet read before a truncation were found in a copy
    "rotation_recovered": False,  # a file rotated between two looks (never seen at the path) read from its start
    "replaced": True,  # at start: same inode, other content (inode reused): read from 0
    "disappeared": True,  # the path is gone
    "reappeared": False,  # a file is at the path again
    "missing": True,  # the path does not exist
    "unreadable": True,  # permission denied
    "readable": False,  # readable again
    "not_a_file": True,  # the path is a directory, a FIFO ...
    "open_error": True,
    "read_error": True,
    "line_too_long": True,
    "partial_line_flushed": False,
    "partial_line_dropped": True,
    "checkpoint_corrupt": True,
    "checkpoint_error": True,
}

EventSink = Callable[[str, str, dict[str, Any]], None]


def _is_file(dev: int, inode: int) -> Callable[[os.stat_result], bool]:
    return lambda st: (st.st_dev, st.st_ino) == (dev, inode)


class Tailer:
    def __init__(self, path: Path, store: CheckpointStore, config: TailConfig, on_event: EventSink) -> None:
        self.path = path
        self.store = store
        self.config = config
        self._on_event = on_event
        self._fp_bytes = config.fingerprint_bytes
        self.current: OpenFile | None = None
        self.rotated: list[OpenFile] = []
        self._episode: str | None = None  # open problem reported once: missing, unreadable, ...
        self._gone = False  # the path disappeared while read
        self._read_failing = False
        self._dirty = False
        self._force_save = False
        self._last_save = float("-inf")
        self._retry_save_at = float("-inf")
        # Wall-clock times just before the path was last seen holding the current file, and
        # before its content was last seen intact: a rotation noticed later may hide others
        # since then, whose files are looked for beside the path (:meth:`_sweep`).
        self._seen_path_at: float | None = None
        self._seen_content_at: float | None = None
        self._known: deque[tuple[str, int]] = deque(maxlen=KNOWN_FILES)  # (fingerprint, its length)
        # (device, inode, size) of the files finished: a sweep does not hold one again while it has not
        # grown (one that stayed empty has no first bytes to be known by).
        self._finished: deque[tuple[int, int, int]] = deque(maxlen=KNOWN_FILES)

    # ------------------------------------------------------------------ events
    def _event(self, name: str, message: str, **fields: Any) -> None:
        self._on_event(name, message, fields)

    # ------------------------------------------------------------------ start
    def start(self, now: float) -> None:
        """Open the file and position every file from the checkpoint (or ``start_at`` without one)."""
        try:
            checkpoint = self.store.load()
        except CheckpointError as exc:
            self._event("checkpoint_corrupt", "checkpoint unreadable; starting as a first run", error=str(exc))
            checkpoint = None
        self._seen_path_at = self._seen_content_at = time.time()
        cur = self._open_path(now)
        if checkpoint is None:
            if cur is not None and self.config.start_at == "end":
                cur.seek(cur.tail_position())
            self.current = cur
            self._dirty = True
            return
        claimed = False
        for mark in checkpoint.files:
            if cur is not None and cur.identity == (mark.dev, mark.inode):
                claimed = True
                self._resume(cur, mark, now)
                continue
            old = self._find(now, _is_file(mark.dev, mark.inode), mark.fingerprint, mark.fingerprint_bytes)
            if old is None:
                self._event(
                    "rotated_lost",
                    "a rotated file named in the checkpoint is gone; lines after its offset were not read",
                    file=mark.name,
                    offset=mark.offset,
                )
                continue
            old.seek(min(mark.offset, old.size()))
            self._hold_rotated(old, now)
            self._event("rotated_resumed", "finishing a file rotated while stopped", file=old.name, offset=mark.offset)
        if cur is not None and not claimed and checkpoint.files:
            self._event("rotated", "the file was replaced while stopped; reading the new one from its start")
        self.current = cur
        self._dirty = True

    def _resume(self, cur: OpenFile, mark: FileMark, now: float) -> None:
        if cur.size() < mark.offset:
            self._truncated(cur, now, offset=mark.offset, fp=mark.fingerprint, fp_len=mark.fingerprint_bytes)
            return
        if not cur.matches(mark.fingerprint, mark.fingerprint_bytes):
            self._event(
                "replaced",
                "same inode, other content (rewritten, or inode reused): reading from the start",
                file=cur.name,
            )
            self._recover_copy(cur, now, offset=mark.offset, fp=mark.fingerprint, fp_len=mark.fingerprint_bytes)
            cur.reset(0, self._fp_bytes)
            return
        cur.seek(mark.offset)

    # ------------------------------------------------------------------ reading
    def read(self, now: float) -> Chunk | None:
        """The next lines to deliver: rotated files first (oldest first), then the current one."""
        for _ in range(4):  # a rotation found at the end of the current file is followed at once
            chunk = self._read_rotated(now)
            if chunk is not None:
                return chunk
            cur = self.current
            if cur is None:
                was_gone, looked = self._gone, time.time()
                cur = self.current = self._open_path(now)
                if cur is None:
                    return None
                if was_gone:
                    # Files that came and went at the path while it was gone: read them first.
                    self._sweep(now, self._seen_path_at)
                    self._seen_path_at = looked
                    if self.rotated:
                        continue
            if not self._still_same(cur, now):
                continue
            chunk = self._read(cur, now)
            if chunk is not None:
                if self._still_same(cur, now):
                    return chunk
                continue  # truncated while it was read: what was read may be the new content; read again
            if not self._check_path(cur, now):
                return None
        return None

    def _read(self, f: OpenFile, now: float) -> Chunk | None:
        try:
            chunk = f.read_lines(self.config.read_block_bytes, self.config.max_line_bytes, now)
        except OSError as exc:
            if not self._read_failing:  # reported once until a read succeeds again
                self._read_failing = True
                self._event(
                    "read_error", "reading the file failed; retrying", file=f.name, error=exc.strerror or str(exc)
                )
            return None
        self._read_failing = False
        if chunk is not None and chunk.oversize:
            self._event(
                "line_too_long",
                "a line longer than max_line_bytes was dead-lettered (its head) and skipped",
                file=f.name,
                lines=len(chunk.oversize),
            )
        return chunk

    def _read_rotated(self, now: float) -> Chunk | None:
        linger = self.config.rotated_linger_secs
        for i, f in enumerate(self.rotated):
            chunk = self._read(f, now)
            if chunk is not None:
                return chunk
            if now - f.last_growth >= linger or len(self.rotated) - i > MAX_ROTATED:
                return self._finish(f)
        return None

    def _finish(self, f: OpenFile) -> Chunk:
        """The last chunk of a rotated file: its partial last line (if flushed); commit closes it."""
        if f.pending and not f.skipping:
            if self.config.flush_partial_on_rotation:
                self._event("partial_line_flushed", "published the last line of a rotated file (no newline)")
                return Chunk(f, [f.pending], f.read_pos, final=True, partial=True)
            self._event("partial_line_dropped", "dropped the last line of a rotated file (no newline)")
        return Chunk(f, [], f.read_pos, final=True)

    def _still_same(self, cur: OpenFile, now: float) -> bool:
        """False (and handled) when the current file was truncated or rewritten in place."""
        looked = time.time()
        was_empty = cur.fp_len == 0
        try:
            size = cur.size()
            same = cur.same_content(self._fp_bytes)
        except OSError as exc:
            self._event("read_error", "checking the file failed", file=cur.name, error=exc.strerror or str(exc))
            return True
        if size >= cur.read_pos and same:
            if was_empty and cur.fp_len > 0:
                # An empty file has no first bytes to tell a truncation by: whatever it held
                # since the last look and lost to a copytruncate is in a copy beside it.
                self._sweep(now, self._seen_content_at)
            self._seen_content_at = looked
            return True
        self._truncated(cur, now, offset=cur.committed, fp=cur.fp, fp_len=cur.fp_len)
        self._sweep(now, self._seen_content_at)
        return False

    def _truncated(self, cur: OpenFile, now: float, *, offset: int, fp: str, fp_len: int) -> None:
        self._event("truncated", "the file was truncated or rewritten; reading it again from the start", file=cur.name)
        self._recover_copy(cur, now, offset=offset, fp=fp, fp_len=fp_len)
        self._remember(fp, fp_len)
        cur.reset(0, self._fp_bytes)
        self._force_save = True

    def _recover_copy(self, cur: OpenFile, now: float, *, offset: int, fp: str, fp_len: int) -> None:
        """Read what followed ``offset`` in the old content from a copy beside the file (copytruncate's).

        Offset 0 counts too: a file truncated again before any of it was delivered (its
        copy is all unread). Only without a fingerprint (it was empty) is there nothing to match.
        """
        if fp_len <= 0:
            return
        copy = self._find(now, lambda st: (st.st_dev, st.st_ino) != cur.identity and st.st_size > offset, fp, fp_len)
        if copy is not None:
            copy.seek(offset)
            self._hold_rotated(copy, now)
            self._event("copy_recovered", "reading the rest of the old content from its copy", copy=copy.name)

    def _check_path(self, cur: OpenFile, now: float) -> bool:
        """At the end of the current file: is another file (or none) at the path now? True when it changed."""
        looked = time.time()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._event("disappeared", "the file is gone; finishing what is open", file=cur.name)
            self._gone = True
            self._retire(cur, now)
            # Files that were at the path only between the last look and now (renamed away too).
            self._sweep(now, self._seen_path_at)
            return True
        except OSError as exc:
            self._report_once("open_error", "cannot stat the path; retrying", error=exc.strerror or str(exc))
            return False
        if self._episode == "open_error":
            self._episode = None
        if (st.st_dev, st.st_ino) == cur.identity:
            self._seen_path_at = looked
            return False
        self._event("rotated", "a new file is at the path; finishing the old one first", file=cur.name)
        self._retire(cur, now)
        self._sweep(now, self._seen_path_at)
        # Hold the new file at once: it is read once the rotated ones are, and may itself be
        # rotated away before that (a storm, or a long backlog in the old file).
        self.current = self._open_path(now)
        if self.current is not None:
            self._seen_path_at = looked
        return True

    def _sweep(self, now: float, since: float | None) -> None:
        """Read the files rotated away since ``since`` that were never at the path when it was looked at.

        Two rotations between two looks (a storm, or a collector held up) leave a file that was
        only briefly at the path: renamed away, or copied and truncated twice. Beside the path, a
        file modified since the last look that is not held and not a content already known
        (finished, truncated, or a copy of one of those) is such a file: it is read from its
        start. The first look is the start: what was rotated while stopped is the checkpoint's business.

        An empty one is held too (and finished after ``rotated_linger_secs`` if it stays empty): a
        logger that keeps its descriptor (Asterisk's) may have reopened the path just before the
        rename and not written yet; the lines due since land in the renamed file after this look,
        and no later sweep may look back far enough to see them.
        """
        if since is None:
            return
        open_files = self.files()
        held = {f.identity for f in open_files}
        known = [*self._known, *((f.fp, f.fp_len) for f in open_files)]
        for f in recent_siblings(self.path, held, since - SWEEP_MARGIN_SECS, fp_bytes=self._fp_bytes, now=now):
            try:
                seen = (*f.identity, f.size()) in self._finished or any(n > 0 and f.matches(fp, n) for fp, n in known)
            except OSError:
                seen = True
            if seen:
                f.close()
                continue
            self._hold_rotated(f, now)
            self._event("rotation_recovered", "a file rotated between two looks is read from its start", file=f.name)

    def _remember(self, fp: str, fp_len: int) -> None:
        if fp_len > 0:
            self._known.append((fp, fp_len))

    def _retire(self, cur: OpenFile, now: float) -> None:
        self.current = None
        self._hold_rotated(cur, now)

    def _hold_rotated(self, f: OpenFile, now: float) -> None:
        f.rotated = True
        f.last_growth = now
        self.rotated.append(f)
        self._force_save = True

    # ------------------------------------------------------------------ opening and finding
    def _open_path(self, now: float) -> OpenFile | None:
        try:
            f = OpenFile.open(self.path, self._fp_bytes, now)
        except FileNotFoundError:
            if not self._gone:
                self._report_once("missing", "the file does not exist (yet); waiting for it")
            return None
        except PermissionError as exc:
            self._report_once("unreadable", "permission denied; retrying", error=exc.strerror or str(exc))
            return None
        except NotAFileError:
            self._report_once("not_a_file", "the path is not a regular file; retrying")
            return None
        except OSError as exc:
            self._report_once("open_error", "cannot open the file; retrying", error=exc.strerror or str(exc))
            return None
        for held in self.rotated:
            if held.identity == f.identity:  # the same file moved back: keep reading where we were
                f.close()
                self.rotated.remove(held)
                held.rotated = False
                f = held
                break
        if self._gone:
            self._event("reappeared", "a file is at the path again; reading it from its start")
        elif self._episode == "unreadable":
            self._event("readable", "the file is readable again")
        self._gone = False
        self._episode = None
        self._force_save = True
        return f

    def _report_once(self, name: str, message: str, **fields: Any) -> None:
        if self._episode != name:
            self._episode = name
            self._event(name, message, path=str(self.path), **fields)

    def _find(self, now: float, accept: Callable[[os.stat_result], bool], fp: str, fp_len: int) -> OpenFile | None:
        held = {f.identity for f in self.files()}
        return find_sibling(self.path, held, accept, fp, fp_len, fp_bytes=self._fp_bytes, now=now)

    # ------------------------------------------------------------------ delivery
    def commit(self, chunk: Chunk, now: float) -> None:
        """The bus accepted ``chunk``: advance its file (and close a finished rotated file)."""
        f = chunk.file
        f.commit(chunk)
        self._dirty = True
        if chunk.final:
            if f in self.rotated:
                self.rotated.remove(f)
            self._event("rotated_finished", "finished a rotated file", file=f.name, offset=chunk.end)
            # Its first bytes as they are now: a file held while it was empty (or short) has grown
            # since it was opened, and a sweep must know all of what was read from it.
            with contextlib.suppress(OSError):
                f.same_content(self._fp_bytes)
            self._remember(f.fp, f.fp_len)
            self._finished.append((*f.identity, chunk.end))
            f.close()
            self._force_save = True

    def rewind(self) -> None:
        """The bus refused the last chunk: read everything after the committed offsets again."""
        for f in self.files():
            f.rewind()

    def files(self) -> list[OpenFile]:
        return [*self.rotated, *([self.current] if self.current is not None else [])]

    def checkpoint(self) -> Checkpoint:
        marks = [
            FileMark(
                dev=f.dev, inode=f.ino, offset=f.committed, fingerprint=f.fp, fingerprint_bytes=f.fp_len, name=f.name
            )
            for f in ([self.current] if self.current is not None else []) + self.rotated
        ]
        return Checkpoint(path=str(self.path), files=tuple(marks))

    def save(self, now: float, *, force: bool = False) -> bool:
        """Write the checkpoint when something changed and it is due (or ``force``). True when written."""
        if not (self._dirty or self._force_save):
            return False
        if not force:
            if now < self._retry_save_at:
                return False
            if not self._force_save and now - self._last_save < self.config.checkpoint_interval_secs:
                return False
        try:
            self.store.save(self.checkpoint())
        except CheckpointError as exc:
            self._event("checkpoint_error", "cannot write the checkpoint; will retry", error=str(exc))
            self._retry_save_at = now + max(1.0, self.config.checkpoint_interval_secs)  # not on every poll
            return False
        self._dirty = self._force_save = False
        self._last_save = now
        self._retry_save_at = float("-inf")
        return True

    def lag_bytes(self) -> int:
        """Bytes in the open files after their committed offsets."""
        total = 0
        for f in self.files():
            try:
                total += max(0, f.size() - f.committed)
            except OSError:
                continue
        return total

    def close(self) -> None:
        for f in self.files():
            f.close()
        self.rotated.clear()
        self.current = None
