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

from typing import Any, List, Set

from ..pid import Pid

__all__ = ["begin", "pending", "roots"]


def _live_ids(kernel: Any) -> Set[Pid]:
    return {rec.pid for aid, rec in kernel.procs.items() if aid != 0 and rec.alive}


def roots(kernel: Any) -> List[Pid]:
    """Kernel thread: the oldest actor of each group of linked actors, newest group first.

    A supervisor and its children link both ways; the supervisor started
    them, so it is the oldest of its tree (a restarted child is newer still).
    """
    live = _live_ids(kernel)
    seen: Set[Pid] = set()
    out: List[Pid] = []
    for pid in sorted(live, key=lambda p: p.id):
        if pid in seen:
            continue
        out.append(pid)
        todo = [pid]
        seen.add(pid)
        while todo:  # everything linked to it, directly or not
            rec = kernel.procs.get(todo.pop().id)
            for other in (rec.links & live) - seen if rec is not None else ():
                seen.add(other)
                todo.append(other)
    return sorted(out, key=lambda pid: pid.id, reverse=True)


def begin(kernel: Any) -> List[Pid]:
    """Kernel thread: send ``'shutdown'`` to every root (newest first); returns them."""
    signalled = roots(kernel)
    for pid in signalled:
        kernel.op_exit(kernel.main_pid, pid, "shutdown")
    return signalled


def pending(kernel: Any, signalled: List[Pid]) -> int:
    """Kernel thread: how many actors the graceful stop still waits for."""
    live = _live_ids(kernel)
    waiting = 0
    for aid, rec in kernel.procs.items():
        if aid == 0 or not rec.alive:
            continue
        if rec.links & live or (rec.trap_exit and rec.pid in signalled and kernel.main_pid in rec.links):
            waiting += 1
    return waiting
