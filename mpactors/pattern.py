"""Selective-receive patterns: pure matching, no I/O.

A pattern is one of:

* ``None`` or :data:`ANY` - matches every message;
* a type (``int``, ``Down``) - matches instances of it;
* a tuple of patterns - matches a tuple (or tuple subclass) of the same length
  whose items match item by item;
* any other callable - a predicate, matched when it returns true;
* any other value - matched by equality.
"""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["ANY", "matches", "compile_pattern"]


class _AnyType:
    """The wildcard pattern: matches any value (Erlang's ``_``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ANY"

    def __reduce__(self) -> str:
        return "ANY"


ANY: Any = _AnyType()


def _always(msg: Any) -> bool:
    return True


def compile_pattern(pattern: Any) -> Callable[[Any], bool]:
    """Turn ``pattern`` into a predicate, once, before scanning a mailbox."""
    if pattern is None or pattern is ANY:
        return _always
    if isinstance(pattern, type):
        return lambda msg: isinstance(msg, pattern)
    if type(pattern) is tuple:
        items = tuple(compile_pattern(p) for p in pattern)
        n = len(items)

        def match_tuple(msg: Any) -> bool:
            if not isinstance(msg, tuple) or len(msg) != n:
                return False
            for item, value in zip(items, msg):
                if not item(value):
                    return False
            return True

        return match_tuple
    if callable(pattern):
        return lambda msg: bool(pattern(msg))
    return lambda msg: type(msg) is type(pattern) and msg == pattern or (
        type(msg) is not type(pattern) and msg == pattern and not isinstance(msg, bool)
        and not isinstance(pattern, bool)
    )


def matches(pattern: Any, msg: Any) -> bool:
    """True when ``msg`` matches ``pattern`` (see the module docstring)."""
    return compile_pattern(pattern)(msg)
