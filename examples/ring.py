"""The ring benchmark from Programming Erlang: N actors pass a token M times.

Each actor forwards the token to the next; the node's main process closes the
ring and counts the rounds. Prints messages per second; with --baseline it
also measures a raw multiprocessing.Queue round trip on the same machine.

Run: python examples/ring.py [N] [M] [--baseline]
"""
from __future__ import annotations

import multiprocessing
import sys
import time
from typing import Any

import mpactors


def member() -> None:
    nxt = mpactors.receive(mpactors.Pid)
    while True:
        token = mpactors.receive()
        mpactors.send(nxt, token)
        if token == "stop":
            return


def ring(n: int, m: int) -> float:
    """Messages per second through a ring of ``n`` actors, ``m`` rounds."""
    with mpactors.Node():
        pids = [mpactors.spawn(member) for _ in range(n)]
        for pid, nxt in zip(pids, pids[1:] + [mpactors.self()]):
            mpactors.send(pid, nxt)
        mpactors.send(pids[0], -1)  # one warm-up round
        mpactors.receive(-1, timeout=60)
        start = time.perf_counter()
        for r in range(m):
            mpactors.send(pids[0], r)
            mpactors.receive(r, timeout=60)
        elapsed = time.perf_counter() - start
        mpactors.send(pids[0], "stop")
        mpactors.receive("stop", timeout=60)
    return (n + 1) * m / elapsed


def _echo(inbox: Any, outbox: Any) -> None:
    while True:
        x = inbox.get()
        outbox.put(x)
        if x is None:
            return


def queue_round_trip(rounds: int = 5000) -> float:
    """Seconds per round trip through two raw multiprocessing.Queues."""
    ctx = multiprocessing.get_context("fork")
    a, b = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=_echo, args=(a, b))
    p.start()
    a.put(0)
    b.get()
    start = time.perf_counter()
    for i in range(rounds):
        a.put(i)
        b.get()
    elapsed = time.perf_counter() - start
    a.put(None)
    b.get()
    p.join()
    return elapsed / rounds


def main(argv: list) -> None:
    args = [a for a in argv if not a.startswith("--")]
    n = int(args[0]) if args else 100
    m = int(args[1]) if len(args) > 1 else 1000
    rate = ring(n, m)
    print(f"ring of {n} actors, {m} rounds: {rate:,.0f} messages/s ({1e6 / rate:.1f} us per hop)")
    if "--baseline" in argv:
        rt = queue_round_trip()
        print(f"raw multiprocessing.Queue round trip: {rt * 1e6:.1f} us ({2 / rt:,.0f} messages/s as hops)")


if __name__ == "__main__":
    main(sys.argv[1:])
