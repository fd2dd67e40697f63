"""The API's generated admin token.

With no token configured (``api.auth.tokens`` empty) and auth enabled, the
embedded default still needs a way in: on first start a random admin token is
generated and stored in ``<data-dir>/api-token`` with mode 0600; later starts
reuse it. The file is created with ``O_CREAT | O_EXCL`` and mode 0600 in one
call, so it is never readable by others, not even for an instant, and an
existing file is never overwritten.

:func:`read_token_file` refuses a token file that group or others can read, the
way ssh refuses a private key with loose permissions.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from callscope.settings import AuthConfig, TokenConfig
from schemas.errors import StartupError

TOKEN_FILE_NAME = "api-token"  # noqa: S105 - a file name, not a secret
GENERATED_TOKEN_NAME = "generated-admin"  # noqa: S105 - the token's display name
_MIN_TOKEN_CHARS = 16


def read_token_file(path: Path) -> str:
    """Read a bearer token from ``path``; refuse a file that group or others may read.

    Raises :class:`StartupError` with a message that says what to do.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise StartupError(f"cannot open API token file {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StartupError(f"API token file {path} is not a regular file")
        loose = stat.S_IMODE(info.st_mode) & 0o077
        if loose:
            raise StartupError(
                f"API token file {path} is accessible by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"run `chmod 600 {path}` and start again"
            )
        raw = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        token = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise StartupError(f"API token file {path} is not UTF-8 text") from None
    if len(token) < _MIN_TOKEN_CHARS:
        raise StartupError(
            f"API token file {path} holds no usable token (needs {_MIN_TOKEN_CHARS}+ characters); "
            "delete it to have a new one generated"
        )
    return token


def ensure_api_token(data_dir: Path) -> tuple[str, Path, bool]:
    """Return ``(token, path, created)`` for the generated admin token in ``data_dir``.

    The first call creates ``<data_dir>/api-token`` (mode 0600, ``O_EXCL``) holding
    ``secrets.token_urlsafe(32)``; later calls read the same file back
    (:func:`read_token_file`, which refuses loose permissions).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / TOKEN_FILE_NAME
    token = secrets.token_urlsafe(32)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        return read_token_file(path), path, False
    except OSError as exc:
        raise StartupError(f"cannot create API token file {path}: {exc.strerror or exc}") from None
    try:
        os.write(fd, f"{token}\n".encode("ascii"))
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise StartupError(f"cannot write API token file {path}: {exc.strerror or exc}") from None
    os.close(fd)
    return token, path, True


def effective_tokens(auth: AuthConfig, generated: str | None = None) -> tuple[TokenConfig, ...]:
    """The tokens the API accepts: the configured ones plus the generated admin token, if any."""
    if generated is None:
        return auth.tokens
    return (*auth.tokens, TokenConfig(name=GENERATED_TOKEN_NAME, token=generated, scope="admin"))
