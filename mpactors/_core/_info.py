"""Introspection requests: ``processes``, ``process_info``, ``trace`` and mailbox handles.

A local actor's queue length and status are asked of the actor itself over
its control connection (``info`` -> ``info_reply``); an actor that does not
answer within ``_INFO_TIMEOUT`` is reported ``'unresponsive'``.
"""
from __future__ import annotations

import itertools
import os
import time
from typing import Any, Dict, List, Optional, Tuple

import psutil

from ..errors import BadArg, NodeError, NoProc, Timeout
from ..pid import Pid
from ._ports import DEFER, KernelServices, Reply
from ._tables import ProcRec, ProcTable
from ._counters import snapshot as counter_snapshot
from ._introspect import WHAT, answer as introspect_answer
from ._util import check_pid
from .mailbox import Mailbox

__all__ = ["Info", "FdReply"]

_INFO_TIMEOUT = 2.0
_INTROSPECT_TIMEOUT = 5.0  # seconds a process has to report its stack or state


class FdReply:
    """An ``op_mailbox`` answer: a file descriptor to pass with SCM_RIGHTS."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd


class Info:
    """Answers introspection requests (kernel thread)."""

    def __init__(self, table: ProcTable, kernel: KernelServices, main_mailbox: Mailbox) -> None:
        self.table = table
        self.kernel = kernel
        self.main_mailbox = main_mailbox
        self._tags = itertools.count(1)
        self._pending: Dict[int, Tuple[Reply, Dict[str, Any]]] = {}

    def op_processes(self, caller: Pid) -> List[Pid]:
        return [rec.pid for rec in self.table.actors() if rec.alive]

    def op_mailbox(self, caller: Pid, pid: Pid) -> Optional[FdReply]:
        rec = self.table.local_rec(pid)
        if rec is None:
            return None
        return FdReply(self.table.writer_fds[pid.id])

    def op_process_info(self, caller: Pid, pid: Pid) -> Any:
        check_pid(pid)
        if pid.node != self.table.node_name:
            dist = self.kernel.dist
            return None if dist is None else dist.process_info(caller, pid, self.kernel.reply_to)
        rec = self.table.local_rec(pid)
        if rec is None:
            return None
        info = self._static_info(rec)
        if rec.ctl is None:  # the node's main process: its mailbox is here
            info.update(
                status="waiting" if self.main_mailbox.waiting else "running",
                message_queue_len=len(self.main_mailbox),
                trap_exit=rec.trap_exit,
                **counter_snapshot(),
            )
            return info
        tag = next(self._tags)
        self._pending[tag] = (self.kernel.reply_to, info)
        try:
            rec.ctl.send(("info", tag))
        except OSError:
            self._pending.pop(tag)
            return None

        def give_up() -> None:
            pending = self._pending.pop(tag, None)
            if pending is not None:
                pending[1].update(status="unresponsive", message_queue_len=None)
                self.kernel.reply(pending[0], True, pending[1])

        self.kernel.timer(_INFO_TIMEOUT, give_up)
        return DEFER

    def op_introspect(self, caller: Pid, pid: Pid, what: str) -> Any:
        """Ask local process ``pid`` about itself (``what``: see ``_introspect.WHAT``); a dict."""
        check_pid(pid)
        if what not in WHAT:
            raise BadArg(f"cannot ask a process for {what!r}: expected one of {', '.join(WHAT)}")
        if pid.node != self.table.node_name:
            raise BadArg(f"{pid} is not a process of {self.table.node_name} (ask its node)")
        rec = self.table.local_rec(pid)
        if rec is None:
            raise NoProc(f"no process {pid} (it is not alive)")
        if rec.ctl is None:  # the node's main process: this process, answered here
            return introspect_answer(what)
        tag = next(self._tags)
        self._pending[tag] = (self.kernel.reply_to, {})
        try:
            rec.ctl.send(("info", tag, what))
        except OSError:
            self._pending.pop(tag)
            raise NoProc(f"no process {pid} (it is ending)") from None

        def give_up() -> None:
            pending = self._pending.pop(tag, None)
            if pending is not None:
                self.kernel.reply(pending[0], False, Timeout(
                    f"{pid} did not answer for its {what} within {_INTROSPECT_TIMEOUT}s "
                    "(a thread holds the GIL in C code?)"))

        self.kernel.timer(_INTROSPECT_TIMEOUT, give_up)
        return DEFER

    def answered(self, tag: int, live: Dict[str, Any]) -> None:
        """An actor's ``info_reply``: complete and send the pending answer."""
        pending = self._pending.pop(tag, None)
        if pending is not None:
            reply, info = pending
            info.update(live)
            # The memory read when the request came can be that of a process
            # still starting (under spawn, one page just after exec): read it
            # again now that the process has answered.
            rec = self.table.local_rec(info["pid"]) if "memory" in info else None
            if rec is not None and rec.ps is not None:
                try:
                    info["memory"] = rec.ps.memory_info().rss
                except psutil.Error:
                    pass
            self.kernel.reply(reply, True, info)

    def _static_info(self, rec: ProcRec) -> Dict[str, Any]:
        os_pid = rec.proc.os_pid if rec.proc is not None else os.getpid()
        memory, cpu = None, None
        try:
            if rec.ps is None:
                rec.ps = psutil.Process(os_pid)
                times = rec.ps.cpu_times()
                rec.ps.cpu_percent(None)
                elapsed = max(time.time() - rec.ps.create_time(), 1e-3)
                cpu = round(100.0 * (times.user + times.system) / elapsed, 1)
            else:
                cpu = rec.ps.cpu_percent(None)
            memory = rec.ps.memory_info().rss
        except psutil.Error:
            pass
        return {
            "pid": rec.pid,
            "node": self.table.node_name,
            "registered_name": rec.name,
            "current": rec.fn_name,
            "links": sorted(rec.links),
            "monitors": sorted((t for t in rec.monitors.values() if isinstance(t, Pid))),
            "monitored_by": sorted(rec.monitored_by.values()),
            "trap_exit": rec.trap_exit,
            "os_pid": os_pid,
            "memory": memory,
            "cpu_percent": cpu,
            "status": "running",
            "message_queue_len": None,
            "started": rec.started,
        }

    def op_trace(self, caller: Pid, pid: Pid, flag: bool, tracer: Optional[Pid] = None) -> bool:
        check_pid(pid)
        tracer = caller if tracer is None else tracer
        if pid.node != self.table.node_name:
            dist = self.kernel.dist
            if dist is None:
                raise NodeError(f"cannot trace {pid}: node {self.table.node_name} is not distributed")
            dist.trace(pid, flag, tracer)
            return True
        rec = self.table.local_rec(pid)
        if rec is None:
            raise BadArg(f"cannot trace {pid}: no such process")
        if rec.ctl is None:
            raise BadArg("the node's main process cannot be traced")
        rec.ctl.send(("trace", tracer if flag else None))
        return True
