"""The node kernel: the one loop that owns a node's process tables.

Only the kernel thread changes the tables below (as only ``net_kernel`` and
ERTS do in Erlang); every other thread - the node's main thread, the
distribution readers - hands it requests through ``call``/``cast``, and actors
send theirs over their control connections. The loop waits on one selector::

    wake pipe       <- requests from threads of this process (call/cast)
    control conns   <- requests and exit reports from actors
    sentinels       <- an actor process ended (SIGKILL included): no polling
    timers          -> escalate SIGTERM to SIGKILL, give up on late replies

Bookkeeping requests (names, ``process_info``, the cluster) are in
``_kernel_ops.py``; this module keeps the loop, spawning, exits, links,
monitors and exit signals.

State owned by the kernel thread:

* ``procs``: actor id -> :class:`ProcRec` (id 0 is the node's main process);
* ``names``: registered name -> Pid;
* links, monitors and ``trap_exit`` live on each ``ProcRec``;
* ``writers``/``writer_fds``: the write end of every local mailbox (read, not
  written, by the main thread to send without a hop).

Exit signals follow Erlang: see :meth:`Kernel._signal`.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import logging
import os
import selectors
import signal
import socket
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.reduction import send_handle
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import psutil

from .. import _codec, config
from . import _procs
from ._util import Slot, check_pid
from ._worker import Boot, bootstrap
from ..errors import BadArg, MpactorsError, NodeError
from .mailbox import SYSTEM_EXIT, F_SYSTEM, Mailbox, MailboxWriter, make_pipe
from ..messages import Down, ExitSignal
from ._kernel_ops import DEFER, FdReply, KernelOps
from ..pid import Pid, Ref

__all__ = ["Kernel", "ProcRec", "DEFER"]

log = logging.getLogger(__name__)



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


Reply = Tuple[Any, ...]  # ("local", Slot) | ("actor", ProcRec, tag) | ("fn", callable)


class Kernel(KernelOps):
    """The node's kernel thread and its tables (see the module docstring)."""

    def __init__(self, node_name: str, creation: int, start_method: str, main_mailbox_fds: Tuple[int, int]) -> None:
        self.node_name = node_name
        self.creation = creation
        self.start_method = start_method
        self.sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._inbox: Deque[Tuple[Callable[..., Any], tuple, Optional[Slot]]] = collections.deque()
        self._ids = itertools.count(1)
        self._tags = itertools.count(1)
        self._timers: List[Tuple[float, int, Callable[[], None]]] = []
        self._info_pending: Dict[int, Tuple[Reply, Dict[str, Any], ProcRec]] = {}
        self.procs: Dict[int, ProcRec] = {}
        self.names: Dict[str, Pid] = {}
        self.writers: Dict[int, MailboxWriter] = {}
        self.writer_fds: Dict[int, int] = {}
        # Descriptors an actor forked from this process must not keep.
        self.private_fds: "set[int]" = {self._wake_r, self._wake_w, self.sel.fileno()}
        # Held while forking and while another thread closes a private
        # descriptor: a number closed (and perhaps reused) must never still be
        # in the set a new child closes.
        self.fd_lock = threading.Lock()
        # With fork (and close_range, Python 3.10+), each actor's control
        # socket and sentinel live at or above ``high``: a new child closes
        # them all at once instead of two by two.
        self.high = _high_fd_base() if start_method == "fork" else 0
        self.node_watchers: Dict[str, Dict[Pid, int]] = {}
        self.nodes_watchers: "set[Pid]" = set()
        self.dist: Any = None  # the distribution layer, when the node has one
        self.route_conn: Optional[Connection] = None  # write end of dist's router pipe
        self.thread: Optional[threading.Thread] = None
        self._stopping = False
        self._stopped = threading.Event()
        self._reply_to: Reply = ("fn", _log_failure("?", Pid(node_name, 0)))
        r, w = main_mailbox_fds
        self.private_fds.add(r)
        self.main_pid = Pid(node_name, 0, 0, creation)
        main = ProcRec(self.main_pid, MailboxWriter(w), "main")
        self.procs[0] = main
        self.writers[0] = main.writer
        self.writer_fds[0] = w
        self.main_mailbox = Mailbox(r, owner=str(self.main_pid))
        self.private_fds.update(self.main_mailbox.fds())

    # -- running ---------------------------------------------------------
    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"mpactors-kernel {self.node_name}", daemon=True)
        self.thread.start()

    def call(self, fn: Callable[..., Any], *args: Any, timeout: Optional[float] = None) -> Any:
        """Run ``fn(*args)`` in the kernel thread and return its result."""
        if threading.current_thread() is self.thread:
            return fn(*args)
        if self._stopped.is_set():
            raise NodeError(f"node {self.node_name} is stopped")
        slot = Slot()
        self._inbox.append((fn, args, slot))
        self._wake()
        return slot.wait(timeout, what=f"answer from the kernel of {self.node_name}")

    def cast(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the kernel thread, without waiting."""
        self._inbox.append((fn, args, None))
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except BlockingIOError:  # already awake
            pass
        except OSError:
            pass

    def timer(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the kernel thread after ``delay`` seconds (kernel thread only)."""
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._tags), fn))

    def _run(self) -> None:
        try:
            while not self._stopping:
                try:
                    self._step()
                except Exception:  # pragma: no cover - a kernel bug: be loud, keep serving
                    log.exception("kernel of %s: error in its loop (continuing)", self.node_name)
        finally:
            self._stopped.set()

    def _step(self) -> None:
        timeout = None
        if self._timers:
            timeout = max(0.0, self._timers[0][0] - time.monotonic())
        for key, _ in self.sel.select(timeout):
            if self._stopping:
                return  # _begin_stop handled the rest of this batch
            kind, rec = key.data
            if kind == "wake":
                self._run_inbox()
            elif kind == "ctl":
                self._read_ctl(rec)
            elif kind == "sentinel":
                self._on_exit(rec)
            elif kind == "fd":
                rec()
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, fn = heapq.heappop(self._timers)
            fn()

    def _run_inbox(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while self._inbox:
            fn, args, slot = self._inbox.popleft()
            try:
                value = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                if slot is None:
                    log.exception("kernel request %s failed", getattr(fn, "__name__", fn))
                else:
                    slot.set(False, exc)
                continue
            if slot is not None:
                slot.set(True, value)

    # -- requests ----------------------------------------------------------
    def request(self, caller: Pid, op: str, args: tuple, reply: Reply) -> None:
        """Run ``op_<op>(caller, *args)`` and answer through ``reply`` (kernel thread)."""
        handler = getattr(self, "op_" + op, None)
        if handler is None:
            self.reply(reply, False, BadArg(f"unknown kernel request {op!r}"))
            return
        self._reply_to = reply
        try:
            value = handler(caller, *args)
        except MpactorsError as exc:
            self.reply(reply, False, exc)
            return
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            log.exception("kernel request %s from %s failed", op, caller)
            self.reply(reply, False, exc)
            return
        if value is not DEFER:
            self.reply(reply, True, value)

    def reply(self, reply: Reply, ok: bool, value: Any) -> None:
        """Answer a request made through ``request``."""
        kind = reply[0]
        if kind == "local":
            reply[1].set(ok, value)
        elif kind == "actor":
            rec, tag = reply[1], reply[2]
            if rec.ctl is None:
                return
            try:
                if isinstance(value, FdReply):
                    rec.ctl.send(("reply_fd", tag))
                    send_handle(rec.ctl, value.fd, rec.proc.os_pid if rec.proc else 0)
                else:
                    rec.ctl.send(("reply", tag, ok, value))
            except (OSError, ValueError):
                pass  # the actor is gone; its sentinel will tell
            except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable error
                rec.ctl.send(("reply", tag, False, BadArg(f"unsendable reply: {exc}")))
        elif kind == "fn":
            reply[1](ok, value)

    def local_request(self, caller: Pid, op: str, *args: Any) -> Any:
        """``request`` from a thread of this process (the node's main process)."""
        slot = Slot()

        def run() -> None:
            self.request(caller, op, args, ("local", slot))

        self._inbox.append((run, (), None))
        self._wake()
        return slot.wait()

    def _read_ctl(self, rec: ProcRec) -> None:
        ctl = rec.ctl
        if ctl is None:
            return
        try:
            while ctl.poll(0):
                self._handle_ctl(rec, ctl.recv())
                if rec.ctl is None:
                    return
        except (EOFError, OSError):
            self._close_ctl(rec)
            if rec.proc is not None and rec.proc.shared_sentinel:
                self._on_exit(rec)  # the control socket was its sentinel: the process ended

    def _handle_ctl(self, rec: ProcRec, msg: Any) -> None:
        kind = msg[0]
        if kind == "call":
            self.request(rec.pid, msg[2], msg[3], ("actor", rec, msg[1]))
        elif kind == "cast":
            self.request(rec.pid, msg[1], msg[2], ("fn", _log_failure(msg[1], rec.pid)))
        elif kind == "exit":
            rec.reported = msg[1]
        elif kind == "info_reply":
            pending = self._info_pending.pop(msg[1], None)
            if pending is not None:
                reply, info, _ = pending
                info.update(msg[2])
                self.reply(reply, True, info)

    def _close_ctl(self, rec: ProcRec) -> None:
        if rec.ctl is not None:
            try:
                self.sel.unregister(rec.ctl.fileno())
            except (KeyError, ValueError, OSError):
                pass
            self.private_fds.discard(rec.ctl.fileno())
            rec.ctl.close()
            rec.ctl = None

    # -- spawning ----------------------------------------------------------
    def op_spawn(
        self, caller: Pid, payload: bytes, fn_name: str, link: bool, monitor: bool, node: Optional[str] = None
    ) -> Any:
        if node is not None and node != self.node_name:
            if self.dist is None:
                raise NodeError(f"cannot spawn on {node!r}: node {self.node_name} is not distributed")
            return self.dist.remote_spawn(caller, node, payload, fn_name, link, monitor, self._reply_to)
        rec = self.spawn_local(payload, fn_name)
        if link:
            self._add_link(caller, rec.pid)
        if monitor:
            ref = self.make_ref()
            self._add_monitor(caller, rec, ref)
            return (rec.pid, ref)
        return rec.pid

    def spawn_local(self, payload: bytes, fn_name: str) -> ProcRec:
        """Start an actor process running the pickled ``(fn, args, kwargs)``."""
        if self._stopping:
            raise NodeError(f"node {self.node_name} is stopping")
        aid = next(self._ids)
        pid = Pid(self.node_name, aid, 0, self.creation)
        r, w = make_pipe()
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ctl, child_ctl = Connection(_procs.to_high(a.detach(), self.high)), Connection(b.detach())
        mbox = Connection(r, writable=False)
        forking = self.start_method == "fork"
        self.writer_fds[aid] = w
        try:
            self.fd_lock.acquire()
            boot = Boot(
                pid=pid, creation=self.creation, mbox=mbox, ctl=child_ctl, payload=payload,
                title=f"mpactors actor {pid} ({fn_name})", fn_name=fn_name, parent=os.getpid(),
                close_fds=self.private_fds | {ctl.fileno()} if forking else (),
                close_high=self.high,
                route=self.route_conn,
                writers=self.writer_fds if forking else {},
                log_level=logging.getLogger("mpactors").getEffectiveLevel(),
            )
            # fork: the control socket doubles as the sentinel (2 descriptors per actor, not 3)
            proc = _procs.start(self.start_method, bootstrap, boot, self.high, ctl.fileno() if forking else None)
            self.fd_lock.release()
        except BaseException:
            self.fd_lock.release()
            del self.writer_fds[aid]
            for c in (ctl, child_ctl, mbox):
                c.close()
            os.close(w)
            raise
        mbox.close()
        child_ctl.close()
        rec = ProcRec(pid, MailboxWriter(w), fn_name)
        rec.proc, rec.ctl = proc, ctl
        self.procs[aid] = rec
        self.writers[aid] = rec.writer
        self.private_fds.update(fd for fd in (ctl.fileno(), proc.sentinel) if not self.high or fd < self.high)
        self.sel.register(ctl.fileno(), selectors.EVENT_READ, ("ctl", rec))
        if not proc.shared_sentinel:
            self.sel.register(proc.sentinel, selectors.EVENT_READ, ("sentinel", rec))
        return rec

    def make_ref(self) -> Ref:
        return Ref.make(self.node_name, self.creation, os.getpid())

    def close_private(self, closable: Any) -> None:
        """Any thread: close a node-private socket or connection and forget its number."""
        with self.fd_lock:
            try:
                fd = closable.fileno()
            except (OSError, ValueError):
                fd = -1
            self.private_fds.discard(fd)
            closable.close()

    # -- process exit ------------------------------------------------------
    def _on_exit(self, rec: ProcRec) -> None:
        proc = rec.proc
        if proc is None or proc.exitcode is not None:
            return  # already handled (the stop sequence reaps too)
        if not proc.shared_sentinel:
            self.sel.unregister(proc.sentinel)
            self.private_fds.discard(proc.sentinel)
        self._read_ctl(rec)  # the exit report was written before the process ended
        self._close_ctl(rec)
        code = proc.reap()
        if rec.reported is not None:
            try:
                reason = _codec.loads(rec.reported)
            except Exception:  # noqa: BLE001
                reason = "unknown"
        elif rec.kill_reason is not None:
            reason = rec.kill_reason
        elif code == -signal.SIGKILL:
            reason = "killed"
        elif code < 0:
            reason = f"killed by {signal.Signals(-code).name}"
        else:
            reason = f"exit code {code}"
        self.process_died(rec, reason)

    def process_died(self, rec: ProcRec, reason: Any) -> None:
        """Forget ``rec`` and fire its links and monitors with ``reason``."""
        rec.alive = False
        pid = rec.pid
        if rec.pid.id != 0:
            del self.procs[pid.id]
            self.writers.pop(pid.id, None)
            self.writer_fds.pop(pid.id, None)
            rec.writer.close()
        if rec.name is not None:
            self.names.pop(rec.name, None)
            rec.name = None
        if self.dist is not None:
            self.dist.drain_router()  # its remote messages go before its exit signals
        links, rec.links = rec.links, set()
        for other in links:
            if other.node == self.node_name:
                orec = self.local_rec(other)
                if orec is not None:
                    orec.links.discard(pid)
                self._signal(pid, other, reason, link=True)
            elif self.dist is not None:
                self.dist.exit_signal(pid, other, reason, link=True)
        watchers, rec.monitored_by = rec.monitored_by, {}
        for ref, watcher in watchers.items():
            if watcher.node == self.node_name:
                self.monitor_fired(ref, pid, reason, watcher)
            elif self.dist is not None:
                self.dist.down(ref, pid, reason, watcher)
        held, rec.monitors = rec.monitors, {}
        for ref, target in held.items():
            self._drop_monitor(ref, target)
        for watchers_of_node in self.node_watchers.values():
            watchers_of_node.pop(pid, None)
        self.nodes_watchers.discard(pid)

    def monitor_fired(self, ref: Ref, target: Any, reason: Any, watcher: Pid) -> None:
        """Deliver ``Down`` to a local watcher that still holds ``ref``.

        A watcher that demonitored meanwhile gets nothing, so
        ``demonitor(ref, flush=True)`` is final even for a remote target.
        """
        wrec = self.local_rec(watcher)
        if wrec is not None and wrec.monitors.pop(ref, None) is not None:
            wrec.writer.put(_codec.dumps(Down(ref, target, reason)), 0)

    def _signal(self, frm: Pid, to: Pid, reason: Any, link: bool) -> None:
        """Deliver an exit signal from ``frm`` to the local process ``to``.

        * ``'kill'`` sent by ``exit/2`` cannot be trapped: ``to`` dies ``'killed'``;
        * a process trapping exits gets ``ExitSignal(frm, reason)`` instead;
        * ``'normal'`` is ignored (unless a process sends it to itself);
        * any other reason ends ``to`` with the same reason.
        """
        rec = self.local_rec(to)
        if rec is None:
            return
        if reason == "kill" and not link:
            self._end(rec, "killed")
        elif rec.trap_exit:
            self.deliver(to, ExitSignal(frm, reason))
        elif reason == "normal":
            if frm == to and not link:
                self._end(rec, "normal")
        else:
            self._end(rec, reason)

    def _end(self, rec: ProcRec, reason: Any) -> None:
        """Make a local process exit with ``reason``."""
        if rec.pid.id == 0:
            # The node's main thread cannot be torn down: its receive raises
            # ProcessExit, and its links and monitors fire as if it died.
            rec.writer.put(_codec.dumps((SYSTEM_EXIT, reason)), 0, F_SYSTEM)
            self.process_died(rec, reason)
            rec.alive = True
            return
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
            self.timer(config.TERM_TIMEOUT, lambda: proc.kill() if rec.alive else None)

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

    def deliver(self, to: Pid, msg: Any) -> None:
        """Put a runtime message (Down, ExitSignal, NodeDown...) in ``to``'s mailbox."""
        if to.node != self.node_name:
            if self.dist is not None:
                self.dist.route(to, _codec.dumps(msg))
            return
        rec = self.local_rec(to)
        if rec is not None:
            rec.writer.put(_codec.dumps(msg), 0)

    # -- links, monitors, exit -------------------------------------------
    def _add_link(self, a: Pid, b: Pid) -> None:
        ra, rb = self.local_rec(a), self.local_rec(b)
        a, b = ra.pid if ra else a, rb.pid if rb else b  # the exact pids, creation included
        for rec, other in ((ra, b), (rb, a)):
            if rec is not None:
                rec.links.add(other)

    def op_link(self, caller: Pid, pid: Pid) -> bool:
        check_pid(pid)
        if pid == caller:
            return True
        if pid.node != self.node_name:
            if self.dist is None:
                raise NodeError(f"cannot link to {pid}: node {self.node_name} is not distributed")
            self.dist.link(caller, pid)
            return True
        if self.local_rec(pid) is None:
            crec = self.local_rec(caller)
            if crec is not None and crec.trap_exit:
                self.deliver(caller, ExitSignal(pid, "noproc"))
            return True
        self._add_link(caller, pid)
        return True

    def op_unlink(self, caller: Pid, pid: Pid) -> bool:
        check_pid(pid)
        self.remove_link(caller, pid)
        if pid.node != self.node_name and self.dist is not None:
            self.dist.unlink(caller, pid)
        return True

    def remove_link(self, a: Pid, b: Pid) -> None:
        for x, y in ((a, b), (b, a)):
            rec = self.local_rec(x)
            if rec is not None:
                rec.links.discard(y)

    def op_trap_exit(self, caller: Pid, flag: bool) -> bool:
        rec = self.local_rec(caller)
        if rec is None:
            raise BadArg(f"{caller} is not alive")
        old, rec.trap_exit = rec.trap_exit, bool(flag)
        return old

    def op_exit(self, caller: Pid, pid: Pid, reason: Any) -> bool:
        check_pid(pid)
        if pid.node != self.node_name:
            if self.dist is not None:
                self.dist.exit_signal(caller, pid, reason, link=False)
            return True
        self._signal(caller, pid, reason, link=False)
        return True

    def _add_monitor(self, watcher: Pid, target: ProcRec, ref: Ref) -> None:
        target.monitored_by[ref] = watcher
        wrec = self.local_rec(watcher)
        if wrec is not None:
            wrec.monitors[ref] = target.pid

    def op_monitor(self, caller: Pid, target: Any) -> Ref:
        ref = self.make_ref()
        if isinstance(target, tuple) and len(target) == 2 and target[1] == self.node_name:
            target = target[0]
        if isinstance(target, str):
            pid = self.names.get(target)
            if pid is None:
                self.deliver(caller, Down(ref, (target, self.node_name), "noproc"))
                return ref
            target = pid
        remote_name = isinstance(target, tuple) and len(target) == 2 and all(isinstance(t, str) for t in target)
        if not remote_name:
            check_pid(target)
        if remote_name or target.node != self.node_name:
            self._monitor_remote(caller, target, ref)
            return ref
        rec = self.local_rec(target)
        if rec is None:
            self.deliver(caller, Down(ref, target, "noproc"))
            return ref
        self._add_monitor(caller, rec, ref)
        return ref

    def _monitor_remote(self, caller: Pid, target: Any, ref: Ref) -> None:
        """Monitor a pid or ``(name, node)`` on another node."""
        if self.dist is None:
            self.deliver(caller, Down(ref, target, "noconnection"))
            return
        crec = self.local_rec(caller)
        if crec is not None:
            crec.monitors[ref] = target
        self.dist.monitor(caller, target, ref)

    def op_demonitor(self, caller: Pid, ref: Ref) -> bool:
        crec = self.local_rec(caller)
        target = crec.monitors.pop(ref, None) if crec is not None else None
        if target is None:
            return False
        self._drop_monitor(ref, target)
        return True

    def _drop_monitor(self, ref: Ref, target: Any) -> None:
        if isinstance(target, Pid) and target.node != self.node_name:
            if self.dist is not None:
                self.dist.demonitor(ref, target)
            return
        rec = self.local_rec(target) if isinstance(target, Pid) else None
        if rec is not None:
            rec.monitored_by.pop(ref, None)

    # -- stopping ----------------------------------------------------------
    def stop(self, timeout: float = config.STOP_TIMEOUT) -> None:
        """End every actor (SIGTERM, then SIGKILL after ``timeout``) and the loop.

        Always returns: ``_begin_stop`` waits at most ``timeout`` for SIGTERM
        and ``config.KILL_TIMEOUT`` for SIGKILL to be reaped, so the wait below
        has a bound; a kernel that misses it (a bug) is logged and abandoned.
        """
        if self.thread is None or self._stopped.is_set():
            return
        bound = timeout + config.KILL_TIMEOUT + config.STOP_GRACE
        try:
            self.call(self._begin_stop, timeout, timeout=bound)
        except Exception:  # noqa: BLE001 - stopping must not fail half-way
            log.exception("node %s: stopping its kernel failed; abandoning it", self.node_name)
        finally:
            self.thread.join(bound)
            if self.thread.is_alive():
                log.error("node %s: kernel thread still running after %.1fs; abandoning it", self.node_name, bound)

    def _begin_stop(self, timeout: float) -> None:
        self._stopping = True
        try:
            self._end_actors(timeout)
        finally:
            try:
                if self.dist is not None:
                    self.dist.close()
            finally:
                self._close()

    def _end_actors(self, timeout: float) -> None:
        """SIGTERM every actor, SIGKILL those left after ``timeout``; reap them (bounded)."""
        actors = [rec for aid, rec in self.procs.items() if aid != 0]
        for rec in actors:
            if rec.kill_reason is None:
                rec.kill_reason = "shutdown"
            if rec.proc is not None:
                rec.proc.signal(signal.SIGTERM)
        self._reap(actors, time.monotonic() + timeout)
        left = [rec for rec in actors if rec.alive]
        for rec in left:
            if rec.proc is not None:
                rec.proc.kill()
        self._reap(left, time.monotonic() + config.KILL_TIMEOUT)
        stuck = [rec for rec in left if rec.alive]
        if stuck:  # SIGKILL not reaped in time (a process in uninterruptible sleep)
            log.error("node %s: %d actor(s) not reaped %.1fs after SIGKILL: %s", self.node_name, len(stuck),
                      config.KILL_TIMEOUT, ", ".join(str(rec.pid) for rec in stuck))

    def _reap(self, actors: List[ProcRec], deadline: float) -> None:
        """Serve sentinels and control connections until ``actors`` are gone or ``deadline``."""
        while any(rec.alive for rec in actors):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for key, _ in self.sel.select(left):
                kind, rec = key.data
                if kind == "sentinel":
                    self._on_exit(rec)
                elif kind == "ctl":
                    self._read_ctl(rec)

    def _close(self) -> None:
        for w in self.writers.values():
            w.close()
        self.writers.clear()
        self.sel.close()
        for fd in (self._wake_r, self._wake_w, *self.main_mailbox.fds()):
            try:
                os.close(fd)
            except OSError:
                pass


def _high_fd_base() -> int:
    """Half the descriptor limit, where os.closerange is one close_range() call; else 0."""
    import resource
    import sys

    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if sys.version_info < (3, 10) or limit == resource.RLIM_INFINITY or limit < 4096:
        return 0  # closerange would loop over every number: close them one by one
    return int(limit // 2)



def _log_failure(op: str, caller: Pid) -> Callable[[bool, Any], None]:
    def done(ok: bool, value: Any) -> None:
        if not ok:
            log.error("request %s from %s failed: %s", op, caller, value)

    return done
