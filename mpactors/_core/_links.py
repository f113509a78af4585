"""Links, monitors and exit signals: the one owner of these tables and rules.

Every change to a process's ``links``, ``monitors`` and ``monitored_by``
happens here, in the kernel thread: requests of local processes
(``op_link``...), and the calls the distribution layer makes when a control
frame arrives from another node (``link_remote``, ``signal_remote``,
``node_down``...). Erlang's rules therefore live once:

* an exit signal (:meth:`Links.signal`): ``'kill'`` sent by ``exit/2``
  cannot be trapped; a trapping process gets ``ExitSignal``; ``'normal'`` is
  ignored unless a process sends it to itself; anything else ends the target;
* a process that ends fires its links (exit signals) and its monitors
  (``Down``), on this node or another;
* a lost node breaks every link to it with ``'noconnection'`` and fires
  every monitor of its processes with ``Down(..., 'noconnection')``.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

from ..errors import BadArg, NodeError, NoProc
from ..messages import Down, ExitSignal
from ..pid import Pid, Ref
from ._ports import KernelServices
from ._registry import Registry
from ._tables import ProcRec, ProcTable
from ._util import NamedTarget, check_pid

__all__ = ["Links"]

#: A monitor target: a pid, or ``(name, node)`` for a registered name.
Target = Any


class Links:
    """Links, monitors and exit signals of a node's local processes (kernel thread)."""

    def __init__(
        self, table: ProcTable, registry: Registry, kernel: KernelServices, end: Callable[[ProcRec, Any], None]
    ) -> None:
        self.table = table
        self.registry = registry
        self.kernel = kernel
        self.end = end  # make a local process exit with a reason (the kernel's process control)
        self.node_name = table.node_name

    # -- exit signals --------------------------------------------------------
    def signal(self, frm: Pid, to: Pid, reason: Any, link: bool) -> None:
        """Deliver an exit signal from ``frm`` to the local process ``to`` (rules above)."""
        rec = self.table.local_rec(to)
        if rec is None:
            return
        if reason == "kill" and not link:
            self.end(rec, "killed")
        elif rec.trap_exit:
            self.kernel.deliver(to, ExitSignal(frm, reason))
        elif reason == "normal":
            if frm == to and not link:
                self.end(rec, "normal")
        else:
            self.end(rec, reason)

    def process_died(self, rec: ProcRec, reason: Any) -> None:
        """``rec`` ended with ``reason``: fire its links and monitors, drop those it held."""
        pid, dist = rec.pid, self.kernel.dist
        links, rec.links = rec.links, set()
        for other in links:
            if other.node == self.node_name:
                orec = self.table.local_rec(other)
                if orec is not None:
                    orec.links.discard(pid)
                self.signal(pid, other, reason, link=True)
            elif dist is not None:
                dist.exit_signal(pid, other, reason, link=True)
        watchers, rec.monitored_by = rec.monitored_by, {}
        for ref, watcher in watchers.items():
            if watcher.node == self.node_name:
                self.monitor_fired(ref, pid, reason, watcher)
            elif dist is not None:
                dist.down(ref, pid, reason, watcher)
        held, rec.monitors = rec.monitors, {}
        for ref, target in held.items():
            self._drop_monitor(ref, target)

    def monitor_fired(self, ref: Ref, target: Target, reason: Any, watcher: Pid) -> None:
        """Deliver ``Down`` to a local watcher that still holds ``ref``.

        A watcher that demonitored meanwhile gets nothing, so
        ``demonitor(ref, flush=True)`` is final even for a remote target.
        """
        wrec = self.table.local_rec(watcher)
        held = wrec.monitors.pop(ref, None) if wrec is not None else None
        if held is not None:
            if isinstance(held, tuple):  # taken on a name: Down names (name, node), as in Erlang
                target = (held[0], held[1])
            self.kernel.deliver(watcher, Down(ref, target, reason))

    # -- requests of local processes -------------------------------------------
    def add_link(self, a: Pid, b: Pid) -> None:
        """Link ``a`` and ``b`` (either may be remote: only local ends are recorded)."""
        ra, rb = self.table.local_rec(a), self.table.local_rec(b)
        a, b = ra.pid if ra else a, rb.pid if rb else b  # the exact pids, creation included
        for rec, other in ((ra, b), (rb, a)):
            if rec is not None:
                rec.links.add(other)

    def remove_link(self, a: Pid, b: Pid) -> None:
        for x, y in ((a, b), (b, a)):
            rec = self.table.local_rec(x)
            if rec is not None:
                rec.links.discard(y)

    def add_monitor(self, watcher: Pid, target: ProcRec, ref: Ref, named: Optional[NamedTarget] = None) -> None:
        """``watcher`` (local or remote) monitors the local ``target`` with ``ref`` (``named``: taken on a name)."""
        target.monitored_by[ref] = watcher
        wrec = self.table.local_rec(watcher)
        if wrec is not None:
            wrec.monitors[ref] = target.pid if named is None else named

    def spawned(self, caller: Pid, rec: ProcRec, link: bool, monitor: bool) -> Optional[Ref]:
        """Link and monitor a process just spawned for ``caller``; the monitor's ref."""
        if link:
            self.add_link(caller, rec.pid)
        if not monitor:
            return None
        ref = self.kernel.make_ref()
        self.add_monitor(caller, rec, ref)
        return ref

    def op_link(self, caller: Pid, pid: Pid) -> bool:
        check_pid(pid)
        if pid == caller:
            return True
        if pid.node != self.node_name:
            dist = self.kernel.dist
            if dist is None:
                raise NodeError(f"cannot link to {pid}: node {self.node_name} is not distributed")
            self.add_link(caller, pid)
            dist.link(caller, pid)
            return True
        if self.table.local_rec(pid) is None:  # Erlang: a trapping caller gets {'EXIT', Pid, noproc}, others raise
            crec = self.table.local_rec(caller)
            if crec is None or not crec.trap_exit:
                raise NoProc(f"cannot link to {pid}: no such process")
            self.kernel.deliver(caller, ExitSignal(pid, "noproc"))
            return True
        self.add_link(caller, pid)
        return True

    def op_unlink(self, caller: Pid, pid: Pid) -> bool:
        check_pid(pid)
        self.remove_link(caller, pid)
        dist = self.kernel.dist
        if pid.node != self.node_name and dist is not None:
            dist.unlink(caller, pid)
        return True

    def op_trap_exit(self, caller: Pid, flag: bool) -> bool:
        rec = self.table.local_rec(caller)
        if rec is None:
            raise BadArg(f"{caller} is not alive")
        old, rec.trap_exit = rec.trap_exit, bool(flag)
        return old

    def op_exit(self, caller: Pid, pid: Pid, reason: Any) -> bool:
        check_pid(pid)
        if pid.node != self.node_name:
            dist = self.kernel.dist
            if dist is not None:
                dist.exit_signal(caller, pid, reason, link=False)
            return True
        self.signal(caller, pid, reason, link=False)
        return True

    def op_monitor(self, caller: Pid, target: Target) -> Ref:
        ref = self.kernel.make_ref()
        if isinstance(target, tuple) and len(target) == 2 and target[1] == self.node_name:
            target = target[0]
        if isinstance(target, str):
            pid = self.registry.lookup(target)
            if pid is None:
                self.kernel.deliver(caller, Down(ref, (target, self.node_name), "noproc"))
                return ref
            rec = self.table.local_rec(pid)
            if rec is not None:
                self.add_monitor(caller, rec, ref, NamedTarget(target, self.node_name, pid))
                return ref
            target = pid
        remote_name = isinstance(target, tuple) and len(target) == 2 and all(isinstance(t, str) for t in target)
        if not remote_name:
            check_pid(target)
        if remote_name or target.node != self.node_name:
            self._monitor_other_node(caller, target, ref)
            return ref
        rec = self.table.local_rec(target)
        if rec is None:
            self.kernel.deliver(caller, Down(ref, target, "noproc"))
            return ref
        self.add_monitor(caller, rec, ref)
        return ref

    def _monitor_other_node(self, caller: Pid, target: Target, ref: Ref) -> None:
        """Monitor a pid or ``(name, node)`` on another node."""
        dist = self.kernel.dist
        if dist is None:
            self.kernel.deliver(caller, Down(ref, target, "noconnection"))
            return
        crec = self.table.local_rec(caller)
        if crec is not None:
            crec.monitors[ref] = target
        dist.monitor(caller, target, ref)

    def op_demonitor(self, caller: Pid, ref: Ref) -> bool:
        crec = self.table.local_rec(caller)
        target = crec.monitors.pop(ref, None) if crec is not None else None
        if target is None:
            return False
        self._drop_monitor(ref, target)
        return True

    def _drop_monitor(self, ref: Ref, target: Target) -> None:
        if isinstance(target, NamedTarget):
            target = target.pid
        node = target.node if isinstance(target, Pid) else target[1]
        if node != self.node_name:
            dist = self.kernel.dist
            if dist is not None:
                dist.demonitor(ref, target)
            return
        rec = self.table.local_rec(target) if isinstance(target, Pid) else None
        if rec is not None:
            rec.monitored_by.pop(ref, None)

    # -- from another node (the distribution layer, after decoding a frame) ----------
    def link_remote(self, frm: Pid, to: Pid) -> None:
        """The remote ``frm`` links to the local ``to``; a dead ``to`` answers ``'noproc'``."""
        rec = self.table.local_rec(to)
        if rec is not None:
            rec.links.add(frm)
        elif self.kernel.dist is not None:
            self.kernel.dist.exit_signal(to, frm, "noproc", link=True)

    def unlink_remote(self, frm: Pid, to: Pid) -> None:
        """The remote ``frm`` dropped its link to the local ``to``."""
        self.remove_link(frm, to)

    def signal_remote(self, frm: Pid, to: Pid, reason: Any, link: bool) -> None:
        """An exit signal from the remote ``frm``; a link's signal only if still linked."""
        rec = self.table.local_rec(to)
        if rec is None:
            return
        if link:
            if frm not in rec.links:
                return  # unlinked meanwhile
            rec.links.discard(frm)
        self.signal(frm, to, reason, link)

    def monitor_remote(self, watcher: Pid, target: Target, ref: Ref) -> None:
        """The remote ``watcher`` monitors a local pid or registered name."""
        if isinstance(target, str):
            pid = self.registry.lookup(target)
            if pid is None:
                self._down_to(ref, (target, self.node_name), "noproc", watcher)
                return
            target = pid
        rec = self.table.local_rec(target) if isinstance(target, Pid) else None
        if rec is None:
            self._down_to(ref, target, "noproc", watcher)
        else:
            rec.monitored_by[ref] = watcher

    def _down_to(self, ref: Ref, target: Target, reason: Any, watcher: Pid) -> None:
        if self.kernel.dist is not None:
            self.kernel.dist.down(ref, target, reason, watcher)

    def demonitor_remote(self, ref: Ref, target: Target) -> None:
        """The remote holder of ``ref`` dropped its monitor of a local process."""
        if isinstance(target, tuple):  # a monitor taken on (name, node): the process now under the name
            target = self.registry.lookup(target[0])
        rec = self.table.local_rec(target) if isinstance(target, Pid) else None
        if rec is not None:
            rec.monitored_by.pop(ref, None)

    def remote_spawned(self, caller: Pid, pid: Pid, ref: Optional[Ref], link: bool, monitor: bool) -> None:
        """A spawn on another node for the local ``caller`` succeeded: record its ends."""
        rec = self.table.local_rec(caller)
        if rec is None:
            return
        if link:
            rec.links.add(pid)
        if monitor and ref is not None:
            rec.monitors[ref] = pid

    def link_failed(self, caller: Pid, pid: Pid) -> None:
        """``pid``'s node cannot be reached: the link ``caller`` asked for breaks at once."""
        rec = self.table.local_rec(caller)
        if rec is not None and pid in rec.links:
            rec.links.discard(pid)
            self.signal(pid, caller, "noconnection", link=True)

    def monitor_failed(self, watcher: Pid, ref: Ref, target: Target) -> None:
        """``target``'s node cannot be reached: the monitor fires with ``'noconnection'``."""
        self.monitor_fired(ref, target, "noconnection", watcher)

    def node_down(self, node: str) -> None:
        """The connection to ``node`` is lost: break links, fire monitors (``'noconnection'``)."""
        for rec in self.table.all():
            broken: List[Pid] = [p for p in rec.links if p.node == node]
            for other in broken:
                rec.links.discard(other)
                self.signal(other, rec.pid, "noconnection", link=True)
            fired: List[Tuple[Ref, Target]] = [
                (ref, t) for ref, t in rec.monitors.items() if (t.node if isinstance(t, Pid) else t[1]) == node
            ]
            for ref, target in fired:
                del rec.monitors[ref]
                self.kernel.deliver(rec.pid, Down(ref, target, "noconnection"))
            for ref in [ref for ref, w in rec.monitored_by.items() if w.node == node]:
                del rec.monitored_by[ref]
