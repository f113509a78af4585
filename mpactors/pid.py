"""Process identifiers and references: frozen, hashable, picklable values.

A :class:`Pid` names one actor anywhere in the cluster: the node's name, a
number unique within that node's incarnation, and the node's *creation*, so a
pid of an earlier incarnation of a node never matches a process of the new one.
Its text form is ``<node.id.serial>``, e.g. ``<a@host.5.0>``; :func:`parse_pid`
reads it back (the CLI uses it).
"""
from __future__ import annotations

import itertools
import re
from typing import Any, Type, TypeVar

from .errors import BadArg

__all__ = ["Pid", "Ref", "TimerRef", "parse_pid"]


class Pid:
    """An actor's identity: ``Pid(node, id, serial, creation)``."""

    __slots__ = ("node", "id", "serial", "creation", "_hash")

    node: str
    id: int
    serial: int
    creation: int
    _hash: int

    def __init__(self, node: str, id: int, serial: int = 0, creation: int = 0) -> None:
        object.__setattr__(self, "node", node)
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "serial", serial)
        object.__setattr__(self, "creation", creation)
        object.__setattr__(self, "_hash", hash((node, id, serial, creation)))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Pid is immutable")

    def __reduce__(self) -> tuple:
        return (Pid, (self.node, self.id, self.serial, self.creation))

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is Pid
            and self._hash == other._hash  # type: ignore[union-attr]
            and self.id == other.id  # type: ignore[union-attr]
            and self.node == other.node  # type: ignore[union-attr]
            and self.creation == other.creation  # type: ignore[union-attr]
            and self.serial == other.serial  # type: ignore[union-attr]
        )

    def __hash__(self) -> int:
        return self._hash

    def __lt__(self, other: Pid) -> bool:
        return (self.node, self.id, self.serial) < (other.node, other.id, other.serial)

    def __str__(self) -> str:
        return f"<{self.node}.{self.id}.{self.serial}>"

    def __repr__(self) -> str:
        return f"Pid({str(self)})"


_PID_RE = re.compile(r"^<(?P<node>[^<>\s]+)\.(?P<id>\d+)\.(?P<serial>\d+)>$")


def parse_pid(text: str, creation: int = 0) -> Pid:
    """Read a pid from its text form ``<node.id.serial>``.

    The text has no creation: the pid gets ``creation`` (default 0, which
    means "the node's current incarnation", as Erlang's ``list_to_pid``).

    Raises:
        BadArg: ``text`` is not a pid's text form.
    """
    if not isinstance(text, str):
        raise BadArg(f"not a pid: {text!r} (expected text like '<node@host.5.0>')")
    m = _PID_RE.match(text.strip())
    if m is None:
        raise BadArg(f"not a pid: {text!r} (expected the form '<node@host.5.0>')")
    return Pid(m["node"], int(m["id"]), int(m["serial"]), creation)


_ref_counter = itertools.count(1)


class _Reference:
    """A frozen ``(node, creation, n)``; equal only to one of the same class."""

    __slots__ = ("node", "creation", "n")

    node: str
    creation: int
    n: int

    def __init__(self, node: str, creation: int, n: int) -> None:
        object.__setattr__(self, "node", node)
        object.__setattr__(self, "creation", creation)
        object.__setattr__(self, "n", n)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    @classmethod
    def make(cls: Type[_R], node: str, creation: int, salt: int) -> _R:
        """A new reference, unique on this node incarnation (``salt`` is the OS pid)."""
        return cls(node, creation, (salt << 40) | next(_ref_counter))

    def __reduce__(self) -> tuple:
        return (type(self), (self.node, self.creation, self.n))

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and self.n == other.n  # type: ignore[attr-defined]
            and self.node == other.node  # type: ignore[attr-defined]
            and self.creation == other.creation  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash((self.node, self.creation, self.n))


_R = TypeVar("_R", bound=_Reference)


class Ref(_Reference):
    """A unique reference (monitors, calls): ``Ref(node, creation, n)``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"#Ref<{self.node}.{self.n}>"


class TimerRef(_Reference):
    """A pending timer of ``send_after``/``send_interval``: ``TimerRef(node, creation, n)``.

    Give it to :func:`mpactors.cancel_timer` or :func:`mpactors.read_timer`
    from any process of the node that made it. It never equals a :class:`Ref`.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"#TimerRef<{self.node}.{self.n}>"
