"""A node's graceful stop (SIGTERM, ``Node.stop()``): supervision trees first, then the rest.

What Erlang's ``init:stop`` does through its applications, here in two steps:

1. :func:`begin` (kernel thread) sends the exit signal ``'shutdown'``, from
   the node's main process, to every *root* actor - the oldest of each group
   of linked actors (a supervision tree) - newest first. A supervisor (a GenServer trapping
   exits) then stops its children in reverse start order, each with its
   ``shutdown`` time, and their ``terminate`` callbacks run; an actor that
   does not trap exits ends at once.
2. :func:`pending` (kernel thread) counts what the stop still waits for:
   actors linked to another live actor (a tree being taken down), and
   signalled roots that trap exits and are linked to the main process (a
   server it started with ``start_link``, whose ``terminate`` runs). The
   node polls it until it is 0 or ``MPACTORS_SHUTDOWN_TIMEOUT`` has passed;
   then the kernel's ordinary stop ends whatever is left (SIGTERM, then
   SIGKILL) at once - as Erlang's ``init`` kills the processes outside every
   application without waiting.
"""
from __future__ import annotations

from typing import List, Set

from ..pid import Pid
from ._links import Links
from ._tables import ProcTable

__all__ = ["begin", "pending", "roots"]


def _live_ids(table: ProcTable) -> Set[Pid]:
    return {rec.pid for rec in table.actors() if rec.alive}


def roots(table: ProcTable) -> List[Pid]:
    """Kernel thread: the oldest actor of each group of linked actors, newest group first.

    A supervisor and its children link both ways; the supervisor started
    them, so it is the oldest of its tree (a restarted child is newer still).
    """
    live = _live_ids(table)
    seen: Set[Pid] = set()
    out: List[Pid] = []
    for pid in sorted(live, key=lambda p: p.id):
        if pid in seen:
            continue
        out.append(pid)
        todo = [pid]
        seen.add(pid)
        while todo:  # everything linked to it, directly or not
            rec = table.local_rec(todo.pop())
            for other in (rec.links & live) - seen if rec is not None else ():
                seen.add(other)
                todo.append(other)
    return sorted(out, key=lambda pid: pid.id, reverse=True)


def begin(table: ProcTable, links: Links, main: Pid) -> List[Pid]:
    """Kernel thread: send ``'shutdown'`` from ``main`` to every root (newest first); returns them."""
    signalled = roots(table)
    for pid in signalled:
        links.op_exit(main, pid, "shutdown")
    return signalled


def pending(table: ProcTable, signalled: List[Pid], main: Pid) -> int:
    """Kernel thread: how many actors the graceful stop still waits for."""
    live = _live_ids(table)
    waiting = 0
    for rec in table.actors():
        if not rec.alive:
            continue
        if rec.links & live or (rec.trap_exit and rec.pid in signalled and main in rec.links):
            waiting += 1
    return waiting
