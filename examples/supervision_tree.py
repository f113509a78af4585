"""A supervision tree across two nodes that heals a killed worker and a killed node.

Run: python examples/supervision_tree.py [--wait]

This script becomes node ``tree_a`` and starts node ``tree_b`` as a separate
OS process, kept alive by a small keeper thread (as systemd or a container
platform would restart a dead node). The tree::

    top (Supervisor on tree_a, one_for_one)
    ├── counter  (GenServer on tree_a, registered 'counter')
    └── b_sup    (Supervisor on tree_b, type='supervisor', node=tree_b)
        └── pinger (GenServer on tree_b, registered 'pinger')

It SIGKILLs the pinger's OS process (b_sup restarts it), then the whole node
``tree_b`` (top sees ``b_sup`` lost with ``'noconnection'``, retries while
the keeper brings the node back, and places ``b_sup`` and its pinger there
again). With ``--wait`` it then keeps running so that you can do the same
from another terminal (``mpactors ps``, ``kill -9 <os pid>``) until Ctrl-C.
On the way out it stops the tree, the second node, and the port mapper if it
started one.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Optional

import mpactors
from mpactors import ChildSpec, GenServer, Supervisor, epmd, genserver
from mpactors.supervisor import which_children

from _cluster import DEADLINE, until  # shared with chat.py and scheduler.py



class Counter(GenServer):
    def init(self) -> None:
        self.count = 0

    def handle_call(self, request: Any, frm: Any) -> Any:
        self.count += 1
        return self.count


class Pinger(GenServer):
    def handle_call(self, request: Any, frm: Any) -> Any:
        return ("pong", mpactors.node(), os.getpid())

    def terminate(self, reason: Any) -> None:
        # stderr: the keeper reads this node's stdout only for its ready line
        print(f"  pinger on {mpactors.node()} terminates ({reason!r})", file=sys.stderr, flush=True)


def tree(node_b: str) -> list:
    pinger = [ChildSpec("pinger", Pinger, kwargs={"name": "pinger"})]
    return [
        ChildSpec("counter", Counter, kwargs={"name": "counter"}),
        ChildSpec("b_sup", Supervisor, args=(pinger,), node=node_b, type="supervisor", shutdown=10.0),
    ]


class NodeKeeper:
    """Runs node ``tree_b`` as a subprocess and starts it again whenever it dies."""

    def __init__(self) -> None:
        self.proc: Optional[subprocess.Popen] = None
        self.name = ""
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self._launch()
        self.thread.start()

    def _launch(self) -> None:
        while not self.stopping.is_set():
            proc = subprocess.Popen(
                [sys.executable, __file__, "--node-b"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            assert proc.stdout is not None
            line = proc.stdout.readline().split()
            with self.lock:
                self.proc = proc
            if line[:1] == ["ready"]:
                self.name = line[1]
                return
            proc.wait(10)  # the old name was still registered: try again
            time.sleep(0.2)

    def _watch(self) -> None:
        while not self.stopping.wait(0.1):
            if self.proc is not None and self.proc.poll() is not None and not self.stopping.is_set():
                print(f"  keeper: node {self.name} is gone (exit {self.proc.returncode}); starting it again", flush=True)
                self._launch()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)
        with self.lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()  # the node leaves its `with Node` block and stops
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def run_node_b() -> None:
    """Body of the second node's process."""
    with mpactors.Node("tree_b") as node:
        print("ready", node.name, flush=True)
        sys.stdin.read()  # until the keeper closes our stdin


def show(top: mpactors.Pid) -> None:
    for cid, pid, kind in which_children(top):
        info = mpactors.process_info(pid) if pid is not None else None
        print(f"  {cid:8} {kind:10} {pid}  os pid {info and info['os_pid']}")
        if kind == "supervisor" and pid is not None:
            for sub_id, sub_pid, _ in which_children(pid):
                sub_info = mpactors.process_info(sub_pid) if sub_pid is not None else None
                print(f"    {sub_id:6} worker     {sub_pid}  os pid {sub_info and sub_info['os_pid']}")


def demo(keeper: NodeKeeper, wait: bool) -> None:
    b = keeper.name
    # Starting the tree starts actors on both nodes; give it longer than the
    # default 5 s, which a busy machine under the spawn start method exceeds.
    top = Supervisor.start(tree(b), max_restarts=30, max_seconds=60, retry_delay=1.0, timeout=30.0)
    print("the tree:")
    show(top)
    print("counter says", GenServer.call("counter", "add"), "- pinger says", GenServer.call(("pinger", b), "ping"))

    _, _, old_os_pid = GenServer.call(("pinger", b), "ping")
    print(f"SIGKILL the pinger (os pid {old_os_pid})")
    os.kill(old_os_pid, signal.SIGKILL)

    def new_pinger() -> Any:
        reply = GenServer.call(("pinger", b), "ping", timeout=2.0)
        return reply if reply[2] != old_os_pid else None

    reply = until("a new pinger", new_pinger)
    print("healed: pinger says", reply)

    old_node_pid = keeper.proc.pid  # type: ignore[union-attr]
    print(f"SIGKILL the whole node {b} (os pid {old_node_pid})")
    os.kill(old_node_pid, signal.SIGKILL)
    until("node tree_b to come back", lambda: keeper.proc is not None and keeper.proc.pid != old_node_pid)
    reply = until("the pinger on the new node", lambda: GenServer.call(("pinger", b), "ping", timeout=2.0))
    print("healed: pinger says", reply, "- counter says", GenServer.call("counter", "add"))
    show(top)
    if wait:
        print("\nfrom another terminal: `mpactors ps`, then `kill -9 <os pid>` of the pinger or of node "
              f"{b}; Ctrl-C here to stop")
        try:
            while True:
                time.sleep(3)
                show(top)
        except KeyboardInterrupt:
            pass
    print("stopping the tree (children in reverse start order)")
    genserver.stop(top, timeout=DEADLINE)


def main() -> None:
    if sys.argv[1:] == ["--node-b"]:
        run_node_b()
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    our_epmd = epmd.ensure_running()  # the OS pid if we started the port mapper
    keeper = NodeKeeper()
    try:
        with mpactors.Node("tree_a"):
            keeper.start()
            try:
                demo(keeper, "--wait" in sys.argv[1:])
            finally:
                keeper.stop()
    finally:
        if our_epmd is not None:  # ours: stop it, also when it refuses (a node still registered)
            try:
                stopped = epmd.kill()
            except mpactors.EpmdError:
                stopped = False
            if not stopped:
                os.kill(our_epmd, signal.SIGTERM)
    print("done")


if __name__ == "__main__":
    main()
