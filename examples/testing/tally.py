"""A tally: one counter actor per node, kept in step by broadcasting increments.

``start(nodes)`` spawns a ``tally`` actor on each of ``nodes``, registered
as ``'tally'``; ``add(node, n)`` adds ``n`` on that node and on every other
node it knows; ``total(node)`` reads one node's count.
"""
from __future__ import annotations

from typing import List

import mpactors

NAME = "tally"


def tally() -> None:
    peers: List[str] = []
    count = 0
    while True:
        msg = mpactors.receive()
        if msg[0] == "peers":
            peers = [n for n in msg[1] if n != mpactors.node()]
        elif msg[0] == "add":  # from a client: apply, and tell the others
            count += msg[1]
            for node in peers:
                mpactors.send((NAME, node), ("replica", msg[1]))
        elif msg[0] == "replica":
            count += msg[1]
        elif msg[0] == "get":
            mpactors.send(msg[1], ("total", mpactors.node(), count))
        elif msg[0] == "stop":
            return


def _register(pid: mpactors.Pid) -> None:
    mpactors.register(NAME, pid)


def start(nodes: List[str]) -> List[mpactors.Pid]:
    """Start one tally on each node (by name), registered as ``'tally'`` there."""
    pids = []
    for node in nodes:
        pid = mpactors.spawn(tally, node=node)
        mpactors.rpc.call(node, _register, pid, timeout=10)
        pids.append(pid)
    for pid in pids:
        mpactors.send(pid, ("peers", list(nodes)))
    return pids


def add(node: str, n: int) -> None:
    mpactors.send((NAME, node), ("add", n))


def total(node: str, timeout: float = 10) -> int:
    mpactors.send((NAME, node), ("get", mpactors.self()))
    _, _, count = mpactors.receive(lambda m: m[0] == "total" and m[1] == node, timeout=timeout)
    return count


def stop(nodes: List[str]) -> None:
    for node in nodes:
        mpactors.send((NAME, node), ("stop",))
