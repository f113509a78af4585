"""Message serialization: pickle first, dill only for what pickle refuses.

Plain pickle is several times faster than dill, so every message tries it
first; lambdas, closures and other things pickle cannot reference by name fall
back to dill (which writes a stream that ``pickle.loads`` reads once dill is
imported). A value neither can serialize raises :class:`BadArg` before
anything is sent.

What goes to another node uses :func:`dumps_remote`: a function or class
defined in the script (``__main__``) - and an instance of one - is pickled by
name, which the other node (that never ran the script) cannot look up, so
such a value travels by value instead (dill writes its code, and the
globals it uses). A pickle that never names the script costs one substring
search more than :func:`dumps` (about 0.5 ms per MiB), except for a value
that cannot name anything - bytes, str, numbers, or a short tuple or list of
them, the usual shape of a large message - which is not searched.
"""
from __future__ import annotations

import io
import pickle
import types
from typing import Any

import dill
from dill._dill import _import_module

from .errors import BadArg

__all__ = ["dumps", "dumps_remote", "dumps_reason", "loads", "MAX_MESSAGE"]

#: Largest serialized message accepted from a peer (bytes). Bigger frames are
#: refused as hostile rather than buffered.
MAX_MESSAGE = 256 * 1024 * 1024

_PROTOCOL = pickle.HIGHEST_PROTOCOL


class _DillPickler(dill.Pickler):  # type: ignore[misc]
    """dill, but modules other than ``__main__`` go by reference.

    dill pickles any module outside the standard library and site-packages by
    value (its whole ``__dict__``), so a closure that mentions ``mpactors`` -
    installed in development mode - would drag the node's kernel along.
    """

    dispatch = dill.Pickler.dispatch.copy()


def _save_module(pickler: Any, obj: types.ModuleType) -> None:
    if obj.__name__ in ("__main__", "__mp_main__") or getattr(obj, "__file__", None) is None:
        dill.Pickler.dispatch[types.ModuleType](pickler, obj)
    else:
        pickler.save_reduce(_import_module, (obj.__name__,), obj=obj)


_DillPickler.dispatch[types.ModuleType] = _save_module

# In a process started by forkserver or spawn, the script runs as
# ``__mp_main__``: its functions and classes must go by value as they do from
# ``__main__`` (dill only knows the latter name), or another node gets a
# reference to a module it never ran. Only our pickler is affected.
_dill_locate = dill._dill._locate_function


def _locate_function(obj: Any, pickler: Any = None) -> bool:
    if isinstance(pickler, _DillPickler) and getattr(obj, "__module__", None) == "__mp_main__":
        return False
    return bool(_dill_locate(obj, pickler))


dill._dill._locate_function = _locate_function


def _dill_dumps(obj: Any) -> bytes:
    # recurse=True pickles only the globals a function uses (best for code in
    # __main__), but follows closures into the globals of functions it would
    # pickle by reference anyway, and may meet something unpicklable there;
    # recurse=False then refers to an importable module's globals by name.
    try:
        buf = io.BytesIO()
        _DillPickler(buf, _PROTOCOL, recurse=True).dump(obj)
    except Exception as first:  # noqa: BLE001
        buf = io.BytesIO()
        try:
            _DillPickler(buf, _PROTOCOL, recurse=False).dump(obj)
        except Exception:  # noqa: BLE001
            raise first from None
    return buf.getvalue()


#: Types whose pickle never names a module (no function or class of the script can hide in them).
_ATOMIC = frozenset((bytes, bytearray, str, int, float, bool, complex, type(None)))
_PLAIN_ITEMS = 16  # a tuple or list of at most this many atomic items is looked at, item by item
#: A bytes, bytearray or str at least this long is pickled through a file object (see ``_pickle_large``).
_LARGE = 64 * 1024
_BUFFERS = (bytes, bytearray, str)
_NOT_PLAIN, _PLAIN, _PLAIN_LARGE = 0, 1, 2


def _shape(obj: Any) -> int:
    """``_PLAIN`` if ``obj`` is atomic or a short tuple or list of atomic values (a cheap, shallow
    look: nothing in it can name a module), ``_PLAIN_LARGE`` if one of them is a large buffer."""
    t = type(obj)
    if t in _ATOMIC:
        return _PLAIN_LARGE if t in _BUFFERS and len(obj) >= _LARGE else _PLAIN
    if (t is tuple or t is list) and len(obj) <= _PLAIN_ITEMS:
        shape = _PLAIN
        for item in obj:
            it = type(item)
            if it not in _ATOMIC:
                return _NOT_PLAIN
            if it in _BUFFERS and len(item) >= _LARGE:
                shape = _PLAIN_LARGE
        return shape
    return _NOT_PLAIN


def _pickle_large(obj: Any) -> bytes:
    """``pickle.dumps(obj)`` for a value holding a large buffer, with one copy of it.

    ``pickle.dumps`` builds its output in a buffer it grows as it goes: for a
    MiB of bytes that is several reallocations, fresh pages each time (0.7 to
    3.7 ms here). A ``Pickler`` writing to a ``BytesIO`` hands the large
    buffer to ``write`` as it is (20 us); for a small value it costs a
    microsecond more, so only values known to hold a large buffer take it.
    """
    buf = io.BytesIO()
    pickle.Pickler(buf, _PROTOCOL).dump(obj)
    return buf.getvalue()


def dumps(obj: Any, _large: bool = False) -> bytes:
    """Serialize ``obj``; raise :class:`BadArg` naming what cannot be pickled."""
    try:
        if _large or (type(obj) is bytes and len(obj) >= _LARGE):
            return _pickle_large(obj)
        return pickle.dumps(obj, _PROTOCOL)
    except Exception as first:  # noqa: BLE001 - pickle raises many types here
        try:
            return _dill_dumps(obj)
        except Exception as exc:  # noqa: BLE001
            raise BadArg(
                f"cannot pickle {type(obj).__name__} value {_short(obj)}: {exc or first}"
            ) from exc


_SCRIPT_NAMES = (b"__main__", b"__mp_main__")


def dumps_remote(obj: Any) -> bytes:
    """Serialize ``obj`` for another node: what names the script (``__main__``) goes by value.

    Raises:
        BadArg: ``obj`` cannot be serialized, or refers to something of the
            script that cannot be sent by value (the reason is in the message).
    """
    shape = _shape(obj)
    if shape:  # nothing in it can name a module: no scan (0.5 ms per MiB)
        return dumps(obj, shape == _PLAIN_LARGE)
    data = dumps(obj)
    # One scan of the pickle (a large message's body is most of it), then
    # the exact names only if their common tail is there.
    if b"main__" not in data or not any(name in data for name in _SCRIPT_NAMES):
        return data
    try:
        # recurse=True only: its fallback (recurse=False) would refer to the
        # script's globals by name, which the other node does not have.
        buf = io.BytesIO()
        _DillPickler(buf, _PROTOCOL, recurse=True).dump(obj)
        return buf.getvalue()
    except Exception as exc:  # noqa: BLE001
        raise BadArg(
            f"cannot send {type(obj).__name__} value {_short(obj)} to another node: it uses code of the script "
            f"(__main__), which must travel by value, and that failed: {exc}"
        ) from exc


def dumps_reason(reason: Any) -> bytes:
    """Serialize an exit reason; one that cannot be pickled travels as its repr."""
    try:
        return dumps(reason)
    except BadArg:
        return dumps(repr(reason))


def loads(data: bytes) -> Any:
    """Deserialize bytes made by :func:`dumps` (dill's types are registered)."""
    return pickle.loads(data)


def _short(obj: Any) -> str:
    try:
        text = repr(obj)
    except Exception:  # noqa: BLE001
        text = object.__repr__(obj)
    return text if len(text) <= 80 else text[:77] + "..."
