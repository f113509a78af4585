"""``Supervisor``: Erlang's ``supervisor`` behaviour, dynamic and across nodes.

A supervisor is a :class:`~mpactors.GenServer` that traps exits, starts its
children in order, linked, and restarts them by its strategy:

* ``one_for_one`` - restart only the child that ended;
* ``one_for_all`` - stop all other children (in reverse start order), then
  restart all in order;
* ``rest_for_one`` - stop the children started after it, then restart it and
  them;
* ``simple_one_for_one`` - one template :class:`ChildSpec`, no child at
  start; ``start_child(sup, extra_args)`` starts an instance with the
  template's args plus ``extra_args``; each is restarted on its own.

A child's ``restart`` type says when it is restarted: ``permanent`` always,
``transient`` only after an abnormal exit (not ``'normal'`` or
``'shutdown'``), ``temporary`` never (and it is forgotten once it ended).
A child with ``node=`` runs on that node; lost with its node
(``'noconnection'``) it is restarted by its restart type like any other
exit, and a restart that fails (the node is unreachable, ``init`` raised)
counts toward the intensity limit and is tried again, as Erlang's
``try_again_restart``. More than ``max_restarts`` restarts within
``max_seconds`` and the supervisor stops its children and exits with reason
``'shutdown'``, so that its own supervisor can act.

Children are stopped in reverse start order, each with its ``shutdown``
time: a GenServer child is asked to stop (its ``terminate('shutdown')``
runs), any other child gets the exit signal ``'shutdown'``; one still
running after ``shutdown`` seconds is killed. Every abnormal exit of a child
is logged once, as a crash report naming the child id, pid, reason and the
child's traceback.

The management functions (:func:`start_child`, :func:`terminate_child`,
:func:`restart_child`, :func:`delete_child`, :func:`which_children`,
:func:`count_children`) are calls to the supervisor, which alone changes its
children (errors travel back as values and are raised in the caller).
"""
from __future__ import annotations

import itertools
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import genserver, primitives
from .errors import AlreadyStarted, BadArg, NodeError, RemoteError, Timeout
from .messages import Crash, ExitSignal
from .pid import Pid

__all__ = [
    "Supervisor", "ChildSpec", "start_child", "terminate_child", "restart_child", "delete_child",
    "which_children", "count_children",
]

log = logging.getLogger(__name__)

_STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one")
_RESTARTS = ("permanent", "transient", "temporary")
_TYPES = ("worker", "supervisor")
_RETRY = "$sup_try_again_restart"
_KILL_WAIT = 10.0  # seconds to see a killed child's exit signal
_CALL_TIMEOUT = 30.0  # default wait for the management calls


class ChildSpec:
    """How to start and restart one child.

    Args:
        id: the child's name within its supervisor.
        start: a function run as the child actor (spawned linked), or a
            :class:`GenServer` subclass (started with ``start_link``).
        args, kwargs: passed to ``start``.
        restart: ``'permanent'``, ``'transient'`` or ``'temporary'``.
        shutdown: seconds the child has to exit after ``'shutdown'`` before it is killed.
        node: start (and restart) the child on this node; None: the supervisor's node.
        type: ``'worker'`` or ``'supervisor'`` (a child that supervises others).

    Raises:
        BadArg: an argument is out of range.
    """

    def __init__(
        self, id: Any, start: Callable[..., Any], args: Sequence[Any] = (), kwargs: Optional[Dict[str, Any]] = None,
        restart: str = "permanent", shutdown: float = 5.0, node: Optional[str] = None, type: str = "worker",
    ) -> None:
        if restart not in _RESTARTS:
            raise BadArg(f"`restart` must be one of {', '.join(_RESTARTS)}, not {restart!r}")
        if not callable(start):
            raise BadArg(f"`start` must be a function or a GenServer subclass, not {start!r}")
        if isinstance(shutdown, bool) or not isinstance(shutdown, (int, float)) or not shutdown >= 0:
            raise BadArg(f"`shutdown` must be a non-negative number of seconds, not {shutdown!r}")
        if node is not None and not isinstance(node, str):
            raise BadArg(f"`node` must be a node name like 'a@host' or None, not {node!r}")
        if type not in _TYPES:
            raise BadArg(f"`type` must be 'worker' or 'supervisor', not {type!r}")
        self.id, self.start, self.args, self.kwargs = id, start, tuple(args), dict(kwargs or {})
        self.restart, self.shutdown, self.node, self.type = restart, float(shutdown), node, type

    @property
    def is_genserver(self) -> bool:
        """True when ``start`` is a GenServer subclass (it is stopped with a stop request)."""
        return isinstance(self.start, type) and issubclass(self.start, genserver.GenServer)

    def launch(self, extra: Sequence[Any] = ()) -> Pid:
        """Start the child, linked to the calling process (the supervisor), with ``extra`` args appended."""
        args = self.args + tuple(extra)
        if self.is_genserver:
            kwargs = dict(self.kwargs)
            if self.node is not None:
                kwargs["node"] = self.node
            return self.start.start_link(*args, **kwargs)  # type: ignore[attr-defined, no-any-return]
        return primitives.spawn_link(self.start, *args, node=self.node, **self.kwargs)

    def __repr__(self) -> str:
        where = f", node={self.node!r}" if self.node is not None else ""
        name = getattr(self.start, "__name__", self.start)
        return f"ChildSpec({self.id!r}, {name!r}, restart={self.restart!r}, type={self.type!r}{where})"


class _Child:
    """One child of a running supervisor: its spec, its pid when running, its extra args."""

    __slots__ = ("spec", "pid", "extra", "key")

    def __init__(self, spec: ChildSpec, key: int, extra: Tuple[Any, ...] = ()) -> None:
        self.spec, self.key, self.extra = spec, key, extra
        self.pid: Optional[Pid] = None


class Supervisor(genserver.GenServer):
    """Start with ``Supervisor.start_link(children, strategy=..., max_restarts=..., max_seconds=...)``.

    With ``strategy='simple_one_for_one'``, ``children`` is exactly one
    template spec and no child starts until :func:`start_child`.
    """

    def init(
        self, children: Sequence[ChildSpec], strategy: str = "one_for_one",
        max_restarts: int = 3, max_seconds: float = 5.0, retry_delay: float = 0.5,
    ) -> None:
        """Start the children in order.

        Args:
            children: the child specs (for ``simple_one_for_one``, the template).
            strategy: ``'one_for_one'``, ``'one_for_all'``, ``'rest_for_one'``
                or ``'simple_one_for_one'``.
            max_restarts, max_seconds: the restart intensity; more restarts
                (failed ones included) within ``max_seconds`` and the
                supervisor shuts down.
            retry_delay: seconds between a failed restart and the next try
                (so a node that comes back within the intensity window gets
                its children back); Erlang retries at once.
        """
        if isinstance(retry_delay, bool) or not isinstance(retry_delay, (int, float)) or not retry_delay >= 0:
            raise BadArg(f"`retry_delay` must be a non-negative number of seconds, not {retry_delay!r}")
        self.retry_delay = float(retry_delay)
        if strategy not in _STRATEGIES:
            raise BadArg(f"`strategy` must be one of {', '.join(_STRATEGIES)}, not {strategy!r}")
        if not all(isinstance(c, ChildSpec) for c in children):
            raise BadArg(f"children must be ChildSpecs: {list(children)!r}")
        ids = [c.id for c in children]
        if len(set(ids)) != len(ids):
            raise BadArg(f"child ids must be unique: {ids}")
        if strategy == "simple_one_for_one" and len(children) != 1:
            raise BadArg(f"simple_one_for_one takes exactly one template ChildSpec, not {len(children)}")
        self.strategy, self.max_restarts, self.max_seconds = strategy, max_restarts, max_seconds
        self.template: Optional[ChildSpec] = children[0] if strategy == "simple_one_for_one" else None
        self.children: List[_Child] = []  # in start order
        self.by_pid: Dict[Pid, _Child] = {}
        self.restarts: List[float] = []
        self.keys = itertools.count(1)
        primitives.trap_exit(True)
        if self.template is not None:
            return
        for spec in children:
            child = _Child(spec, next(self.keys))
            self.children.append(child)
            try:
                self._launch(child)
            except Exception:
                self.terminate("shutdown")  # what started so far, in reverse order
                raise

    # -- requests ------------------------------------------------------------
    def handle_call(self, request: Any, frm: genserver.From) -> Any:
        op, arg = request if isinstance(request, tuple) and len(request) == 2 else (request, None)
        handler = getattr(self, f"_op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            return ("error", BadArg(f"unknown supervisor request {request!r}"))
        try:
            return ("ok", handler(arg))
        except (AlreadyStarted, BadArg, RemoteError, NodeError, Timeout) as exc:
            return ("error", exc)

    def _op_which_children(self, _: Any) -> List[Tuple[Any, Optional[Pid], str]]:
        return [(None if self.template else c.spec.id, c.pid, c.spec.type) for c in self.children]

    def _op_count_children(self, _: Any) -> Dict[str, int]:
        sups = sum(1 for c in self.children if c.spec.type == "supervisor")
        return {
            "specs": 1 if self.template is not None else len(self.children),
            "active": sum(1 for c in self.children if c.pid is not None),
            "supervisors": sups,
            "workers": len(self.children) - sups,
        }

    def _op_start_child(self, arg: Any) -> Pid:
        if self.template is not None:
            if isinstance(arg, ChildSpec) or not isinstance(arg, (list, tuple)):
                raise BadArg(f"a simple_one_for_one supervisor starts children from a list of extra args, not {arg!r}")
            child = _Child(self.template, next(self.keys), tuple(arg))
        else:
            if not isinstance(arg, ChildSpec):
                raise BadArg(f"start_child needs a ChildSpec, not {arg!r}")
            old = self._find(arg.id)
            if old is not None and old.pid is not None:
                raise AlreadyStarted(f"child {arg.id!r} is already running as {old.pid}", old.pid)
            if old is not None:
                raise BadArg(f"child {arg.id!r} is already present: restart_child or delete_child it")
            child = _Child(arg, next(self.keys))
        pid = self._launch(child)  # raises: the child is not added
        self.children.append(child)
        return pid

    def _op_terminate_child(self, key: Any) -> None:
        child = self._by_pid_arg(key) if self.template is not None else self._existing(key)
        self._shutdown(child)
        if self.template is not None or child.spec.restart == "temporary":
            self.children.remove(child)

    def _op_restart_child(self, key: Any) -> Pid:
        child = self._static(key)
        if child.pid is not None:
            raise BadArg(f"child {key!r} is running ({child.pid}): terminate_child it first")
        return self._launch(child)

    def _op_delete_child(self, key: Any) -> None:
        child = self._static(key)
        if child.pid is not None:
            raise BadArg(f"child {key!r} is running ({child.pid}): terminate_child it first")
        self.children.remove(child)

    def _find(self, key: Any) -> Optional[_Child]:
        return next((c for c in self.children if c.spec.id == key), None)

    def _existing(self, key: Any) -> _Child:
        child = self._find(key)
        if child is None:
            raise BadArg(f"no child with id {key!r}")
        return child

    def _static(self, key: Any) -> _Child:
        if self.template is not None:
            raise BadArg("restart_child and delete_child do not apply to a simple_one_for_one supervisor")
        return self._existing(key)

    def _by_pid_arg(self, pid: Any) -> _Child:
        child = self.by_pid.get(pid) if type(pid) is Pid else None
        if child is None:
            raise BadArg(f"no running child {pid!r} (a simple_one_for_one child is named by its pid)")
        return child

    # -- exits and restarts --------------------------------------------------
    def handle_info(self, msg: Any) -> None:
        if type(msg) is tuple and len(msg) == 2 and msg[0] == _RETRY:
            child = next((c for c in self.children if c.key == msg[1]), None)
            if child is not None and child.pid is None:
                self._restart(child, [child])
            return
        if type(msg) is not ExitSignal:
            return
        child = self.by_pid.pop(msg.pid, None)
        if child is None:
            return
        child.pid = None
        if not _normal(msg.reason):
            _crash_report(child, msg.pid, msg.reason)
        if not _should_restart(child.spec, msg.reason):
            if child.spec.restart == "temporary" or self.template is not None:
                self.children.remove(child)
            return
        self._restart(child, self._group(child))

    def _group(self, child: _Child) -> List[_Child]:
        """The children restarted with ``child``, in start order."""
        if self.strategy == "one_for_all":
            return list(self.children)
        if self.strategy == "rest_for_one":
            return self.children[self.children.index(child):]
        return [child]

    def _restart(self, child: _Child, group: List[_Child]) -> None:
        if self._too_many_restarts():
            log.error(
                "supervisor %s: reached the restart intensity (%d restarts in %ss) after child %r; shutting down",
                primitives.self(), self.max_restarts, self.max_seconds, child.spec.id,
            )
            self.stop("shutdown")
            return
        for other in reversed(group):
            if other is not child:
                self._shutdown(other)
        for other in group:
            if other is not child and other.spec.restart == "temporary":
                self.children.remove(other)
                continue
            try:
                self._launch(other)
            except (RemoteError, NodeError, Timeout, BadArg, AlreadyStarted):
                # Erlang's try_again_restart: a failed restart counts toward
                # the intensity and is tried again (after retry_delay).
                self._retry_later(other)

    def _retry_later(self, child: _Child) -> None:
        msg = (_RETRY, child.key)
        if self.retry_delay == 0:
            primitives.send(primitives.self(), msg)
        else:
            primitives.spawn(_send_later, self.retry_delay, primitives.self(), msg)

    def _launch(self, child: _Child) -> Pid:
        try:
            pid = child.spec.launch(child.extra)
        except Exception as exc:
            log.error("supervisor %s: child %r failed to start%s: %s", primitives.self(), child.spec.id,
                      f" on {child.spec.node}" if child.spec.node else "", exc)
            raise
        child.pid = pid
        self.by_pid[pid] = child
        return pid

    def terminate(self, reason: Any) -> None:
        for child in reversed(self.children):
            self._shutdown(child)

    def _too_many_restarts(self) -> bool:
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t <= self.max_seconds] + [now]
        return len(self.restarts) > self.max_restarts

    def _shutdown(self, child: _Child) -> None:
        """Stop a child: a stop request or ``'shutdown'``, then ``'kill'`` after its ``shutdown`` s."""
        pid = child.pid
        if pid is None:
            return
        child.pid = None
        self.by_pid.pop(pid, None)
        if child.spec.is_genserver:
            genserver.request_stop(pid, "shutdown")
        else:
            primitives.exit(pid, "shutdown")
        try:
            primitives.receive(lambda m: type(m) is ExitSignal and m.pid == pid, child.spec.shutdown)
            return
        except Timeout:
            log.warning("supervisor %s: child %r (%s) did not stop within %ss; killing it",
                        primitives.self(), child.spec.id, pid, child.spec.shutdown)
        primitives.exit(pid, "kill")
        try:
            primitives.receive(lambda m: type(m) is ExitSignal and m.pid == pid, _KILL_WAIT)
        except Timeout:
            log.error("supervisor %s: child %r (%s) still not gone %ss after kill", primitives.self(),
                      child.spec.id, pid, _KILL_WAIT)


def _send_later(delay: float, dest: Pid, msg: Any) -> None:
    """A short-lived actor that sends ``msg`` to ``dest`` after ``delay`` seconds."""
    time.sleep(delay)
    primitives.send(dest, msg)


def _normal(reason: Any) -> bool:
    return reason in ("normal", "shutdown") or (isinstance(reason, tuple) and reason[:1] == ("shutdown",))


def _should_restart(spec: ChildSpec, reason: Any) -> bool:
    if spec.restart == "permanent":
        return True
    if spec.restart == "temporary":
        return False
    return not _normal(reason)


def _crash_report(child: _Child, pid: Pid, reason: Any) -> None:
    """Log one abnormal exit: child id, pid, reason and the child's traceback when it crashed."""
    trace = f"\n{reason.traceback.rstrip()}" if isinstance(reason, Crash) and reason.traceback else ""
    log.error("supervisor %s: child %r (%s) exited with %s%s",
              primitives.self(), child.spec.id, pid, reason if isinstance(reason, Crash) else repr(reason), trace)


# -- the management API (calls to the supervisor) ----------------------------------
def _request(sup: Any, op: str, arg: Any, timeout: Optional[float]) -> Any:
    status, value = genserver.call(sup, (op, arg), timeout)
    if status == "error":
        raise value
    return value


def start_child(sup: Any, spec: Any, timeout: Optional[float] = _CALL_TIMEOUT) -> Pid:
    """Add a child to a running supervisor and start it; its pid.

    Args:
        sup: the supervisor (Pid, name or ``(name, node)``).
        spec: a :class:`ChildSpec`; for ``simple_one_for_one``, a list or
            tuple of extra args appended to the template's args.

    Raises:
        AlreadyStarted: a child with this id is running (``.pid`` is it).
        BadArg: a child with this id is present but not running, or ``spec``
            is the wrong kind for the strategy.
        RemoteError, NodeError, Timeout: the child failed to start (it is not added).
    """
    return _request(sup, "start_child", spec, timeout)  # type: ignore[no-any-return]


def terminate_child(sup: Any, id: Any, timeout: Optional[float] = _CALL_TIMEOUT) -> None:
    """Stop a child; its spec stays (a temporary child's, or a simple_one_for_one child's, does not).

    For ``simple_one_for_one`` the child is named by its pid.

    Raises:
        BadArg: no such child.
    """
    _request(sup, "terminate_child", id, timeout)


def restart_child(sup: Any, id: Any, timeout: Optional[float] = _CALL_TIMEOUT) -> Pid:
    """Start a terminated child again from its spec; its new pid.

    Raises:
        BadArg: no such child, it is running, or the supervisor is simple_one_for_one.
        RemoteError, NodeError, Timeout: it failed to start.
    """
    return _request(sup, "restart_child", id, timeout)  # type: ignore[no-any-return]


def delete_child(sup: Any, id: Any, timeout: Optional[float] = _CALL_TIMEOUT) -> None:
    """Remove a terminated child's spec.

    Raises:
        BadArg: no such child, it is running, or the supervisor is simple_one_for_one.
    """
    _request(sup, "delete_child", id, timeout)


def which_children(sup: Any, timeout: Optional[float] = _CALL_TIMEOUT) -> List[Tuple[Any, Optional[Pid], str]]:
    """``[(id, pid or None, type), ...]`` in start order (id is None under simple_one_for_one).

    A temporary child that ended is no longer listed.
    """
    return _request(sup, "which_children", None, timeout)  # type: ignore[no-any-return]


def count_children(sup: Any, timeout: Optional[float] = _CALL_TIMEOUT) -> Dict[str, int]:
    """``{'specs', 'active', 'supervisors', 'workers'}`` counts, as Erlang's ``count_children``.

    ``specs`` counts child specs (1 for simple_one_for_one), ``active`` the
    running children, ``supervisors``/``workers`` the children of each type,
    running or not.
    """
    return _request(sup, "count_children", None, timeout)  # type: ignore[no-any-return]


for _fn in (start_child, terminate_child, restart_child, delete_child, which_children, count_children):
    setattr(Supervisor, _fn.__name__, staticmethod(_fn))
del _fn
