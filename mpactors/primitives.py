"""The calling process's BIFs: ``self``, ``send``, ``receive``, ``spawn``...

Each function acts for the calling process: inside an actor, for that actor;
in the process that started a :class:`~mpactors.Node`, for the node's main
process (it has a pid and a mailbox, as the Erlang shell does). The work is
done by the calling process's context (:mod:`mpactors._core._context`).
"""
from __future__ import annotations

import os
from typing import Any, Callable, List, Optional, Tuple

from . import _codec
from ._core._context import check_timeout, current
from ._core._counters import COUNTERS as _COUNTERS, ENABLED as _COUNTING
from .errors import BadArg
from .pid import Pid, Ref, TimerRef

__all__ = [
    "self", "node", "nodes", "send", "receive", "spawn", "spawn_link", "spawn_monitor",
    "link", "unlink", "trap_exit", "exit", "monitor", "demonitor", "register",
    "unregister", "whereis", "registered", "processes", "process_info", "ping",
    "disconnect_node", "monitor_node", "monitor_nodes", "get_cookie", "set_cookie",
    "make_ref", "flush", "send_after", "send_interval", "cancel_timer", "read_timer",
]

def self() -> Pid:
    """The calling process's pid."""
    return current().pid


def node() -> str:
    """The name of the calling process's node (``'nonode@nohost'`` when not distributed)."""
    return current().node_name


def make_ref() -> Ref:
    """A reference unique in the cluster (for tagging requests)."""
    return current().make_ref()


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
    proc = current()
    if proc.tracer is not None:
        proc.trace("send", msg, dest)
    if type(dest) is Pid:
        local = dest.node == proc.node_name
        payload = _codec.dumps(msg) if local else _codec.dumps_remote(msg)  # the script's code by value
        if _COUNTING:
            _COUNTERS.messages_out += 1
            _COUNTERS.bytes_out += len(payload)
        if not local:
            proc.send_remote(dest, payload)
        elif dest.creation in (proc.creation, 0):  # 0: typed as text, this incarnation
            proc.send_local(dest, payload)
        return msg
    if isinstance(dest, str):
        pid = proc.whereis(dest)
        if pid is None:
            raise BadArg(f"send to {dest!r}: no process is registered under that name on {proc.node_name}")
        payload = _codec.dumps(msg)
        if _COUNTING:
            _COUNTERS.messages_out += 1
            _COUNTERS.bytes_out += len(payload)
        proc.send_local(pid, payload)
        return msg
    if isinstance(dest, tuple) and len(dest) == 2 and isinstance(dest[0], str) and isinstance(dest[1], str):
        name, where = dest
        if where == proc.node_name:
            return send(name, msg)
        payload = _codec.dumps_remote(msg)
        if _COUNTING:
            _COUNTERS.messages_out += 1
            _COUNTERS.bytes_out += len(payload)
        proc.send_remote(dest, payload)
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
    check_timeout(timeout)
    return current().mailbox.receive(match, timeout)


def flush() -> List[Any]:
    """Take every message out of the calling process's mailbox, oldest first."""
    return current().mailbox.flush()


def start_process(
    fn: Callable[..., Any], args: tuple, kwargs: dict, node: Optional[str], link: bool, monitor: bool,
    label: Optional[str] = None,
) -> Any:
    """Spawn; ``label`` names the actor in ``ps`` and ``process_info['current']``."""
    if not callable(fn):
        raise BadArg(f"spawn needs a callable, not {fn!r}")
    if node is not None and not isinstance(node, str):
        raise BadArg(f"`node` must be a node name like 'a@host', not {node!r}")
    remote = node is not None and node != current().node_name
    # To another node, functions and classes of the script (__main__) go by value.
    payload = (_codec.dumps_remote if remote else _codec.dumps)((fn, args, kwargs))
    if label is None:
        label = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
        module = getattr(fn, "__module__", None)
        if module and module not in ("__main__", "__mp_main__"):
            label = f"{module}.{label}"
    return current().call("spawn", payload, label, link, monitor, node)


def spawn(fn: Callable[..., Any], /, *args: Any, node: Optional[str] = None, **kwargs: Any) -> Pid:
    """Start ``fn(*args, **kwargs)`` in a new actor process (on ``node`` if given).

    Lambdas and closures work (they are pickled with dill).

    Raises:
        BadArg: ``fn`` is not callable, or it or its arguments cannot be pickled.
    """
    return start_process(fn, args, kwargs, node, False, False)


def spawn_link(fn: Callable[..., Any], /, *args: Any, node: Optional[str] = None, **kwargs: Any) -> Pid:
    """:func:`spawn` and :func:`link` in one atomic step."""
    return start_process(fn, args, kwargs, node, True, False)


def spawn_monitor(fn: Callable[..., Any], /, *args: Any, node: Optional[str] = None, **kwargs: Any) -> Tuple[Pid, Ref]:
    """:func:`spawn` and :func:`monitor` in one atomic step; returns ``(pid, ref)``."""
    pid, ref = start_process(fn, args, kwargs, node, False, True)
    return pid, ref


def link(pid: Pid) -> None:
    """Link the calling process to ``pid``: when either dies, the other gets an exit signal.

    Linking to a local process that is already dead sends
    ``ExitSignal(pid, 'noproc')`` to a caller that traps exits, and raises
    :class:`~mpactors.NoProc` in a caller that does not, as Erlang does. For
    a remote pid the exit signal ``'noproc'`` comes back from its node and
    arrives as a message or kills, by the usual rules.

    Raises:
        NoProc: ``pid`` is a dead local process and the caller does not trap exits.
    """
    current().call("link", pid)


def unlink(pid: Pid) -> None:
    """Remove the link between the calling process and ``pid`` (if any)."""
    current().call("unlink", pid)


def trap_exit(flag: bool) -> bool:
    """Trap exit signals (receive them as ``ExitSignal`` messages); returns the old flag."""
    proc = current()
    old = proc.call("trap_exit", bool(flag))
    proc.trapping = bool(flag)
    return old


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
    current().call("exit", pid_or_reason, reason)


def monitor(pid: Any) -> Ref:
    """Monitor ``pid``, a registered name or ``(name, node)``: ``Down(ref, pid, reason)`` arrives once.

    For a monitor taken on a name, ``Down.pid`` is ``(name, node)`` (the
    node's full name), as Erlang names a monitored registered process.
    """
    return current().call("monitor", pid)


def demonitor(ref: Ref, flush: bool = False) -> bool:
    """Stop a monitor; with ``flush=True`` also drop its ``Down`` if already delivered."""
    from .messages import Down

    proc = current()
    found = proc.call("demonitor", ref)
    if flush:
        while True:
            try:
                proc.mailbox.receive(lambda m: type(m) is Down and m.ref == ref, 0)
            except Exception:  # noqa: BLE001 - Timeout: nothing left to drop
                break
    return found


def register(name: str, pid: Optional[Pid] = None) -> None:
    """Register ``pid`` (default: the caller) under ``name`` on this node.

    Raises:
        BadArg: the name is taken, the pid already has a name, or is not a live local process.
    """
    current().call("register", name, pid)


def unregister(name: str) -> None:
    """Remove a registered name. Raises :class:`BadArg` if it is not registered."""
    current().call("unregister", name)


def whereis(name: str) -> Optional[Pid]:
    """The pid registered under ``name`` on this node, or None."""
    return current().whereis(name)


def registered() -> List[str]:
    """The names registered on this node."""
    return current().call("registered")


def processes() -> List[Pid]:
    """The pids of this node's live actors."""
    return current().call("processes")


def process_info(pid: Pid) -> Optional[dict]:
    """What the node knows of ``pid`` (local or remote), or None if it is not alive.

    Keys: ``status`` (``'running'``/``'waiting'``), ``message_queue_len``,
    ``links``, ``monitors``, ``monitored_by``, ``registered_name``, ``os_pid``,
    ``memory`` (RSS bytes), ``cpu_percent``, ``current`` (callable name),
    ``trap_exit``, ``node``; the process's message counters since it started
    (``messages_in``, ``bytes_in``, ``messages_handled``, ``messages_out``,
    ``bytes_out``) and, for an actor, ``behaviour`` (``'gen_server'``,
    ``'supervisor'`` or None).
    """
    if type(pid) is not Pid:
        raise BadArg(f"process_info needs a Pid, not {pid!r}")
    return current().call("process_info", pid)


def nodes(kind: str = "visible") -> List[str]:
    """The nodes this node is connected to: ``'visible'`` (default), ``'hidden'`` or ``'connected'``.

    As in Erlang, every connection of a hidden node is hidden, so a hidden
    node's ``nodes()`` is empty and ``nodes('hidden')`` lists its peers.
    """
    return current().call("nodes", kind)


def ping(node: str) -> str:
    """``'pong'`` if ``node`` answers (connecting if needed), else ``'pang'``."""
    return current().call("ping", node)


def disconnect_node(node: str) -> bool:
    """Drop the connection to ``node`` (both sides see node-down)."""
    return current().call("disconnect_node", node)


def monitor_node(node: str, flag: bool = True) -> None:
    """Get ``NodeDown(node)`` when the connection to ``node`` is lost (stacked, as in Erlang)."""
    current().call("monitor_node", node, flag)


def monitor_nodes(flag: bool = True) -> None:
    """Get ``NodeUp``/``NodeDown`` for every visible node that connects or disconnects."""
    current().call("monitor_nodes", flag)


def get_cookie(node: Optional[str] = None) -> Any:
    """This node's cookie (or the one used towards ``node``), None when not distributed.

    It is a :class:`~mpactors.cookie.Cookie`: its repr hides the value and it
    refuses to be pickled; ``bytes(cookie)`` gives the value.
    """
    from .cookie import Cookie

    value = current().call("get_cookie", node)
    return None if value is None else Cookie(value)


def set_cookie(cookie: Any, node: Optional[str] = None) -> None:
    """Set this node's cookie, or the cookie used towards ``node`` only."""
    current().call("set_cookie", cookie, node)


# -- timers (kept by the node's kernel: mpactors._core._timers) ---------------
def _start_timer(seconds: Any, dest: Any, msg: Any, interval: bool) -> TimerRef:
    what = "send_interval" if interval else "send_after"
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0 \
            or seconds == float("inf") or (interval and seconds == 0):
        need = "a positive" if interval else "a non-negative"
        raise BadArg(f"{what} needs {need} finite number of seconds, not {seconds!r}")
    is_pid = type(dest) is Pid
    is_name = isinstance(dest, str) and bool(dest)
    is_remote = isinstance(dest, tuple) and len(dest) == 2 and all(isinstance(x, str) and x for x in dest)
    if not (is_pid or is_name or is_remote):
        raise BadArg(f"{what} cannot send to {dest!r}: expected a Pid, a registered name or (name, node)")
    payload = _codec.dumps(msg)
    proc = current()
    ref = TimerRef.make(proc.node_name, proc.creation, os.getpid())
    return proc.call("send_after", ref, float(seconds), float(seconds) if interval else None, dest, payload)


def send_after(seconds: float, dest: Any, msg: Any) -> TimerRef:
    """Deliver ``msg`` to ``dest`` after ``seconds``; returns a :class:`TimerRef`.

    The node keeps the timer (no process per timer). ``dest`` is anything
    :func:`send` takes; a registered name is looked up when the timer fires
    and, as in Erlang, the message is dropped without error if nothing is
    registered then. When the caller (the timer's owner) dies, its timers are
    cancelled.

    Raises:
        BadArg: ``seconds`` is not a non-negative number, ``dest`` is not a
            destination, or ``msg`` cannot be pickled.
    """
    return _start_timer(seconds, dest, msg, interval=False)


def send_interval(seconds: float, dest: Any, msg: Any) -> TimerRef:
    """Deliver ``msg`` to ``dest`` every ``seconds`` until :func:`cancel_timer` or the caller dies.

    A tick that falls due while the node is too busy to deliver it is
    skipped rather than delivered in a burst.
    """
    return _start_timer(seconds, dest, msg, interval=True)


def _check_timer_ref(ref: Any, what: str) -> TimerRef:
    if type(ref) is not TimerRef:
        raise BadArg(f"{what} needs a TimerRef (from send_after or send_interval), not {ref!r}")
    return ref


def cancel_timer(ref: TimerRef) -> Optional[float]:
    """Cancel a timer: the seconds that were left, or None if it already fired or was cancelled.

    When a number is returned, the timer's message never arrives; when None
    is returned, a one-shot timer's message was delivered (once). Any process
    of the timer's node may cancel it; a TimerRef of another node gives None.
    """
    return current().call("cancel_timer", _check_timer_ref(ref, "cancel_timer"))


def read_timer(ref: TimerRef) -> Optional[float]:
    """Seconds until the timer fires (its next tick for ``send_interval``), or None if it is not pending."""
    return current().call("read_timer", _check_timer_ref(ref, "read_timer"))
