"""The kernel's bookkeeping requests: names, introspection, distribution, node monitoring.

:class:`KernelOps` is a part of :class:`mpactors._kernel.Kernel`: the
``op_<name>`` handlers run in the kernel thread (``Kernel.request``) and may
change the kernel's tables; links, monitors, spawning and exit signals stay
in ``_kernel.py`` itself.
"""
from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import psutil

from ..errors import BadArg, NodeError, NoProc, Timeout
from ..messages import NodeDown, NodeUp
from ..pid import Pid
from ._counters import snapshot as counter_snapshot
from ._introspect import WHAT, answer as introspect_answer
from ._util import check_pid

if TYPE_CHECKING:
    from ._kernel import ProcRec

__all__ = ["KernelOps", "FdReply", "DEFER"]

#: Returned by an ``op_*`` handler that answers later through ``reply``.
DEFER = object()
_INFO_TIMEOUT = 2.0
_INTROSPECT_TIMEOUT = 5.0  # seconds a process has to report its stack or state


class FdReply:
    """An ``op_mailbox`` answer: a file descriptor to pass with SCM_RIGHTS."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd



class KernelOps:
    """Requests about names, introspection and the cluster (a Kernel mixin)."""

    # Provided by Kernel.
    node_name: str
    procs: Dict[int, "ProcRec"]
    names: Dict[str, Pid]
    writer_fds: Dict[int, int]
    node_watchers: Dict[str, Dict[Pid, int]]
    nodes_watchers: "set[Pid]"
    dist: Any
    main_mailbox: Any
    _reply_to: Any
    _info_pending: Dict[int, Any]
    _tags: Any

    def local_rec(self, pid: Pid) -> Optional["ProcRec"]:
        raise NotImplementedError

    def deliver(self, to: Pid, msg: Any) -> None:
        raise NotImplementedError

    def reply(self, reply: Any, ok: bool, value: Any) -> None:
        raise NotImplementedError

    def timer(self, delay: float, fn: Any) -> None:
        raise NotImplementedError

    # -- names -------------------------------------------------------------
    def op_register(self, caller: Pid, name: str, pid: Optional[Pid] = None) -> bool:
        pid = caller if pid is None else pid
        if not isinstance(name, str) or not name or name == "undefined":
            raise BadArg(f"a registered name must be a non-empty string, not {name!r}")
        check_pid(pid)
        if name in self.names:
            raise BadArg(f"name {name!r} is already registered to {self.names[name]}")
        rec = self.local_rec(pid)
        if rec is None:
            raise BadArg(f"cannot register {name!r}: {pid} is not a live local process")
        if rec.name is not None:
            raise BadArg(f"{pid} is already registered as {rec.name!r}")
        self.names[name] = pid
        rec.name = name
        self._retitle(rec)
        return True

    def op_unregister(self, caller: Pid, name: str) -> bool:
        pid = self.names.pop(name, None)
        if pid is None:
            raise BadArg(f"name {name!r} is not registered")
        rec = self.local_rec(pid)
        if rec is not None:
            rec.name = None
            self._retitle(rec)
        return True

    def _retitle(self, rec: ProcRec) -> None:
        if rec.ctl is None:
            return
        name = f" {rec.name}" if rec.name else ""
        try:
            rec.ctl.send(("title", f"mpactors actor {rec.pid}{name} ({rec.fn_name})"))
        except OSError:
            pass

    def op_whereis(self, caller: Pid, name: str) -> Optional[Pid]:
        return self.names.get(name)

    def op_registered(self, caller: Pid) -> List[str]:
        return sorted(self.names)

    def op_processes(self, caller: Pid) -> List[Pid]:
        return [rec.pid for aid, rec in sorted(self.procs.items()) if aid != 0 and rec.alive]

    def op_mailbox(self, caller: Pid, pid: Pid) -> Optional[FdReply]:
        rec = self.local_rec(pid)
        if rec is None:
            return None
        return FdReply(self.writer_fds[pid.id])

    # -- introspection -----------------------------------------------------
    def op_process_info(self, caller: Pid, pid: Pid) -> Any:
        check_pid(pid)
        if pid.node != self.node_name:
            if self.dist is None:
                return None
            return self.dist.process_info(caller, pid, self._reply_to)
        rec = self.local_rec(pid)
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
        self._info_pending[tag] = (self._reply_to, info, rec)
        try:
            rec.ctl.send(("info", tag))
        except OSError:
            self._info_pending.pop(tag)
            return None

        def give_up() -> None:
            pending = self._info_pending.pop(tag, None)
            if pending is not None:
                pending[1].update(status="unresponsive", message_queue_len=None)
                self.reply(pending[0], True, pending[1])

        self.timer(_INFO_TIMEOUT, give_up)
        return DEFER

    def op_introspect(self, caller: Pid, pid: Pid, what: str) -> Any:
        """Ask local process ``pid`` about itself (``what``: see ``_introspect.WHAT``); a dict."""
        check_pid(pid)
        if what not in WHAT:
            raise BadArg(f"cannot ask a process for {what!r}: expected one of {', '.join(WHAT)}")
        if pid.node != self.node_name:
            raise BadArg(f"{pid} is not a process of {self.node_name} (ask its node)")
        rec = self.local_rec(pid)
        if rec is None:
            raise NoProc(f"no process {pid} (it is not alive)")
        if rec.ctl is None:  # the node's main process: this process, answered here
            return introspect_answer(what)
        tag = next(self._tags)
        self._info_pending[tag] = (self._reply_to, {}, rec)
        try:
            rec.ctl.send(("info", tag, what))
        except OSError:
            self._info_pending.pop(tag)
            raise NoProc(f"no process {pid} (it is ending)") from None

        def give_up() -> None:
            pending = self._info_pending.pop(tag, None)
            if pending is not None:
                self.reply(pending[0], False, Timeout(
                    f"{pid} did not answer for its {what} within {_INTROSPECT_TIMEOUT}s "
                    "(a thread holds the GIL in C code?)"))

        self.timer(_INTROSPECT_TIMEOUT, give_up)
        return DEFER

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
            "node": self.node_name,
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
        if pid.node != self.node_name:
            if self.dist is None:
                raise NodeError(f"cannot trace {pid}: node {self.node_name} is not distributed")
            self.dist.trace(pid, flag, tracer)
            return True
        rec = self.local_rec(pid)
        if rec is None:
            raise BadArg(f"cannot trace {pid}: no such process")
        if rec.ctl is None:
            raise BadArg("the node's main process cannot be traced")
        rec.ctl.send(("trace", tracer if flag else None))
        return True

    def op_halt(self, caller: Pid) -> bool:
        """Stop this node from inside (``mpactors stop``): the node's halt handler runs."""
        self.timer(0.05, self.on_halt)
        return True

    def on_halt(self) -> None:
        """Replaced by the node; by default the node process gets SIGTERM."""
        os.kill(os.getpid(), signal.SIGTERM)

    # -- distribution ------------------------------------------------------
    def op_nodes(self, caller: Pid, kind: str = "visible") -> List[str]:
        if kind not in ("visible", "hidden", "connected"):
            raise BadArg(f"nodes() takes 'visible', 'hidden' or 'connected', not {kind!r}")
        return self.dist.connected_nodes(kind) if self.dist is not None else []

    def op_ping(self, caller: Pid, node: str) -> Any:
        if not isinstance(node, str) or "@" not in node:
            raise BadArg(f"not a node name: {node!r} (expected 'name@host')")
        if self.dist is None:
            return "pong" if node == self.node_name else "pang"
        return self.dist.ping(node, self._reply_to)

    def op_disconnect_node(self, caller: Pid, node: str) -> bool:
        return self.dist.disconnect(node) if self.dist is not None else False

    def op_get_cookie(self, caller: Pid, node: Optional[str] = None) -> Optional[bytes]:
        if self.dist is None:
            return None
        cookie = self.dist.node_cookies.get(node, self.dist.cookie) if node else self.dist.cookie
        return bytes(cookie)

    def op_set_cookie(self, caller: Pid, cookie: Any, node: Optional[str] = None) -> bool:
        from ..cookie import resolve_cookie

        if self.dist is None:
            raise NodeError(f"node {self.node_name} is not distributed: it has no cookie")
        value = resolve_cookie(bytes(cookie) if isinstance(cookie, (bytes, bytearray)) else str(cookie))
        if node:
            self.dist.node_cookies[node] = value
        else:
            self.dist.cookie = value
        return True

    # -- node monitoring (the distribution layer raises the events) --------
    def op_monitor_node(self, caller: Pid, node: str, flag: bool) -> bool:
        if not flag:
            watchers = self.node_watchers.get(node, {})
            if watchers.get(caller, 0) > 0:
                watchers[caller] -= 1
                if not watchers[caller]:
                    del watchers[caller]
            return True
        if self.dist is None or not self.dist.is_connected(node):
            if node != self.node_name:
                self.deliver(caller, NodeDown(node))
                return True
        watchers = self.node_watchers.setdefault(node, {})
        watchers[caller] = watchers.get(caller, 0) + 1
        return True

    def op_monitor_nodes(self, caller: Pid, flag: bool) -> bool:
        if flag:
            self.nodes_watchers.add(caller)
        else:
            self.nodes_watchers.discard(caller)
        return True

    def node_up(self, node: str) -> None:
        for watcher in list(self.nodes_watchers):
            self.deliver(watcher, NodeUp(node))

    def node_down(self, node: str) -> None:
        for watcher, count in self.node_watchers.pop(node, {}).items():
            for _ in range(count):
                self.deliver(watcher, NodeDown(node))
        for watcher in list(self.nodes_watchers):
            self.deliver(watcher, NodeDown(node))
