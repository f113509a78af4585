"""What the multi-node examples (``chat.py``, ``scheduler.py``) share: other nodes as subprocesses.

``other_nodes(script, names)`` starts the port mapper unless one answers,
runs ``python script --node NAME`` for each name (that process becomes node
NAME and lives until its stdin closes, see :func:`serve_if_asked`), and on the
way out stops those nodes and the port mapper if it started it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List

import mpactors
from mpactors import epmd

DEADLINE = 60.0  # seconds any step of an example may take (generous: a loaded machine)


@dataclass
class OtherNode:
    name: str  # the full name, 'chat_b@host'
    proc: subprocess.Popen

    def kill(self) -> None:
        """SIGKILL the node's OS process (its actors follow it) and reap it."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def serve_if_asked() -> bool:
    """In a process started by :func:`other_nodes`: be the node until stdin closes; True if so."""
    if sys.argv[1:2] != ["--node"]:
        return False
    with mpactors.Node(sys.argv[2]) as node:
        print("ready", node.name, flush=True)
        sys.stdin.read()
    return True


@contextmanager
def other_nodes(script: str, names: List[str]) -> Iterator[Dict[str, OtherNode]]:
    """Nodes ``names`` running ``script --node NAME``; stopped (and the port mapper if ours) on exit."""
    our_epmd = epmd.ensure_running()  # the OS pid if we started the port mapper
    nodes: Dict[str, OtherNode] = {}
    try:
        for name in names:
            proc = subprocess.Popen([sys.executable, script, "--node", name], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True)
            assert proc.stdout is not None
            line = proc.stdout.readline().split()
            nodes[name] = OtherNode(line[1] if line[:1] == ["ready"] else name, proc)
            if line[:1] != ["ready"]:
                raise SystemExit(f"node {name} did not start")
        yield nodes
    finally:
        for node in nodes.values():
            if node.proc.poll() is None:
                assert node.proc.stdin is not None
                node.proc.stdin.close()  # the node leaves its `with Node` block and stops
        for node in nodes.values():
            try:
                node.proc.wait(30)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()
        if our_epmd is not None:  # ours: stop it, also when it refuses (a node still registered)
            try:
                stopped = epmd.kill()
            except mpactors.EpmdError:
                stopped = False
            if not stopped:
                os.kill(our_epmd, signal.SIGTERM)


def until(what: str, check: Callable[[], Any]) -> Any:
    """Retry ``check`` until it returns a true value without raising mpactors errors; fail after DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            value = check()
            if value:
                return value
        except mpactors.MpactorsError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.05)  # polling other nodes' views from outside the cluster's own signals
