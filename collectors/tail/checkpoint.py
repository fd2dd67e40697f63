"""Checkpoints of a tailed file: where reading resumes after a restart.

One small JSON file per collector under ``<data_dir>/checkpoints/``, written atomically
(a temporary file beside it, fsync, rename, fsync of the directory), so a crash leaves the
old checkpoint or the new one, never half of one. It lists the files being read: the one
at the configured path first, then renamed ones not finished yet, each as

- ``dev``, ``inode``: which file (an inode number alone may be reused by a new file);
- ``offset``: bytes delivered to the bus (every line before it was accepted);
- ``fingerprint`` and ``fingerprint_bytes``: a hash of the file's first bytes, so a new
  file that got a recycled inode number is not mistaken for the old one.

The tailer writes it only after the bus accepted the lines up to ``offset``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

VERSION = 1


@dataclass(frozen=True, slots=True)
class FileMark:
    """One file's position."""

    dev: int
    inode: int
    offset: int
    fingerprint: str
    fingerprint_bytes: int
    name: str = ""  # where the file was when last seen (for logs; files are found by inode)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    path: str
    files: tuple[FileMark, ...]


class CheckpointError(Exception):
    """A checkpoint that cannot be read or written (``reason``: ``corrupt`` or ``write``)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def checkpoint_file(directory: Path, component: str, path: Path) -> Path:
    """``<directory>/<component>-<hash of the followed path>.json``: one per collector and path."""
    digest = hashlib.blake2b(str(path).encode(), digest_size=6).hexdigest()
    return directory / f"{component}-{digest}.json"


class CheckpointStore:
    """Reads and atomically replaces one checkpoint file."""

    def __init__(self, file: Path) -> None:
        self.file = file

    def load(self) -> Checkpoint | None:
        """The stored checkpoint; None when there is none. Raises :class:`CheckpointError` when unreadable."""
        try:
            raw = self.file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"cannot read {self.file}: {exc.strerror or exc}", "corrupt") from None
        try:
            doc = orjson.loads(raw)
            if doc.get("v") != VERSION:
                raise ValueError(f"version {doc.get('v')!r}")
            files = tuple(
                FileMark(
                    dev=int(f["dev"]),
                    inode=int(f["inode"]),
                    offset=int(f["offset"]),
                    fingerprint=str(f["fingerprint"]),
                    fingerprint_bytes=int(f["fingerprint_bytes"]),
                    name=str(f.get("name", "")),
                )
                for f in doc["files"]
            )
            if any(f.offset < 0 or f.fingerprint_bytes < 0 for f in files):
                raise ValueError("negative offset")
            return Checkpoint(path=str(doc["path"]), files=files)
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{self.file} is not a checkpoint: {exc}", "corrupt") from None

    def save(self, checkpoint: Checkpoint) -> None:
        """Replace the checkpoint atomically. Raises :class:`CheckpointError`."""
        doc = {
            "v": VERSION,
            "path": checkpoint.path,
            "files": [
                {
                    "dev": f.dev,
                    "inode": f.inode,
                    "offset": f.offset,
                    "fingerprint": f.fingerprint,
                    "fingerprint_bytes": f.fingerprint_bytes,
                    "name": f.name,
                }
                for f in checkpoint.files
            ],
        }
        tmp = self.file.with_name(f".{self.file.name}.tmp")
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.file)
            _fsync_dir(self.file.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise CheckpointError(f"cannot write {self.file}: {exc.strerror or exc}", "write") from None


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened or synced
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
