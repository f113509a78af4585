"""The process table of a node: one :class:`ProcRec` per live local process.

Owned by the kernel thread (``_kernel.py``); the node's main thread reads
``writers`` to send without a hop. Links and monitors are fields of each
record, changed only by :class:`mpactors._core._links.Links`.
"""
from __future__ import annotations

import time
from multiprocessing.connection import Connection
from typing import Any, Dict, List, Optional

import psutil

from . import _procs
from .mailbox import MailboxWriter
from ..pid import Pid, Ref

__all__ = ["ProcRec", "ProcTable"]


class ProcRec:
    """Everything the kernel knows of one local process."""

    __slots__ = (
        "pid", "proc", "ctl", "writer", "name", "fn_name", "links", "monitors",
        "monitored_by", "trap_exit", "alive", "kill_reason", "reported", "ps", "started",
    )

    def __init__(self, pid: Pid, writer: MailboxWriter, fn_name: str) -> None:
        self.pid = pid
        self.proc: Optional[_procs.ActorProcess] = None  # None for the main process
        self.ctl: Optional[Connection] = None
        self.writer = writer
        self.name: Optional[str] = None
        self.fn_name = fn_name
        self.links: "set[Pid]" = set()
        self.monitors: Dict[Ref, Any] = {}  # refs this process holds -> target
        self.monitored_by: Dict[Ref, Pid] = {}  # refs watching this process -> watcher
        self.trap_exit = False
        self.alive = True
        self.kill_reason: Any = None  # set when the kernel ends it
        self.reported: Any = None  # pickled reason the actor reported
        self.ps: Optional[psutil.Process] = None
        self.started = time.time()


class ProcTable:
    """Live local processes by actor id, with their mailbox writers (kernel thread)."""

    def __init__(self, node_name: str, creation: int) -> None:
        self.node_name = node_name
        self.creation = creation
        self.procs: Dict[int, ProcRec] = {}
        self.writers: Dict[int, MailboxWriter] = {}  # read by the main thread too
        self.writer_fds: Dict[int, int] = {}

    def add(self, rec: ProcRec, fd: int) -> None:
        """Enter ``rec``, whose mailbox write end is ``fd``."""
        self.procs[rec.pid.id] = rec
        self.writers[rec.pid.id] = rec.writer
        self.writer_fds[rec.pid.id] = fd

    def remove(self, rec: ProcRec) -> None:
        """Forget an actor that ended and close its mailbox writer."""
        del self.procs[rec.pid.id]
        self.writers.pop(rec.pid.id, None)
        self.writer_fds.pop(rec.pid.id, None)
        rec.writer.close()

    def local_rec(self, pid: Pid) -> Optional[ProcRec]:
        """The live record of a local pid, or None.

        Creation 0 means "this incarnation" (a pid typed as text, as with
        Erlang's ``list_to_pid``); any other creation must match.
        """
        if pid.node != self.node_name or pid.creation not in (0, self.creation):
            return None
        rec = self.procs.get(pid.id)
        if rec is None or not rec.alive or rec.pid.serial != pid.serial:
            return None
        return rec

    def actors(self) -> List[ProcRec]:
        """Every actor (the node's main process excluded), by id."""
        return [rec for aid, rec in sorted(self.procs.items()) if aid != 0]

    def all(self) -> List[ProcRec]:
        """Every record, the main process included."""
        return list(self.procs.values())

    def writer_for(self, aid: int, creation: int) -> Optional[MailboxWriter]:
        """Any thread: the mailbox writer of local actor ``aid`` (creation 0: this incarnation)."""
        if creation == self.creation or creation == 0:
            return self.writers.get(aid)
        return None
