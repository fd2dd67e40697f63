"""One open file being tailed: its identity, its positions, and lines read from it in blocks.

Positions, in bytes from the start of the file:

- ``committed``: every line before it was delivered (what a checkpoint stores);
- ``read_pos``: the next byte to read; the bytes between the last newline read and
  ``read_pos`` are ``pending``, the start of a line whose newline has not been written yet.

Reads use ``os.pread`` on a descriptor held open, so a file renamed or deleted while it is
read stays readable, and its inode cannot be handed to a new file meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

DEADLETTER_HEAD = 64 * 1024  # bytes of an over-long line kept in its dead-letter record
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip")
_SIBLINGS_MAX = 256  # candidates looked at when searching for a rotated file or a copy


def fingerprint(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(slots=True)
class Chunk:
    """Lines read from one file, delivered as a whole; ``end`` becomes the file's committed offset."""

    file: OpenFile
    lines: list[bytes]
    end: int
    skipping: bool = False  # inside an over-long line at ``end``
    oversize: list[bytes] = field(default_factory=list)  # heads of over-long lines (dead-lettered)
    final: bool = False  # the file is finished: close it once this chunk is delivered
    partial: bool = False  # the last line had no newline (flushed at the end of a rotated file)


class NotAFileError(OSError):
    """The path names something that is not a regular file."""


class OpenFile:
    __slots__ = (
        "committed",
        "committed_skipping",
        "dev",
        "fd",
        "fp",
        "fp_len",
        "ino",
        "last_growth",
        "name",
        "pending",
        "read_pos",
        "rotated",
        "skipping",
    )

    def __init__(self, fd: int, st: os.stat_result, name: str, fp_bytes: int, now: float) -> None:
        self.fd = fd
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.name = name
        self.read_pos = 0
        self.committed = 0
        self.pending = b""
        self.skipping = False
        self.committed_skipping = False
        self.rotated = False
        self.last_growth = now
        head = self.head(fp_bytes)
        self.fp = fingerprint(head)
        self.fp_len = len(head)

    @classmethod
    def open(cls, path: Path, fp_bytes: int, now: float) -> OpenFile:
        """Open ``path`` for reading. Raises OSError (:class:`NotAFileError` for a directory, a FIFO ...)."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise NotAFileError(f"{path} is not a regular file")
            return cls(fd, st, str(path), fp_bytes, now)
        except BaseException:
            os.close(fd)
            raise

    @property
    def identity(self) -> tuple[int, int]:
        return self.dev, self.ino

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def head(self, n: int) -> bytes:
        return os.pread(self.fd, n, 0) if n > 0 else b""

    def matches(self, fp: str, fp_len: int) -> bool:
        """Do the file's first ``fp_len`` bytes hash to ``fp``?"""
        head = self.head(fp_len)
        return len(head) == fp_len and fingerprint(head) == fp

    def same_content(self, fp_bytes: int) -> bool:
        """Do the first bytes still match the fingerprint? Extends it while the file is shorter than ``fp_bytes``."""
        head = self.head(fp_bytes)
        if len(head) < self.fp_len or fingerprint(head[: self.fp_len]) != self.fp:
            return False
        if len(head) > self.fp_len:
            self.fp = fingerprint(head)
            self.fp_len = len(head)
        return True

    def reset(self, offset: int, fp_bytes: int) -> None:
        """Read again from ``offset`` as a file never read before (after a truncation)."""
        self.read_pos = self.committed = offset
        self.pending = b""
        self.skipping = self.committed_skipping = False
        head = self.head(fp_bytes)
        self.fp = fingerprint(head)
        self.fp_len = len(head)

    def seek(self, offset: int) -> None:
        """Resume at ``offset`` (a checkpoint's)."""
        self.read_pos = self.committed = offset
        self.pending = b""
        self.skipping = self.committed_skipping = False

    def rewind(self) -> None:
        """Forget what was read after ``committed`` (the bus refused it): it is read again."""
        self.read_pos = self.committed
        self.pending = b""
        self.skipping = self.committed_skipping

    def commit(self, chunk: Chunk) -> None:
        self.committed = chunk.end
        self.committed_skipping = chunk.skipping

    def tail_position(self) -> int:
        """Just after the last newline: where ``start_at: end`` begins (never inside a line)."""
        pos = self.size()
        block = 64 * 1024
        while pos > 0:
            start = max(0, pos - block)
            data = os.pread(self.fd, pos - start, start)
            nl = data.rfind(b"\n")
            if nl >= 0:
                return start + nl + 1
            pos = start
        return 0

    def read_lines(self, block: int, max_line: int, now: float) -> Chunk | None:
        """The complete lines after ``read_pos`` (up to about ``block`` bytes); None when there are none.

        A line longer than ``max_line`` is cut: its head goes to ``oversize`` and the rest of
        it is skipped up to its newline. Raises OSError when the read fails.
        """
        pos = self.read_pos
        buf = self.pending
        oversize: list[bytes] = []
        while True:
            data = os.pread(self.fd, block, pos)
            if not data:
                break
            pos += len(data)
            self.last_growth = now
            if self.skipping:
                nl = data.find(b"\n")
                if nl < 0:
                    continue
                data = data[nl + 1 :]
                self.skipping = False
            buf = buf + data if buf else data
            cut = buf.rfind(b"\n")
            if cut >= 0:
                blob, rest = buf[:cut], buf[cut + 1 :]
                lines = blob.split(b"\n")
                if len(blob) > max_line:
                    long = [line for line in lines if len(line) > max_line]
                    if long:
                        oversize.extend(line[:DEADLETTER_HEAD] for line in long)
                        lines = [line for line in lines if len(line) <= max_line]
                if len(rest) > max_line:
                    oversize.append(rest[:DEADLETTER_HEAD])
                    rest = b""
                    self.skipping = True
                self.pending = rest
                self.read_pos = pos
                return Chunk(self, lines, pos - len(rest), self.skipping, oversize)
            if len(buf) > max_line:
                oversize.append(buf[:DEADLETTER_HEAD])
                buf = b""
                self.skipping = True
            if len(data) < block:
                break  # at the end of the file for now
        self.read_pos = pos
        self.pending = buf
        end = pos - len(buf)
        if oversize or end != self.committed or self.skipping != self.committed_skipping:
            return Chunk(self, [], end, self.skipping, oversize)
        return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = -1


def find_sibling(
    path: Path,
    held: Collection[tuple[int, int]],
    accept: Callable[[os.stat_result], bool],
    fp: str,
    fp_len: int,
    *,
    fp_bytes: int,
    now: float,
) -> OpenFile | None:
    """A regular file beside ``path`` (``queue_log.1`` ...) that ``accept``s and has the fingerprint, opened.

    Files in ``held`` (device, inode) and compressed rotations (``.gz`` ...) are passed over.
    Among several matches the most recently modified wins.
    """
    directory, stem = path.parent, path.name
    candidates: list[tuple[float, str]] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                if not name.startswith(stem) or name == stem or name.endswith(_COMPRESSED):
                    continue
                try:
                    st = entry.stat()
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in held and accept(st):
                    candidates.append((st.st_mtime, entry.path))
                if len(candidates) >= _SIBLINGS_MAX:
                    break
    except OSError:
        return None
    for _, found in sorted(candidates, reverse=True):
        try:
            f = OpenFile.open(Path(found), fp_bytes, now)
        except OSError:
            continue
        try:
            if accept(os.fstat(f.fd)) and f.matches(fp, fp_len):
                return f
        except OSError:
            pass
        f.close()
    return None


def recent_siblings(
    path: Path, held: Collection[tuple[int, int]], since: float, *, fp_bytes: int, now: float
) -> list[OpenFile]:
    """Regular files beside ``path`` named ``<name>.…``, ``<name>-…`` or ``<name>_…``, modified at or after
    ``since`` (wall-clock seconds), opened, oldest first.

    Files in ``held`` (device, inode) and compressed rotations are passed over. These are the
    rotations that happened between two looks at the path (see :meth:`Tailer._sweep`).
    """
    directory, stem = path.parent, path.name
    found: list[tuple[float, str]] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                if len(name) <= len(stem) or not name.startswith(stem) or name[len(stem)] not in ".-_":
                    continue
                if name.endswith(_COMPRESSED):
                    continue
                try:
                    st = entry.stat()
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in held and st.st_mtime >= since:
                    found.append((st.st_mtime, entry.path))
                if len(found) >= _SIBLINGS_MAX:
                    break
    except OSError:
        return []
    out: list[OpenFile] = []
    for _, name in sorted(found):
        try:
            f = OpenFile.open(Path(name), fp_bytes, now)
        except OSError:
            continue
        if f.identity in held:  # renamed under us onto a file we hold
            f.close()
            continue
        out.append(f)
    return out
