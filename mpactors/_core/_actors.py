"""Actor processes: start one, say why it ended, end one, end them all.

The kernel (``_kernel.py``) owns the loop and the selector; this module owns
what happens to the OS processes themselves (kernel thread):

* :meth:`Actors.start` forks or spawns the process through ``_procs`` and
  ``_worker.bootstrap`` (its one way in), handing it its mailbox, control
  connection and the router pipe, and closing every node-private
  descriptor in the child;
* :func:`exit_reason` maps how it ended (its own report, a kill by the
  kernel, a signal, an exit code) to an Erlang exit reason;
* :meth:`Actors.end` asks it to exit (SIGTERM, then SIGKILL after
  ``config.TERM_TIMEOUT``), or kills it at once for ``'killed'``;
* :meth:`Actors.terminate_all` / :meth:`Actors.kill_all` are the two steps of
  the stop sequence.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from multiprocessing.connection import Connection
from typing import Any, Callable, Iterable, List, Optional, Tuple

from .. import _codec, config
from . import _logconf, _procs
from ._tables import ProcRec, ProcTable
from ._worker import Boot, bootstrap
from .mailbox import MailboxWriter, make_pipe
from ..pid import Pid

__all__ = ["Actors", "exit_reason", "high_fd_base"]


class Actors:
    """Starts and ends the actor processes of a node (kernel thread)."""

    def __init__(
        self, table: ProcTable, start_method: str, private_fds: "set[int]", fd_lock: threading.Lock, high: int
    ) -> None:
        self.table = table
        self.start_method = start_method
        self.private_fds = private_fds  # descriptors a forked child must close
        self.fd_lock = fd_lock  # held while forking (see Kernel.__init__)
        self.high = high  # control sockets and sentinels live at or above this, if set

    def start(self, pid: Pid, payload: bytes, fn_name: str, route: Optional[Connection]) -> Tuple[ProcRec, int, int]:
        """Start an actor process running the pickled ``(fn, args, kwargs)``.

        Returns its record (now in the table), its control connection's
        descriptor and its sentinel, for the kernel's selector (the same
        descriptor with fork: the process ended when its control socket reads EOF).
        """
        r, w = make_pipe()
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ctl, child_ctl = Connection(_procs.to_high(a.detach(), self.high)), Connection(b.detach())
        mbox = Connection(r, writable=False)
        forking = self.start_method == "fork"
        writer_fds = self.table.writer_fds
        writer_fds[pid.id] = w  # inherited by the child with fork (below)
        try:
            self.fd_lock.acquire()
            boot = Boot(
                pid=pid, creation=pid.creation, mbox=mbox, ctl=child_ctl, payload=payload,
                title=f"mpactors actor {pid} ({fn_name})", fn_name=fn_name, parent=os.getpid(),
                close_fds=self.private_fds | {ctl.fileno()} if forking else (),
                close_high=self.high,
                route=route,
                writers=writer_fds if forking else {},
                log_level=logging.getLogger("mpactors").getEffectiveLevel(),
                log_config=None if forking else _logconf.describe(),
            )
            # fork: the control socket doubles as the sentinel (2 descriptors per actor, not 3)
            proc = _procs.start(self.start_method, bootstrap, boot, self.high, ctl.fileno() if forking else None)
            self.fd_lock.release()
        except BaseException:
            self.fd_lock.release()
            del writer_fds[pid.id]
            for c in (ctl, child_ctl, mbox):
                c.close()
            os.close(w)
            raise
        mbox.close()
        child_ctl.close()
        rec = ProcRec(pid, MailboxWriter(w, big=True), fn_name)  # the node's writer: big ring (remote path)
        rec.proc, rec.ctl = proc, ctl
        self.table.add(rec, w)
        self.private_fds.update(fd for fd in (ctl.fileno(), proc.sentinel) if not self.high or fd < self.high)
        return rec, ctl.fileno(), proc.sentinel

    def end(self, rec: ProcRec, reason: Any, timer: Callable[[float, Callable[[], None]], None]) -> None:
        """Make the actor of ``rec`` exit with ``reason``: SIGTERM, SIGKILL if it lingers."""
        proc = rec.proc
        if proc is None or not rec.alive:
            return
        if reason == "killed":
            rec.kill_reason = "killed"
            proc.kill()
            return
        if rec.kill_reason is None:
            rec.kill_reason = reason
            proc.signal(signal.SIGTERM)
            timer(config.TERM_TIMEOUT, lambda: proc.kill() if rec.alive else None)

    def terminate_all(self) -> List[ProcRec]:
        """Stop sequence, step 1: SIGTERM every actor (reason ``'shutdown'``); those asked."""
        actors = self.table.actors()
        for rec in actors:
            if rec.kill_reason is None:
                rec.kill_reason = "shutdown"
            if rec.proc is not None:
                rec.proc.signal(signal.SIGTERM)
        return actors

    def kill_all(self, actors: Iterable[ProcRec]) -> List[ProcRec]:
        """Stop sequence, step 2: SIGKILL those of ``actors`` still alive; those killed."""
        left = [rec for rec in actors if rec.alive]
        for rec in left:
            if rec.proc is not None:
                rec.proc.kill()
        return left


def exit_reason(rec: ProcRec, code: int) -> Any:
    """Why the actor of ``rec`` ended, given its exit ``code``."""
    if rec.reported is not None:
        try:
            return _codec.loads(rec.reported)
        except Exception:  # noqa: BLE001
            return "unknown"
    if rec.kill_reason is not None:
        return rec.kill_reason
    if code == -signal.SIGKILL:
        return "killed"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def high_fd_base() -> int:
    """Half the descriptor limit, where os.closerange is one close_range() call; else 0."""
    import resource
    import sys

    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if sys.version_info < (3, 10) or limit == resource.RLIM_INFINITY or limit < 4096:
        return 0  # closerange would loop over every number: close them one by one
    return int(limit // 2)
