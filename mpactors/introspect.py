"""Interrogating running nodes: process tables for ``ps``, tracing, stacks, state, snapshots.

Everything here works from any process of a node (actor, main process, or a
hidden CLI node) and for local or remote pids.
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

from . import primitives
from ._core._context import current
from ._core._introspect import STATE_LIMIT
from .errors import BadArg, MpactorsError, NoProc, Timeout
from .pid import Pid

__all__ = [
    "COUNTER_KEYS", "STATE_LIMIT", "ask_local", "get_state", "halt", "node_info", "node_rows", "node_snapshot",
    "ps_rows", "rows", "snapshot", "stack", "trace",
]


def rows() -> List[Dict[str, Any]]:
    """``process_info`` of every actor of the calling process's node (for ``mpactors ps``)."""
    out = []
    for pid in primitives.processes():
        info = primitives.process_info(pid)
        if info is not None:
            out.append(info)
    return out


def ps_rows() -> List[Dict[str, Any]]:
    """:func:`rows` without the calling process: ``mpactors ps`` runs it in an rpc worker."""
    me = primitives.self()
    return [row for row in rows() if row.get("pid") != me]


def node_rows(node: str, *, timeout: float = 10.0) -> List[Dict[str, Any]]:
    """The actors of ``node`` (:func:`ps_rows`, fetched with ``rpc.call``)."""
    from . import rpc

    return rpc.call(node, "mpactors.introspect:ps_rows", timeout=timeout)  # type: ignore[no-any-return]


def node_info() -> Dict[str, Any]:
    """A summary of the calling process's node: name, OS pid, peers, actor count."""
    main = primitives.process_info(Pid(primitives.node(), 0, 0, 0)) or {}
    return {
        "node": primitives.node(),
        "os_pid": main.get("os_pid"),
        "nodes": primitives.nodes(),
        "actors": len(primitives.processes()),
        "registered": primitives.registered(),
    }


def trace(pid: Pid, flag: bool = True, tracer: Optional[Pid] = None) -> None:
    """Send ``Trace`` messages for every message ``pid`` sends or receives to ``tracer``.

    Args:
        pid: the traced actor (local or remote).
        flag: False stops tracing.
        tracer: who gets the ``Trace`` messages (default: the caller).
    """
    current().call("trace", pid, flag, tracer)


def halt() -> None:
    """Stop the calling process's node (and all its actors), as ``init:stop()`` does."""
    current().call("halt")


# -- stacks and state (mpactors stack / mpactors state) --------------------------
_ERRORS = {"NoProc": NoProc, "Timeout": Timeout, "BadArg": BadArg}


def ask_local(pid: Pid, what: str) -> Dict[str, Any]:
    """Run on ``pid``'s node: ask it ``what`` (``'stack'``/``'state'``); errors come back as data."""
    try:
        return current().call("introspect", pid, what)  # type: ignore[no-any-return]
    except (NoProc, Timeout, BadArg) as exc:
        return {"error": str(exc), "error_type": type(exc).__name__}


def _ask(pid: Pid, what: str, timeout: float) -> Dict[str, Any]:
    if type(pid) is not Pid:
        raise BadArg(f"expected a Pid, not {pid!r}")
    if pid.node == primitives.node():
        answer = ask_local(pid, what)
    else:
        from . import rpc

        answer = rpc.call(pid.node, "mpactors.introspect:ask_local", pid, what, timeout=timeout)
    if "error_type" in answer:
        raise _ERRORS.get(answer["error_type"], BadArg)(answer["error"])
    return answer


def stack(pid: Pid, *, timeout: float = 10.0) -> str:
    """The Python stack of every thread of ``pid`` (local or remote), without stopping it.

    The actor's control thread reads its threads' frames (``sys._current_frames``)
    while the actor runs on: blocked in ``receive`` or spinning in Python alike.

    Raises:
        NoProc: ``pid`` is not alive.
        Timeout: it did not answer (a thread holding the GIL in C code).
    """
    text = _ask(pid, "stack", timeout)["stack"]
    return f"Stack of {pid}:\n{text}"


def get_state(pid: Pid, *, timeout: float = 10.0) -> str:
    """The state of the GenServer ``pid`` (its instance's attributes) as a size-capped ``repr``.

    Like Erlang's ``sys:get_state``, for local or remote pids. The text is
    made with :mod:`reprlib` (containers and strings cut, at most
    ``STATE_LIMIT`` characters): a huge or recursive state cannot flood the
    caller, and a ``__repr__`` that raises is reported, not propagated.

    Raises:
        BadArg: ``pid`` runs no GenServer, or its state could not be shown.
        NoProc: ``pid`` is not alive.
    """
    answer = _ask(pid, "state", timeout)
    if answer.get("state") is None:
        raise BadArg(f"no state for {pid}: {answer.get('error')}")
    return answer["state"]  # type: ignore[no-any-return]


# -- snapshots (mpactors top, mpactors observer) ------------------------------------
COUNTER_KEYS = ("messages_in", "bytes_in", "messages_handled", "messages_out", "bytes_out")


def snapshot() -> Dict[str, Any]:
    """Run on a node (by ``rpc``): the node's figures and every actor's, for ``top`` and the observer.

    Keys: ``node``, ``time``, ``os_pid``, ``nodes`` (visible peers),
    ``registered``, ``cpu_percent`` and ``memory`` of the node process,
    ``memory_total`` (node and actors), ``totals`` (the message counters summed
    over the node's processes), ``main`` (the node process's ``process_info``)
    and ``actors`` (``process_info`` of each actor, the calling rpc worker left
    out; a supervisor's has ``children``: its ``which_children``).
    """
    me = primitives.self()
    main = primitives.process_info(Pid(primitives.node(), 0, 0, 0)) or {}
    actors = ps_rows()
    for row in actors:
        if row.get("behaviour") == "supervisor":
            row["children"] = _children(row["pid"])
    procs = [main] + actors
    totals = {k: sum(int(p.get(k) or 0) for p in procs) for k in COUNTER_KEYS}
    return {
        "node": primitives.node(),
        "time": time.time(),
        "os_pid": main.get("os_pid"),
        "nodes": primitives.nodes(),
        "registered": primitives.registered(),
        "cpu_percent": main.get("cpu_percent"),
        "memory": main.get("memory"),
        "memory_total": sum(int(p.get("memory") or 0) for p in procs),
        "totals": totals,
        "main": main,
        "actors": [row for row in actors if row.get("pid") != me],
    }


def _children(sup: Pid) -> Any:
    from . import supervisor

    try:
        return [list(child) for child in supervisor.which_children(sup, timeout=2.0)]
    except MpactorsError as exc:  # busy, or ending
        return {"error": str(exc)}


def node_snapshot(node: str, *, timeout: float = 10.0) -> Dict[str, Any]:
    """:func:`snapshot` of ``node``, fetched with ``rpc.call``."""
    from . import rpc

    return rpc.call(node, "mpactors.introspect:snapshot", timeout=timeout)  # type: ignore[no-any-return]
