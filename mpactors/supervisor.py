"""``Supervisor``: Erlang's ``supervisor`` behaviour.

A supervisor is a :class:`~mpactors.GenServer` that traps exits, starts its
children in order, linked, and restarts them by its strategy:

* ``one_for_one`` - restart only the child that ended;
* ``one_for_all`` - stop all other children (in reverse start order), then
  restart all in order;
* ``rest_for_one`` - stop the children started after it, then restart it and
  them.

A child's ``restart`` type says when it is restarted: ``permanent`` always,
``transient`` only after an abnormal exit (not ``'normal'`` or
``'shutdown'``), ``temporary`` never. More than ``max_restarts`` restarts
within ``max_seconds`` and the supervisor stops its children and exits with
reason ``'shutdown'``, so that its own supervisor can act.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import genserver, primitives
from .errors import BadArg, Timeout
from .messages import ExitSignal
from .pid import Pid

__all__ = ["Supervisor", "ChildSpec", "which_children"]

_STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")
_RESTARTS = ("permanent", "transient", "temporary")


class ChildSpec:
    """How to start and restart one child.

    Args:
        id: the child's name within its supervisor.
        start: a function run as the child actor (spawned linked), or a
            :class:`GenServer` subclass (started with ``start_link``).
        args, kwargs: passed to ``start``.
        restart: ``'permanent'``, ``'transient'`` or ``'temporary'``.
        shutdown: seconds the child has to exit after ``'shutdown'`` before it is killed.
    """

    def __init__(
        self, id: str, start: Callable[..., Any], args: Sequence[Any] = (), kwargs: Optional[Dict[str, Any]] = None,
        restart: str = "permanent", shutdown: float = 5.0,
    ) -> None:
        if restart not in _RESTARTS:
            raise BadArg(f"`restart` must be one of {', '.join(_RESTARTS)}, not {restart!r}")
        if not callable(start):
            raise BadArg(f"`start` must be a function or a GenServer subclass, not {start!r}")
        self.id, self.start, self.args, self.kwargs = id, start, tuple(args), dict(kwargs or {})
        self.restart, self.shutdown = restart, shutdown

    def launch(self) -> Pid:
        """Start the child, linked to the calling process (the supervisor)."""
        if isinstance(self.start, type) and issubclass(self.start, genserver.GenServer):
            return self.start.start_link(*self.args, **self.kwargs)
        return primitives.spawn_link(self.start, *self.args, **self.kwargs)

    def __repr__(self) -> str:
        return f"ChildSpec({self.id!r}, {getattr(self.start, '__name__', self.start)!r}, restart={self.restart!r})"


class Supervisor(genserver.GenServer):
    """Start with ``Supervisor.start_link(children, strategy=..., max_restarts=..., max_seconds=...)``."""

    def init(
        self, children: Sequence[ChildSpec], strategy: str = "one_for_one",
        max_restarts: int = 3, max_seconds: float = 5.0,
    ) -> None:
        if strategy not in _STRATEGIES:
            raise BadArg(f"`strategy` must be one of {', '.join(_STRATEGIES)}, not {strategy!r}")
        ids = [c.id for c in children]
        if len(set(ids)) != len(ids):
            raise BadArg(f"child ids must be unique: {ids}")
        self.specs: List[ChildSpec] = list(children)
        self.strategy, self.max_restarts, self.max_seconds = strategy, max_restarts, max_seconds
        self.pids: Dict[str, Optional[Pid]] = {}
        self.restarts: List[float] = []
        primitives.trap_exit(True)
        for spec in self.specs:
            self.pids[spec.id] = spec.launch()

    def handle_call(self, request: Any, frm: genserver.From) -> Any:
        if request == "which_children":
            return [(spec.id, self.pids.get(spec.id)) for spec in self.specs]
        raise BadArg(f"unknown supervisor request {request!r}")

    def handle_info(self, msg: Any) -> None:
        if type(msg) is not ExitSignal:
            return
        spec = next((s for s in self.specs if self.pids.get(s.id) == msg.pid), None)
        if spec is None:
            return
        self.pids[spec.id] = None
        if not _should_restart(spec, msg.reason):
            return
        if self._too_many_restarts():
            self.stop("shutdown")
            return
        index = self.specs.index(spec)
        if self.strategy == "one_for_one":
            again = [spec]
        elif self.strategy == "one_for_all":
            again = list(self.specs)
        else:
            again = self.specs[index:]
        for other in reversed(again):
            if other is not spec:
                self._shutdown(other)
        for other in again:
            if other is spec or other.restart != "temporary":
                self.pids[other.id] = other.launch()

    def terminate(self, reason: Any) -> None:
        for spec in reversed(self.specs):
            self._shutdown(spec)

    def _too_many_restarts(self) -> bool:
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t <= self.max_seconds] + [now]
        return len(self.restarts) > self.max_restarts

    def _shutdown(self, spec: ChildSpec) -> None:
        """Stop a child: ``'shutdown'``, then ``'kill'`` after ``spec.shutdown`` s."""
        pid = self.pids.get(spec.id)
        if pid is None:
            return
        self.pids[spec.id] = None
        primitives.exit(pid, "shutdown")
        try:
            primitives.receive(lambda m: type(m) is ExitSignal and m.pid == pid, spec.shutdown)
        except Timeout:
            primitives.exit(pid, "kill")
            primitives.receive(lambda m: type(m) is ExitSignal and m.pid == pid, 10.0)


def _should_restart(spec: ChildSpec, reason: Any) -> bool:
    if spec.restart == "permanent":
        return True
    if spec.restart == "temporary":
        return False
    return reason not in ("normal", "shutdown") and not (isinstance(reason, tuple) and reason[:1] == ("shutdown",))


def which_children(supervisor: Any, timeout: float = 5.0) -> List[Tuple[str, Optional[Pid]]]:
    """``[(id, pid or None), ...]`` of a running supervisor, in start order."""
    return genserver.call(supervisor, "which_children", timeout)  # type: ignore[no-any-return]
