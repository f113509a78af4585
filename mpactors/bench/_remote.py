"""Remote benchmarks: nodes in subprocesses on one host, against raw authenticated TCP.

:func:`cluster_env` starts a private port mapper (``python -m mpactors.epmd``
on a free loopback port) with a private ``MPACTORS_HOME`` and cookie, and
kills it at the end. :class:`RemotePair` runs two node subprocesses: ``a``
measures, on command, between one of its actors and one it spawns on ``b``.
:func:`mesh_time` starts 16 node subprocesses that each ping one seed and
reports how long until every one of them sees all the others.

Node subprocesses run :func:`node_main` and speak JSON lines: commands on
stdin, answers on stdout (see :class:`mpactors.bench._util.Sub`). A node ends
when its stdin closes; :class:`~mpactors.bench._util.Sub` kills its process
group if it does not.

The baselines are ``multiprocessing.connection`` ``Listener``/``Client`` with
an ``authkey`` on TCP loopback, between two children of the benchmark.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Client, Listener
from typing import Any, Dict, Iterator, List

from ._local import payload_of
from ._util import WAIT, BenchError, Sub, die_with_parent, running, wait_conn

__all__ = ["cluster_env", "RemotePair", "mesh_time", "rt_raw_tcp", "tput_raw_tcp", "node_main", "node_logs"]

_NODE_CODE = "import sys; from mpactors.bench._remote import node_main; sys.exit(node_main(sys.argv[1:]))"
_EPMD_START_TIMEOUT = 15.0
_now = time.perf_counter


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def cluster_env() -> Iterator[Dict[str, str]]:
    """A private port mapper, cookie and ``MPACTORS_HOME``; yields the environment for nodes."""
    from .. import epmd

    port = _free_port()
    home = tempfile.mkdtemp(prefix="mpactors-bench-")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpactors.epmd", "--port", str(port), "--host", "127.0.0.1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=die_with_parent,
    )
    try:
        deadline = time.monotonic() + _EPMD_START_TIMEOUT
        while not epmd.is_running(port=port, timeout=0.5):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the port mapper on port {port} did not start")
            time.sleep(0.02)
        yield {"MPACTORS_EPMD_PORT": str(port), "MPACTORS_COOKIE": secrets.token_hex(16), "MPACTORS_HOME": home}
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(home, ignore_errors=True)


def _start_node(env: Dict[str, str], *args: str) -> Sub:
    log = open(os.path.join(env["MPACTORS_HOME"], f"{args[1]}.log"), "ab")
    try:
        return Sub(_NODE_CODE, args, env=env, stderr=log)
    finally:
        log.close()  # the subprocess has its own copy


# -- a pair of nodes ---------------------------------------------------------------
class RemotePair:
    """Two node subprocesses; ``a`` measures against ``b`` on command."""

    def __init__(self, env: Dict[str, str]) -> None:
        self._env = env
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> RemotePair:
        nodes = self._stack.enter_context(_nodes(self._env, [("serve", "bencha"), ("serve", "benchb")]))
        self.a, self.b = nodes
        self.a_name = self.a.recv(what="node a to start")["ready"]
        self.b_name = self.b.recv(what="node b to start")["ready"]
        self.a.send({"op": "connect", "peer": self.b_name})
        self.a.recv(what="node a to connect to b")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def rt(self, rounds: int, warmup: int) -> float:
        """Seconds per round trip, actor on ``a`` <-> actor on ``b``."""
        self.a.send({"op": "rt", "peer": self.b_name, "rounds": rounds, "warmup": warmup})
        return float(self.a.recv(what="the remote round trip")["value"])

    def tput(self, n: int, size: int) -> float:
        """Messages per second, actor on ``a`` -> actor on ``b``."""
        self.a.send({"op": "tput", "peer": self.b_name, "n": n, "size": size})
        return float(self.a.recv(what="the remote throughput")["value"])


@contextlib.contextmanager
def _nodes(env: Dict[str, str], specs: List[tuple]) -> Iterator[List[Sub]]:
    started: List[Sub] = []
    try:
        for spec in specs:
            started.append(_start_node(env, *spec))
        yield started
    finally:
        for s in started:  # close every stdin first: the nodes stop in parallel
            try:
                if s.proc.stdin is not None:
                    s.proc.stdin.close()
            except OSError:
                pass
        for s in started:
            s.close()


# -- the mesh ------------------------------------------------------------------------
def mesh_time(env: Dict[str, str], n: int, timeout: float = WAIT) -> float:
    """Seconds from 'go' until each of ``n`` fresh nodes has ``n - 1`` entries in ``nodes()``."""
    names = [f"mesh{i}" for i in range(n)]
    with _nodes(env, [("mesh", name, names[0], str(n)) for name in names]) as nodes:
        full = [s.recv(timeout, what="a mesh node to start")["ready"] for s in nodes]
        seed = full[0]
        t0 = time.monotonic()
        for s in nodes:
            s.send({"op": "go", "seed": seed})
        done = [s.recv(timeout, what="a mesh node to see every other node") for s in nodes]
    return max(d["full"] for d in done) - t0


# -- the node subprocess ----------------------------------------------------------------
def _out(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def node_main(argv: List[str]) -> int:
    """Entry point of a node subprocess: ``serve NAME`` or ``mesh NAME SEED N``."""
    import mpactors

    role, name = argv[0], argv[1]
    try:
        with mpactors.Node(name) as node:
            _out({"ready": node.name})
            if role == "serve":
                _serve()
            else:
                _mesh_member(node.name, int(argv[3]))
    except Exception as exc:  # noqa: BLE001 - reported to the benchmark
        _out({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


def _serve() -> None:
    import mpactors

    from ._local import rt_actors, tput_actors

    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "connect":
            if mpactors.ping(cmd["peer"]) != "pong":
                raise BenchError(f"cannot reach {cmd['peer']}")
            _out({"ok": True})
        elif op == "rt":
            _out({"value": rt_actors(cmd["rounds"], cmd["warmup"], node=cmd["peer"])})
        elif op == "tput":
            _out({"value": tput_actors(cmd["n"], cmd["size"], node=cmd["peer"])})


def _mesh_member(me: str, n: int) -> None:
    import mpactors

    mpactors.monitor_nodes(True)
    cmd = json.loads(sys.stdin.readline() or "{}")
    if cmd.get("op") != "go":
        return
    seed = cmd["seed"]
    deadline = time.monotonic() + WAIT
    if me != seed:
        while mpactors.ping(seed) != "pong":
            if time.monotonic() > deadline:
                raise BenchError(f"{me} cannot reach the seed {seed}")
            time.sleep(0.05)
    while len(mpactors.nodes()) < n - 1:
        if time.monotonic() > deadline:
            raise BenchError(f"{me} sees only {len(mpactors.nodes())} of {n - 1} nodes")
        try:
            mpactors.receive(mpactors.NodeUp, timeout=0.2)
        except mpactors.Timeout:
            pass
    _out({"full": time.monotonic(), "nodes": len(mpactors.nodes())})
    sys.stdin.read()  # until the benchmark closes our stdin


# -- raw authenticated TCP baselines ----------------------------------------------------
def _tcp_server(addr_out: Any, authkey: bytes, mode: str, n: int) -> None:
    with Listener(("127.0.0.1", 0), authkey=authkey) as listener:
        addr_out.send(listener.address)
        with listener.accept() as conn:
            if mode == "echo":
                while True:
                    x = conn.recv()
                    if x is None:
                        return
                    conn.send(x)
            else:
                for _ in range(n):
                    conn.recv()
                conn.send(_now())


def _tcp_ping(address: Any, authkey: bytes, rounds: int, warmup: int, result: Any) -> None:
    with Client(address, authkey=authkey) as conn:
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


def _tcp_source(address: Any, authkey: bytes, n: int, size: int, result: Any) -> None:
    payload = payload_of(size)
    with Client(address, authkey=authkey) as conn:
        t0 = _now()
        for _ in range(n):
            conn.send(payload)
        t1 = conn.recv()
    result.send(n / (t1 - t0))


def _tcp_pair(mode: str, n: int, client: Any, client_args: tuple) -> float:
    ctx = multiprocessing.get_context("fork")
    authkey = secrets.token_bytes(16)
    addr_r, addr_w = ctx.Pipe(duplex=False)
    res_r, res_w = ctx.Pipe(duplex=False)
    server = ctx.Process(target=_tcp_server, args=(addr_w, authkey, mode, n))
    with running([server]):
        address = wait_conn(addr_r, what="the server's address")
        with running([ctx.Process(target=client, args=(address, authkey, *client_args, res_w))]):
            return float(wait_conn(res_r))


def rt_raw_tcp(rounds: int, warmup: int) -> float:
    """Seconds per round trip over ``multiprocessing.connection`` with ``authkey`` (TCP loopback)."""
    return _tcp_pair("echo", 0, _tcp_ping, (rounds, warmup))


def tput_raw_tcp(n: int, size: int) -> float:
    """Messages per second with one ``Client.send`` per message (TCP loopback, ``authkey``)."""
    return _tcp_pair("sink", n, _tcp_source, (n, size))


def node_logs(env: Dict[str, str], limit: int = 1500) -> str:
    """The tails of the node logs of this run (for the message of a failed benchmark)."""
    home = env.get("MPACTORS_HOME", "")
    if not os.path.isdir(home):
        return ""
    out = []
    for name in sorted(os.listdir(home)):
        if name.endswith(".log"):
            with open(os.path.join(home, name), errors="replace") as f:
                text = f.read()[-limit:].strip()
            if text:
                out.append(f"--- {name}\n{text}")
    return "\n".join(out)
