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
_RESCANS = 8  # reads of the directory at most, while a rotation renames the files in it


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


_Listed = tuple[float, str, tuple[int, int]]  # (mtime, path, (device, inode)) of a file beside the path


def _list_siblings(
    path: Path, keep: Callable[[str], bool], accept: Callable[[os.stat_result], bool]
) -> tuple[list[_Listed], dict[str, tuple[int, int]]]:
    """Regular files beside ``path`` whose name ``keep``s and whose stat ``accept``s; and which file
    (device, inode) each kept name held: two reads of the directory that differ there saw files renamed.
    """
    found: list[_Listed] = []
    names: dict[str, tuple[int, int]] = {}
    try:
        with os.scandir(path.parent) as entries:
            for entry in entries:
                if not keep(entry.name) or entry.name.endswith(_COMPRESSED):
                    continue
                try:
                    st = entry.stat()
                except OSError:
                    continue
                names[entry.name] = (st.st_dev, st.st_ino)
                if stat.S_ISREG(st.st_mode) and accept(st) and len(found) < _SIBLINGS_MAX:
                    found.append((st.st_mtime, entry.path, (st.st_dev, st.st_ino)))
    except OSError:
        return [], {}
    return found, names


def _open_listed(listed: _Listed, fp_bytes: int, now: float) -> OpenFile | None:
    """Open a listed file by its name; None when that fails or the name holds another file now (renamed since)."""
    try:
        f = OpenFile.open(Path(listed[1]), fp_bytes, now)
    except OSError:
        return None
    if f.identity != listed[2]:
        f.close()
        return None
    return f


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
    Among several matches the most recently modified wins. When none matches, the directory
    is read again until two reads agree: see :func:`recent_siblings`.
    """
    stem = path.name
    tried: set[tuple[int, int]] = set()
    before: dict[str, tuple[int, int]] | None = None
    for _ in range(_RESCANS):
        listed, names = _list_siblings(
            path,
            lambda name: name.startswith(stem) and name != stem,
            lambda st: (st.st_dev, st.st_ino) not in held and accept(st),
        )
        if names == before:
            break
        before = names
        for entry in sorted(listed, reverse=True):
            if entry[2] in tried:
                continue
            f = _open_listed(entry, fp_bytes, now)
            if f is None:
                continue
            tried.add(f.identity)
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

    Files are found and opened by name, and a rotation may be shifting the names meanwhile
    (``.1`` -> ``.2`` ...): the file listed under ``.1`` is under ``.2`` when it is opened,
    a name already looked at (that held a file passed over). So the directory is read again,
    and the files not opened yet are opened, until two reads agree on which file every name holds.
    """
    stem = path.name
    opened: dict[tuple[int, int], tuple[float, OpenFile]] = {}
    before: dict[str, tuple[int, int]] | None = None
    for _ in range(_RESCANS):
        listed, names = _list_siblings(
            path,
            lambda name: len(name) > len(stem) and name.startswith(stem) and name[len(stem)] in ".-_",
            lambda st: (st.st_dev, st.st_ino) not in held and st.st_mtime >= since,
        )
        if names == before:
            break
        before = names
        for entry in sorted(listed):
            if entry[2] not in opened:
                f = _open_listed(entry, fp_bytes, now)
                if f is not None:
                    opened[f.identity] = (entry[0], f)
    return [f for _, f in sorted(opened.values(), key=lambda found: found[0])]
