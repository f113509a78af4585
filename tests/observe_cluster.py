"""A small cluster to observe, shared by tests/test_observe*.py and scripts/screenshot-observer.

Node ``a`` runs a supervision tree (``shop_sup``: a registered ``Counter``
GenServer ``counter`` and a nested supervisor ``workers_sup`` with two
``chatter`` workers that message each other all the time) and an actor
blocked in :func:`blocked_in_observe_test`; node ``b`` runs one too, plus a
registered ``echo``. The bodies live here so the nodes (``tests`` is on their
``PYTHONPATH``) spawn them by reference.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import mpactors
from mpactors import ChildSpec, GenServer, Supervisor

from nodes import NodeProc, run_node
from support import LONG_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent

__all__ = [
    "BadRepr", "Big", "Counter", "blocked_in_observe_test", "chatter", "cli_env", "observed_cluster", "observer", "pids_of",
    "spinning_in_observe_test",
    "SETUP_A", "SETUP_B",
]


def blocked_in_observe_test() -> None:
    """Wait in ``receive`` forever (its stack names this function); ends on ``'stop'``."""
    while mpactors.receive() != "stop":
        pass


def spinning_in_observe_test(seconds: float = 120.0) -> None:
    """Spin in pure Python (no call that releases the GIL) for ``seconds``."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1


class Counter(GenServer):
    """A GenServer with a known state: ``count`` and a large ``history``."""

    def init(self, start: int = 0) -> None:
        self.count = start
        self.history = list(range(1000))
        self.label = "x" * 5000

    def handle_call(self, request: Any, frm: Any) -> Any:
        self.count += 1
        return self.count


class BadRepr:
    """A value whose ``repr`` raises."""

    def __repr__(self) -> str:
        raise ValueError("no repr for you")


class Big(GenServer):
    """A GenServer whose state is far larger than ``introspect.STATE_LIMIT`` and holds a :class:`BadRepr`."""

    def init(self) -> None:
        self.bad = BadRepr()
        self.blobs = {i: "y" * 1000 for i in range(100)}


def chatter(me: str, partner: str) -> None:
    """Registered as ``me``: send ``partner`` a message every 10 ms and take what arrives."""
    mpactors.register(me)
    while True:
        try:
            mpactors.send(partner, ("hello", mpactors.self()))
        except mpactors.BadArg:
            pass  # the partner is not registered (yet, or while it restarts)
        try:
            while True:
                mpactors.receive(timeout=0.01)
        except mpactors.Timeout:
            pass


def _tree() -> list:
    workers = [ChildSpec("chatter1", chatter, args=("chatter1", "chatter2")),
               ChildSpec("chatter2", chatter, args=("chatter2", "chatter1"))]
    return [
        ChildSpec("counter", Counter, kwargs={"name": "counter"}),
        ChildSpec("workers_sup", Supervisor, args=(workers,), type="supervisor"),
    ]


def start_tree() -> mpactors.Pid:
    """Start ``shop_sup`` (registered) on the calling node."""
    return Supervisor.start(_tree(), name="shop_sup")


SETUP_A = """
import observe_cluster as oc
sup = oc.start_tree()
blocked = mpactors.spawn(oc.blocked_in_observe_test)
mpactors.register("blocked", blocked)
"""

SETUP_B = """
import observe_cluster as oc
import nodes
blocked = mpactors.spawn(oc.blocked_in_observe_test)
mpactors.register("blocked", blocked)
mpactors.register("echo", mpactors.spawn(nodes.echo))
"""


@contextmanager
def observed_cluster(name_a: str = "obsa", name_b: str = "obsb") -> Iterator[Tuple[NodeProc, NodeProc]]:
    """Nodes a and b (subprocesses), connected, with the actors above (needs a port mapper and a cookie)."""
    with ExitStack() as stack:
        a = stack.enter_context(run_node(name_a, SETUP_A))
        b = stack.enter_context(run_node(name_b, SETUP_B + f"\nassert mpactors.ping({a.name!r}) == 'pong'\n"))
        yield a, b


def cli_env() -> Dict[str, str]:
    """This process's environment for ``python -m mpactors`` (this checkout first on the path)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONUNBUFFERED", None)
    return env


@contextmanager
def observer(*args: str) -> Iterator[Tuple[str, subprocess.Popen]]:
    """``mpactors observer ARGS`` in a subprocess; yields its printed URL."""
    proc = subprocess.Popen([sys.executable, "-m", "mpactors", "observer", *args], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("observer at http://"), (line, proc.stderr.read() if proc.poll() is not None else "")
        yield line.split()[-1], proc
    finally:
        proc.terminate()
        try:
            proc.wait(LONG_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for f in (proc.stdout, proc.stderr):
                if f is not None:
                    f.close()
    assert proc.returncode == 0


def pids_of(node: NodeProc) -> Dict[str, Any]:
    """Registered name -> pid on ``node`` (this process must be a node)."""
    return node.call("{n: mpactors.whereis(n) for n in mpactors.registered()}")  # type: ignore[no-any-return]
