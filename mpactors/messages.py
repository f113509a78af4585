"""Messages the runtime delivers to mailboxes: frozen value types to match on.

``receive(Down)`` waits for a monitor's report, ``receive(ExitSignal)`` for a
trapped exit signal, and so on. They are not tuples, so a user's tuple pattern
never catches a system message by accident.
"""
from __future__ import annotations

from typing import Any, ClassVar, Tuple

from .pid import Pid, Ref

__all__ = ["ExitSignal", "Down", "NodeUp", "NodeDown", "Crash", "Trace", "AliasReply"]


class _Value:
    """Base of the frozen message types: slots, equality, hashing, pickling."""

    __slots__: ClassVar[Tuple[str, ...]] = ()

    def __init__(self, *values: Any) -> None:
        if len(values) != len(self.__slots__):
            raise TypeError(f"{type(self).__name__} takes {len(self.__slots__)} arguments")
        for name, value in zip(self.__slots__, values):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __reduce__(self) -> tuple:
        return (type(self), self._values())

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._values() == self._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__,) + self._values())

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({args})"


class ExitSignal(_Value):
    """``ExitSignal(pid, reason)``: a trapped exit signal (Erlang's ``{'EXIT', Pid, Reason}``)."""

    __slots__ = ("pid", "reason")
    pid: Pid
    reason: Any


class Down(_Value):
    """``Down(ref, pid, reason)``: the monitored process ``pid`` ended (``{'DOWN', ...}``)."""

    __slots__ = ("ref", "pid", "reason")
    ref: Ref
    pid: Pid
    reason: Any


class NodeUp(_Value):
    """``NodeUp(node)``: a connection to ``node`` came up (``monitor_nodes``)."""

    __slots__ = ("node",)
    node: str


class NodeDown(_Value):
    """``NodeDown(node)``: the connection to ``node`` was lost (``monitor_node(s)``)."""

    __slots__ = ("node",)
    node: str


class Crash(_Value):
    """The exit reason of an actor whose callable raised.

    ``type`` names the exception type (``'ZeroDivisionError'``), ``message``
    is ``str(exc)`` and ``traceback`` is the formatted traceback text.
    """

    __slots__ = ("type", "message", "traceback")
    type: str
    message: str
    traceback: str

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


class AliasReply(_Value):
    """A reply addressed to an alias ``ref`` (internal; ``rpc.call`` uses it).

    The receiving mailbox keeps it only while the alias is active, so a reply
    that arrives after its caller gave up never lands in the mailbox
    (Erlang's process aliases).
    """

    __slots__ = ("ref", "value")
    ref: Ref
    value: Any


class Trace(_Value):
    """``Trace(pid, event, message, peer)``: a traced process sent or received a message.

    ``event`` is ``'send'`` (``peer`` is the destination) or ``'receive'``
    (the message arrived in ``pid``'s mailbox; ``peer`` is None). Sent to the
    tracer given to :func:`mpactors.introspect.trace`.
    """

    __slots__ = ("pid", "event", "message", "peer")
    pid: Pid
    event: str
    message: Any
    peer: Any
