"""Cookie: the secret type and the argument > env > file resolution order.

Every test points HOME at a temporary directory, so the real
``~/.mpactors.cookie`` is never read or written.
"""

from __future__ import annotations

import copy
import os
import pickle
import stat
import string
from pathlib import Path

import pytest

from mpactors.cookie import COOKIE_LENGTH, Cookie, resolve_cookie
from mpactors.errors import CookieError


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME without MPACTORS_COOKIE."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MPACTORS_COOKIE", raising=False)
    return tmp_path


def _write_cookie_file(home: Path, content: bytes, mode: int) -> Path:
    path = home / ".mpactors.cookie"
    path.write_bytes(content)
    os.chmod(path, mode)
    return path


def test_the_argument_wins_over_env_and_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_cookie_file(home, b"FROMFILE", 0o400)
    monkeypatch.setenv("MPACTORS_COOKIE", "FROMENV")
    assert resolve_cookie("FROMARG") == b"FROMARG"
    assert resolve_cookie(b"BYTESARG") == b"BYTESARG"


def test_env_wins_over_the_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_cookie_file(home, b"FROMFILE", 0o400)
    monkeypatch.setenv("MPACTORS_COOKIE", "FROMENV")
    assert resolve_cookie() == b"FROMENV"


def test_the_file_is_used_when_nothing_else_is_given(home: Path) -> None:
    _write_cookie_file(home, b"FROMFILE\n", 0o600)
    cookie = resolve_cookie()
    assert isinstance(cookie, Cookie)
    assert cookie == b"FROMFILE"  # trailing newline stripped


def test_a_missing_file_is_created_with_mode_0400_and_20_letters(home: Path) -> None:
    cookie = resolve_cookie()
    path = home / ".mpactors.cookie"
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    content = path.read_bytes().decode("ascii")
    assert len(content) == COOKIE_LENGTH == 20
    assert set(content) <= set(string.ascii_uppercase)
    assert cookie == content.encode("ascii")
    assert resolve_cookie() == cookie  # created once, then reused
    assert [p.name for p in home.iterdir()] == [".mpactors.cookie"]  # no temporary left


def test_a_group_readable_file_is_refused_naming_the_file_and_the_remedy(home: Path) -> None:
    path = _write_cookie_file(home, b"SECRET", 0o644)
    with pytest.raises(CookieError) as info:
        resolve_cookie()
    message = str(info.value)
    assert str(path) in message
    assert "owner only" in message
    assert "0644" in message
    assert "chmod 400" in message
    assert "SECRET" not in message


def test_a_directory_in_place_of_the_file_is_refused(home: Path) -> None:
    (home / ".mpactors.cookie").mkdir()
    with pytest.raises(CookieError, match="not a regular file.*directory"):
        resolve_cookie()


def test_an_empty_file_is_refused(home: Path) -> None:
    path = _write_cookie_file(home, b" \n", 0o400)
    with pytest.raises(CookieError, match="empty") as info:
        resolve_cookie()
    assert str(path) in str(info.value)


@pytest.mark.parametrize("bad", ["", "has space", "caf\u00e9", b"\x00\x01", "tab\t"])
def test_an_invalid_cookie_argument_is_refused_without_echoing_it(home: Path, bad: object) -> None:
    with pytest.raises(CookieError) as info:
        resolve_cookie(bad)  # type: ignore[arg-type]
    if bad:
        assert str(bad) not in str(info.value)


def test_an_invalid_env_cookie_is_refused_naming_the_variable(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPACTORS_COOKIE", "two words")
    with pytest.raises(CookieError, match="MPACTORS_COOKIE"):
        resolve_cookie()


def test_pickling_a_cookie_is_refused() -> None:
    cookie = Cookie(b"SECRET")
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="disallowed"):
            pickle.dumps(cookie, protocol=protocol)
    with pytest.raises(TypeError):
        pickle.dumps({"nested": [cookie]})


def test_repr_and_str_hide_the_value() -> None:
    cookie = Cookie(b"SECRET")
    for text in (repr(cookie), str(cookie), f"{cookie}", format(cookie), f"{cookie!r}", repr([cookie])):
        assert "SECRET" not in text
    assert repr(cookie) == "Cookie(<hidden>)"


def test_a_cookie_is_still_bytes_for_authkey_and_copies_as_itself() -> None:
    cookie = Cookie(b"SECRET")
    assert isinstance(cookie, bytes)
    assert bytes(cookie) == b"SECRET"
    assert copy.copy(cookie) is cookie
    assert copy.deepcopy(cookie) is cookie
