"""``python -m mpactors.bench`` (``scripts/bench``): mpactors next to raw multiprocessing.

Every figure is measured in the same run, on the same machine, next to a
baseline built from bare ``multiprocessing`` parts, and the table gives the
ratio and whether the project's target is met:

=========================  ===============================================  ============================
benchmark                  baseline                                         target
=========================  ===============================================  ============================
local round trip           two raw Queues / one duplex Pipe                 <= 1.0x / <= 1.5x (moonshot)
local throughput           one raw Queue (small, 1 KiB, 64 KiB)             small: >= 0.85x, 64 KiB: >= 1.0x
local throughput 64 KiB    one raw Pipe                                     >= 1.0x (moonshot)
local throughput, large    one raw Pipe (1 MiB, 16 MiB)                     >= 1.0x
remote round trip          multiprocessing.connection + authkey over TCP    <= 2.0x
remote round trip          raw 3-hop relay of our topology (the floor)      <= 1.2x
remote throughput          one Client.send per message (small .. 1 MiB)     >= 1.0x small, 1 KiB; >= 0.8x
memory in transit          a 64 MiB message between two nodes: peak RSS     <= 1.5x (each node)
                           rise of the receiving / sending node vs its size
descriptors per actor      (descriptors the node holds per live actor)      <= 2
TLS round trip             our plain round trip, same run                   <= 1.3x
TLS throughput             our plain throughput (small, 64 KiB), same run   >= 0.7x
spawn 100 / 1,000          bare multiprocessing.Process, same start method  <= 1.2x (fork only) / <= 2 s
idle actor USS             a bare idle child                                <= 2.0x
ring 100 x 1,000           100 bare children linked by Queues               (none)
16-node mesh               (seconds until every node sees the 15 others)    (none)
48-node mesh               (seconds until every node sees the 47 others)    <= 5 s
48-node mesh, idle         (busiest node's CPU use, % of one CPU, at rest)  < 1%
timer lateness             a bare child's Connection.poll(timeout)          <= 10 ms (95th percentile)
aio round trip             the blocking round trip, same run                <= 1.3x
aio.call (main loop)       blocking genserver.call from the main process    (none)
=========================  ===============================================  ============================

Each figure is the median of several repetitions, and each repetition runs the
baseline right before mpactors, so drift in the machine's load hits both.
``--quick`` uses small counts (a smoke run for CI, well under a minute);
``--json`` prints the rows as JSON; ``--peers pykka,thespian`` adds those
libraries (the ``bench`` extra) side by side. Every process the benchmark
starts is stopped before it returns, including the port mapper of the remote
benchmarks, which runs on a private port. The final sweep also finds
processes that are not its children: each run sets ``MPACTORS_BENCH_RUN`` to
a value of its own, inherited by every process it starts, so a port mapper a
node started detached (its parent is init) is stopped and reported too.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import _aio as aio_bench
from . import _local as local
from . import _remote as remote
from ._peers import CODE as PEER_CODE
from ._peers import PEERS
from ._report import machine, table
from ._util import WAIT, BenchError, Row, Sub, median, raise_fd_limit

__all__ = ["main", "run", "table", "machine", "Settings", "GROUPS", "GROUP_ROWS"]

#: Benchmark groups, in the order they run (``--only`` picks some).
GROUPS = ("local_rt", "local_tput", "remote", "transit", "fds", "tls", "spawn", "uss", "ring", "mesh", "timers", "aio")

_KIB = 1024
_MIB = 1024 * _KIB
_SIZES = (("small", 0), ("1k", _KIB), ("64k", 64 * _KIB))
_LARGE = (("1m", _MIB), ("16m", 16 * _MIB))
_REMOTE_SIZES = _SIZES + (("1m", _MIB),)
_TLS_SIZES = (("small", 0), ("64k", 64 * _KIB))
_SIZE_NAMES = {"small": "small", "1k": "1 KiB", "64k": "64 KiB", "1m": "1 MiB", "16m": "16 MiB"}
#: Remote one-way targets (ratio to raw Client.send), from issue 15.
_REMOTE_TARGETS = {"small": 1.0, "1k": 1.0, "64k": 0.8, "1m": 0.8}


@dataclass
class Settings:
    """Counts and repetitions of one run."""

    reps: int
    rt_rounds: int
    rt_warmup: int
    tput: Dict[str, int]
    remote_rt_rounds: int
    remote_tput: Dict[str, int]
    spawn_small: int
    spawn_large: int
    spawn_large_reps: int
    uss_children: int
    ring_n: int
    ring_m: int
    ring_reps: int
    mesh_nodes: int
    mesh_reps: int
    peer_rounds: int
    peer_n: int
    start_method: str
    timers_n: int = 50
    mesh_large: int = 48  # nodes of the large mesh (target: complete within 5 s)
    mesh_idle: float = 5.0  # seconds of rest over which its nodes' CPU use is measured
    transit_bytes: int = 64 * _MIB
    fds_actors: int = 100
    tls_rt_rounds: int = 2000
    tls_tput: Dict[str, int] = field(default_factory=lambda: {"small": 20000, "64k": 1000})
    quick: bool = False

    @classmethod
    def full(cls, start_method: str) -> Settings:
        return cls(
            reps=5, rt_rounds=5000, rt_warmup=500,
            tput={"small": 20000, "1k": 20000, "64k": 2000, "1m": 200, "16m": 16},
            remote_rt_rounds=3000, remote_tput={"small": 20000, "1k": 10000, "64k": 1000, "1m": 100},
            spawn_small=100, spawn_large=1000, spawn_large_reps=3, uss_children=10,
            ring_n=100, ring_m=1000, ring_reps=3, mesh_nodes=16, mesh_reps=3,
            peer_rounds=3000, peer_n=10000, start_method=start_method,
        )

    @classmethod
    def quick_run(cls, start_method: str) -> Settings:
        return cls(
            reps=2, rt_rounds=1000, rt_warmup=100,
            tput={"small": 5000, "1k": 5000, "64k": 300, "1m": 20, "16m": 3},
            remote_rt_rounds=500, remote_tput={"small": 5000, "1k": 2000, "64k": 200, "1m": 10},
            spawn_small=100, spawn_large=250, spawn_large_reps=1, uss_children=4,
            ring_n=20, ring_m=100, ring_reps=1, mesh_nodes=16, mesh_reps=1, mesh_large=24, mesh_idle=1.0,
            peer_rounds=500, peer_n=2000, start_method=start_method, quick=True, timers_n=20,
            transit_bytes=16 * _MIB, fds_actors=20, tls_rt_rounds=300, tls_tput={"small": 2000, "64k": 100},
        )


def _progress(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _repeat(rows: Sequence[Row], reps: int, steps: Sequence[Callable[[], None]]) -> None:
    for i in range(reps):
        _progress(f"{rows[0].id}{'...' if len(rows) > 1 else ''}: repetition {i + 1}/{reps}")
        for step in steps:
            step()


def _finish(rows: Sequence[Row]) -> None:
    for row in rows:
        row.value = median(row.samples)
        row.baseline = median(row.baseline_samples)


# -- the groups ------------------------------------------------------------------------
def _local_rt(s: Settings) -> List[Row]:
    q = Row("local_rt_queue", "local round trip, actor <-> actor (small)", "us", "lower",
            baseline_name="2 raw Queues", target_ratio=1.0, params={"rounds": s.rt_rounds})
    p = Row("local_rt_pipe", "local round trip, actor <-> actor (small)", "us", "lower",
            baseline_name="raw duplex Pipe", target_ratio=1.5, moonshot=True, params={"rounds": s.rt_rounds})
    args = (s.rt_rounds, s.rt_warmup)

    def step() -> None:
        q.baseline_samples.append(local.rt_raw_queue(*args) * 1e6)
        p.baseline_samples.append(local.rt_raw_pipe(*args) * 1e6)
        value = local.rt_mpactors(*args) * 1e6
        q.samples.append(value)
        p.samples.append(value)

    _repeat([q, p], s.reps, [step])
    return [q, p]


def _local_tput(s: Settings) -> List[Row]:
    rows = []
    for key, size in _SIZES:
        n = s.tput[key]
        row = Row(f"local_tput_{key}", f"local one-way throughput, actor -> actor ({_SIZE_NAMES[key]})",
                  "msg/s", "higher", baseline_name="raw Queue", params={"messages": n, "bytes": size})
        row.target_ratio = {"small": 0.85, "64k": 1.0}.get(key)

        if key != "64k":
            def step(row: Row = row, n: int = n, size: int = size) -> None:
                row.baseline_samples.append(local.tput_raw_queue(n, size))
                row.samples.append(local.tput_mpactors(n, size))

            _repeat([row], s.reps, [step])
            rows.append(row)
            continue
        # 64 KiB: also against a raw Pipe (the moonshot), from the same mpactors samples
        pipe = Row(f"local_tput_{key}_pipe", row.name, "msg/s", "higher", baseline_name="raw Pipe",
                   params=dict(row.params), target_ratio=1.0, moonshot=True)

        def step64(row: Row = row, pipe: Row = pipe, n: int = n, size: int = size) -> None:
            row.baseline_samples.append(local.tput_raw_queue(n, size))
            pipe.baseline_samples.append(local.tput_raw_pipe(n, size))
            value = local.tput_mpactors(n, size)
            row.samples.append(value)
            pipe.samples.append(value)

        _repeat([row, pipe], s.reps, [step64])
        rows += [row, pipe]
    for key, size in _LARGE:
        n = s.tput[key]
        row = Row(f"local_tput_{key}", f"local one-way throughput, actor -> actor ({_SIZE_NAMES[key]})",
                  "msg/s", "higher", baseline_name="raw Pipe", target_ratio=1.0,
                  params={"messages": n, "bytes": size})

        def step_large(row: Row = row, n: int = n, size: int = size) -> None:
            row.baseline_samples.append(local.tput_raw_pipe(n, size))
            row.samples.append(local.tput_mpactors(n, size))

        _repeat([row], s.reps, [step_large])
        rows.append(row)
    return rows


def _remote(s: Settings) -> List[Row]:
    rt = Row("remote_rt", "remote round trip, actor <-> actor on 2 nodes (small)", "us", "lower",
             baseline_name="raw Client/Listener+authkey", target_ratio=2.0, params={"rounds": s.remote_rt_rounds})
    relay = Row("remote_rt_relay", "remote round trip, actor <-> actor on 2 nodes (small)", "us", "lower",
                baseline_name="raw 3-hop relay, same topology", target_ratio=1.2,
                params={"rounds": s.remote_rt_rounds},
                note="floor: actor -> node thread -> TCP -> node thread -> actor, raw multiprocessing.connection")
    tputs = []
    for key, size in _REMOTE_SIZES:
        row = Row(f"remote_tput_{key}", f"remote one-way throughput, 2 nodes ({_SIZE_NAMES[key]})", "msg/s",
                  "higher", baseline_name="raw Client.send per message", target_ratio=_REMOTE_TARGETS[key],
                  params={"messages": s.remote_tput[key], "bytes": size})
        tputs.append(row)
    rows = [rt, relay, *tputs]
    with remote.cluster_env() as env:
        try:
            with remote.RemotePair(env) as pair:

                def step() -> None:
                    rt.baseline_samples.append(remote.rt_raw_tcp(s.remote_rt_rounds, s.rt_warmup) * 1e6)
                    relay.baseline_samples.append(remote.rt_raw_relay(s.remote_rt_rounds, s.rt_warmup) * 1e6)
                    value = pair.rt(s.remote_rt_rounds, s.rt_warmup) * 1e6
                    rt.samples.append(value)
                    relay.samples.append(value)
                    for row in tputs:
                        n, size = row.params["messages"], row.params["bytes"]
                        row.baseline_samples.append(remote.tput_raw_tcp(n, size))
                        row.samples.append(pair.tput(n, size))

                _repeat(rows, s.reps, [step])
        except BenchError as exc:
            raise BenchError(f"{exc}\n{remote.node_logs(env)}") from None
    return rows


def _transit(s: Settings) -> List[Row]:
    mib = s.transit_bytes / _MIB
    rows = [Row(f"transit_{key}", f"memory in transit: {mib:g} MiB message, {who} node's peak RSS rise", "MiB",
                "lower", baseline_name="the message", target_ratio=1.5, params={"bytes": s.transit_bytes},
                note="node process only, not the actors at either end")
            for key, who in (("recv", "receiving"), ("send", "sending"))]
    with remote.cluster_env() as env:
        try:
            with remote.RemotePair(env) as pair:

                def step() -> None:
                    rise = pair.transit(s.transit_bytes)
                    for row, key in zip(rows, ("recv", "send")):
                        row.samples.append(max(rise[key], 0.0) / _MIB)
                        row.baseline_samples.append(mib)

                _repeat(rows, s.reps, [step])
        except BenchError as exc:
            raise BenchError(f"{exc}\n{remote.node_logs(env)}") from None
    return rows


def _fds(s: Settings) -> List[Row]:
    row = Row("fds_per_actor", f"descriptors the node holds per actor ({s.fds_actors} live actors)", "fds",
              "lower", target_abs=2.0, params={"actors": s.fds_actors})

    def step() -> None:
        row.samples.append(local.fds_per_actor(s.fds_actors))

    _repeat([row], 1, [step])
    return [row]


def _tls(s: Settings) -> List[Row]:
    rt = Row("tls_rt", "TLS: remote round trip, actor <-> actor on 2 nodes (small)", "us", "lower",
             baseline_name="our plain round trip", target_ratio=1.3, params={"rounds": s.tls_rt_rounds})
    tputs = [Row(f"tls_tput_{key}", f"TLS: remote one-way throughput ({_SIZE_NAMES[key]})", "msg/s", "higher",
                 baseline_name="our plain throughput", target_ratio=0.7,
                 params={"messages": s.tls_tput[key], "bytes": size}) for key, size in _TLS_SIZES]
    raw = Row("tls_rt_raw", "raw ssl-wrapped socket round trip (mutual TLS)", "us", "lower",
              baseline_name="raw plain socket", params={"rounds": s.tls_rt_rounds},
              note="what TLS itself costs a round trip on this machine")
    rows = [rt, *tputs, raw]
    with remote.cluster_env() as plain_env, remote.cluster_env(tls=True) as tls_env:
        try:
            with remote.RemotePair(plain_env) as plain, remote.RemotePair(tls_env) as secure:

                def step() -> None:
                    rounds, warm = s.tls_rt_rounds, min(s.rt_warmup, s.tls_rt_rounds)
                    rt.baseline_samples.append(plain.rt(rounds, warm) * 1e6)
                    rt.samples.append(secure.rt(rounds, warm) * 1e6)
                    for row in tputs:
                        n, size = row.params["messages"], row.params["bytes"]
                        row.baseline_samples.append(plain.tput(n, size))
                        row.samples.append(secure.tput(n, size))
                    plain_us, tls_us = remote.rt_raw_socket(rounds, warm, tls_env)
                    raw.baseline_samples.append(plain_us * 1e6)
                    raw.samples.append(tls_us * 1e6)

                _repeat(rows, s.reps, [step])
        except BenchError as exc:
            raise BenchError(f"{exc}\n{remote.node_logs(tls_env)}") from None
    return rows


def _spawn(s: Settings) -> List[Row]:
    small = Row("spawn_100", f"spawn {s.spawn_small} actors until all run", "ms", "lower",
                baseline_name=f"bare Process ({s.start_method})",
                target_ratio=1.2 if s.start_method == "fork" else None,
                params={"actors": s.spawn_small})
    large = Row("spawn_1000", f"spawn {s.spawn_large} actors on one node until all run", "ms", "lower",
                baseline_name=f"bare Process ({s.start_method})",
                target_abs=2000.0 * s.spawn_large / 1000, params={"actors": s.spawn_large})
    if s.spawn_large != 1000:
        large.note = f"quick run: {s.spawn_large} actors, target scaled to {large.target_abs:g} ms"
    stops: List[float] = []
    for row, reps in ((small, s.reps), (large, s.spawn_large_reps)):
        n = row.params["actors"]

        def step(row: Row = row, n: int = n) -> None:
            row.baseline_samples.append(local.spawn_raw(n, s.start_method) * 1e3)
            dt, stop = local.spawn_mpactors(n, s.start_method)
            row.samples.append(dt * 1e3)
            if n == s.spawn_large:
                stops.append(stop)

        _repeat([row], reps, [step])
    large.params["node_stop_ms"] = round((median(stops) or 0.0) * 1e3, 1)
    return [small, large]


def _uss(s: Settings) -> List[Row]:
    row = Row("idle_uss", "idle actor USS (memory_full_info().uss)", "MiB", "lower",
              baseline_name=f"bare idle child ({s.start_method})", target_ratio=2.0,
              params={"children": s.uss_children})

    def step() -> None:
        row.baseline_samples.append(local.uss_raw(s.uss_children, s.start_method) / 2**20)
        row.samples.append(local.uss_mpactors(s.uss_children, s.start_method) / 2**20)

    _repeat([row], s.reps, [step])
    return [row]


def _ring(s: Settings) -> List[Row]:
    row = Row("ring", f"ring of {s.ring_n} actors, {s.ring_m} rounds", "msg/s", "higher",
              baseline_name=f"{s.ring_n} bare children + Queues", params={"n": s.ring_n, "m": s.ring_m})

    def step() -> None:
        row.baseline_samples.append(local.ring_raw_queue(s.ring_n, s.ring_m))
        row.samples.append(local.ring_mpactors(s.ring_n, s.ring_m))

    _repeat([row], s.ring_reps, [step])
    return [row]


def _mesh(s: Settings) -> List[Row]:
    row = Row("mesh_16", f"{s.mesh_nodes}-node mesh on one host, fully connected", "s", "lower",
              params={"nodes": s.mesh_nodes},
              note="from 'go' (all nodes started) until every nodes() has all others")

    def step() -> None:
        with remote.cluster_env() as env:
            try:
                row.samples.append(remote.mesh_time(env, s.mesh_nodes))
            except BenchError as exc:
                raise BenchError(f"{exc}\n{remote.node_logs(env)}") from None

    large = Row("mesh_48", f"{s.mesh_large}-node mesh on one host, fully connected", "s", "lower",
                target_abs=5.0, params={"nodes": s.mesh_large},
                note="from 'go' (all nodes started and registered) until every nodes() has all others")
    idle = Row("mesh_48_idle_cpu", f"{s.mesh_large}-node mesh at rest, busiest node's CPU use", "%", "lower",
               target_abs=1.0, params={"nodes": s.mesh_large, "seconds": s.mesh_idle},
               note="percent of one CPU, the node process's threads, after the mesh is complete")

    def step_large() -> None:
        with remote.cluster_env() as env:
            try:
                seconds, cpu = remote.mesh_run(env, s.mesh_large, s.mesh_idle)
            except BenchError as exc:
                raise BenchError(f"{exc}\n{remote.node_logs(env)}") from None
            large.samples.append(seconds)
            idle.samples.append(max(cpu, 1e-6))

    _repeat([row], s.mesh_reps, [step])
    _repeat([large, idle], s.mesh_reps, [step_large])
    return [row, large, idle]


_TIMER_DELAY = 0.02


def _timers(s: Settings) -> List[Row]:
    row = Row("timer_lateness", f"timer lateness on an idle node (send_after {_TIMER_DELAY * 1e3:g} ms, 95th percentile)",
              "ms", "lower", baseline_name="bare child: Connection.poll(timeout)", target_abs=10.0,
              params={"timers": s.timers_n, "delay_ms": _TIMER_DELAY * 1e3},
              note="from before send_after until the actor has the message, one timer at a time")

    def step() -> None:
        row.baseline_samples.append(local.timer_late_raw(s.timers_n, _TIMER_DELAY) * 1e3)
        row.samples.append(local.timer_late_mpactors(s.timers_n, _TIMER_DELAY) * 1e3)

    _repeat([row], s.reps, [step])
    return [row]


def _aio_rows(s: Settings) -> List[Row]:
    rt = Row("aio_rt", "aio round trip, async actor <-> async actor (small)", "us", "lower",
             baseline_name="blocking actors (send/receive)", target_ratio=1.3, params={"rounds": s.rt_rounds})
    calls = Row("aio_call", "aio.call from the main process's event loop, 10 concurrent", "us", "lower",
                baseline_name="blocking genserver.call", params={"calls": s.rt_rounds, "concurrency": 10})
    args = (s.rt_rounds, s.rt_warmup)

    def step() -> None:
        rt.baseline_samples.append(aio_bench.rt_blocking(*args) * 1e6)
        rt.samples.append(aio_bench.rt_aio(*args) * 1e6)
        calls.baseline_samples.append(aio_bench.call_blocking(*args) * 1e6)
        calls.samples.append(aio_bench.call_aio(*args, 10) * 1e6)

    _repeat([rt, calls], s.reps, [step])
    return [rt, calls]


_GROUP_FNS: Dict[str, Callable[[Settings], List[Row]]] = {
    "local_rt": _local_rt, "local_tput": _local_tput, "remote": _remote, "transit": _transit, "fds": _fds,
    "tls": _tls, "spawn": _spawn,
    "uss": _uss, "ring": _ring, "mesh": _mesh, "timers": _timers, "aio": _aio_rows,
}
#: The row ids each group gives, in order (the smoke test checks them all).
GROUP_ROWS: Dict[str, List[str]] = {
    "local_rt": ["local_rt_queue", "local_rt_pipe"],
    "local_tput": [f"local_tput_{k}" for k, _ in _SIZES] + ["local_tput_64k_pipe"] + [f"local_tput_{k}" for k, _ in _LARGE],
    "remote": ["remote_rt", "remote_rt_relay"] + [f"remote_tput_{k}" for k, _ in _REMOTE_SIZES],
    "transit": ["transit_recv", "transit_send"], "fds": ["fds_per_actor"],
    "tls": ["tls_rt"] + [f"tls_tput_{k}" for k, _ in _TLS_SIZES] + ["tls_rt_raw"],
    "spawn": ["spawn_100", "spawn_1000"], "uss": ["idle_uss"], "ring": ["ring"], "mesh": ["mesh_16", "mesh_48", "mesh_48_idle_cpu"],
    "timers": ["timer_lateness"],
    "aio": ["aio_rt", "aio_call"],
}


def _queue_baselines(s: Settings, rows: List[Row]) -> Tuple[float, float]:
    """This run's raw Queue round trip (us) and small throughput, measured now if not yet."""
    by_id = {r.id: r for r in rows}
    q_rt, q_tput = by_id.get("local_rt_queue"), by_id.get("local_tput_small")
    if q_rt is not None and q_rt.baseline:
        rt = q_rt.baseline
    else:
        rt = median([local.rt_raw_queue(s.rt_rounds, s.rt_warmup) * 1e6 for _ in range(s.reps)]) or 0.0
    if q_tput is not None and q_tput.baseline:
        tput = q_tput.baseline
    else:
        tput = median([local.tput_raw_queue(s.tput["small"], 0) for _ in range(s.reps)]) or 0.0
    return rt, tput


def _peer_rows(s: Settings, peer: str, baselines: Tuple[float, float]) -> List[Row]:
    """Round trip and small throughput of ``peer``, against this run's raw Queue figures."""
    kind = PEERS[peer]
    rt = Row(f"{peer}_rt", f"{peer} ({kind}): round trip, actor <-> actor (small)", "us", "lower",
             baseline_name="2 raw Queues", baseline=baselines[0], params={"rounds": s.peer_rounds})
    tput = Row(f"{peer}_tput_small", f"{peer} ({kind}): one-way throughput (small)", "msg/s", "higher",
               baseline_name="raw Queue", baseline=baselines[1], params={"messages": s.peer_n})
    _progress(f"{peer}: {s.reps} repetitions")
    sub = Sub(PEER_CODE, [peer, str(s.peer_rounds), str(s.peer_n), str(s.reps)])
    try:
        result = sub.recv(WAIT * 2, what=f"the {peer} figures")
    finally:
        sub.close()
    if "skipped" in result:
        rt.note = tput.note = f"skipped: {result['skipped']}"
    else:
        rt.params["version"] = tput.params["version"] = result.get("version", "?")
        rt.name, tput.name = (r.name.replace(f"{peer} (", f"{peer} {result.get('version', '')} (") for r in (rt, tput))
        rt.samples = [v * 1e6 for v in result["rt"]]
        tput.samples = list(result["tput"])
        rt.value, tput.value = median(rt.samples), median(tput.samples)
    return [rt, tput]


# -- running and reporting ----------------------------------------------------------------
def run(settings: Settings, groups: Sequence[str] = GROUPS, peers: Sequence[str] = ()) -> List[Row]:
    """Run the chosen groups (and peers); a group that fails gives rows with ``error`` set."""
    rows: List[Row] = []
    baselines = (0.0, 0.0)
    for group in groups:
        try:
            got = _GROUP_FNS[group](settings)
            _finish(got)
        except Exception as exc:  # noqa: BLE001 - one failed group must not lose the others
            why = f"{type(exc).__name__}: {exc}"
            got = [Row(rid, rid.replace("_", " "), "", "lower", error=why) for rid in GROUP_ROWS[group]]
            _progress(f"{group} FAILED: {why}")
        rows.extend(got)
    if peers:
        try:
            baselines = _queue_baselines(settings, rows)
        except Exception as exc:  # noqa: BLE001 - the peers' own figures still count
            _progress(f"raw Queue baselines for the peers FAILED: {type(exc).__name__}: {exc}")
    for peer in peers:
        try:
            rows.extend(_peer_rows(settings, peer, baselines))
        except Exception as exc:  # noqa: BLE001
            why = f"{type(exc).__name__}: {exc}"
            rows.extend(Row(f"{peer}_{x}", f"{peer}: {x}", "", "lower", error=why) for x in ("rt", "tput_small"))
    return rows


def _stop_mp_helpers() -> None:
    """Stop the fork server and resource tracker that multiprocessing starts on demand.

    They would end with this process anyway; stopping them first keeps the
    final sweep for processes that really were left behind. (``_stop`` is
    what CPython's own tests call.)
    """
    from multiprocessing import forkserver, resource_tracker

    helpers: List[Any] = [forkserver._forkserver, resource_tracker._resource_tracker]
    for helper in helpers:
        try:
            helper._stop()
        except Exception:  # noqa: BLE001 - best effort: the sweep below still runs
            pass


#: Set to a value private to the run; every process the run starts inherits it.
_RUN_VARIABLE = "MPACTORS_BENCH_RUN"


def _leftovers() -> List[str]:
    """Kill and name any process of ours still alive (there should be none).

    Ours are this process's descendants and, detached ones included, the
    processes carrying this run's ``MPACTORS_BENCH_RUN`` (no other run's).
    """
    import psutil

    _stop_mp_helpers()
    me, run_id = psutil.Process(), os.environ.get(_RUN_VARIABLE)
    procs = {p.pid: p for p in me.children(recursive=True)}
    if run_id:
        for p in psutil.process_iter():
            try:
                if p.pid != me.pid and p.environ().get(_RUN_VARIABLE) == run_id:
                    procs.setdefault(p.pid, p)
            except psutil.Error:  # gone, or not ours to read
                pass
    found = []
    for p in procs.values():
        try:
            found.append(f"{p.pid} {' '.join(p.cmdline()).strip()[:80]}")
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(list(procs.values()), timeout=10)
    return found


def _on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`: processes get stopped


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mpactors.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run for CI (< 60 s)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--peers", default="", help=f"comma-separated other libraries: {', '.join(PEERS)}")
    parser.add_argument("--only", default="", help=f"comma-separated groups: {', '.join(GROUPS)}")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per figure (default 5; quick 2)")
    parser.add_argument("--start-method", default="fork", choices=("fork", "forkserver", "spawn"),
                        help="start method of the spawn and USS benchmarks, for actors and bare children alike "
                             "(default %(default)s)")
    args = parser.parse_args(argv)
    for name, allowed in (("peers", PEERS), ("only", GROUPS)):
        bad = [x for x in getattr(args, name).split(",") if x and x not in allowed]
        if bad:
            parser.error(f"--{name}: unknown {', '.join(bad)} (choose from {', '.join(allowed)})")
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the suite; exit status 1 if a benchmark failed (a missed target is not a failure)."""
    args = _parse(argv)
    os.environ[_RUN_VARIABLE] = f"{os.getpid()}-{secrets.token_hex(8)}"
    signal.signal(signal.SIGTERM, _on_sigterm)
    raise_fd_limit()
    make = Settings.quick_run if args.quick else Settings.full
    settings = make(args.start_method)
    if args.reps is not None:
        settings.reps = args.reps
    groups = [g for g in GROUPS if not args.only or g in args.only.split(",")]
    peers = [p for p in args.peers.split(",") if p]
    info = machine()
    started = time.monotonic()
    try:
        rows = run(settings, groups, peers)
    finally:
        leftovers = _leftovers()
        if leftovers:
            _progress(f"killed processes left behind: {leftovers}")
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    info["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        out = {"machine": info, "quick": settings.quick, "start_method": settings.start_method,
               "reps": settings.reps, "rows": [r.to_json() for r in rows], "leftover_processes": leftovers}
        print(json.dumps(out, indent=2))
    else:
        commit = f" at {info['commit']}" if info["commit"] else ""
        print(f"# mpactors benchmarks{commit}{' (quick)' if settings.quick else ''}: {info['nproc']} CPUs, {info['cpu']}, "
              f"Python {info['python']}, start method {settings.start_method}, medians of {settings.reps} "
              f"(load average {info['loadavg'][0]} -> {info['loadavg_end'][0]}, {info['seconds']} s)\n")
        print(table(rows))
    return 1 if any(r.error for r in rows) or leftovers else 0

