"""A pytest plugin for testing actor code: nodes, clusters, kills, partitions.

Opt-in (it is not registered as an entry point, so it never loads into a
pytest run that did not ask for it)::

    pytest -p mpactors.testing            # or, in a conftest.py:
    pytest_plugins = ["mpactors.testing"]

Fixtures:

* ``mpactors_node`` - the test process as a started node, stopped after the
  test even when it fails. Local-only (``nonode@nohost``), unless the test also
  uses ``mpactors_cluster``: then it is a named member of that cluster.
* ``mpactors_cluster`` - a factory, ``mpactors_cluster(n, **node_options)``
  returning ``n`` :class:`RemoteNode` objects: nodes in subprocesses on
  loopback, sharing a cookie and a port mapper private to the test, with a
  short ``ticktime`` (2 s) so lost nodes show quickly.

:func:`partition` and :func:`heal` cut and restore the traffic between two
nodes, silently and both ways, as a network would.

After every test that used the fixtures, an actor still alive on one of its
nodes fails the test, listed by pid, OS pid and function; then every process
the fixtures started (nodes, their actors, the port mapper) is stopped, and
proven gone. Processes that are not the test's children are found too, and
fail the test named by their command line (then are stopped): a port mapper
a node started detached, by ``MPACTORS_TEST_TAG`` (a value private to the
test, which every process it starts inherits); a node started with ``mpactors
start --detached``, by the log it keeps open in the cluster's private
``MPACTORS_HOME``. If a test times out (``pytest-timeout``), every node and
actor it started first writes the Python stacks of all its threads (``faulthandler``,
see ``MPACTORS_STACK_DUMP_SIGNAL``): an actor's lands in the test's captured
stderr, a cluster node's in the report's "mpactors node logs" section.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import random
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Generator, Iterator, List, Optional, Union

import psutil
import pytest

from . import config, epmd, introspect
from .dist import _faults
from .node import Node

__all__ = [
    "TAG_VARIABLE",
    "RemoteNode",
    "dump_stacks",
    "heal",
    "is_multiprocessing_helper",
    "mpactors_cluster",
    "mpactors_node",
    "partition",
    "processes_using",
    "processes_with_env",
]

log = logging.getLogger(__name__)

#: The environment variable that marks every process a test starts (see :func:`processes_with_env`).
TAG_VARIABLE = "MPACTORS_TEST_TAG"
#: Default ticktime of cluster nodes (seconds).
CLUSTER_TICKTIME = 2.0
#: Signal that makes nodes and actors dump their stacks (see :mod:`mpactors._core._stackdump`).
DUMP_SIGNAL = "USR1"
_SCALE = float(os.environ.get("MPACTORS_TEST_TIMEOUT_SCALE", "1"))
#: How long a node subprocess may take to start and to stop.
START_TIMEOUT = 30.0 * _SCALE
STOP_TIMEOUT = (config.STOP_TIMEOUT + config.KILL_TIMEOUT + config.STOP_GRACE) * _SCALE
#: How long the actors of a killed node, or of a test that just ended, have to go.
GONE_TIMEOUT = 5.0 * _SCALE

_names = itertools.count(1)

# The program of a cluster node. It serves one-line JSON commands from the
# test process on stdin and answers on stdout; end of file on stdin (the
# test process died) stops the node, so a node never outlives its test run.
_BOOT = r"""
import json, logging, os, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
import mpactors
from mpactors import introspect
from mpactors.dist import _faults

def _answer(value):
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()

with mpactors.Node(sys.argv[1], **json.loads(sys.argv[2])) as node:
    _answer(["ready", node.name, os.getpid()])
    for line in sys.stdin:
        op, *args = json.loads(line)
        if op == "stop":
            break
        try:
            if op == "block":
                _faults.block(args[0])
                _answer(["ok", None])
            elif op == "unblock":
                _faults.unblock(args[0])
                _answer(["ok", None])
            elif op == "actors":
                _answer(["ok", [[str(r["pid"]), r["os_pid"], r["current"]] for r in introspect.rows()
                                if r["pid"] != mpactors.self()]])
            else:
                _answer(["error", "unknown command %r" % op])
        except Exception as exc:
            _answer(["error", repr(exc)])
"""


def _free_port() -> int:
    """A free TCP port below the ephemeral range (nothing else will be handed it)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port between 20000 and 32000")


def _wait(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def _alive(procs: List[psutil.Process]) -> List[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _describe(p: psutil.Process) -> str:
    try:
        return f"{p.pid} {' '.join(p.cmdline()) or p.name()}"
    except psutil.Error:
        return f"{p.pid} (gone)"


def _reap(procs: List[psutil.Process], timeout: float) -> List[str]:
    """Wait for ``procs`` to end; SIGKILL and describe those that did not."""
    try:
        _wait(lambda: not _alive(procs), timeout, "processes to end")
        return []
    except TimeoutError:
        pass
    survivors = _alive(procs)
    described = [_describe(p) for p in survivors]
    for p in survivors:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(survivors, timeout=5)
    return described


def processes_with_env(variable: str, value: str) -> List[psutil.Process]:
    """Live processes (but this one) whose environment holds ``variable=value``.

    A process inherits its environment whoever its parent is: a port mapper
    that a node started detached (its parent is init once that node is
    gone), or a node started by ``mpactors start --detached``, still carries
    the value the test set, where a walk of the test process's children no
    longer finds it. Processes whose environment cannot be read (another
    user's) are skipped, so only processes started under ``value`` are found.
    """
    return _live_processes(lambda p: p.environ().get(variable) == value)


def processes_using(directory: Union[str, "os.PathLike[str]"]) -> List[psutil.Process]:
    """Live processes (but this one) with a file open under ``directory``.

    For a directory private to a test (its ``MPACTORS_HOME``): a port mapper
    or a detached node started under it keeps its log there open. This finds
    them when their environment cannot tell (a process title set without
    ``SPT_NOENV`` writes over it).
    """
    root = os.path.join(os.path.realpath(directory), "")
    return _live_processes(lambda p: any(f.path.startswith(root) for f in p.open_files()))


def _live_processes(test: Callable[[psutil.Process], bool]) -> List[psutil.Process]:
    """Live, non-zombie processes (but this one) for which ``test`` holds; unreadable ones skipped."""
    found = []
    me = os.getpid()
    for p in psutil.process_iter():
        if p.pid == me:
            continue
        try:
            if test(p) and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.Error:  # gone, or not ours to read
            pass
    return found


def _new_tag() -> str:
    """A value for :data:`TAG_VARIABLE` no other test (of any run on this host) has."""
    return f"{os.getpid()}-{next(_names)}-{secrets.token_hex(4)}"


class RemoteNode:
    """A cluster node running in a subprocess (made by ``mpactors_cluster``).

    Attributes:
        name: the node's full name, ``alive@host``.
        os_pid: the OS pid of the node's process.
        log_path: the file the node's stderr (its log) goes to.
    """

    def __init__(self, proc: subprocess.Popen, name: str, log_path: Path) -> None:
        self.proc = proc
        self.name = name
        self.os_pid = proc.pid
        self.log_path = log_path
        self._lock = threading.Lock()
        self._seen: Dict[int, psutil.Process] = {}

    def __repr__(self) -> str:
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        return f"<RemoteNode {self.name} os_pid={self.os_pid} {state}>"

    # -- the command channel -------------------------------------------------
    def _command(self, *cmd: Any, timeout: float = START_TIMEOUT) -> Any:
        with self._lock:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.name} is not running (exit status {self.proc.returncode})")
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
            status, value = _read_line(self.proc, timeout, f"node {self.name} to answer {cmd[0]!r}")
        if status != "ok":
            raise RuntimeError(f"node {self.name} failed {cmd[0]!r}: {value}")
        return value

    def log_text(self) -> str:
        """What the node logged so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def actors(self) -> List[List[Any]]:
        """``[pid, os_pid, function]`` of every actor running on the node."""
        return self._command("actors")  # type: ignore[no-any-return]

    # -- the process tree ----------------------------------------------------
    def processes(self) -> List[psutil.Process]:
        """The node's process and its live descendants (actors, start-method helpers)."""
        try:
            root = psutil.Process(self.os_pid)
            tree = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        for p in tree:
            self._seen.setdefault(p.pid, p)
        return _alive(tree)

    def _signal_tree(self, sig: int) -> None:
        procs = self.processes()
        if sig == signal.SIGCONT:
            procs.reverse()  # children first, so none runs ahead of its node
        for p in procs:
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass

    # -- faults --------------------------------------------------------------
    def kill(self) -> None:
        """SIGKILL the node's process (its actors go with it, as with a crashed node)."""
        self.processes()  # remember the actors, to prove at teardown they went too
        try:
            os.kill(self.os_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(STOP_TIMEOUT)

    def pause(self, timeout: float = 5.0) -> None:
        """SIGSTOP the node and its actors: a frozen host, silent but not gone.

        Returns once every one of them is stopped (a signal is delivered
        asynchronously: a process running on another CPU stops a moment later).

        Raises:
            TimeoutError: some process was still not stopped after ``timeout`` s.
        """
        self._signal_tree(signal.SIGSTOP)
        deadline = time.monotonic() + timeout
        while not all(_stopped(p) for p in self.processes()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: not every process stopped within {timeout} s of SIGSTOP")
            time.sleep(0.005)

    def resume(self) -> None:
        """SIGCONT what :meth:`pause` stopped."""
        self._signal_tree(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the node in order (``Node.stop()``: actors asked to exit, then killed)."""
        self.processes()
        if self.proc.poll() is None:
            self._signal_tree(signal.SIGCONT)  # a paused node cannot stop
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps(["stop"]) + "\n")
                self.proc.stdin.close()
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.error("node %s did not stop within %g s: killed", self.name, STOP_TIMEOUT)
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()

    def seen_processes(self) -> List[psutil.Process]:
        """Every process of this node's tree observed so far (to prove they are gone)."""
        self.processes()
        return list(self._seen.values())


def _read_line(proc: subprocess.Popen, timeout: float, what: str) -> Any:
    """One JSON line from ``proc``'s stdout, with a deadline."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{what}: the node exited (status {proc.wait(STOP_TIMEOUT)})")
    return json.loads(line)


NodeLike = Union[RemoteNode, Node, str]


class _Cluster:
    """The per-test state behind the fixtures: cookie, port mapper, nodes."""

    current: Optional["_Cluster"] = None

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cookie = secrets.token_hex(16)
        self.port = _free_port()
        self.home = tmp / "mpactors-home"
        self.epmd: Optional[subprocess.Popen] = None
        self.nodes: List[RemoteNode] = []
        self.local: Optional[Node] = None
        self.tag = f"t{os.getpid()}x{next(_names)}"
        #: Every process started with :meth:`env` carries it (TAG_VARIABLE).
        self.env_tag = _new_tag()

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(
            MPACTORS_EPMD_PORT=str(self.port),
            MPACTORS_COOKIE=self.cookie,
            MPACTORS_HOME=str(self.home),
            MPACTORS_STACK_DUMP_SIGNAL=DUMP_SIGNAL,
            MPACTORS_TEST_TAG=self.env_tag,
            # The test's modules (and what it imports) are importable on the
            # nodes, so actors can be spawned there by reference.
            PYTHONPATH=os.pathsep.join(p for p in sys.path if p and os.path.isdir(p)),
        )
        return env

    def start_epmd(self) -> None:
        if self.epmd is not None:
            return
        self.epmd = subprocess.Popen(
            [sys.executable, "-m", "mpactors.epmd", "--port", str(self.port), "--host", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.env(),
        )
        _wait(lambda: epmd.is_running(port=self.port, timeout=0.5), START_TIMEOUT, "the port mapper")

    def start_nodes(self, n: int, options: Dict[str, Any]) -> List[RemoteNode]:
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"mpactors_cluster(n): n must be a positive int, not {n!r}")
        if "cookie" in options:
            raise ValueError("mpactors_cluster: the cluster's cookie is the test's own; do not pass cookie=")
        opts = {"ticktime": CLUSTER_TICKTIME, **options}
        try:
            json.dumps(opts)
        except TypeError as exc:
            raise ValueError(f"mpactors_cluster: node options must be plain values: {exc}") from None
        self.start_epmd()
        self.home.mkdir(parents=True, exist_ok=True)
        started = []
        for _ in range(n):
            alive = f"{self.tag}n{len(self.nodes) + 1}"
            log_path = self.tmp / f"{alive}.log"
            with open(log_path, "wb") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-c", _BOOT, alive, json.dumps(opts)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                    env=self.env(), text=True, start_new_session=True,
                )
            node = RemoteNode(proc, alive, log_path)
            self.nodes.append(node)
            started.append(node)
        for node in started:
            try:
                _, node.name, _ = _read_line(node.proc, START_TIMEOUT, f"node {node.name} to start")
            except (TimeoutError, RuntimeError) as exc:
                raise RuntimeError(f"{exc}; its log:\n{node.log_text()}") from None
        return started

    def find(self, node: NodeLike) -> Union[RemoteNode, Node]:
        if isinstance(node, (RemoteNode, Node)):
            return node
        for candidate in [*self.nodes, self.local]:
            if candidate is not None and candidate.name == node:
                return candidate
        raise ValueError(f"{node!r} is not a node of this test's cluster")

    # -- teardown ------------------------------------------------------------
    def leaked_actors(self) -> List[str]:
        leaks = []
        for node in self.nodes:
            if node.proc.poll() is None:
                node.resume()  # a node the test left paused cannot answer
                for pid, os_pid, fn in _settled(node.actors):
                    leaks.append(f"{pid} (OS pid {os_pid}, {fn}) on {node.name}")
        return leaks

    def own_pids(self) -> set:
        """OS pids of the port mapper, the nodes and their actors."""
        pids = {p.pid for node in self.nodes for p in node.seen_processes()}
        if self.epmd is not None:
            pids.add(self.epmd.pid)
        return pids

    def close(self) -> List[str]:
        """Stop every process; return descriptions of any that had to be killed."""
        seen: List[psutil.Process] = []
        for node in self.nodes:
            seen += node.seen_processes()
            node.stop()
        survivors = _reap(seen, GONE_TIMEOUT)
        if self.epmd is not None:
            self.epmd.kill()
            self.epmd.wait(STOP_TIMEOUT)
        return survivors + _reap_tagged(self.env_tag, self.home)

    def logs(self) -> str:
        return "\n".join(f"--- {n.name} ({n.log_path})\n{n.log_text()}" for n in self.nodes)


def _reap_tagged(tag: str, home: Optional[Path] = None) -> List[str]:
    """Kill what still runs with ``TAG_VARIABLE=tag``, or a file open in ``home``; describe it.

    That is a port mapper or a node started detached, whose parent is init.
    """
    found = {p.pid: p for p in processes_with_env(TAG_VARIABLE, tag)}
    if home is not None and home.exists():
        found.update((p.pid, p) for p in processes_using(home))
    leftovers = [p for p in found.values() if not is_multiprocessing_helper(p)]
    return [f"{d} (not a child of the test: started detached)" for d in _reap(leftovers, 1.0 * _SCALE)]


def _settled(list_actors: Callable[[], List[List[Any]]]) -> List[List[Any]]:
    """The actors still alive once those that are ending have had a moment to end."""
    deadline = time.monotonic() + GONE_TIMEOUT / 2
    while True:
        actors = list_actors()
        if not actors or time.monotonic() > deadline:
            return actors
        time.sleep(0.05)


def _local_actors() -> List[List[Any]]:
    from . import primitives

    me = primitives.self()
    return [[str(r["pid"]), r["os_pid"], r["current"]] for r in introspect.rows() if r["pid"] != me]


_HELPER_MAINS = ("from multiprocessing.resource_tracker import main", "from multiprocessing.forkserver import main")


def is_multiprocessing_helper(p: psutil.Process, parent: Optional[int] = None) -> bool:
    """True for the multiprocessing fork server or resource tracker of ``parent`` (default: this process).

    multiprocessing starts them on first use and keeps them as long as the
    process lives; they are not a test's leftovers (nor a node's actors), and
    killing or reaping one breaks every later start of an actor by forkserver
    or spawn.
    """
    try:
        return p.ppid() == (os.getpid() if parent is None else parent) and any(
            m in " ".join(p.cmdline()) for m in _HELPER_MAINS)
    except psutil.Error:
        return False


def _start_multiprocessing_helpers(start_method: str) -> None:
    """Start multiprocessing's fork server and resource tracker now, if the node will use them.

    They serve the whole pytest run (multiprocessing starts them on first use
    and keeps them): started before the test's snapshot of its processes,
    they are not mistaken for processes the test left behind.
    """
    if start_method in ("forkserver", "spawn"):
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    if start_method == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


# -- fixtures -------------------------------------------------------------------
@pytest.fixture
def _mpactors_cluster_state(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[_Cluster]:
    state = _Cluster(tmp_path)
    _Cluster.current = state
    request.node._mpactors_state = state
    failures: List[str] = []
    try:
        yield state
        try:
            failures += [f"actor left running: {a}" for a in state.leaked_actors()]
        except (RuntimeError, TimeoutError) as exc:  # a node the test broke cannot answer
            log.warning("could not list the actors of the cluster: %s", exc)
    finally:
        _Cluster.current = None
        failures += [f"process outlived the test (killed): {p}" for p in state.close()]
    if failures:
        pytest.fail("mpactors: the test left processes behind:\n  " + "\n  ".join(failures), pytrace=False)


@pytest.fixture
def mpactors_cluster(_mpactors_cluster_state: _Cluster) -> Callable[..., List[RemoteNode]]:
    """``mpactors_cluster(n, **node_options) -> list[RemoteNode]``: start ``n`` nodes."""

    def start(n: int, **node_options: Any) -> List[RemoteNode]:
        return _mpactors_cluster_state.start_nodes(n, node_options)

    return start


@pytest.fixture
def mpactors_node(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Node]:
    """The test process as a started node; a member of the test's cluster if it has one."""
    state: Optional[_Cluster] = None
    if "mpactors_cluster" in request.fixturenames:
        state = request.getfixturevalue("_mpactors_cluster_state")
    monkeypatch.setenv("MPACTORS_STACK_DUMP_SIGNAL", DUMP_SIGNAL)
    if state is None:
        node = Node()
    else:
        state.start_epmd()
        for key, value in state.env().items():
            if key.startswith("MPACTORS_"):
                monkeypatch.setenv(key, value)
        node = Node(f"{state.tag}main", cookie=state.cookie, ticktime=CLUSTER_TICKTIME)
    _start_multiprocessing_helpers(node.start_method)
    tag = state.env_tag if state is not None else _new_tag()
    if state is None:  # set after the helpers start: they outlive the test by design
        monkeypatch.setenv(TAG_VARIABLE, tag)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    node.start()
    if state is not None:
        state.local = node
    failures: List[str] = []
    try:
        yield node
        if node.alive:
            failures += [f"actor left running: {pid} (OS pid {os_pid}, {fn})" for pid, os_pid, fn in _settled(_local_actors)]
    finally:
        node.stop()
        for name in list(_faults.blocked()):
            _faults.unblock(name)
        if state is not None:
            state.local = None
        if state is not None:  # the cluster's processes are the cluster fixture's to stop
            before |= state.own_pids()
        started = [p for p in psutil.Process().children(recursive=True)
                   if p.pid not in before and not is_multiprocessing_helper(p)]
        failures += [f"process outlived the test (killed): {p}" for p in _reap(started, GONE_TIMEOUT)]
        if state is None:  # else the cluster fixture, stopping its nodes first, looks for them
            failures += [f"process outlived the test (killed): {p}" for p in _reap_tagged(tag)]
    if failures:
        pytest.fail("mpactors: the test left processes behind:\n  " + "\n  ".join(failures), pytrace=False)


# -- faults -------------------------------------------------------------------------
def _set_block(a: NodeLike, b: NodeLike, on: bool) -> None:
    state = _Cluster.current
    if state is None:
        raise RuntimeError("partition()/heal() need the mpactors_cluster fixture in the test")
    first, second = state.find(a), state.find(b)
    if first.name == second.name:
        raise ValueError(f"cannot partition {first.name} from itself")
    for node, other in ((first, second.name), (second, first.name)):
        if isinstance(node, RemoteNode):
            node._command("block" if on else "unblock", other)
        elif on:
            _faults.block(other)
        else:
            _faults.unblock(other)


def partition(a: NodeLike, b: NodeLike) -> None:
    """Cut all traffic between nodes ``a`` and ``b``, silently and in both directions.

    As a network would: nothing sent either way arrives, no connection between
    them can be made (also not when a third node introduces them), and each
    declares the other down after its ticktime. ``a`` and ``b`` are
    :class:`RemoteNode` objects, the ``mpactors_node``, or node names.
    """
    _set_block(a, b, True)


def heal(a: NodeLike, b: NodeLike) -> None:
    """Undo :func:`partition`: ``a`` and ``b`` reconnect on their next message (or ``ping``)."""
    _set_block(a, b, False)


# -- hang diagnosis ------------------------------------------------------------------
def _dumpable(procs: List[psutil.Process]) -> List[psutil.Process]:
    """The nodes and actors among ``procs`` (only they have a stack-dump handler)."""
    out = []
    for p in _alive(procs):
        try:
            title = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if title.startswith(("mpactors node ", "mpactors actor ")) and p.pid != os.getpid():
            out.append(p)
    return out


def dump_stacks(wait: float = 0.0) -> int:
    """Make every node and actor started by this test process write its stacks to its stderr.

    Returns the number of processes signalled. Actors of the ``mpactors_node``
    write into the test's captured stderr; cluster nodes and their actors into
    the node logs shown in the report. With ``wait`` > 0 they are signalled one
    at a time, each once the one before has taken the signal and its stderr
    stopped growing (within ``wait`` seconds in all), so dumps written to one
    stderr do not interleave; a loaded machine may run a signalled process late.
    """
    procs: List[psutil.Process] = psutil.Process().children(recursive=True)
    state = _Cluster.current
    if state is not None:
        for node in state.nodes:
            procs += node.processes()
    targets = _dumpable(procs)
    signum = getattr(signal, "SIG" + DUMP_SIGNAL)
    deadline = time.monotonic() + wait
    for p in targets:
        try:
            p.send_signal(signum)
        except psutil.Error:
            continue
        left = deadline - time.monotonic()
        if left > 0:
            # One at a time: processes that share a stderr (an actor and its
            # node, a fork server's children) would interleave their dumps.
            _wait_for_dumps([p.pid], signum, left)
    return len(targets)


def _signal_pending(pid: int, signum: int) -> bool:
    """True while ``signum`` sent to ``pid`` is not yet delivered (``/proc/PID/status``)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("ShdPnd:", "SigPnd:")) and (int(line.split()[1], 16) >> (signum - 1)) & 1:
                    return True
    except (OSError, ValueError):
        pass  # gone, or not Linux: nothing to wait for
    return False


def _stderr_size(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}/fd/2").st_size
    except OSError:
        return -1


def _wait_for_dumps(pids: List[int], signum: int, timeout: float) -> None:
    """Until every process took ``signum`` and the files on their stderr stopped growing.

    faulthandler writes the whole dump from its C signal handler, which runs
    as soon as the signal is delivered; the size check covers a handler that
    is preempted halfway through its writes.
    """
    deadline = time.monotonic() + timeout
    last: Dict[int, int] = {}
    while time.monotonic() < deadline:
        sizes = {pid: _stderr_size(pid) for pid in pids}
        if sizes == last and not any(_signal_pending(pid, signum) for pid in pids):
            return
        last = sizes
        time.sleep(0.1)


def pytest_configure(config: Any) -> None:
    """Nodes and actors started in this run can dump their stacks on SIGUSR1."""
    os.environ.setdefault("MPACTORS_STACK_DUMP_SIGNAL", DUMP_SIGNAL)


def pytest_sessionstart(session: Any) -> None:
    """With ``MPACTORS_START_METHOD`` forkserver or spawn, start multiprocessing's helpers now.

    They live as long as the pytest process; started by the first test that
    needs them, they would look like processes that test left behind.
    """
    method = config.start_method()
    if method:
        _start_multiprocessing_helpers(method)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_timeout_set_timer(item: Any, settings: Any) -> None:
    """Shortly before pytest-timeout fires, dump the stacks of the test's processes."""
    timeout = getattr(settings, "timeout", 0) or 0
    if timeout <= 0:
        return
    lead = min(5.0, timeout * 0.2)

    def fire() -> None:
        # Waits for the dumps to be written, within most of the lead.
        count = dump_stacks(wait=lead * 0.8)
        sys.stderr.write(f"\nmpactors.testing: test about to time out: dumped the stacks of {count} node/actor processes\n")

    timer = threading.Timer(timeout - lead, fire)
    timer.daemon = True
    timer.name = f"mpactors.testing stack dump {item.nodeid}"
    timer.start()
    item._mpactors_dump_timer = timer


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_timeout_cancel_timer(item: Any) -> None:
    timer = getattr(item, "_mpactors_dump_timer", None)
    if timer is not None:
        timer.cancel()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Generator[None, Any, None]:
    """A failed test's report carries the logs of its cluster nodes."""
    outcome: Any = yield
    report = outcome.get_result()
    state = getattr(item, "_mpactors_state", None)
    if state is not None and report.failed and state.nodes:
        report.sections.append(("mpactors node logs", state.logs()))


def _stopped(p: psutil.Process) -> bool:
    """True when ``p`` is stopped by a signal, or gone."""
    try:
        return p.status() in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return True
