"""The cluster cookie: a secret type and where its value comes from.

Nodes that share a cookie may connect; ``dist`` hands it to
``multiprocessing.connection`` as the ``authkey``. This module is the Python
counterpart of Erlang's ``auth.erl``:

1. the cookie given as argument (``Node(cookie=...)``, ``--cookie``) wins;
2. else ``$MPACTORS_COOKIE``;
3. else the file ``~/.mpactors.cookie``. On first use it is created with 20
   random upper-case letters and mode 0400. A file that is not a regular file,
   that group or others may read or write (``mode & 0o077``), or that is empty
   is refused with :class:`~mpactors.errors.CookieError`, as ``auth.erl`` does.

The value is held in a :class:`Cookie`, a ``bytes`` subclass that refuses to be
pickled and hides its value in ``repr``/``str``, so it is not sent across the
network or written to a log by accident (CPython's ``AuthenticationString``).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import string
from pathlib import Path
from typing import Any, Dict, NoReturn, Type, Union

from . import config
from .errors import CookieError

__all__ = ["Cookie", "resolve_cookie", "check_private_file", "COOKIE_LENGTH"]

#: Letters in a newly created cookie file (Erlang's auth.erl also uses 20).
COOKIE_LENGTH = 20
#: Read at most this much of a cookie file ("reject large message").
_MAX_COOKIE_FILE = 4096
_FILE_MODE = 0o400


class Cookie(bytes):
    """A cluster cookie: ``bytes`` that will not be pickled or printed.

    Use it wherever ``bytes`` are accepted (``authkey=``, ``hmac``). Pickling
    raises ``TypeError`` so a cookie never travels inside a message, and
    ``repr``/``str`` show ``Cookie(<hidden>)`` so it never lands in a log.
    ``bytes(cookie)`` gives the raw value when it must be written out.
    """

    def __reduce__(self) -> NoReturn:
        raise TypeError("Pickling a Cookie is disallowed for security reasons")

    def __repr__(self) -> str:
        return "Cookie(<hidden>)"

    __str__ = __repr__

    def __copy__(self) -> Cookie:
        return self

    def __deepcopy__(self, memo: Dict[int, Any]) -> Cookie:
        return self


def resolve_cookie(cookie: Union[str, bytes, None] = None) -> Cookie:
    """Return the cookie to use: ``cookie``, else ``$MPACTORS_COOKIE``, else the file.

    Args:
        cookie: an explicit cookie (printable ASCII, no whitespace), or None.

    Returns:
        The cookie as a :class:`Cookie`.

    Raises:
        CookieError: the given cookie is empty or not printable ASCII, or the
            cookie file cannot be created or read, is not a regular file, is
            accessible by group or others, or is empty.
    """
    if cookie is not None:
        return _validated(cookie, "the cookie argument")
    from_env = config.env_cookie()
    if from_env is not None:
        return _validated(from_env, "MPACTORS_COOKIE")
    return _read_cookie_file(config.cookie_file())


def _validated(value: Union[str, bytes], source: str) -> Cookie:
    """Check that ``value`` is a usable cookie and wrap it."""
    if isinstance(value, str):
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError:
            raise CookieError(f"{source} must be printable ASCII (letters, digits, punctuation)") from None
    elif isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        raise CookieError(f"{source} must be str or bytes, not {type(value).__name__}")
    if not raw:
        raise CookieError(f"{source} is empty; a cookie needs at least one character")
    if not all(0x21 <= b <= 0x7E for b in raw):
        # Never echo the value: it is a secret even when it is malformed.
        raise CookieError(f"{source} must be printable ASCII without whitespace")
    return Cookie(raw)


def _read_cookie_file(path: Path) -> Cookie:
    """Read (creating it first if absent) and check the cookie file at ``path``."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        _create_cookie_file(path)
        info = os.stat(path)
    except OSError as exc:
        raise CookieError(f"Cookie file {path} cannot be examined: {exc.strerror}") from None
    _check_attributes(path, info)
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_COOKIE_FILE + 1)
    except OSError as exc:
        raise CookieError(f"Cookie file {path} cannot be read: {exc.strerror}") from None
    if len(data) > _MAX_COOKIE_FILE:
        raise CookieError(f"Cookie file {path} is larger than {_MAX_COOKIE_FILE} bytes; is it the right file?")
    data = data.strip()
    if not data:
        raise CookieError(
            f"Cookie file {path} is empty; write a cookie into it, or remove it to have a new one created"
        )
    return _validated(data, f"Cookie file {path}")


def _check_attributes(path: Path, info: os.stat_result) -> None:
    """Refuse what auth.erl refuses: not a regular file, or group/other access."""
    check_private_file(path, info, "Cookie file", "remove it, or set MPACTORS_COOKIE", CookieError)


def check_private_file(
    path: Union[str, Path], info: os.stat_result, what: str, hint: str, error: Type[Exception]
) -> None:
    """Raise ``error`` unless ``path`` is a regular file that only its owner may access.

    The rule of the cookie file (and of ssh for private keys), shared with
    TLS private keys (:mod:`mpactors.tls`).

    Args:
        path: the file, for the message.
        info: its ``os.stat`` result.
        what: how the message names it (``"Cookie file"``, ``"TLS private key"``).
        hint: what to do when it is not a regular file.
        error: the exception class to raise.
    """
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} {path} is not a regular file (it is a {_file_type(info.st_mode)}); {hint}")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise error(f"{what} {path} must be accessible by owner only (mode {mode:04o}); run chmod 400 {path}")


def _file_type(mode: int) -> str:
    """A readable name for the file type in ``mode``."""
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def _create_cookie_file(path: Path) -> None:
    """Create ``path`` with a random cookie, mode 0400, atomically.

    The cookie is written to a private temporary file created with
    ``O_CREAT | O_EXCL`` and mode 0400, then hard-linked to ``path``: a
    concurrent reader sees either no file or the whole cookie, never an empty
    one, and of two racing creators the second keeps the first one's cookie.
    """
    value = "".join(secrets.choice(string.ascii_uppercase) for _ in range(COOKIE_LENGTH))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    except OSError as exc:
        _creation_failed(path, exc)
    try:
        try:
            os.fchmod(fd, _FILE_MODE)  # the umask may not have left exactly 0400
            os.write(fd, value.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        _link_into_place(tmp, path)
    except OSError as exc:
        _creation_failed(path, exc)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # already renamed into place, or nothing we can do


def _link_into_place(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` unless ``path`` exists by now."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process created it first: theirs is the cookie
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # No hard links on this file system: fall back to a rename, which
        # is atomic too, after checking that the name is still free.
        if not os.path.lexists(path):
            os.rename(tmp, path)


def _creation_failed(path: Path, exc: OSError) -> NoReturn:
    raise CookieError(
        f"Cookie file {path} does not exist and cannot be created: {exc.strerror}; "
        f"create it (mode 0400) or set MPACTORS_COOKIE"
    ) from None
