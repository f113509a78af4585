"""Starting and stopping nodes from the command line (``mpactors start`` / ``stop``).

A node started by ``mpactors start NAME`` runs in the foreground: logs go to
stderr, and its main thread loops on :func:`mpactors.receive` (it is the
node's main process, as the Erlang shell is) until SIGTERM, SIGINT or SIGHUP
stops the node and exits 0 (with TLS, SIGHUP re-reads the certificates instead). ``mpactors stop`` sends it that SIGTERM from the
inside (:func:`mpactors.introspect.halt`).

``--detached`` re-runs the same command in the foreground in a new session
(no controlling terminal, stdin from ``/dev/null``, output appended to
``$MPACTORS_HOME/logs/<name>.log``) and returns once the node answers a ping::

    launcher                                   node (new session)
    check the name is free (port mapper)
    Popen(python -m mpactors start NAME
          --cookie-fd N)  ---------------->  read the cookie from the pipe N
    poll the port mapper for NAME              Node(NAME).start(): registers
                                               with the port mapper, listens
    ping NAME from a hidden node       <---->  pong
    print "NAME OS-PID", exit 0                receive() until SIGTERM

If the node exits first, the launcher fails with the log's last line. The
cookie goes through a pipe the node inherits, never in its argv or
environment (both readable in ``/proc`` by other users of the host).
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import List, Optional, Tuple

import psutil

from .. import config, introspect, primitives, rpc
from ._common import (
    CLI_NODE_PREFIX,
    CLI_TIMEOUT,
    check_reachable,
    hidden_node,
    is_local,
    log_file,
    registered_locally,
    uses_port_mapper,
)
from ..errors import NodeError, Timeout
from ..messages import NodeDown
from ..node import Node
from ..tls import TLS

__all__ = [
    "START_TIMEOUT", "STOP_WAIT", "configure_logging", "read_cookie_fd", "run_foreground", "start_detached", "stop_node",
]

log = logging.getLogger("mpactors.node")

#: How long ``start --detached`` waits for the new node to answer a ping.
START_TIMEOUT = 30.0
#: How long ``stop`` waits for a node and its actors to be gone.
STOP_WAIT = 15.0
_POLL = 0.05  # polling the port mapper and OS pids: nothing to wait on
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class _Stop(BaseException):
    """Raised in the main thread by a stop signal, to leave ``receive()``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def configure_logging() -> None:
    """INFO and above to stderr, with timestamps (CLI connections left out below WARNING)."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_cli_nodes)


def _quiet_cli_nodes(record: logging.LogRecord) -> bool:
    """Every ``mpactors ps`` connects a hidden node: keep those comings and goings out of the log."""
    return record.levelno >= logging.WARNING or CLI_NODE_PREFIX not in record.getMessage()


def run_foreground(
    name: str, *, cookie: Optional[str], longnames: bool, hidden: bool, ticktime: float
) -> None:
    """Run node ``name`` in this process until a stop signal; returns after a clean stop.

    Raises:
        NodeError: the name is invalid or already in use on this host.
    """
    configure_logging()
    # With TLS, SIGHUP re-reads the certificates (Node installs that) instead of stopping.
    stop_signals = _STOP_SIGNALS if TLS.from_env() is None else _STOP_SIGNALS[:2]
    for signum in stop_signals:
        signal.signal(signum, _raise_stop)
    node = Node(name, cookie=cookie, longnames=longnames, hidden=hidden, ticktime=ticktime)
    try:
        node.start()
        log.info("node %s started (OS pid %d); stop it with: mpactors stop %s", node.name, os.getpid(), node.name)
        while True:
            msg = primitives.receive()
            log.info("the node's main process received %r", msg)
    except _Stop as stop:
        for signum in stop_signals:  # a second Ctrl-C must not interrupt the stop
            signal.signal(signum, signal.SIG_IGN)
        log.info("stopping on %s", signal.Signals(stop.signum).name)
    finally:
        node.stop()
    log.info("node %s stopped", node.name)


def _raise_stop(signum: int, frame: Optional[FrameType]) -> None:
    raise _Stop(signum)


def start_detached(
    name: str,
    *,
    cookie: Optional[str],
    longnames: bool,
    hidden: bool,
    ticktime: float,
    timeout: float = START_TIMEOUT,
) -> Tuple[str, int]:
    """Start node ``name`` in the background; returns ``(full name, OS pid)`` once it answers.

    Raises:
        NodeError: the name is taken, the node exited during start-up (the
            message quotes its log), or it did not answer within ``timeout``.
    """
    full = Node(name, longnames=longnames).name  # validates the name and options; starts nothing
    if uses_port_mapper() and registered_locally(full):
        raise NodeError(f"node {full} is already running on this host")
    logfile = log_file(full)
    logfile.parent.mkdir(parents=True, exist_ok=True)
    offset = logfile.stat().st_size if logfile.exists() else 0
    proc = _spawn(name, logfile, cookie=cookie, longnames=longnames, hidden=hidden, ticktime=ticktime)
    deadline = time.monotonic() + timeout
    while uses_port_mapper() and not registered_locally(full):
        _check_alive(proc, full, logfile, offset, deadline, timeout)
        time.sleep(_POLL)
    with hidden_node(cookie):
        while primitives.ping(full) != "pong":
            _check_alive(proc, full, logfile, offset, deadline, timeout)
            time.sleep(_POLL)
    _detached.append(proc)  # never reaped here: the node outlives this process
    return full, proc.pid


_detached: List[subprocess.Popen] = []


def _spawn(
    name: str, logfile: Path, *, cookie: Optional[str], longnames: bool, hidden: bool, ticktime: float
) -> subprocess.Popen:
    argv = [sys.executable, "-m", "mpactors", "start", name, "--ticktime", repr(ticktime)]
    if longnames:
        argv.append("--longnames")
    if hidden:
        argv.append("--hidden")
    env = dict(os.environ)
    env.pop("MPACTORS_COOKIE", None)  # /proc/PID/environ of the node (and its actors) would show it
    fds: Tuple[int, ...] = ()
    if cookie is not None:
        # Through a pipe the node inherits: argv (ps) and the environment are readable by others.
        r, w = os.pipe()
        try:
            os.write(w, cookie.encode("utf-8"))  # a cookie is far below a pipe's buffer
        finally:
            os.close(w)
        argv += ["--cookie-fd", str(r)]
        fds = (r,)
    try:
        with open(logfile, "ab") as out:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, start_new_session=True,
                close_fds=True, pass_fds=fds,
            )
    finally:
        for fd in fds:
            os.close(fd)


def read_cookie_fd(fd: int) -> str:
    """The cookie a launcher wrote to inherited descriptor ``fd`` (read to its end, then closed).

    Raises:
        NodeError: ``fd`` is not an open descriptor, or holds no cookie.
    """
    chunks = []
    try:
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as exc:
        raise NodeError(f"cannot read the cookie from descriptor {fd}: {exc.strerror}") from None
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    cookie = b"".join(chunks).decode("utf-8", "replace")
    if not cookie:
        raise NodeError(f"descriptor {fd} held no cookie")
    return cookie


def _check_alive(
    proc: subprocess.Popen, full: str, logfile: Path, offset: int, deadline: float, timeout: float
) -> None:
    """Fail if the starting node exited or the deadline passed."""
    status = proc.poll()
    if status is not None:
        raise NodeError(f"node {full} exited during start-up (status {status}): {_last_line(logfile, offset)}")
    if time.monotonic() > deadline:
        proc.kill()
        proc.wait()
        raise NodeError(f"node {full} did not answer a ping within {timeout} s; see {logfile}")


def _last_line(logfile: Path, offset: int) -> str:
    """The last non-empty line the node wrote to its log since ``offset``."""
    try:
        with open(logfile, "rb") as f:
            f.seek(offset)
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError as exc:
        return f"cannot read {logfile}: {exc.strerror}"
    return f"{lines[-1]} (log: {logfile})" if lines else f"no output (log: {logfile})"


def stop_node(node: str, *, cookie: Optional[str], timeout: float = STOP_WAIT) -> None:
    """Stop ``node`` and all its actors; returns once they are gone.

    The node halts itself (:func:`mpactors.introspect.halt`); this waits for
    the connection to drop and, for a node of this host, for its name to leave
    the port mapper and for its OS processes (node and actors) to exit.

    Raises:
        NodeError: the node cannot be reached, or it did not stop within ``timeout``.
    """
    check_reachable(node)
    deadline = time.monotonic() + timeout
    with hidden_node(cookie):
        info = rpc.call(node, "mpactors.introspect:node_info", timeout=CLI_TIMEOUT)
        os_pids = [info["os_pid"]] + [row["os_pid"] for row in introspect.node_rows(node, timeout=CLI_TIMEOUT)]
        primitives.monitor_node(node)
        rpc.call(node, "mpactors.introspect:halt", timeout=CLI_TIMEOUT)
        try:
            primitives.receive(lambda m: type(m) is NodeDown and m.node == node, timeout=timeout)
        except Timeout:
            raise NodeError(f"node {node} did not stop within {timeout} s") from None
    if is_local(node):
        _wait_gone(node, [p for p in os_pids if p], deadline)


def _wait_gone(node: str, os_pids: List[int], deadline: float) -> None:
    while (uses_port_mapper() and registered_locally(node)) or any(_alive(p) for p in os_pids):
        if time.monotonic() > deadline:
            left = [p for p in os_pids if _alive(p)]
            raise NodeError(f"node {node} is still running after the stop request (OS pids {left})")
        time.sleep(_POLL)


def _alive(os_pid: int) -> bool:
    try:
        return psutil.Process(os_pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def epmd_log() -> Path:
    """Where a port mapper started detached writes its log."""
    return config.log_dir() / "epmd.log"
