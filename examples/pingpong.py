"""Ping-pong between two actor processes, then a report to the node's main process.

Run: python examples/pingpong.py [ROUNDS]
"""
from __future__ import annotations

import sys
import time

import mpactors


def pong() -> None:
    while True:
        msg = mpactors.receive()
        if msg == "stop":
            return
        _, sender, n = msg
        mpactors.send(sender, ("pong", mpactors.self(), n))


def ping(partner: mpactors.Pid, rounds: int, report_to: mpactors.Pid) -> None:
    start = time.perf_counter()
    for n in range(rounds):
        mpactors.send(partner, ("ping", mpactors.self(), n))
        mpactors.receive(("pong", partner, n))
    elapsed = time.perf_counter() - start
    mpactors.send(partner, "stop")
    mpactors.send(report_to, ("done", rounds, elapsed))


def main(rounds: int = 10_000) -> None:
    with mpactors.Node():
        pong_pid = mpactors.spawn(pong)
        ping_pid = mpactors.spawn(ping, pong_pid, rounds, mpactors.self())
        print(f"ping {ping_pid} <-> pong {pong_pid}: {rounds} round trips")
        _, n, elapsed = mpactors.receive(("done", int, float), timeout=120)
        print(f"{n} round trips in {elapsed:.3f} s: {elapsed / n * 1e6:.1f} us per round trip")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
