"""The calling process's BIFs: ``self``, ``send``, ``receive``, ``spawn``...

Each function acts for the calling process: inside an actor, for that actor;
in the process that started a :class:`~mpactors.Node`, for the node's main
process (it has a pid and a mailbox, as the Erlang shell does). The work is
done by the process context installed by the node (``_NodeMain``) or by the
actor bootstrap (``_worker.ActorProc``).
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

from . import _codec
from .errors import BadArg, NotAlive
from .pid import Pid, Ref

__all__ = [
    "self", "node", "nodes", "send", "receive", "spawn", "spawn_link", "spawn_monitor",
    "link", "unlink", "trap_exit", "exit", "monitor", "demonitor", "register",
    "unregister", "whereis", "registered", "processes", "process_info", "ping",
    "disconnect_node", "monitor_node", "monitor_nodes", "get_cookie", "set_cookie",
    "make_ref", "flush",
]

_current: Any = None


def _set_current(proc: Any) -> None:
    global _current
    _current = proc


def _proc() -> Any:
    proc = _current
    if proc is None:
        raise NotAlive(
            "this process is not an mpactors node or actor: start one with "
            "`with mpactors.Node('name'):` first"
        )
    return proc


def self() -> Pid:
    """The calling process's pid."""
    return _proc().pid  # type: ignore[no-any-return]


def node() -> str:
    """The name of the calling process's node (``'nonode@nohost'`` when not distributed)."""
    return _proc().node_name  # type: ignore[no-any-return]


def make_ref() -> Ref:
    """A reference unique in the cluster (for tagging requests)."""
    return _proc().make_ref()  # type: ignore[no-any-return]


def send(dest: Any, msg: Any) -> Any:
    """Send ``msg`` to ``dest`` without waiting for the receiver; returns ``msg``.

    Args:
        dest: a :class:`Pid`, a locally registered name, or ``(name, node)``.
        msg: any picklable value (dill is used for lambdas and closures).

    Raises:
        BadArg: ``dest`` is an unregistered local name or not a destination,
            or ``msg`` cannot be pickled (nothing is sent in either case).

    A message to a dead pid is dropped silently, as in Erlang.
    """
    proc = _proc()
    if proc.tracer is not None:
        proc.trace("send", msg, dest)
    if type(dest) is Pid:
        payload = _codec.dumps(msg)
        if dest.node == proc.node_name:
            if dest.creation in (proc.creation, 0):  # 0: typed as text, this incarnation
                proc.send_local(dest, payload)
        else:
            proc.send_remote(dest, payload)
        return msg
    if isinstance(dest, str):
        pid = proc.whereis(dest)
        if pid is None:
            raise BadArg(f"send to {dest!r}: no process is registered under that name on {proc.node_name}")
        proc.send_local(pid, _codec.dumps(msg))
        return msg
    if isinstance(dest, tuple) and len(dest) == 2 and isinstance(dest[0], str) and isinstance(dest[1], str):
        name, where = dest
        if where == proc.node_name:
            return send(name, msg)
        proc.send_remote(dest, _codec.dumps(msg))
        return msg
    raise BadArg(f"cannot send to {dest!r}: expected a Pid, a registered name or (name, node)")


def receive(match: Any = None, timeout: Optional[float] = None) -> Any:
    """Take the oldest message in the mailbox that matches ``match``.

    Messages that do not match stay in the mailbox, in order.

    Args:
        match: ``None`` (any message), ``ANY``, a type, a value, a tuple of
            patterns, or a predicate (see :mod:`mpactors.pattern`).
        timeout: seconds to wait; ``None`` waits forever, ``0`` only looks.

    Raises:
        Timeout: no matching message arrived within ``timeout``.
    """
    _check_timeout(timeout)
    return _proc().mailbox.receive(match, timeout)


def _check_timeout(timeout: Any) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise BadArg(f"`timeout` must be a non-negative number of seconds or None, not {timeout!r}")


def flush() -> List[Any]:
    """Take every message out of the calling process's mailbox, oldest first."""
    return _proc().mailbox.flush()  # type: ignore[no-any-return]


def _spawn(
    fn: Callable[..., Any], args: tuple, kwargs: dict, node: Optional[str], link: bool, monitor: bool,
    label: Optional[str] = None,
) -> Any:
    """Spawn; ``label`` names the actor in ``ps`` and ``process_info['current']``."""
    if not callable(fn):
        raise BadArg(f"spawn needs a callable, not {fn!r}")
    if node is not None and not isinstance(node, str):
        raise BadArg(f"`node` must be a node name like 'a@host', not {node!r}")
    payload = _codec.dumps((fn, args, kwargs))
    if label is None:
        label = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
        module = getattr(fn, "__module__", None)
        if module and module not in ("__main__", "__mp_main__"):
            label = f"{module}.{label}"
    return _proc().call("spawn", payload, label, link, monitor, node)


def spawn(fn: Callable[..., Any], /, *args: Any, node: Optional[str] = None, **kwargs: Any) -> Pid:
    """Start ``fn(*args, **kwargs)`` in a new actor process (on ``node`` if given).

    Lambdas and closures work (they are pickled with dill).

    Raises:
        BadArg: ``fn`` is not callable, or it or its arguments cannot be pickled.
    """
    return _spawn(fn, args, kwargs, node, False, False)  # type: ignore[no-any-return]


def spawn_link(fn: Callable[..., Any], /, *args: Any, node: Optional[str] = None, **kwargs: Any) -> Pid:
    """:func:`spawn` and :func:`link` in one atomic step."""
    return _spawn(fn, args, kwargs, node, True, False)  # type: ignore[no-any-return]


def spawn_monitor(fn: Callable[..., Any], /, *args: Any, node: Optional[str] = None, **kwargs: Any) -> Tuple[Pid, Ref]:
    """:func:`spawn` and :func:`monitor` in one atomic step; returns ``(pid, ref)``."""
    pid, ref = _spawn(fn, args, kwargs, node, False, True)
    return pid, ref


def link(pid: Pid) -> None:
    """Link the calling process to ``pid``: when either dies, the other gets an exit signal.

    Linking to a dead process sends ``ExitSignal(pid, 'noproc')`` to a caller
    that traps exits, as Erlang does.
    """
    _proc().call("link", pid)


def unlink(pid: Pid) -> None:
    """Remove the link between the calling process and ``pid`` (if any)."""
    _proc().call("unlink", pid)


def trap_exit(flag: bool) -> bool:
    """Trap exit signals (receive them as ``ExitSignal`` messages); returns the old flag."""
    proc = _proc()
    old = proc.call("trap_exit", bool(flag))
    proc.trapping = bool(flag)
    return old  # type: ignore[no-any-return]


def exit(pid_or_reason: Any, reason: Any = None) -> None:  # noqa: A001 - Erlang's name
    """``exit(pid, reason)`` sends an exit signal; ``exit(reason)`` ends the caller.

    ``exit(pid, 'kill')`` cannot be trapped and ends ``pid`` with ``'killed'``;
    ``'normal'`` ends only processes that send it to themselves.
    """
    from .errors import ProcessExit

    if reason is None and type(pid_or_reason) is not Pid:
        raise ProcessExit(pid_or_reason)
    if type(pid_or_reason) is not Pid:
        raise BadArg(f"exit/2 needs a Pid, not {pid_or_reason!r}")
    _proc().call("exit", pid_or_reason, reason)


def monitor(pid: Any) -> Ref:
    """Monitor ``pid`` (or a registered name): ``Down(ref, pid, reason)`` arrives once."""
    return _proc().call("monitor", pid)  # type: ignore[no-any-return]


def demonitor(ref: Ref, flush: bool = False) -> bool:
    """Stop a monitor; with ``flush=True`` also drop its ``Down`` if already delivered."""
    from .messages import Down

    proc = _proc()
    found = proc.call("demonitor", ref)
    if flush:
        while True:
            try:
                proc.mailbox.receive(lambda m: type(m) is Down and m.ref == ref, 0)
            except Exception:  # noqa: BLE001 - Timeout: nothing left to drop
                break
    return found  # type: ignore[no-any-return]


def register(name: str, pid: Optional[Pid] = None) -> None:
    """Register ``pid`` (default: the caller) under ``name`` on this node.

    Raises:
        BadArg: the name is taken, the pid already has a name, or is not a live local process.
    """
    _proc().call("register", name, pid)


def unregister(name: str) -> None:
    """Remove a registered name. Raises :class:`BadArg` if it is not registered."""
    _proc().call("unregister", name)


def whereis(name: str) -> Optional[Pid]:
    """The pid registered under ``name`` on this node, or None."""
    return _proc().whereis(name)  # type: ignore[no-any-return]


def registered() -> List[str]:
    """The names registered on this node."""
    return _proc().call("registered")  # type: ignore[no-any-return]


def processes() -> List[Pid]:
    """The pids of this node's live actors."""
    return _proc().call("processes")  # type: ignore[no-any-return]


def process_info(pid: Pid) -> Optional[dict]:
    """What the node knows of ``pid`` (local or remote), or None if it is not alive.

    Keys: ``status`` (``'running'``/``'waiting'``), ``message_queue_len``,
    ``links``, ``monitors``, ``monitored_by``, ``registered_name``, ``os_pid``,
    ``memory`` (RSS bytes), ``cpu_percent``, ``current`` (callable name),
    ``trap_exit``, ``node``.
    """
    if type(pid) is not Pid:
        raise BadArg(f"process_info needs a Pid, not {pid!r}")
    return _proc().call("process_info", pid)  # type: ignore[no-any-return]


def nodes(kind: str = "visible") -> List[str]:
    """The nodes this node is connected to: ``'visible'`` (default), ``'hidden'`` or ``'connected'``.

    As in Erlang, every connection of a hidden node is hidden, so a hidden
    node's ``nodes()`` is empty and ``nodes('hidden')`` lists its peers.
    """
    return _proc().call("nodes", kind)  # type: ignore[no-any-return]


def ping(node: str) -> str:
    """``'pong'`` if ``node`` answers (connecting if needed), else ``'pang'``."""
    return _proc().call("ping", node)  # type: ignore[no-any-return]


def disconnect_node(node: str) -> bool:
    """Drop the connection to ``node`` (both sides see node-down)."""
    return _proc().call("disconnect_node", node)  # type: ignore[no-any-return]


def monitor_node(node: str, flag: bool = True) -> None:
    """Get ``NodeDown(node)`` when the connection to ``node`` is lost (stacked, as in Erlang)."""
    _proc().call("monitor_node", node, flag)


def monitor_nodes(flag: bool = True) -> None:
    """Get ``NodeUp``/``NodeDown`` for every visible node that connects or disconnects."""
    _proc().call("monitor_nodes", flag)


def get_cookie(node: Optional[str] = None) -> Any:
    """This node's cookie (or the one used towards ``node``), None when not distributed.

    It is a :class:`~mpactors.cookie.Cookie`: its repr hides the value and it
    refuses to be pickled; ``bytes(cookie)`` gives the value.
    """
    from .cookie import Cookie

    value = _proc().call("get_cookie", node)
    return None if value is None else Cookie(value)


def set_cookie(cookie: Any, node: Optional[str] = None) -> None:
    """Set this node's cookie, or the cookie used towards ``node`` only."""
    _proc().call("set_cookie", cookie, node)
