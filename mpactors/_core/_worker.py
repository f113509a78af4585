"""Actor child bootstrap: the only entry point of an actor process.

``bootstrap(boot)`` runs in the new process whatever the start method: it
makes sure the process dies with its node (``PR_SET_PDEATHSIG`` plus a check of
the parent and of the control connection), drops the node's private file
descriptors, sets the process title, runs the callable, and maps every outcome
to an exit reason it reports to the node before it exits:

=========================  ====================================
outcome                    exit reason
=========================  ====================================
callable returned          ``'normal'``
``mpactors.exit(reason)``  ``reason``
uncaught exception         ``Crash(type, message, traceback)``
SIGTERM from the node      what the node decided (it knows)
SIGKILL                    ``'killed'`` (the node sees the signal)
=========================  ====================================

A callable that returns a coroutine (an ``async def``) runs it in an event
loop that owns the mailbox (``_aioloop.run_actor``); SIGTERM then cancels
its main task instead of raising ``Terminated``.

``ActorProc`` is the calling-process context of an actor: module-level
functions (``send``, ``receive``, ``link``...) act through it. Requests go to
the node over the control connection; replies come back on it and are handed
to the waiting thread by the control thread, which also answers the node's
questions (``process_info``) while the actor's own code is busy.
"""
from __future__ import annotations

import _thread
import ctypes
import inspect
import itertools
import logging
import os
import signal
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle
from typing import Any, Dict, List, Optional

from .. import _codec
from ._context import set_current
from ..errors import BadArg, ProcessExit
from . import _bulk, _logconf
from .mailbox import Mailbox, MailboxWriter, flush_all
from ..messages import Crash, Trace
from ._route import route_head
from . import _stackdump
from ._counters import snapshot as counter_snapshot
from ._introspect import answer as introspect_answer, behaviour
from ._util import Slot
from ..pid import Pid, Ref

__all__ = ["Boot", "bootstrap", "ActorProc", "Terminated"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_FLUSH_AT_EXIT = 5.0  # seconds an ending actor waits for its backlogged sends


class Terminated(BaseException):
    """Raised in an actor's main thread when its node ends it with SIGTERM."""


class Boot:
    """What a new actor process needs; pickled only under spawn/forkserver."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    pid: Pid
    creation: int
    mbox: Connection  # read end of the mailbox pipe
    ctl: Connection  # control connection to the node (a Unix socket)
    route: Optional[Connection]  # write end of the node's router pipe (remote sends)
    payload: bytes  # pickled (fn, args, kwargs)
    title: str
    fn_name: str
    parent: int  # the node's OS pid
    close_fds: List[int]  # node-private descriptors inherited by fork
    close_high: int  # with fork: close every descriptor from this number up (0: none)
    writers: Dict[int, int]  # actor id -> write fd inherited by fork
    log_level: int
    log_config: Optional[list]  # spawn/forkserver: the node's logging, see _logconf


def bootstrap(boot: Boot) -> None:
    """Run one actor to its end; never returns normally (``os._exit``)."""
    try:
        _bootstrap(boot)
    except Terminated:
        # SIGTERM outside the actor's code (its node stops it while it starts
        # or reports its exit): end quietly, whatever the start method
        # (multiprocessing would print a traceback under forkserver and spawn).
        os._exit(1)


def _bootstrap(boot: Boot) -> None:
    _die_with_parent(boot.parent)
    if boot.log_config is not None:  # not forked: no logging configuration inherited
        _logconf.apply(boot.log_config)
    _bulk.set_node(boot.parent)  # large messages: the node's shared-memory directory
    if boot.close_high:
        # Per-actor descriptors of the node live at and above this number
        # (see Kernel.spawn_local): one close_range() instead of two closes
        # per running actor.
        os.closerange(boot.close_high, _fd_limit())
    for fd in boot.close_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the node
    signal.signal(signal.SIGTERM, _on_sigterm)
    _stackdump.install()  # before the title: a process titled "mpactors actor" can dump
    _set_title(boot.title)
    proc = ActorProc(boot)
    set_current(proc)
    proc.start_control()
    reason = proc.run(boot.payload)
    flush_all(_FLUSH_AT_EXIT)
    proc.report_exit(reason)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(0)


def _fd_limit() -> int:
    import resource

    return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover
        return None


# Looked up once here, not in every new child (forked children inherit it).
_prctl = _load_prctl()


def _die_with_parent(parent: int) -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent and parent != 0:
        # forkserver: our parent is the fork server, not the node; the control
        # connection's EOF covers that case.
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(1)


# Set once SIGTERM arrived: the node decided this actor's exit reason, and
# whatever exception the actor's code ends with after that is only the
# consequence (Python 3.9-3.11 wrap an exception raised in a class body's
# ``__set_name__`` in a RuntimeError; user code may catch ``Terminated`` and
# raise something else). Erlang's rule: a killed process dies with the
# signal's reason, whatever it was doing.
_terminated = False


def _on_sigterm(signum: int, frame: Any) -> None:
    global _terminated
    _terminated = True
    raise Terminated()


def _set_title(title: str) -> None:
    try:
        import setproctitle

        setproctitle.setproctitle(title)
    except ImportError:  # pragma: no cover - setproctitle is a dependency
        pass


class ActorProc:
    """The calling-process context inside an actor."""


    def __init__(self, boot: Boot) -> None:
        self.pid = boot.pid
        self.node_name = boot.pid.node
        self.creation = boot.creation
        self.fn_name = boot.fn_name
        self.mailbox = Mailbox(boot.mbox.fileno(), owner=str(boot.pid))
        self.ctl = boot.ctl
        self._ctl_lock = threading.Lock()
        self._tags = itertools.count(1)
        self._pending: Dict[int, Slot] = {}
        self.writers: Dict[int, MailboxWriter] = {}
        self._inherited = boot.writers  # actor id -> write fd inherited by fork; wrapped on first use
        self._dead_ids: "set[int]" = set()
        self.router = MailboxWriter(boot.route.fileno(), big=True) if boot.route is not None else None
        self._writers_lock = threading.Lock()
        self.trapping = False
        self.registered_name: Optional[str] = None
        self.tracer: Optional[Pid] = None

    # -- control connection ------------------------------------------------
    def start_control(self) -> None:
        # A bare thread: threading.Thread.start costs ~5x more in a new child,
        # and this one needs neither join() nor a name in threading.enumerate().
        _thread.start_new_thread(self._control_loop, ())

    def _ctl_send(self, msg: Any) -> None:
        with self._ctl_lock:
            self.ctl.send(msg)

    def _control_loop(self) -> None:
        try:
            while True:
                msg = self.ctl.recv()
                kind = msg[0]
                if kind == "reply":
                    self._pending.pop(msg[1]).set(msg[2], msg[3])
                elif kind == "reply_fd":
                    fd = recv_handle(self.ctl)
                    self._pending.pop(msg[1]).set(True, fd)
                elif kind == "info":  # ("info", tag) or ("info", tag, what): see _introspect
                    answer = self._local_info() if len(msg) == 2 else introspect_answer(msg[2])
                    self._ctl_send(("info_reply", msg[1], answer))
                elif kind == "title":
                    _set_title(msg[1])
                elif kind == "trace":
                    self.set_tracer(msg[1])
        except (EOFError, OSError):
            pass
        # The node is gone: an actor never outlives its node.
        os._exit(1)

    def _local_info(self) -> Dict[str, Any]:
        return {
            "status": "waiting" if self.mailbox.waiting else "running",
            "message_queue_len": len(self.mailbox),
            "trap_exit": self.trapping,
            "behaviour": behaviour(),
            **counter_snapshot(),
        }

    def call(self, op: str, *args: Any) -> Any:
        """A synchronous request to the node's kernel."""
        slot = Slot()
        tag = next(self._tags)
        self._pending[tag] = slot
        try:
            self._ctl_send(("call", tag, op, args))
        except Exception as exc:
            self._pending.pop(tag, None)
            raise BadArg(f"cannot send request {op!r} to the node: {exc}") from exc
        return slot.wait()

    def cast(self, op: str, *args: Any) -> None:
        """An asynchronous request to the node's kernel."""
        self._ctl_send(("cast", op, args))

    # -- the actor's life --------------------------------------------------
    def run(self, payload: bytes) -> Any:
        try:
            fn, args, kwargs = _codec.loads(payload)
            result = fn(*args, **kwargs)
            if inspect.iscoroutine(result):  # an async actor: its event loop owns the mailbox
                from ._aioloop import run_actor

                if run_actor(result, self.mailbox):
                    return None  # an exit signal cancelled it: the node knows the reason
            return "normal"
        except BaseException as exc:  # noqa: BLE001 - every outcome is a reason
            if _terminated or isinstance(exc, Terminated):
                return None  # ended by the node, which knows the reason (see _terminated)
            if isinstance(exc, ProcessExit):
                return exc.reason
            if isinstance(exc, SystemExit):
                return "normal" if exc.code in (None, 0) else exc.code
            text = traceback.format_exc()
            log.error("actor %s (%s) crashed:\n%s", self.pid, self.fn_name, text.rstrip())
            return Crash(type(exc).__name__, str(exc), text)

    def report_exit(self, reason: Any) -> None:
        if reason is None:
            return
        try:
            self._ctl_send(("exit", _codec.dumps_reason(reason)))
        except OSError:
            pass

    # -- tracing -----------------------------------------------------------
    def set_tracer(self, tracer: Optional[Pid]) -> None:
        """Report every message sent and received to ``tracer`` (None: stop)."""
        self.tracer = tracer
        self.mailbox.on_arrival = None if tracer is None else self._trace_arrival

    def _trace_arrival(self, msg: Any) -> None:
        self.trace("receive", msg, None)

    def trace(self, event: str, msg: Any, peer: Any) -> None:
        tracer = self.tracer
        if tracer is None:
            return
        try:
            payload = _codec.dumps(Trace(self.pid, event, msg, peer))
        except BadArg:
            payload = _codec.dumps(Trace(self.pid, event, repr(msg), peer))
        if tracer.node == self.node_name:
            self.send_local(tracer, payload)
        else:
            self.send_remote(tracer, payload)

    # -- primitives --------------------------------------------------------
    def send_local(self, dest: Pid, payload: bytes) -> None:
        w = self.writers.get(dest.id)
        if w is None:
            if dest.id in self._dead_ids:
                return
            w = self._fetch_writer(dest)
            if w is None:
                return
        if not w.put(payload, self.pid.id):
            self._forget(dest.id, w)

    def _fetch_writer(self, dest: Pid) -> Optional[MailboxWriter]:
        with self._writers_lock:
            w = self.writers.get(dest.id)
            if w is not None:
                return w
            fd = self._inherited.get(dest.id)
            if fd is not None:
                w = self.writers[dest.id] = MailboxWriter(fd)
                return w
            fd = self.call("mailbox", dest)
            if fd is None:
                self._dead_ids.add(dest.id)
                if len(self._dead_ids) > 10000:
                    self._dead_ids.clear()
                return None
            w = self.writers[dest.id] = MailboxWriter(fd)
            return w

    def _forget(self, actor_id: int, w: MailboxWriter) -> None:
        if self.writers.get(actor_id) is w:
            del self.writers[actor_id]
            self._inherited.pop(actor_id, None)
            w.close()
        self._dead_ids.add(actor_id)

    def send_remote(self, dest: Any, payload: bytes) -> None:
        if self.router is not None:
            self.router.put(payload, self.pid.id, head=route_head(dest))

    def whereis(self, name: str) -> Optional[Pid]:
        return self.call("whereis", name)  # type: ignore[no-any-return]

    def make_ref(self) -> Ref:
        return Ref.make(self.node_name, self.creation, os.getpid())
