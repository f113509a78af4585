"""Local benchmarks: one node in the benchmark's own process, against raw multiprocessing.

Each ``*_mpactors`` function starts a local node, measures, and stops it (so no
node thread exists while a baseline forks). Each ``*_raw`` function measures
the same thing with bare ``multiprocessing`` (the ``fork`` context, as the
node's default start method) between children of the benchmark process.
Every function returns one number; :mod:`mpactors.bench` repeats and takes
medians.

Times come from ``time.perf_counter`` (``CLOCK_MONOTONIC`` on Linux, so the
stamps of two processes on one host compare).
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any, List, Optional, Tuple

import psutil

from .. import Node, receive, self, send, send_after, spawn
from ._util import WAIT, BenchError, running, wait_conn

__all__ = [
    "rt_actors", "tput_actors", "payload_of", "rt_mpactors", "rt_raw_queue", "rt_raw_pipe", "tput_mpactors", "tput_raw_queue",
    "spawn_mpactors", "spawn_raw", "uss_mpactors", "uss_raw", "ring_mpactors", "ring_raw_queue",
    "timer_late_mpactors", "timer_late_raw",
    "tput_raw_pipe", "fds_per_actor",
]

_now = time.perf_counter


def _ctx(method: str = "fork") -> Any:
    return multiprocessing.get_context(method)


# -- round trip ----------------------------------------------------------------
def _echo_actor() -> None:
    partner = receive()
    while True:
        x = receive()
        if x is None:
            return
        send(partner, x)


def _ping_actor(partner: Any, rounds: int, warmup: int, report_to: Any) -> None:
    send(partner, self())
    for i in range(warmup):
        send(partner, i)
        receive()
    t0 = _now()
    for i in range(rounds):
        send(partner, i)
        receive()
    dt = _now() - t0
    send(partner, None)
    send(report_to, dt / rounds)


def rt_actors(rounds: int, warmup: int, node: Optional[str] = None) -> float:
    """In a running node: seconds per round trip between a local actor and one on ``node``."""
    echo = spawn(_echo_actor, node=node)
    spawn(_ping_actor, echo, rounds, warmup, self())
    return float(receive(float, timeout=WAIT))


def rt_mpactors(rounds: int, warmup: int) -> float:
    """Seconds per round trip between two actors of one node (small message: an int)."""
    with Node():
        return rt_actors(rounds, warmup)


def _q_echo(inbox: Any, outbox: Any) -> None:
    while True:
        x = inbox.get()
        if x is None:
            return
        outbox.put(x)


def _q_ping(outbox: Any, inbox: Any, rounds: int, warmup: int, result: Any) -> None:
    for i in range(warmup):
        outbox.put(i)
        inbox.get()
    t0 = _now()
    for i in range(rounds):
        outbox.put(i)
        inbox.get()
    dt = _now() - t0
    outbox.put(None)
    result.send(dt / rounds)


def rt_raw_queue(rounds: int, warmup: int) -> float:
    """Seconds per round trip between two children over two ``multiprocessing.Queue``s."""
    ctx = _ctx()
    a, b = ctx.Queue(), ctx.Queue()
    r, w = ctx.Pipe(duplex=False)
    procs = [ctx.Process(target=_q_echo, args=(a, b)), ctx.Process(target=_q_ping, args=(a, b, rounds, warmup, w))]
    with running(procs):
        return float(wait_conn(r))


def _p_echo(conn: Any) -> None:
    while True:
        x = conn.recv()
        if x is None:
            return
        conn.send(x)


def _p_ping(conn: Any, rounds: int, warmup: int, result: Any) -> None:
    for i in range(warmup):
        conn.send(i)
        conn.recv()
    t0 = _now()
    for i in range(rounds):
        conn.send(i)
        conn.recv()
    dt = _now() - t0
    conn.send(None)
    result.send(dt / rounds)


def rt_raw_pipe(rounds: int, warmup: int) -> float:
    """Seconds per round trip between two children over one duplex ``multiprocessing.Pipe``."""
    ctx = _ctx()
    a, b = ctx.Pipe()
    r, w = ctx.Pipe(duplex=False)
    procs = [ctx.Process(target=_p_echo, args=(b,)), ctx.Process(target=_p_ping, args=(a, rounds, warmup, w))]
    with running(procs):
        return float(wait_conn(r))


# -- one-way throughput -----------------------------------------------------------
def _sink_actor(n: int, report_to: Any) -> None:
    send(report_to, ("ready", self()))
    for _ in range(n):
        receive()
    send(report_to, ("sink", _now()))


def _source_actor(dest: Any, n: int, payload: Any, report_to: Any) -> None:
    send(report_to, ("ready", self()))
    receive()  # go
    t0 = _now()
    for _ in range(n):
        send(dest, payload)
    send(report_to, ("source", t0))


def payload_of(size: int) -> Any:
    """The message of a throughput test: a small tuple, or ``size`` bytes."""
    return ("msg", 12345) if size == 0 else bytes(size)


def tput_actors(n: int, size: int, node: Optional[str] = None) -> float:
    """In a running node: messages per second from a local actor to one on ``node``."""
    me = self()
    sink = spawn(_sink_actor, n, me, node=node)
    source = spawn(_source_actor, sink, n, payload_of(size), me)
    for _ in range(2):
        receive(("ready", object), timeout=WAIT)
    send(source, "go")
    _, t0 = receive(("source", float), timeout=WAIT)
    _, t1 = receive(("sink", float), timeout=WAIT)
    return n / (t1 - t0)


def tput_mpactors(n: int, size: int) -> float:
    """Messages per second from one actor to another of the same node."""
    with Node():
        return tput_actors(n, size)


def _raw_sink(inbox: Any, get: str, n: int, ready: Any, result: Any) -> None:
    take = getattr(inbox, get)
    ready.send("ready")
    for _ in range(n):
        take()
    result.send(_now())


def _raw_source(outbox: Any, put: str, n: int, size: int, go: Any, result: Any) -> None:
    give = getattr(outbox, put)
    payload = payload_of(size)
    go.recv()
    t0 = _now()
    for _ in range(n):
        give(payload)
    result.send(t0)


def _tput_raw(inbox: Any, get: str, outbox: Any, put: str, n: int, size: int) -> float:
    """Messages per second from a child calling ``outbox.put(msg)`` to one calling ``inbox.get()``."""
    ctx = _ctx()
    sink_r, sink_w = ctx.Pipe(duplex=False)
    src_r, src_w = ctx.Pipe(duplex=False)
    go_r, go_w = ctx.Pipe(duplex=False)
    procs = [
        ctx.Process(target=_raw_sink, args=(inbox, get, n, sink_w, sink_w)),
        ctx.Process(target=_raw_source, args=(outbox, put, n, size, go_r, src_w)),
    ]
    with running(procs):
        wait_conn(sink_r, what="the sink's ready")
        go_w.send("go")
        t0 = wait_conn(src_r)
        t1 = wait_conn(sink_r)
    return n / (t1 - t0)


def tput_raw_queue(n: int, size: int) -> float:
    """Messages per second through one ``multiprocessing.Queue`` between two children."""
    q = _ctx().Queue()
    return _tput_raw(q, "get", q, "put", n, size)


def tput_raw_pipe(n: int, size: int) -> float:
    """Messages per second through one raw ``multiprocessing.Pipe`` between two children.

    A Pipe's ``send`` blocks while the pipe is full (a Queue's feeder thread
    hides that), so this is the raw kernel pipe plus pickling, nothing else.
    """
    r, w = _ctx().Pipe(duplex=False)
    return _tput_raw(r, "recv", w, "send", n, size)


# -- descriptors -------------------------------------------------------------------
def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def fds_per_actor(n: int, start_method: Optional[str] = None) -> float:
    """Descriptors the node process holds per live actor (``n`` actors that each answered).

    ``start_method``: the node's (default: ``MPACTORS_START_METHOD`` or the platform's).
    """
    with Node(start_method=start_method):
        me = self()
        before = _fd_count()
        pids = [spawn(_ready_actor, me) for _ in range(n)]
        for _ in range(n):
            receive(1, timeout=WAIT)
        after = _fd_count()
        for pid in pids:
            send(pid, "stop")
    return (after - before) / n


# -- spawn ---------------------------------------------------------------------
def _ready_actor(report_to: Any) -> None:
    send(report_to, 1)
    receive()


def spawn_mpactors(n: int, start_method: str) -> Tuple[float, float]:
    """Seconds until ``n`` new actors have each sent a message; and the node's stop time."""
    node = Node(start_method=start_method).start()
    try:
        me = self()
        t0 = _now()
        for _ in range(n):
            spawn(_ready_actor, me)
        for _ in range(n):
            receive(1, timeout=WAIT)
        dt = _now() - t0
    finally:
        t1 = _now()
        node.stop()
        stop = _now() - t1
    return dt, stop


def _bare_ready(conn: Any) -> None:
    conn.send_bytes(b"x")  # one atomic pipe write, like an actor's first send
    signal.pause()


def _wait_ready(conn: Any, n: int, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    for got in range(n):
        if not conn.poll(max(0.0, deadline - time.monotonic())):
            raise BenchError(f"only {got} of {n} children reported within {timeout:g} s")
        conn.recv_bytes()


def _bare_children(n: int, start_method: str) -> Any:
    """``n`` unstarted bare children that report once running, and the read end they report to."""
    ctx = _ctx(start_method)
    r, w = ctx.Pipe(duplex=False)
    return [ctx.Process(target=_bare_ready, args=(w,)) for _ in range(n)], r, w


def _end_all(procs: List[Any], *conns: Any) -> None:
    for p in procs:
        if p.pid is not None:
            p.kill()
    for p in procs:
        if p.pid is not None:
            p.join()
    for c in conns:
        c.close()


def spawn_raw(n: int, start_method: str) -> float:
    """Seconds until ``n`` bare ``multiprocessing.Process`` children have each sent a byte."""
    procs, r, w = _bare_children(n, start_method)
    try:
        t0 = _now()
        for p in procs:
            p.start()
        _wait_ready(r, n)
        return _now() - t0
    finally:
        _end_all(procs, r, w)


# -- idle memory -----------------------------------------------------------------
def _idle_actor(report_to: Any) -> None:
    send(report_to, ("up", os.getpid()))
    receive()


def _uss(os_pids: List[int]) -> List[float]:
    return [psutil.Process(p).memory_full_info().uss for p in os_pids]


_SETTLE = 0.3  # seconds for a new process to reach its idle state


def uss_mpactors(k: int, start_method: str) -> float:
    """Median USS (bytes) of ``k`` idle actors."""
    with Node(start_method=start_method):
        me = self()
        for _ in range(k):
            spawn(_idle_actor, me)
        os_pids = [receive(("up", int), timeout=WAIT)[1] for _ in range(k)]
        time.sleep(_SETTLE)
        values = _uss(os_pids)
    return float(sorted(values)[len(values) // 2])


def uss_raw(k: int, start_method: str) -> float:
    """Median USS (bytes) of ``k`` idle bare ``multiprocessing.Process`` children."""
    procs, r, w = _bare_children(k, start_method)
    try:
        for p in procs:
            p.start()
        _wait_ready(r, k)
        time.sleep(_SETTLE)
        values = _uss([p.pid for p in procs])
    finally:
        _end_all(procs, r, w)
    return float(sorted(values)[len(values) // 2])


# -- ring ------------------------------------------------------------------------
def _ring_member() -> None:
    nxt = receive()
    while True:
        token = receive()
        send(nxt, token)
        if token is None:
            return


def ring_mpactors(n: int, m: int) -> float:
    """Messages per second: a token goes round ``n`` actors and the main process ``m`` times."""
    with Node():
        me = self()
        pids = [spawn(_ring_member) for _ in range(n)]
        for pid, nxt in zip(pids, pids[1:] + [me]):
            send(pid, nxt)
        send(pids[0], -1)  # warm-up round
        receive(-1, timeout=WAIT)
        t0 = _now()
        for r in range(m):
            send(pids[0], r)
            receive(r, timeout=WAIT)
        dt = _now() - t0
        send(pids[0], None)
        receive(None, timeout=WAIT)
    return (n + 1) * m / dt


def _q_member(inbox: Any, outbox: Any) -> None:
    while True:
        token = inbox.get()
        outbox.put(token)
        if token is None:
            return


def ring_raw_queue(n: int, m: int) -> float:
    """The same ring with ``n`` bare children linked by ``multiprocessing.Queue``s."""
    ctx = _ctx()
    queues = [ctx.Queue() for _ in range(n + 1)]
    procs = [ctx.Process(target=_q_member, args=(queues[i], queues[i + 1])) for i in range(n)]
    first, last = queues[0], queues[n]

    def round_trip(token: Any) -> None:
        first.put(token)
        got = last.get(timeout=WAIT)
        if got != token:
            raise BenchError(f"ring returned {got!r}, expected {token!r}")

    with running(procs):
        round_trip(-1)
        t0 = _now()
        for r in range(m):
            round_trip(r)
        dt = _now() - t0
        round_trip(None)
    return (n + 1) * m / dt


# -- timer lateness ------------------------------------------------------------------
def _p95(values: List[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.95))]


def _timer_actor(n: int, delay: float, report_to: Any) -> None:
    me = self()
    late = []
    for i in range(n):
        t0 = _now()
        send_after(delay, me, i)
        receive(i)
        late.append(_now() - t0 - delay)
    send(report_to, late)


def timer_late_mpactors(n: int, delay: float) -> float:
    """95th percentile of how late ``n`` timers (``send_after(delay)``, one at a time) reach an actor of an idle node.

    Measured from before the ``send_after`` call, so it includes the request
    to the kernel: an upper bound of the lateness.
    """
    with Node():
        spawn(_timer_actor, n, delay, self())
        return _p95(receive(list, timeout=WAIT + n * delay))


def _raw_sleeper(n: int, delay: float, out: Any) -> None:
    r, w = multiprocessing.Pipe(duplex=False)  # nobody writes: poll waits its whole timeout
    late = []
    for _ in range(n):
        t0 = _now()
        r.poll(delay)
        late.append(_now() - t0 - delay)
    out.send(late)


def timer_late_raw(n: int, delay: float) -> float:
    """The same figure for a bare child waiting ``delay`` in ``Connection.poll`` (the floor of a Python wake-up)."""
    ctx = _ctx()
    r, w = ctx.Pipe(duplex=False)
    with running([ctx.Process(target=_raw_sleeper, args=(n, delay, w))]):
        return _p95(wait_conn(r, WAIT + n * delay))
