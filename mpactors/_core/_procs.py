"""Parent side of actor processes: start methods, sentinels, reaping, killing.

The kernel thread is the only caller. ``fork`` (the default on Linux) is a
bare ``os.fork`` with a sentinel pipe, as ``multiprocessing.popen_fork`` does,
minus the bookkeeping that makes ``multiprocessing.Process.start`` cost O(number
of children) per start. ``spawn`` and ``forkserver`` go through a
``multiprocessing`` context, which passes the child its file descriptors.

Whatever the method, a child runs ``_worker.bootstrap(boot)`` and nothing else.
"""
from __future__ import annotations

import fcntl
import gc
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
from typing import Any, Callable, Optional, Tuple

__all__ = ["START_METHODS", "default_start_method", "ActorProcess", "start", "to_high", "raise_fd_limit"]

START_METHODS = ("fork", "forkserver", "spawn")


def default_start_method() -> str:
    """``fork`` where the OS has it (fastest start, copy-on-write memory), else ``spawn``."""
    return "fork" if hasattr(os, "fork") and sys.platform != "darwin" else "spawn"


class ActorProcess:
    """A started actor process: its OS pid, its sentinel fd, and how to end it."""

    __slots__ = ("os_pid", "sentinel", "_mp", "exitcode", "shared_sentinel")

    def __init__(self, os_pid: int, sentinel: int, mp_process: Any = None, shared_sentinel: bool = False) -> None:
        self.os_pid = os_pid
        self.sentinel = sentinel  # readable (EOF) once the process is gone
        self._mp = mp_process
        self.exitcode: Optional[int] = None
        #: The sentinel is the caller's own descriptor (the actor's control
        #: socket, see :func:`start`): the caller closes it, not :meth:`reap`.
        self.shared_sentinel = shared_sentinel

    def reap(self) -> int:
        """Collect the exit status once the sentinel fired (negative: killed by signal)."""
        if self.exitcode is not None:
            return self.exitcode
        if self._mp is not None:
            self._mp.join()
            code = self._mp.exitcode
            self._mp.close()
        elif self.shared_sentinel:
            code = os.waitstatus_to_exitcode(_wait_or_kill(self.os_pid))
        else:
            _, status = os.waitpid(self.os_pid, 0)
            code = os.waitstatus_to_exitcode(status)
            os.close(self.sentinel)
        self.exitcode = code
        return code

    def signal(self, sig: int) -> None:
        """Send ``sig`` unless the process was already reaped."""
        if self.exitcode is None:
            try:
                os.kill(self.os_pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL: cannot be caught or ignored."""
        self.signal(signal.SIGKILL)


#: The most descriptors a node asks for: Linux's default ``fs.nr_open``. A hard
#: limit of "unlimited" (or a billion, as some container runtimes set) would
#: otherwise make every new child's close of the node's descriptors scan it.
FD_LIMIT_CAP = 1 << 20


#: How long a process whose control socket closed gets to finish exiting.
_EXIT_GRACE = 2.0


def _wait_or_kill(os_pid: int) -> int:
    """The wait status of a process that closed its end of the shared sentinel.

    It is exiting (a process closes its descriptors just before it becomes
    reapable), so this returns at once; one that closed its control socket
    and went on running (it can no longer talk to its node) gets SIGKILL
    after :data:`_EXIT_GRACE` seconds, so the kernel thread waits that long
    at most.
    """
    import time

    deadline = time.monotonic() + _EXIT_GRACE
    delay = 0.0001
    while True:
        pid, status = os.waitpid(os_pid, os.WNOHANG)
        if pid:
            return status
        if time.monotonic() > deadline:
            try:
                os.kill(os_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return os.waitpid(os_pid, 0)[1]
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


def raise_fd_limit(cap: int = FD_LIMIT_CAP) -> Tuple[int, int]:
    """Raise the soft descriptor limit to the hard limit (at most ``cap``); ``(old, new)`` soft limits.

    Every actor costs its node two descriptors (its mailbox's write end and
    its control socket; a third, the sentinel, with ``spawn`` and
    ``forkserver``), so the common soft limit of 1,024 would cap a node near
    500 actors. Never lowers a limit; on failure the limit
    stays as it was.
    """
    import resource

    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ValueError, OSError):  # pragma: no cover
        return (0, 0)
    want = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            return (soft, want)
        except (ValueError, OSError):  # pragma: no cover
            pass
    return (soft, soft)


def to_high(fd: int, base: int) -> int:
    """Move ``fd`` to the lowest free number >= ``base`` (close-on-exec); ``fd`` if none is free.

    The node keeps each actor's control socket and sentinel up there, so a
    new child closes all of them with one ``close_range``.
    """
    if not base:
        return fd
    try:
        new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, base)
    except OSError:
        return fd
    os.close(fd)
    return new


def start(method: str, target: Callable[[Any], None], boot: Any, high: int = 0,
          sentinel: Optional[int] = None) -> ActorProcess:
    """Start ``target(boot)`` in a new process with ``method`` (``high``: see :func:`to_high`).

    With ``fork``, ``sentinel`` may be a descriptor of the caller's that
    reaches end of file once the child is gone (the node's end of the actor's
    control socket, whose other end only the child holds): then no sentinel
    pipe is made, and the node keeps one descriptor less per actor.
    """
    if method == "fork":
        return _fork(target, boot, high, sentinel)
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        # Children fork from the server with mpactors already imported, instead
        # of importing it (and dill, psutil) one by one: ~10x faster spawns.
        ctx.set_forkserver_preload(["mpactors._core._worker"])
    proc = ctx.Process(target=target, args=(boot,), daemon=False)  # type: ignore[attr-defined]
    proc.start()
    return ActorProcess(proc.pid, proc.sentinel, proc)  # type: ignore[arg-type]


def _flush_std_streams() -> None:
    """Flush the parent's stdout/stderr before a fork, as multiprocessing does.

    Output still buffered at the fork would be copied into the child and
    written a second time when the child flushes its streams at exit (a line
    the node printed to a pipe showed up once per actor started after it).
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream must not stop a spawn
            pass


def _fork(target: Callable[[Any], None], boot: Any, high: int, sentinel: Optional[int]) -> ActorProcess:
    if sentinel is not None:
        r = w = -1
    else:
        r, w = os.pipe()
        os.set_inheritable(r, False)
    # Objects that exist now are frozen in the child: its garbage collector
    # never walks them, so it does not copy-on-write the pages they live on
    # (the gc.freeze() recipe); the parent unfreezes at once.
    _flush_std_streams()
    gc.freeze()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            if r >= 0:
                os.close(r)
            # The write end (or the child's end of the control socket) stays
            # open, unknown to everyone else, until this process ends: that is
            # the parent's sentinel.
            multiprocessing.util._run_after_forkers()  # type: ignore[attr-defined] # user's mp queues/locks
            target(boot)
            code = 0
        finally:
            os._exit(code)
    gc.unfreeze()
    if sentinel is not None:
        return ActorProcess(pid, sentinel, shared_sentinel=True)
    os.close(w)
    return ActorProcess(pid, to_high(r, high))
