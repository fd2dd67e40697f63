"""One process owns an embedded data directory.

chDB keeps its engine in the process: two processes writing one directory would
corrupt it, and chDB itself does not refuse the second one. :class:`DirLock`
takes an exclusive, non-blocking ``fcntl.flock`` on ``DIR/.callscope.lock`` and
writes the owner's pid into it, so a second process fails at start with a
message that says which process holds the directory.

flock locks belong to an open file description, so two opens in one process
would refuse each other. The engine, though, is shared by every client of one
process, and several parts of one process (API, processors, migrations) may
open the store. The lock is therefore counted per process: the first
:meth:`DirLock.acquire` of a directory takes the kernel lock, later ones in the
same process share it, and the last :meth:`DirLock.release` drops it. That
table mirrors kernel state (a lock held by this process), not configuration.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from schemas.errors import StartupError

LOCK_NAME = ".callscope.lock"

_guard = threading.Lock()
# realpath of the data directory -> (lock file descriptor, holders in this process)
_held: dict[str, tuple[int, int]] = {}


def lock_path(data_dir: Path | str) -> Path:
    """The lock file of a data directory."""
    return Path(data_dir) / LOCK_NAME


def _read_owner(path: Path) -> str:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


class DirLock:
    """An exclusive, per-process claim on a data directory.

    Use :meth:`acquire` (it creates the directory) and :meth:`release`, or the
    context-manager form. Raises :class:`StartupError` when another process
    holds the directory.
    """

    def __init__(self, data_dir: Path, key: str) -> None:
        self.data_dir = data_dir
        self._key = key
        self._released = False

    @classmethod
    def acquire(cls, data_dir: Path | str) -> DirLock:
        directory = Path(data_dir)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create data directory {directory}: {exc.strerror or exc}") from None
        key = os.path.realpath(directory)
        path = lock_path(key)
        with _guard:
            held = _held.get(key)
            if held is not None:
                _held[key] = (held[0], held[1] + 1)
                return cls(directory, key)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StartupError(f"cannot open lock file {path}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                owner = _read_owner(path)
                raise StartupError(f"data directory {directory} is in use by another process (pid {owner})") from None
            except OSError as exc:
                os.close(fd)
                raise StartupError(f"cannot lock {path}: {exc.strerror or exc}") from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            os.fsync(fd)
            _held[key] = (fd, 1)
        return cls(directory, key)

    def release(self) -> None:
        """Drop this claim; the kernel lock goes with the last one in the process. Idempotent."""
        with _guard:
            if self._released:
                return
            self._released = True
            fd, count = _held[self._key]
            if count > 1:
                _held[self._key] = (fd, count - 1)
                return
            del _held[self._key]
            # The pid stays in the file; it is only read while the lock is held.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def released(self) -> bool:
        return self._released

    def __enter__(self) -> DirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
