"""``Node``: makes the calling process an mpactors node.

The node's parts are wired here: the kernel thread (process tables, actor
processes), the main process's mailbox (so module-level ``send``/``receive``
work in the script, as in the Erlang shell), and - for a named node - the
distribution layer.
"""
from __future__ import annotations

import atexit
import logging
import os
import random
import signal
import threading
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple

from ._core import _bulk, _procs, _shutdown, _stackdump
from . import config
from ._core._context import current_or_none, set_current
from ._core._kernel import Kernel
from ._names import node_name
from .errors import BadArg, NodeError
from ._core.mailbox import make_pipe
from .pid import Pid, Ref
from .tls import TLS

__all__ = ["Node", "LOCAL_NODE"]

log = logging.getLogger(__name__)

#: The name of a node that is not distributed (Erlang's ``nonode@nohost``).
LOCAL_NODE = "nonode@nohost"


def full_name(name: str, longnames: bool = False) -> str:
    """``'a'`` -> ``'a@<short hostname>'``; a name with ``@host`` is checked and kept (see ``_names``)."""
    return node_name(name, longnames)


class NodeMain:
    """The calling-process context of the node's main process."""


    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.pid: Pid = kernel.main_pid
        self.node_name = kernel.node_name
        self.creation = kernel.creation
        self.mailbox = kernel.main_mailbox
        self.trapping = False
        self.tracer: Optional[Pid] = None  # the main process is not traced

    def trace(self, event: str, msg: Any, peer: Any) -> None:
        pass

    def call(self, op: str, *args: Any) -> Any:
        return self.kernel.local_request(self.pid, op, *args)

    def send_local(self, dest: Pid, payload: bytes) -> None:
        w = self.kernel.writers.get(dest.id)
        if w is not None:
            w.put(payload, 0)

    def send_remote(self, dest: Any, payload: bytes) -> None:
        # Through the router pipe, like every local process's remote sends:
        # one FIFO keeps them in order, and the kernel drains it before it
        # sends this process's signals.
        dist = self.kernel.dist
        if dist is not None:
            dist.route(dest, payload)

    def whereis(self, name: str) -> Optional[Pid]:
        return self.kernel.whereis(name)

    def make_ref(self) -> Ref:
        return Ref.make(self.node_name, self.creation, os.getpid())


class Node:
    """The calling process becomes node ``name@host``; use it as a context manager.

    Args:
        name: ``'a'`` gives ``a@<short hostname>``; ``'a@host'`` is used as is.
            ``None`` gives a local-only node, ``nonode@nohost``.
        cookie: the cluster cookie (else ``MPACTORS_COOKIE``, else ``~/.mpactors.cookie``).
        longnames: names are ``a@fully.qualified.host`` or ``a@ip``.
        hidden: connect only where asked; appear in no one's ``nodes()``.
        ticktime: a peer silent this many seconds is declared down.
        start_method: ``'fork'`` (default on Linux), ``'forkserver'`` or ``'spawn'``.
        tls: a :class:`~mpactors.tls.TLS`: connections to other nodes use mutual
            TLS (else the ``MPACTORS_TLS_*`` variables, else plain TCP). When the
            node starts in the main thread and ``SIGHUP`` has its default action,
            ``SIGHUP`` re-reads the certificate, key and CA files.
        port_range: ``(lo, hi)``: listen on the first free port of the range
            (else ``MPACTORS_PORT_RANGE``, ``'LO-HI'``; default any free port).
        interface: listen on this IPv4 address only (else ``MPACTORS_INTERFACE``;
            default all addresses).
        dist_port: no port mapper: listen on this port and reach every node at
            ``host:dist_port`` (else ``MPACTORS_DIST_PORT``).
        seeds: node names to keep connected to, reconnecting with backoff
            (``'name@dns:HOST'`` stands for every address of HOST); else
            ``MPACTORS_SEEDS`` (comma separated). See :mod:`mpactors.dist._seeds`.

    ``stop()`` ends every actor of the node: each is asked to exit (SIGTERM),
    and any still alive after ``config.STOP_TIMEOUT`` seconds is SIGKILLed.
    """

    _lock = threading.Lock()
    _running: Optional[Node] = None

    def __init__(
        self,
        name: Optional[str] = None,
        *,
        cookie: Any = None,
        longnames: bool = False,
        hidden: bool = False,
        ticktime: float = 60.0,
        start_method: Optional[str] = None,
        tls: Optional[TLS] = None,
        port_range: Optional[Tuple[int, int]] = None,
        interface: Optional[str] = None,
        dist_port: Optional[int] = None,
        seeds: Optional[Sequence[str]] = None,
    ) -> None:
        self.name = LOCAL_NODE if name is None else full_name(name, longnames)
        self.distributed = name is not None
        self.longnames = longnames
        self.hidden = hidden
        if not ticktime > 0:
            raise BadArg(f"`ticktime` must be positive, not {ticktime!r}")
        self.ticktime = float(ticktime)
        method = start_method or config.start_method() or _procs.default_start_method()
        if method not in _procs.START_METHODS:
            raise BadArg(f"`start_method` must be one of {', '.join(_procs.START_METHODS)}, not {method!r}")
        self.start_method = method
        self.cookie_setting: Any = cookie  # as given; resolved by the distribution layer
        if tls is not None and not isinstance(tls, TLS):
            raise BadArg(f"`tls` must be a mpactors.TLS, not {type(tls).__name__}")
        if tls is not None and not self.distributed:
            raise BadArg("`tls` needs a named node: a local-only node has no connections")
        self.tls = tls
        self.listening: Any = None
        self.seeds: List[str] = []
        if self.distributed:
            from .dist import _listen, _seeds

            self.listening = _listen.Listening(port_range, interface, dist_port, hidden=hidden)
            self.seeds = _seeds.parse_seeds(seeds if seeds is not None else config.env_deploy()["seeds"])
        elif any(v is not None for v in (port_range, interface, dist_port, seeds)):
            raise BadArg("`port_range`, `interface`, `dist_port` and `seeds` need a named node")
        self._unwatch_sighup: Optional[Callable[[], None]] = None
        self._unwatch_sigterm: Optional[Callable[[], None]] = None
        self.kernel: Optional[Kernel] = None
        self._old_title: Optional[str] = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> Node:
        """Start the node in the calling process; returns ``self``."""
        with Node._lock:
            if Node._running is not None or current_or_none() is not None:
                running = Node._running.name if Node._running else "an actor"
                raise NodeError(f"this process already runs {running}: one node per process")
            old_fds, new_fds = _procs.raise_fd_limit()
            if new_fds != old_fds:
                log.info("raised the soft descriptor limit from %d to %d (each actor uses a few)", old_fds, new_fds)
            _bulk.start_node()
            distribution = None
            creation = random.randint(1, 2**32 - 1)
            if self.distributed:
                from .dist import Distribution

                distribution = Distribution(self)
                creation = distribution.creation
                self._unwatch_sighup = distribution.transport.watch_sighup()
            kernel = Kernel(self.name, creation, self.start_method, make_pipe())
            if distribution is not None:
                distribution.start(kernel)
                kernel.attach(distribution)  # as a _core._ports.DistPort: the core imports no dist
            kernel.start()
            self.kernel = kernel
            set_current(NodeMain(kernel))
            Node._running = self
            _default_logging()
            _stackdump.install()
            self._unwatch_sigterm = _watch_sigterm()
            self._set_title()
            atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """End every actor of this node and the node itself (idempotent)."""
        with Node._lock:
            kernel, self.kernel = self.kernel, None
            if kernel is None:
                return
            try:
                _graceful(kernel)
                kernel.stop()
            finally:  # whatever happened, this process can start a new node
                _bulk.stop_node()
                set_current(None)
                Node._running = None
                self._restore_title()
                if self._unwatch_sighup is not None:
                    self._unwatch_sighup()
                    self._unwatch_sighup = None
                if self._unwatch_sigterm is not None:
                    self._unwatch_sigterm()
                    self._unwatch_sigterm = None
                atexit.unregister(self.stop)

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def pid(self) -> Pid:
        """The pid of the node's main process."""
        if self.kernel is None:
            raise NodeError(f"node {self.name} is not running")
        return self.kernel.main_pid

    @property
    def alive(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self.kernel is not None

    def __repr__(self) -> str:
        state = "running" if self.kernel else "stopped"
        return f"<Node {self.name} {state}>"

    # -- process title -----------------------------------------------------
    def _set_title(self) -> None:
        try:
            import setproctitle

            self._old_title = setproctitle.getproctitle()
            setproctitle.setproctitle(f"mpactors node {self.name}")
        except ImportError:  # pragma: no cover
            pass

    def _restore_title(self) -> None:
        if self._old_title is not None:
            import setproctitle

            setproctitle.setproctitle(self._old_title)
            self._old_title = None


def _graceful(kernel: Kernel) -> None:
    """Stop the supervision trees first (see :mod:`mpactors._core._shutdown`), within the shutdown timeout."""
    try:
        deadline = time.monotonic() + config.shutdown_timeout()
        signalled = kernel.call(_shutdown.begin, kernel.table, kernel.links, kernel.main_pid, timeout=config.CALL_TIMEOUT)
        while kernel.call(_shutdown.pending, kernel.table, signalled, kernel.main_pid, timeout=config.CALL_TIMEOUT):
            if time.monotonic() >= deadline:
                log.warning("node %s: graceful stop not done after %.1f s; killing the rest",
                            kernel.node_name, config.shutdown_timeout())
                return
            time.sleep(_SHUTDOWN_POLL)  # actors exiting: the kernel has no event to wait on for us
    except Exception:  # noqa: BLE001 - the hard stop that follows still ends everything
        log.exception("node %s: graceful stop failed; ending every actor", kernel.node_name)


_SHUTDOWN_POLL = 0.05


def _watch_sigterm() -> Optional[Callable[[], None]]:
    """SIGTERM raises ``SystemExit(0)`` in the main thread, so the node stops gracefully and exits 0.

    Only when the node starts in the main thread and SIGTERM has its default
    action (an application's own handler wins); returns the undo, or None.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return None

    def on_sigterm(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the stop
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_sigterm)

    def undo() -> None:
        if signal.getsignal(signal.SIGTERM) in (on_sigterm, signal.SIG_IGN):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    return undo


def _default_logging() -> None:
    """Crash reports and node-down warnings go to stderr unless logging is configured.

    A library normally stays silent, but an actor that dies unseen is the
    hardest thing to debug; as soon as the application configures logging
    (any handler on the root logger), mpactors adds nothing.
    """
    logger = logging.getLogger("mpactors")
    if logging.getLogger().handlers or any(not isinstance(h, logging.NullHandler) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("mpactors %(levelname)s [%(process)d] %(message)s"))
    handler.setLevel(logging.WARNING)
    logger.addHandler(handler)
