"""The generated admin token file: created 0600, reused, refused when others may read it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from callscope.settings import AuthConfig, TokenConfig
from callscope.tokens import effective_tokens, ensure_api_token, read_token_file
from schemas.errors import StartupError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_creates_private_token(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    token, path, created = ensure_api_token(data_dir)
    assert created is True
    assert path == data_dir / "api-token"
    assert mode(path) == 0o600
    assert len(token) >= 40
    assert path.read_text().strip() == token


def test_token_file_is_never_world_readable_even_with_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        _, path, _ = ensure_api_token(tmp_path)
    finally:
        os.umask(old)
    assert mode(path) == 0o600


def test_later_start_reuses_token(tmp_path: Path) -> None:
    first, path, _ = ensure_api_token(tmp_path)
    second, path2, created = ensure_api_token(tmp_path)
    assert (second, path2, created) == (first, path, False)


def test_two_data_dirs_get_different_tokens(tmp_path: Path) -> None:
    assert ensure_api_token(tmp_path / "a")[0] != ensure_api_token(tmp_path / "b")[0]


@pytest.mark.parametrize("loose", [0o640, 0o604, 0o660, 0o644])
def test_group_or_world_readable_file_is_refused(tmp_path: Path, loose: int) -> None:
    _, path, _ = ensure_api_token(tmp_path)
    path.chmod(loose)
    with pytest.raises(StartupError, match=r"accessible by group or others.*chmod 600"):
        ensure_api_token(tmp_path)
    with pytest.raises(StartupError, match=f"{loose:04o}"):
        read_token_file(path)


def test_empty_token_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    with pytest.raises(StartupError, match="no usable token"):
        ensure_api_token(tmp_path)


def test_symlinked_token_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("x" * 40)
    target.chmod(0o600)
    (tmp_path / "api-token").symlink_to(target)
    with pytest.raises(StartupError, match="cannot open"):
        ensure_api_token(tmp_path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="cannot open API token file"):
        read_token_file(tmp_path / "absent")


def test_effective_tokens_adds_generated_admin() -> None:
    configured = TokenConfig(name="grafana", token="r" * 20, scope="read")
    auth = AuthConfig(tokens=(configured,))
    assert effective_tokens(auth) == (configured,)
    tokens = effective_tokens(auth, "g" * 43)
    assert tokens[0] == configured
    assert (tokens[1].name, tokens[1].token, tokens[1].scope) == ("generated-admin", "g" * 43, "admin")
