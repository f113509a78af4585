"""The node kernel: the one loop that owns a node's process tables.

Only the kernel thread changes the tables below (as only ``net_kernel`` and
ERTS do in Erlang); every other thread - the node's main thread, the
distribution readers - hands it requests through ``call``/``cast``, and actors
send theirs over their control connections. The loop waits on one selector::

    wake pipe       <- requests from threads of this process (call/cast)
    control conns   <- requests and exit reports from actors
    sentinels       <- an actor process ended (SIGKILL included): no polling
    timers          -> escalate SIGTERM to SIGKILL, give up on late replies

The kernel is composed of one part per concept, each owning its state
(kernel thread only):

* ``table`` (:class:`~._tables.ProcTable`): actor id -> ``ProcRec`` (id 0 is
  the node's main process) and every local mailbox's write end (read, not
  written, by the main thread to send without a hop);
* ``registry`` (:class:`~._registry.Registry`): registered names;
* ``links`` (:class:`~._links.Links`): links, monitors, exit signals and the
  consequences of a lost node - the one place for Erlang's rules;
* ``info`` (:class:`~._info.Info`): ``process_info``, ``trace``;
* ``cluster`` (:class:`~._cluster.Cluster`): ``nodes``, ``ping``, cookies,
  node-event watchers;
* ``actors`` (:class:`~._actors.Actors`): starting and ending actor processes.

This module keeps the loop, request dispatch, the control connections, and
what happens when a process ends and when the node stops. The distribution
layer is wired in by the node (:meth:`Kernel.attach`) as a
:class:`~._ports.DistPort`; it calls the public methods of ``links``
(``link_remote``, ``signal_remote``...) and those under "from the
distribution layer" below, never the tables.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import logging
import os
import selectors
import signal
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.reduction import send_handle
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from .. import _codec, config
from ._actors import Actors, exit_reason, high_fd_base
from ._cluster import Cluster
from ._info import FdReply, Info
from ._links import Links
from ._ports import DEFER, DistPort, Reply
from ._registry import Registry
from ._tables import ProcRec, ProcTable
from ._timers import Timers
from ._util import Slot
from ..errors import BadArg, MpactorsError, NodeError
from .mailbox import SYSTEM_EXIT, F_SYSTEM, Mailbox, MailboxWriter
from ..pid import Pid, Ref

__all__ = ["Kernel", "ProcRec", "DEFER"]

log = logging.getLogger(__name__)


class Kernel:
    """The node's kernel thread and its parts (see the module docstring)."""

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
        # Descriptors an actor forked from this process must not keep.
        self.private_fds: "set[int]" = {self._wake_r, self._wake_w, self.sel.fileno()}
        # Held while forking and while another thread closes a private
        # descriptor: a number closed (and perhaps reused) must never still be
        # in the set a new child closes.
        self.fd_lock = threading.Lock()
        # With fork (and close_range, Python 3.10+), each actor's control
        # socket and sentinel live at or above ``high``: a new child closes
        # them all at once instead of two by two.
        self.high = high_fd_base() if start_method == "fork" else 0
        self.dist: Optional[DistPort] = None  # the distribution layer, when the node has one
        self.route_conn: Optional[Connection] = None  # write end of dist's router pipe
        self.thread: Optional[threading.Thread] = None
        self._stopping = False
        self._stopped = threading.Event()
        self.reply_to: Reply = ("fn", _log_failure("?", Pid(node_name, 0)))  # of the request being served
        r, w = main_mailbox_fds
        self.private_fds.add(r)
        self.main_pid = Pid(node_name, 0, 0, creation)
        self.main_mailbox = Mailbox(r, owner=str(self.main_pid))
        self.private_fds.update(self.main_mailbox.fds())
        self.table = ProcTable(node_name, creation)
        self.table.add(ProcRec(self.main_pid, MailboxWriter(w, big=True), "main"), w)
        self.registry = Registry(self.table)
        self.links = Links(self.table, self.registry, self, self.end_process)
        self.info = Info(self.table, self, self.main_mailbox)
        self.cluster = Cluster(self)
        self.timers = Timers(self.table, self.registry, self)  # send_after/send_interval
        self.actors = Actors(self.table, start_method, self.private_fds, self.fd_lock, self.high)
        # Read by the node's main thread to send and look up names without a hop.
        self.writers: Dict[int, MailboxWriter] = self.table.writers
        self.names: Dict[str, Pid] = self.registry.names
        self._ops: Dict[str, Callable[..., Any]] = {}
        for part in (self, self.registry, self.links, self.info, self.cluster, self.timers):
            self._ops.update((n[3:], getattr(part, n)) for n in dir(part) if n.startswith("op_"))

    def attach(self, dist: DistPort) -> None:
        """Wire in the distribution layer (before ``start``)."""
        self.dist = dist
        self.route_conn = dist.route_conn
        self.private_fds.update(dist.private_fds())

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
        timeout = self.timers.wait(timeout, time.monotonic())
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
        self.timers.fire(time.monotonic())

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
        handler = self._ops.get(op)
        if handler is None:
            self.reply(reply, False, BadArg(f"unknown kernel request {op!r}"))
            return
        self.reply_to = reply
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
            self.info.answered(msg[1], msg[2])

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
            return self.dist.remote_spawn(caller, node, payload, fn_name, link, monitor, self.reply_to)
        rec = self.spawn_local(payload, fn_name)
        ref = self.links.spawned(caller, rec, link, monitor)
        return (rec.pid, ref) if monitor else rec.pid

    def spawn_local(self, payload: bytes, fn_name: str) -> ProcRec:
        """Start an actor process running the pickled ``(fn, args, kwargs)``."""
        if self._stopping:
            raise NodeError(f"node {self.node_name} is stopping")
        pid = Pid(self.node_name, next(self._ids), 0, self.creation)
        rec, ctl, sentinel = self.actors.start(pid, payload, fn_name, self.route_conn)
        self.sel.register(ctl, selectors.EVENT_READ, ("ctl", rec))
        if sentinel != ctl:  # with fork the control socket is the sentinel (see Actors.start)
            self.sel.register(sentinel, selectors.EVENT_READ, ("sentinel", rec))
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
        self.process_died(rec, exit_reason(rec, proc.reap()))

    def process_died(self, rec: ProcRec, reason: Any) -> None:
        """Forget ``rec`` and fire its links and monitors with ``reason``."""
        rec.alive = False
        if rec.pid.id != 0:
            self.table.remove(rec)
        self.registry.forget(rec)
        self.timers.owner_died(rec.pid)
        if self.dist is not None:
            self.dist.drain_router()  # its remote messages go before its exit signals
        self.links.process_died(rec, reason)
        self.cluster.forget(rec.pid)

    def end_process(self, rec: ProcRec, reason: Any) -> None:
        """Make a local process exit with ``reason`` (the exit-signal rules are in ``_links``)."""
        if rec.pid.id == 0:
            # The node's main thread cannot be torn down: its receive raises
            # ProcessExit, and its links and monitors fire as if it died.
            rec.writer.put(_codec.dumps((SYSTEM_EXIT, reason)), 0, F_SYSTEM)
            self.process_died(rec, reason)
            rec.alive = True
            return
        self.actors.end(rec, reason, self.timer)

    def local_rec(self, pid: Pid) -> Optional[ProcRec]:
        """The live record of a local pid, or None."""
        return self.table.local_rec(pid)

    def deliver(self, to: Pid, msg: Any) -> None:
        """Put a runtime message (Down, ExitSignal, NodeDown...) in ``to``'s mailbox."""
        if to.node != self.node_name:
            if self.dist is not None:
                self.dist.route(to, _codec.dumps(msg))
            return
        rec = self.table.local_rec(to)
        if rec is not None:
            rec.writer.put(_codec.dumps(msg), 0)

    # -- from the distribution layer ---------------------------------------
    # A control frame from another node, decoded by ``dist``, becomes a call of
    # a public method of ``self.links`` (``link_remote``, ``signal_remote``...)
    # or of one below; the rules behind them live in the core only.
    def spawn_for_remote(
        self, caller: Pid, payload: bytes, fn_name: str, link: bool, monitor: bool
    ) -> Tuple[Pid, Optional[Ref]]:
        """Spawn here for the remote ``caller``, linked or monitored as asked."""
        rec = self.spawn_local(payload, fn_name)
        return rec.pid, self.links.spawned(caller, rec, link, monitor)

    def node_up(self, node: str) -> None:
        """A visible connection to ``node`` is up: tell ``monitor_nodes`` watchers."""
        self.cluster.node_up(node)

    def node_down(self, node: str) -> None:
        """The connection to ``node`` is lost: links break, monitors fire, watchers hear."""
        self.links.node_down(node)
        self.cluster.node_down(node)

    def whereis(self, name: str) -> Optional[Pid]:
        """Any thread: the local pid registered as ``name``, or None."""
        return self.registry.lookup(name)

    def writer_for(self, aid: int, creation: int) -> Optional[MailboxWriter]:
        """Any thread: the mailbox writer of local actor ``aid``, or None."""
        return self.table.writer_for(aid, creation)

    # -- halting -------------------------------------------------------------
    def op_halt(self, caller: Pid) -> bool:
        """Stop this node from inside (``mpactors stop``): the node's halt handler runs."""
        self.timer(0.05, self.on_halt)
        return True

    def on_halt(self) -> None:
        """Replaced by the node; by default the node process gets SIGTERM."""
        os.kill(os.getpid(), signal.SIGTERM)

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
        actors = self.actors.terminate_all()
        self._reap(actors, time.monotonic() + timeout)
        left = self.actors.kill_all(actors)
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


def _log_failure(op: str, caller: Pid) -> Callable[[bool, Any], None]:
    def done(ok: bool, value: Any) -> None:
        if not ok:
            log.error("request %s from %s failed: %s", op, caller, value)

    return done
