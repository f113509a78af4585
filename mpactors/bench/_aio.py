"""asyncio benchmarks: async actors and ``aio.call`` next to their blocking twins.

The baseline of each row is the same exchange written with the blocking API,
measured in the same run right before it, so the ratio is what the event-loop
integration costs (issue 13's target: an ``aio.receive`` round trip between
two async actors at most 1.3x the blocking round trip).
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from .. import GenServer, Node, aio, genserver, receive, self, spawn
from ._local import rt_mpactors
from ._util import WAIT

__all__ = ["rt_aio", "rt_blocking", "call_aio", "call_blocking"]

_now = time.perf_counter


async def _aecho() -> None:
    partner = await aio.receive()
    while True:
        x = await aio.receive()
        if x is None:
            return
        aio.send(partner, x)


async def _aping(partner: Any, rounds: int, warmup: int, report_to: Any) -> None:
    aio.send(partner, self())
    for i in range(warmup):
        aio.send(partner, i)
        await aio.receive()
    t0 = _now()
    for i in range(rounds):
        aio.send(partner, i)
        await aio.receive()
    dt = _now() - t0
    aio.send(partner, None)
    aio.send(report_to, dt / rounds)


def rt_aio(rounds: int, warmup: int) -> float:
    """Seconds per round trip between two async actors of one node (``aio.send``/``aio.receive``)."""
    with Node():
        echo = spawn(_aecho)
        spawn(_aping, echo, rounds, warmup, self())
        return float(receive(float, timeout=WAIT))


def rt_blocking(rounds: int, warmup: int) -> float:
    """The same with two blocking actors (``send``/``receive``): the local round trip row."""
    return rt_mpactors(rounds, warmup)


class _Echo(GenServer):
    def handle_call(self, request: Any, frm: Any) -> Any:
        return request


def call_aio(rounds: int, warmup: int, concurrency: int) -> float:
    """Seconds per ``await aio.call`` from an event loop in the node's main process, ``concurrency`` at a time."""
    with Node():
        server = _Echo.start()

        async def worker(n: int) -> None:
            for i in range(n):
                await aio.call(server, i)

        async def main() -> float:
            await asyncio.gather(*[worker(warmup // concurrency + 1) for _ in range(concurrency)])
            t0 = _now()
            await asyncio.gather(*[worker(rounds // concurrency) for _ in range(concurrency)])
            return (_now() - t0) / (rounds // concurrency * concurrency)

        return asyncio.run(main())


def call_blocking(rounds: int, warmup: int) -> float:
    """Seconds per blocking ``genserver.call`` from the node's main process."""
    with Node():
        server = _Echo.start()
        for i in range(warmup):
            genserver.call(server, i)
        t0 = _now()
        for i in range(rounds):
            genserver.call(server, i)
        return (_now() - t0) / rounds
