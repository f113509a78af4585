"""Small helpers shared by the kernel and the actor runtime: a reply slot, argument checks."""
from __future__ import annotations

import threading
from typing import Any, Optional

from ..errors import BadArg, Timeout
from ..pid import Pid

__all__ = ["Slot", "check_pid", "NamedTarget"]


def check_pid(pid: Any) -> None:
    """Raise :class:`BadArg` unless ``pid`` is a :class:`Pid`."""
    if type(pid) is not Pid:
        raise BadArg(f"expected a Pid, not {pid!r}")


class Slot:
    """A one-shot reply box: one thread fills it, another waits for it."""

    __slots__ = ("_lock", "ok", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self.ok = True
        self.value: Any = None

    def set(self, ok: bool, value: Any) -> None:
        """Fill the slot (at most once); ``ok=False`` makes ``wait`` raise ``value``."""
        self.ok, self.value = ok, value
        self._lock.release()

    def wait(self, timeout: Optional[float] = None, what: str = "a reply") -> Any:
        """The value, or raise the error it holds; :class:`Timeout` after ``timeout`` s."""
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            raise Timeout(f"no {what} within timeout={timeout!r}s")
        if not self.ok:
            raise self.value
        return self.value


class NamedTarget(tuple):
    """``(name, node)``, the target of a monitor taken on a name; ``.pid`` is the process it resolved to.

    The ``Down`` of such a monitor names ``(name, node)``, as Erlang's does;
    the kernel keeps the pid to drop the monitor from that process.
    """

    pid: Optional[Pid]

    def __new__(cls, name: str, node: str, pid: Optional[Pid] = None) -> "NamedTarget":
        self = super().__new__(cls, (name, node))
        self.pid = pid
        return self
