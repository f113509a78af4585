"""Interrogating running nodes: process tables for ``ps``, tracing.

Everything here works from any process of a node (actor, main process, or a
hidden CLI node) and for local or remote pids.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from . import primitives
from ._core._context import current
from .pid import Pid

__all__ = ["halt", "node_info", "node_rows", "ps_rows", "rows", "trace"]


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
