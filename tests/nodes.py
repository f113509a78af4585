"""Multi-node test harness: other nodes run in subprocesses, this process is one node.

* :func:`run_node` starts ``python -c <boot>`` as node ``name``: it runs the
  given setup ``code`` in the node's main process, registers that process as
  ``harness``, prints ``ready <name> <os pid>`` and then serves
  :meth:`NodeProc.call` requests. The context manager waits for the ready
  line (with a deadline), and kills (SIGKILL) and waits for the node in
  ``finally``, and then checks that the node's actor processes went with it.
* :func:`local_node` makes the pytest process a node (one at a time) with a
  name no other test uses.
* Fixtures: ``cookie`` (``MPACTORS_COOKIE`` for this process and its
  children, so ``~/.mpactors.cookie`` is never created) and ``cluster`` (a
  private port mapper plus the cookie). Import them into a test module to use
  them.

The ``tests`` directory is on the nodes' ``PYTHONPATH`` (``importable=True``),
so actor bodies defined at module level here (:func:`echo`, :func:`forward`...)
can be spawned on a remote node by reference. Pass ``importable=False`` to
prove that something travels by value (a lambda, a closure).
"""
from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import psutil
import pytest
from support import LONG_TIMEOUT, SHORT_TIMEOUT, pid_alive, wait_until

import mpactors
from mpactors._names import short_host as _short_host
from mpactors.testing import is_multiprocessing_helper

__all__ = [
    "TEST_COOKIE",
    "NodeProc",
    "cluster",
    "cookie",
    "count_in_order",
    "drain",
    "echo",
    "established_peers",
    "exit_on",
    "exit_with",
    "flood",
    "forward",
    "hold_mailbox",
    "local_node",
    "relay",
    "remote_ports",
    "run_node",
    "send_many",
    "short_host",
    "trap_and_forward",
    "unique_name",
    "wait_forever",
]

TESTS_DIR = Path(__file__).resolve().parent
ROOT = TESTS_DIR.parent
TEST_COOKIE = "mpactors-test-cookie"

_names = itertools.count(1)

# The node's program. Its stderr (INFO logging) and stdout go to files the
# harness reads; the ready line is the handshake with run_node.
_BOOT = r'''
import json, logging, os, sys, traceback
logging.basicConfig(
    level=logging.INFO, stream=sys.stderr,
    format="%(asctime)s %(levelname)s %(name)s: %(message)s",
)
import mpactors

_name, _opts, _setup = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
with mpactors.Node(_name, **_opts) as node:
    mpactors.register("harness")
    ns = {"__name__": "__node__", "mpactors": mpactors, "node": node, "inbox": []}
    exec(compile(_setup, "<node setup>", "exec"), ns)
    print("ready", node.name, os.getpid(), flush=True)
    while True:
        msg = mpactors.receive()
        if isinstance(msg, tuple) and len(msg) == 5 and msg[0] == "harness-call":
            _, reply_to, ref, src, names = msg
            ns.update(names)
            try:
                try:
                    code = compile(src, "<harness call>", "eval")
                except SyntaxError:
                    exec(compile(src, "<harness call>", "exec"), ns)
                    value = ns.get("result")
                else:
                    value = eval(code, ns)
                answer = ("harness-reply", ref, True, value)
            except BaseException:
                answer = ("harness-reply", ref, False, traceback.format_exc())
            try:
                mpactors.send(reply_to, answer)
            except mpactors.BadArg as exc:
                mpactors.send(reply_to, ("harness-reply", ref, False, f"unsendable result: {exc}"))
        elif msg == "harness-stop":
            break
        else:
            ns["inbox"].append(msg)
'''


def short_host() -> str:
    """The host part of a short node name on this machine."""
    return _short_host()


def unique_name(prefix: str = "n") -> str:
    """A node name (without ``@host``) that no other test of this run uses."""
    return f"{prefix}{os.getpid()}x{next(_names)}"


class NodeProc:
    """A node running in a subprocess (see :func:`run_node`)."""

    def __init__(self, proc: subprocess.Popen, name: str, out: Path, err: Path) -> None:
        self.proc = proc
        #: The node's full name, ``alive@host``.
        self.name = name
        self.alive_name = name.partition("@")[0]
        self.out_path = out
        self.err_path = err
        self.paused = False
        self._actors: List[psutil.Process] = []

    @property
    def os_pid(self) -> int:
        """The node's OS pid."""
        return self.proc.pid

    # -- output --------------------------------------------------------------
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def log_text(self) -> str:
        """What the node logged (stderr) so far."""
        return self.err_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = SHORT_TIMEOUT) -> "re.Match[str]":
        """Wait until the node's log matches the regular expression ``pattern``."""
        return wait_until(  # type: ignore[no-any-return]
            lambda: re.search(pattern, self.log_text()), timeout, what=f"{pattern!r} in the log of {self.name}"
        )

    # -- control over mpactors messages (this process must be a node) ---------
    def call(self, src: str, timeout: float = SHORT_TIMEOUT, **names: Any) -> Any:
        """Evaluate ``src`` in the node's main process and return the value.

        ``src`` is an expression, or statements that set ``result``; ``names``
        are set as variables first. The namespace persists between calls and
        holds ``mpactors``, ``node`` and ``inbox`` (other messages the node's
        main process received).
        """
        return self.result(self.start_call(src, **names), timeout)

    def start_call(self, src: str, **names: Any) -> Any:
        """Like :meth:`call`, without waiting: returns a ref for :meth:`result`."""
        ref = mpactors.make_ref()
        mpactors.send(("harness", self.name), ("harness-call", mpactors.self(), ref, src, names))
        return ref

    def result(self, ref: Any, timeout: float = SHORT_TIMEOUT) -> Any:
        """The value of the call started as ``ref`` (see :meth:`start_call`)."""
        msg = mpactors.receive(
            lambda m: isinstance(m, tuple) and len(m) == 4 and m[0] == "harness-reply" and m[1] == ref,
            timeout=timeout,
        )
        if not msg[2]:
            raise AssertionError(f"a call failed on {self.name}:\n{msg[3]}")
        return msg[3]

    # -- signals -----------------------------------------------------------------
    def actor_processes(self) -> List[psutil.Process]:
        """The node's live descendants in its own session: its actors.

        (A port mapper the node started runs in a session of its own; the
        node's multiprocessing fork server and resource tracker, under the
        forkserver and spawn start methods, are not actors.)
        """
        return [p for p in self._session_descendants() if not is_multiprocessing_helper(p, self.os_pid)]

    def _session_descendants(self) -> List[psutil.Process]:
        try:
            sid = os.getsid(self.os_pid)
            children = psutil.Process(self.os_pid).children(recursive=True)
        except (psutil.NoSuchProcess, ProcessLookupError):
            return []
        return [p for p in children if _sid(p.pid) == sid]

    def _remember_actors(self) -> None:
        # The multiprocessing helpers too: they must not outlive a killed node either.
        known = {p.pid for p in self._actors}
        self._actors += [p for p in self._session_descendants() if p.pid not in known]

    def kill(self) -> None:
        """SIGKILL the node and reap it (its actors must follow on their own)."""
        if self.proc.poll() is None:
            self._remember_actors()
            if self.paused:
                self.resume()
            self.proc.kill()
        self.proc.wait(LONG_TIMEOUT)
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP the node: it stays connected but goes silent."""
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True
        wait_until(lambda: _status(self.os_pid) == psutil.STATUS_STOPPED, what=f"{self.name} to stop")

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def actors_left(self) -> List[int]:
        """OS pids of remembered actors still alive (after :meth:`kill`)."""
        return [p.pid for p in self._actors if pid_alive(p.pid)]


def remote_ports(os_pid: int) -> List[int]:
    """Remote TCP ports of the established connections of process ``os_pid``."""
    proc = psutil.Process(os_pid)
    conns = getattr(proc, "net_connections", None) or proc.connections
    return [c.raddr.port for c in conns("tcp") if c.status == psutil.CONN_ESTABLISHED and c.raddr]


def established_peers(os_pid: int) -> "set[int]":
    """The set of :func:`remote_ports` of process ``os_pid``."""
    return set(remote_ports(os_pid))


def _sid(os_pid: int) -> Optional[int]:
    try:
        return os.getsid(os_pid)
    except ProcessLookupError:
        return None


def _status(os_pid: int) -> Optional[str]:
    try:
        return psutil.Process(os_pid).status()  # type: ignore[no-any-return]
    except psutil.NoSuchProcess:
        return None


@contextmanager
def run_node(
    name: Optional[str] = None,
    code: str = "",
    env: Optional[Dict[str, str]] = None,
    *,
    cookie: Optional[str] = None,
    hidden: bool = False,
    ticktime: Optional[float] = None,
    importable: bool = True,
    ready_timeout: float = LONG_TIMEOUT,
    python: Optional[str] = None,
) -> Iterator[NodeProc]:
    """Run node ``name`` (default: a fresh name) in a subprocess; yield a :class:`NodeProc`.

    Args:
        name: the node name (``'b'`` gives ``b@<short host>``).
        code: Python statements run in the node's main process before ready.
        env: extra environment variables (the rest is inherited, so the
            port mapper port and the cookie set by fixtures apply).
        cookie: passed as ``Node(cookie=...)``.
        hidden, ticktime: passed to ``Node``.
        importable: put this directory on the node's ``PYTHONPATH``.
        python: the node's interpreter (one with mpactors installed; default:
            this one, with this checkout on its ``PYTHONPATH``).
    """
    name = name or unique_name()
    opts: Dict[str, Any] = {"hidden": hidden}
    if cookie is not None:
        opts["cookie"] = cookie
    if ticktime is not None:
        opts["ticktime"] = ticktime
    full_env = dict(os.environ)
    full_env.update(env or {})
    path = [str(TESTS_DIR)] if importable else []
    full_env["PYTHONPATH"] = os.pathsep.join(path + ([] if python else [str(ROOT)]))
    full_env["PYTHONUNBUFFERED"] = "1"
    tmp = Path(tempfile.mkdtemp(prefix=f"mpactors-node-{name}-"))
    out, err = tmp / "stdout", tmp / "stderr"
    with open(out, "wb") as out_f, open(err, "wb") as err_f:
        proc = subprocess.Popen(
            [python or sys.executable, "-c", _BOOT, name, json.dumps(opts), code],
            stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f, env=full_env, cwd=str(tmp),
        )
    node: Optional[NodeProc] = None
    failed = True
    try:
        match = wait_until(
            lambda: proc.poll() is not None or re.search(r"^ready (\S+) (\d+)$", out.read_text(), re.MULTILINE),
            ready_timeout,
            what=f"node {name} to be ready",
        )
        if proc.poll() is not None and not isinstance(match, re.Match):
            raise AssertionError(f"node {name} exited with {proc.returncode} before ready:\n{err.read_text()}")
        assert isinstance(match, re.Match)
        node = NodeProc(proc, match[1], out, err)
        yield node
        failed = False
    finally:
        if node is not None:
            node.kill()
        else:
            proc.kill()
            proc.wait(LONG_TIMEOUT)
        left: List[int] = []
        if node is not None:
            # Actors die with their node (PR_SET_PDEATHSIG); allow them a moment.
            try:
                wait_until(lambda: not node.actors_left(), SHORT_TIMEOUT)  # type: ignore[union-attr]
            except AssertionError:
                pass
            left = node.actors_left()
            for os_pid in left:
                try:
                    os.kill(os_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if failed:
            print(f"----- log of node {name} -----\n{err.read_text(errors='replace')}")
        for f in (out, err):
            f.unlink()
        tmp.rmdir()
        if left and not failed:
            raise AssertionError(f"actors of node {name} outlived it: OS pids {left}")


@contextmanager
def local_node(prefix: str = "t", **kwargs: Any) -> Iterator[mpactors.Node]:
    """Make this process node ``<unique name>`` for the duration (``Node`` kwargs apply)."""
    with mpactors.Node(unique_name(prefix), **kwargs) as node:
        yield node


# -- fixtures ---------------------------------------------------------------------
@pytest.fixture
def cookie(monkeypatch: pytest.MonkeyPatch) -> str:
    """The cluster cookie, in ``MPACTORS_COOKIE`` (inherited by node subprocesses)."""
    monkeypatch.setenv("MPACTORS_COOKIE", TEST_COOKIE)
    return TEST_COOKIE


@pytest.fixture
def cluster(epmd: int, cookie: str) -> int:
    """A private port mapper on loopback and a test cookie; yields the port mapper's port."""
    return epmd


# -- actor bodies (importable by nodes started with importable=True) -------------
def echo() -> None:
    """Answer ``(sender, x)`` with ``('echo', self(), x)``; stop on ``'stop'``."""
    while True:
        msg = mpactors.receive()
        if msg == "stop":
            return
        sender, x = msg
        mpactors.send(sender, ("echo", mpactors.self(), x))


def forward(to: mpactors.Pid) -> None:
    """Send every message received to ``to``, tagged with this actor's pid."""
    while True:
        mpactors.send(to, ("forwarded", mpactors.self(), mpactors.receive()))


def wait_forever() -> None:
    """Block in ``receive`` until stopped from outside."""
    while True:
        mpactors.receive()


def exit_with(reason: Any) -> None:
    """End at once with ``reason``."""
    mpactors.exit(reason)


def exit_on(reason: Any) -> None:
    """End with ``reason`` when any message arrives."""
    mpactors.receive()
    mpactors.exit(reason)


def count_in_order(report_to: mpactors.Pid, n: int) -> None:
    """Receive ``n`` integers and report ``('counted', received, in_order)``."""
    expected, in_order = 0, True
    for _ in range(n):
        x = mpactors.receive()
        if x != expected:
            in_order = False
        expected = x + 1 if isinstance(x, int) else expected + 1
    mpactors.send(report_to, ("counted", n, in_order))


def relay() -> None:
    """On ``(targets, payload)``: send ``payload`` to each target pid, then
    ``('relayed', self(), targets)`` to the first one."""
    while True:
        targets, payload = mpactors.receive()
        for target in targets:
            mpactors.send(target, payload)
        mpactors.send(targets[0], ("relayed", mpactors.self(), targets))


def trap_and_forward(to: mpactors.Pid) -> None:
    """Trap exits and send every message (``ExitSignal`` included) to ``to``."""
    mpactors.trap_exit(True)
    mpactors.send(to, ("trapping", mpactors.self()))
    while True:
        mpactors.send(to, ("forwarded", mpactors.self(), mpactors.receive()))


def hold_mailbox() -> None:
    """Wait for a message that never comes, leaving everything else queued."""
    mpactors.receive("never sent")


def drain() -> None:
    """Receive and forget every message."""
    while True:
        mpactors.receive()


def flood(dest: Any, payload: Any) -> None:
    """Send ``payload`` to ``dest`` as fast as possible, forever."""
    while True:
        mpactors.send(dest, payload)


def send_many(to: mpactors.Pid, n: int) -> None:
    """Send ``0 .. n-1`` then ``'done'`` to ``to``."""
    for i in range(n):
        mpactors.send(to, i)
    mpactors.send(to, "done")


def link_then_send(to: mpactors.Pid, report_to: mpactors.Pid) -> None:
    """Trap exits, link to ``to``, then tell it to go; report the exit signal that comes back."""
    mpactors.trap_exit(True)
    mpactors.link(to)
    mpactors.send(to, "go")
    signal = mpactors.receive(mpactors.ExitSignal, timeout=10)
    mpactors.send(report_to, ("linked exit", signal.reason))


def exit_on_go(reason: Any) -> None:
    """Wait for "go", then exit with ``reason`` at once."""
    mpactors.receive("go")
    mpactors.exit(reason)
