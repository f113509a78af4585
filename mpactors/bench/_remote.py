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
from multiprocessing.reduction import ForkingPickler
from typing import Any, Dict, Iterator, List

from ._local import payload_of
from ._util import WAIT, BenchError, Sub, die_with_parent, per_round, running, wait_conn

__all__ = [
    "cluster_env", "RemotePair", "mesh_time", "mesh_run", "cpu_ns", "rt_raw_tcp", "tput_raw_tcp", "rt_raw_relay", "node_main",
    "node_logs", "rss_kib", "reset_peak", "rt_raw_socket",
]

_NODE_CODE = "import sys; from mpactors.bench._remote import node_main; sys.exit(node_main(sys.argv[1:]))"
_EPMD_START_TIMEOUT = 15.0
_now = time.perf_counter


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def cluster_env(tls: bool = False) -> Iterator[Dict[str, str]]:
    """A private port mapper, cookie and ``MPACTORS_HOME``; yields the environment for nodes.

    With ``tls``, the environment also holds ``MPACTORS_TLS_*``: a CA and a
    node certificate made with ``openssl`` in the private home (see
    :mod:`mpactors.bench._tls`), so the nodes talk mutual TLS.
    """
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
        env = {"MPACTORS_EPMD_PORT": str(port), "MPACTORS_COOKIE": secrets.token_hex(16), "MPACTORS_HOME": home}
        if tls:
            from ._tls import make_certs

            env.update(make_certs(os.path.join(home, "tls")))
        yield env
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

    def transit(self, size: int) -> Dict[str, float]:
        """Peak RSS rise (bytes) of node ``a`` and node ``b`` while one ``size``-byte message goes a -> b.

        The message is made by an actor of ``a`` and received by an actor of
        ``b``: the figures are the two node processes alone (router, socket,
        reader, delivery), not the actors at either end. The peak is reset
        first (``/proc/PID/clear_refs``), so each figure is the highest RSS
        during the transfer minus the RSS just before it.
        """
        pids = {"send": self.a.proc.pid, "recv": self.b.proc.pid}
        self.a.send({"op": "transit_prepare", "peer": self.b_name, "size": size})
        self.a.recv(what="the transit actors")
        before = {}
        for key, pid in pids.items():
            reset_peak(pid)
            before[key] = rss_kib(pid)["VmRSS"]
        self.a.send({"op": "transit_go"})
        self.a.recv(what="the 64 MiB message to arrive")
        return {key: (rss_kib(pid)["VmHWM"] - before[key]) * 1024.0 for key, pid in pids.items()}


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
    return mesh_run(env, n, 0.0, timeout)[0]


def mesh_run(env: Dict[str, str], n: int, idle: float, timeout: float = WAIT) -> "tuple[float, float]":
    """:func:`mesh_time`, and then the busiest node's CPU use (percent of one CPU) over ``idle`` s of quiet.

    Every node has started and registered with the port mapper before 'go'.
    The CPU figure is the node process's threads' time on a CPU
    (``/proc/PID/task/*/schedstat``), not its actors' (it has none).
    """
    names = [f"mesh{i}" for i in range(n)]
    with _nodes(env, [("mesh", name, names[0], str(n)) for name in names]) as nodes:
        full = [s.recv(timeout, what="a mesh node to start")["ready"] for s in nodes]
        seed = full[0]
        t0 = time.monotonic()
        for s in nodes:
            s.send({"op": "go", "seed": seed})
        done = [s.recv(timeout, what="a mesh node to see every other node") for s in nodes]
        cpu = 0.0
        if idle > 0:
            time.sleep(0.5)  # the last NodeUp messages and 'peers' lists settle
            before = [cpu_ns(s.proc.pid) for s in nodes]
            start = time.monotonic()
            time.sleep(idle)
            after = [cpu_ns(s.proc.pid) for s in nodes]
            wall = time.monotonic() - start
            cpu = max(b - a for a, b in zip(before, after)) / 1e9 / wall * 100
    return max(d["full"] for d in done) - t0, cpu


def cpu_ns(pid: int) -> int:
    """Nanoseconds every thread of process ``pid`` has spent on a CPU (Linux ``schedstat``)."""
    total = 0
    task = f"/proc/{pid}/task"
    for tid in os.listdir(task):
        try:
            with open(f"{task}/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


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
        elif op == "transit_prepare":
            transit = _Transit(cmd["peer"], cmd["size"])
            _out({"ok": True})
        elif op == "transit_go":
            _out({"value": transit.go()})


def _transit_sink(report_to: Any) -> None:
    import mpactors

    mpactors.send(report_to, ("sink", mpactors.self()))
    msg = mpactors.receive()
    mpactors.send(report_to, ("got", len(msg)))


def _transit_source(size: int, report_to: Any) -> None:
    import mpactors

    payload = bytes(size)
    mpactors.send(report_to, ("source", mpactors.self()))
    dest = mpactors.receive()
    mpactors.send(dest, payload)
    del payload
    mpactors.receive()  # stay alive until the benchmark is done


class _Transit:
    """One big message from an actor of this node to an actor of ``peer``, on command."""

    def __init__(self, peer: str, size: int) -> None:
        import mpactors

        me = mpactors.self()
        self.size = size
        self.sink = mpactors.spawn(_transit_sink, me, node=peer)
        self.source = mpactors.spawn(_transit_source, size, me)
        mpactors.receive(("sink", object), timeout=WAIT)
        mpactors.receive(("source", object), timeout=WAIT)

    def go(self) -> int:
        import mpactors

        mpactors.send(self.source, self.sink)
        _, n = mpactors.receive(("got", int), timeout=WAIT)
        mpactors.send(self.source, "done")
        if n != self.size:
            raise BenchError(f"the sink got {n} bytes, not {self.size}")
        return int(n)


def rss_kib(pid: int) -> Dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
    return out


def reset_peak(pid: int) -> None:
    """Reset a process's peak RSS to its current RSS (Linux: ``5`` into ``clear_refs``)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


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


# -- the raw 3-hop relay: the floor of our topology ------------------------------------
_STOP = bytes(ForkingPickler.dumps(None))  # what Connection.send(None) writes: the relays stop after it


def _pump(src: Any, dst: Any) -> None:
    while True:
        data = src.recv_bytes()
        dst.send_bytes(data)
        if data == _STOP:
            return


def _relay_node(listen: bool, addr: Any, authkey: bytes, from_actor: Any, to_actor: Any) -> None:
    """A raw node: one thread actor pipe -> TCP, one thread TCP -> actor pipe."""
    import threading

    if listen:
        with Listener(("127.0.0.1", 0), authkey=authkey) as listener:
            addr.send(listener.address)
            tcp = listener.accept()
    else:
        tcp = Client(addr, authkey=authkey)
    with tcp:
        threads = [threading.Thread(target=_pump, args=(from_actor, tcp)),
                   threading.Thread(target=_pump, args=(tcp, to_actor))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def _relay_echo(inbox: Any, outbox: Any) -> None:
    while True:
        x = inbox.recv()
        outbox.send(x)
        if x is None:
            return


def _relay_ping(inbox: Any, outbox: Any, rounds: int, warmup: int, result: Any) -> None:
    def one(i: int) -> None:
        outbox.send(i)
        inbox.recv()

    seconds = per_round(one, rounds, warmup)
    outbox.send(None)
    inbox.recv()
    result.send(seconds)


def rt_raw_relay(rounds: int, warmup: int) -> float:
    """Seconds per round trip through the raw relay of our topology.

    actor A -> pipe -> node A (thread) -> TCP + authkey -> node B (thread) ->
    pipe -> actor B, and back the same way: four processes, each node with a
    forwarding thread per direction, ``multiprocessing.connection`` and
    nothing else (no framing, batching, routing or pickling in the nodes).
    This is the floor of a design where actors hand messages to a node
    thread that owns the socket.
    """
    ctx = multiprocessing.get_context("fork")
    authkey = secrets.token_bytes(16)
    a_in_r, a_in_w = ctx.Pipe(duplex=False)  # node A -> actor A
    a_out_r, a_out_w = ctx.Pipe(duplex=False)  # actor A -> node A
    b_in_r, b_in_w = ctx.Pipe(duplex=False)
    b_out_r, b_out_w = ctx.Pipe(duplex=False)
    addr_r, addr_w = ctx.Pipe(duplex=False)
    res_r, res_w = ctx.Pipe(duplex=False)
    node_b = ctx.Process(target=_relay_node, args=(True, addr_w, authkey, b_out_r, b_in_w))
    echo = ctx.Process(target=_relay_echo, args=(b_in_r, b_out_w))
    with running([node_b, echo]):
        address = wait_conn(addr_r, what="the relay's address")
        node_a = ctx.Process(target=_relay_node, args=(False, address, authkey, a_out_r, a_in_w))
        ping = ctx.Process(target=_relay_ping, args=(a_in_r, a_out_w, rounds, warmup, res_w))
        with running([node_a, ping]):
            return float(wait_conn(res_r))


# -- raw sockets, plain and mutual TLS -----------------------------------------------------
def _contexts(env: Dict[str, str]) -> Any:
    import ssl

    cert, key, ca = env["MPACTORS_TLS_CERT"], env["MPACTORS_TLS_KEY"], env["MPACTORS_TLS_CA"]
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for ctx in (server, client):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return server, client


def _recv_exact(sock: Any, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise EOFError
        buf += part
    return bytes(buf)


def _sock_echo(listener: Any, ctx: Any) -> None:
    conn, _ = listener.accept()
    listener.close()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ctx is not None:
        conn = ctx.wrap_socket(conn, server_side=True)
    with conn:
        while True:
            n = int.from_bytes(_recv_exact(conn, 4), "big")
            data = _recv_exact(conn, n)
            conn.sendall(n.to_bytes(4, "big") + data)
            if data == _STOP:
                return


def _sock_ping(address: Any, ctx: Any, rounds: int, warmup: int, result: Any) -> None:
    import pickle

    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ctx is not None:
        sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    with sock:
        def one(x: Any) -> None:
            data = pickle.dumps(x)
            sock.sendall(len(data).to_bytes(4, "big") + data)
            n = int.from_bytes(_recv_exact(sock, 4), "big")
            pickle.loads(_recv_exact(sock, n))

        seconds = per_round(one, rounds, warmup)
        sock.sendall(len(_STOP).to_bytes(4, "big") + _STOP)
        _recv_exact(sock, 4 + len(_STOP))
    result.send(seconds)


def rt_raw_socket(rounds: int, warmup: int, tls_env: Dict[str, str]) -> "tuple[float, float]":
    """Seconds per round trip over a raw TCP socket: plain, then mutual TLS with ``tls_env``'s certificates."""
    ctx = multiprocessing.get_context("fork")
    server_ctx, client_ctx = _contexts(tls_env)
    out = []
    for sctx, cctx in ((None, None), (server_ctx, client_ctx)):
        listener = socket.create_server(("127.0.0.1", 0))
        res_r, res_w = ctx.Pipe(duplex=False)
        try:
            server = ctx.Process(target=_sock_echo, args=(listener, sctx))
            with running([server]):
                client = ctx.Process(target=_sock_ping, args=(listener.getsockname(), cctx, rounds, warmup, res_w))
                with running([client]):
                    out.append(float(wait_conn(res_r)))
        finally:
            listener.close()
    return out[0], out[1]


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
