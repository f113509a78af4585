"""Deployment options on loopback: port_range, interface, dist_port, seeds, re-registration,
code by value, graceful stops, pang reasons (SPEC Part 2, "Deployment across machines").

Loopback has a whole /8: nodes that must sit on "different hosts" with the
same port (``dist_port``) use 127.0.0.2, 127.0.0.3, ... as their interface and
host. The multi-host versions run in network namespaces (test_deploy_hosts).
"""
from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import psutil
import pytest
from nodes import TEST_COOKIE, cluster, cookie, local_node, run_node, unique_name  # noqa: F401
from support import LONG_TIMEOUT, SHORT_TIMEOUT, free_port, wait_until

import mpactors
from mpactors import epmd

pytestmark = pytest.mark.timeout(90)


def _listening(port: int) -> List[str]:
    """Addresses some process listens on ``port`` at."""
    return [c.laddr.ip for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == port]


def _port_mappers(port: int) -> List[int]:
    """OS pids of port mappers started for ``port`` (by anyone), by command line or process title."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        # Before its title is set it is `python -m mpactors.epmd ... PORT`, after it `mpactors epmd port PORT`.
        if ("mpactors.epmd" in cmd and str(port) in cmd) or " ".join(cmd).split() == ["mpactors", "epmd", "port", str(port)]:
            out.append(p.pid)
    return out


# -- port_range ---------------------------------------------------------------------
def test_a_node_listens_on_the_first_free_port_of_its_range(cluster: int) -> None:
    lo = free_port()
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", lo))
        taken.listen()
        with local_node("range", port_range=(lo, lo + 3)) as node:
            assert node.kernel is not None
            port = epmd.port_please(node.name.partition("@")[0])
            assert port == lo + 1


def test_a_full_port_range_is_a_node_error_naming_the_range(cluster: int, monkeypatch: pytest.MonkeyPatch) -> None:
    lo = free_port()
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", lo))
        taken.listen()
        monkeypatch.setenv("MPACTORS_PORT_RANGE", f"{lo}-{lo}")
        with pytest.raises(mpactors.NodeError, match=f"no free port in port_range {lo}-{lo}"):
            mpactors.Node(unique_name("full")).start()
    # Nothing was left half-started: the same name works now.
    with local_node("after") as node:
        assert node.alive


# -- interface ------------------------------------------------------------------------
def test_a_node_listens_on_its_interface_only(cluster: int) -> None:
    with local_node("iface", interface="127.0.0.1") as node:
        port = epmd.port_please(node.name.partition("@")[0])
        assert port is not None
        assert _listening(port) == ["127.0.0.1"]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.9", port), timeout=SHORT_TIMEOUT).close()


def test_an_interface_no_address_of_this_host_has_is_a_node_error(cluster: int) -> None:
    with pytest.raises(mpactors.NodeError, match="no interface has that address"):
        mpactors.Node(unique_name("noif"), interface="192.0.2.77").start()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"port_range": (9000, 8000)}, "lo <= hi"),
        ({"port_range": "abc"}, "LO-HI"),
        ({"port_range": (0, 10)}, "port number"),
        ({"interface": "eth0"}, "IPv4 address"),
        ({"dist_port": 70000}, "port number"),
        ({"dist_port": 9100, "port_range": (9100, 9101)}, "exclude each other"),
        ({"seeds": ["nohost"]}, "node name"),
        ({"seeds": "a@dns:"}, "needs a host"),
        ({"seeds": 5}, "list of node names"),
    ],
)
def test_bad_deployment_options_are_refused_when_the_node_is_made(kwargs: dict, match: str) -> None:
    with pytest.raises(mpactors.BadArg, match=match):
        mpactors.Node("bad", **kwargs)
    with pytest.raises(mpactors.BadArg, match="need a named node"):
        mpactors.Node(None, **kwargs)


def test_bad_deployment_variables_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPACTORS_DIST_PORT", "http")
    with pytest.raises(mpactors.BadArg, match="dist_port"):
        mpactors.Node("bad")
    monkeypatch.delenv("MPACTORS_DIST_PORT")
    monkeypatch.setenv("MPACTORS_SHUTDOWN_TIMEOUT", "soon")
    from mpactors import config

    with pytest.raises(ValueError, match="MPACTORS_SHUTDOWN_TIMEOUT"):
        config.shutdown_timeout()


# -- dist_port: no port mapper at all ---------------------------------------------------
@pytest.fixture
def no_port_mapper(monkeypatch: pytest.MonkeyPatch, cookie: str, tmp_path: object) -> Iterator[int]:
    """``MPACTORS_EPMD_PORT`` pointing at a port where nothing runs, and a ``dist_port``; yields it."""
    epmd_port = free_port()
    monkeypatch.setenv("MPACTORS_EPMD_PORT", str(epmd_port))
    monkeypatch.setenv("MPACTORS_HOME", str(tmp_path))
    yield free_port()
    # Neither the test's nodes nor anything they ran started a port mapper.
    assert _port_mappers(epmd_port) == []
    assert _listening(epmd_port) == []


def test_a_dist_port_cluster_runs_without_any_port_mapper(no_port_mapper: int) -> None:
    port = no_port_mapper
    env = {"MPACTORS_DIST_PORT": str(port), "MPACTORS_INTERFACE": "127.0.0.2"}
    with run_node("dp@127.0.0.2", env=env) as b:
        assert _listening(port) == ["127.0.0.2"]
        with mpactors.Node("me@127.0.0.3", interface="127.0.0.3", dist_port=port):
            assert mpactors.ping(b.name) == "pong"
            assert mpactors.rpc.call(b.name, "mpactors:node") == b.name
            assert b.call("mpactors.ping('me@127.0.0.3')") == "pong"
        assert not epmd.is_running(timeout=0.5)


def test_the_cli_reaches_a_dist_port_node_without_a_port_mapper(no_port_mapper: int) -> None:
    port = no_port_mapper
    env = {"MPACTORS_DIST_PORT": str(port), "MPACTORS_INTERFACE": "127.0.0.2"}
    with run_node("cli@127.0.0.2", env=env) as b:
        import os

        full_env = dict(os.environ, MPACTORS_DIST_PORT=str(port))
        done = subprocess.run([sys.executable, "-m", "mpactors", "rpc", b.name, "mpactors:node"],
                              env=full_env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == repr(b.name)


# -- code of the script (__main__) travels by value ---------------------------------------
SCRIPT = '''
import json, sys, threading
import mpactors
from mpactors import rpc, genserver, supervisor

OFFSET = 100

def add(x):
    return x + OFFSET

class Point:
    def __init__(self, x):
        self.x = x
    def moved(self):
        return Point(add(self.x))

def report(parent, x):
    mpactors.send(parent, ("report", mpactors.node(), add(x)))

def make_closure(n):
    def inner():
        return add(n) * 2
    return inner

class Counter(genserver.GenServer):
    def init(self, start):
        self.n = start
    def handle_call(self, request, frm):
        self.n = add(self.n) if request == "add" else self.n
        return Point(self.n)

# The guard: under forkserver and spawn, a local actor (the supervisor) runs this file again.
if __name__ == "__main__":
    other = sys.argv[1]
    out = {}
    with mpactors.Node(sys.argv[2]):
        me = mpactors.self()
        mpactors.spawn(report, me, 1, node=other)
        out["spawn"] = list(mpactors.receive(lambda m: m[0] == "report", timeout=20)[1:])
        out["rpc"] = rpc.call(other, add, 2, timeout=20)
        out["closure"] = rpc.call(other, make_closure(3), timeout=20)
        out["class"] = rpc.call(other, lambda: Point(4).moved().x, timeout=20)
        out["instance"] = rpc.call(other, Point.moved, Point(5), timeout=20).x
        server = Counter.start(1, node=other)
        out["genserver"] = [genserver.call(server, "add").x, server.node]
        genserver.stop(server)
        sup = supervisor.Supervisor.start_link([supervisor.ChildSpec("c", Counter, (7,), node=other)])
        child = supervisor.which_children(sup)[0][1]
        out["supervised"] = [genserver.call(child, "get").x, child.node]
        genserver.stop(sup)
        numbers = (i for i in range(3))  # a generator: neither pickle nor dill can send it
        try:
            mpactors.spawn(lambda: next(numbers), node=other)
            out["unsendable"] = "sent"
        except mpactors.BadArg as exc:
            out["unsendable"] = str(exc)
    print(json.dumps(out), flush=True)
'''


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_functions_and_classes_of_the_script_travel_by_value(cluster: int, tmp_path: object, method: str) -> None:
    import os
    from pathlib import Path

    script = Path(str(tmp_path)) / "app.py"
    script.write_text(SCRIPT)
    with run_node(importable=False) as b:
        # The supervisor is a local actor: under forkserver and spawn it runs
        # the script as __mp_main__, whose code must still travel by value.
        done = subprocess.run([sys.executable, str(script), b.name, unique_name("app")],
                              capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, MPACTORS_START_METHOD=method))
    assert done.returncode == 0, done.stderr
    import json

    out = json.loads(done.stdout.splitlines()[-1])
    assert out["spawn"] == [b.name, 101]
    assert out["rpc"] == 102
    assert out["closure"] == 206
    assert out["class"] == 104
    assert out["instance"] == 105
    assert out["genserver"] == [101, b.name]
    assert out["supervised"] == [7, b.name]
    assert "cannot pickle" in out["unsendable"] and "generator" in out["unsendable"]


def test_a_callable_the_other_node_cannot_load_fails_at_the_caller(cluster: int, tmp_path: object) -> None:
    from pathlib import Path

    module = Path(str(tmp_path)) / "only_here_mod.py"
    module.write_text("def work():\n    return 'worked'\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import only_here_mod  # type: ignore[import-not-found]

        with run_node(importable=False) as b, local_node("loader"):
            with pytest.raises(mpactors.BadArg, match="cannot load .*No module named 'only_here_mod'"):
                mpactors.spawn(only_here_mod.work, node=b.name)
            with pytest.raises(mpactors.BadArg, match="No module named 'only_here_mod'"):
                mpactors.rpc.call(b.name, only_here_mod.work, timeout=SHORT_TIMEOUT)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("only_here_mod", None)


# -- seeds ---------------------------------------------------------------------------------
def test_seeds_connect_at_start_and_again_after_the_seed_comes_back_without_any_ping(cluster: int) -> None:
    from mpactors.messages import NodeDown, NodeUp

    name = f"{unique_name('seed')}@127.0.0.1"
    # A DNS seed: 'localhost' resolves to 127.0.0.1 (the node's own name is left out).
    with local_node("keeper", seeds=[f"{name.partition('@')[0]}@dns:localhost"], ticktime=2):
        mpactors.monitor_nodes(True)
        with run_node(name):  # the seed starts after us: found within the backoff
            assert mpactors.receive(lambda m: m == NodeUp(name), timeout=10 + SHORT_TIMEOUT)
        assert mpactors.receive(lambda m: m == NodeDown(name), timeout=SHORT_TIMEOUT)
        with run_node(name):  # a new incarnation: reconnected, nobody pinged
            assert mpactors.receive(lambda m: m == NodeUp(name), timeout=10 + SHORT_TIMEOUT)
            assert name in mpactors.nodes()


def test_a_partitioned_seed_heals_by_itself(cluster: int) -> None:
    from mpactors.dist import _faults
    from mpactors.messages import NodeDown, NodeUp

    with run_node(ticktime=2) as a, local_node("healer", seeds=[a.name], ticktime=2):
        mpactors.monitor_nodes(True)
        assert mpactors.receive(lambda m: m == NodeUp(a.name), timeout=10)
        _faults.block(a.name)  # a cut cable, both ways: ticks stop, the link goes down
        try:
            assert mpactors.receive(lambda m: m == NodeDown(a.name), timeout=LONG_TIMEOUT)
        finally:
            _faults.unblock(a.name)
        assert mpactors.receive(lambda m: m == NodeUp(a.name), timeout=10)  # no ping, no send


# -- re-registration -------------------------------------------------------------------------
def _start_port_mapper(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "mpactors.epmd", "--port", str(port), "--host", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: epmd.is_running(port=port, timeout=0.5), what="the port mapper")
    return proc


def test_a_node_registers_again_with_a_restarted_port_mapper(
    epmd_port: int, mpactors_home: str, cookie: str
) -> None:
    first = _start_port_mapper(epmd_port)
    second = None
    try:
        with run_node() as b, local_node("rereg") as me:
            names = {n for n, _ in epmd.names()}
            assert {b.alive_name, me.name.partition("@")[0]} <= names
            first.kill()
            first.wait(10)
            assert not epmd.is_running(timeout=0.5)
            second = _start_port_mapper(epmd_port)
            # Within 5 s of coming back (SPEC); the slack is the machine's load.
            wait_until(lambda: {b.alive_name, me.name.partition("@")[0]} <= {n for n, _ in epmd.names()},
                       5 + SHORT_TIMEOUT, what="both nodes registered again")
            with run_node() as c:  # a new node finds both through the new port mapper
                assert c.call(f"[mpactors.ping({b.name!r}), mpactors.ping({me.name!r})]") == ["pong", "pong"]
            b.wait_log("registered .* again")
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.kill()
                proc.wait(10)


# -- graceful stop ------------------------------------------------------------------------
GRACEFUL = '''
import os, sys, time
import mpactors
from mpactors import genserver, supervisor

LOG = sys.argv[2]

def note(text):
    with open(LOG, "a") as f:
        f.write(text + "\\n")

class Worker(genserver.GenServer):
    def init(self, tag, slow=0.0):
        self.tag, self.slow = tag, slow
    def handle_call(self, request, frm):
        return os.getpid()
    def terminate(self, reason):
        time.sleep(self.slow)
        note(f"terminate {self.tag} {reason}")

def stubborn():
    mpactors.trap_exit(True)
    while True:
        mpactors.receive()

if __name__ == "__main__":  # under forkserver and spawn, an actor runs this file again
    children = [supervisor.ChildSpec(tag, Worker, (tag, 0.3 if tag == "b" else 0.0)) for tag in ("a", "b", "c")]
    children.append(supervisor.ChildSpec("stubborn", stubborn, shutdown=0.5))
    with mpactors.Node(sys.argv[1]):
        sup = supervisor.Supervisor.start_link(children)
        pids = [genserver.call(pid, "os") for tag, pid, _ in supervisor.which_children(sup) if tag != "stubborn"]
        print("ready", " ".join(map(str, pids)), flush=True)
        mpactors.receive()
'''


def _graceful_node(tmp_path: object, env: dict) -> "tuple[subprocess.Popen, str, List[int]]":
    import os
    from pathlib import Path

    script = Path(str(tmp_path)) / "graceful.py"
    script.write_text(GRACEFUL)
    log = str(Path(str(tmp_path)) / "terminate.log")
    proc = subprocess.Popen([sys.executable, str(script), unique_name("grace"), log], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, **env))
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("ready"):  # stop it and close its pipes before failing
        proc.kill()
        _, err = proc.communicate(timeout=LONG_TIMEOUT)
        raise AssertionError((line, err))
    return proc, log, [int(p) for p in line.split()[1:]]


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_a_signalled_node_stops_its_supervision_tree_gracefully_and_exits_0(
    cluster: int, tmp_path: object, how: str
) -> None:
    import signal
    from pathlib import Path

    proc, log, os_pids = _graceful_node(tmp_path, {})
    try:
        actors = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(getattr(signal, how))
        _, err = proc.communicate(timeout=LONG_TIMEOUT)
    finally:
        proc.kill()
        proc.wait()
    if how == "SIGTERM":
        assert proc.returncode == 0, err
    # Children stopped in reverse start order (b is slow: c still went first, a after it).
    assert Path(log).read_text().splitlines() == ["terminate c shutdown", "terminate b shutdown",
                                                  "terminate a shutdown"]
    psutil.wait_procs(actors, timeout=SHORT_TIMEOUT)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in actors)
    assert os_pids


def test_what_outlives_the_shutdown_timeout_is_killed(cluster: int, tmp_path: object) -> None:
    import signal

    # The stubborn child traps exits and ignores 'shutdown': its supervisor kills it after its
    # 0.5 s; with a shutdown timeout shorter than that, the node kills it itself.
    proc, log, _ = _graceful_node(tmp_path, {"MPACTORS_SHUTDOWN_TIMEOUT": "0.1"})
    try:
        actors = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=LONG_TIMEOUT)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert "graceful stop not done after 0.1 s; killing the rest" in err
    psutil.wait_procs(actors, timeout=SHORT_TIMEOUT)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in actors)


# -- why a node cannot be reached; name completion; the shell's exit() ---------------------------
def _cli(*args: str, env: "dict | None" = None, input: "str | None" = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "mpactors", *args], env=dict(os.environ, **(env or {})),
                          capture_output=True, text=True, timeout=60, input=input,
                          stdin=subprocess.DEVNULL if input is None else None)


def test_every_pang_says_why_and_so_does_every_command(cluster: int) -> None:
    with run_node("lng@127.0.0.1") as a:
        # A bare name completes to the full name the node registered (a long name here).
        assert _cli("ping", "lng").stdout == "pong\n"
        unknown = _cli("ping", "nobody")
        assert (unknown.returncode, unknown.stdout) == (1, "pang\n")
        assert "unknown name: node nobody@" in unknown.stderr and "running here: lng@127.0.0.1" in unknown.stderr
        assert "unknown name" in _cli("rpc", "nobody", "os:getpid").stderr
        remote_unknown = _cli("ping", "nobody@127.0.0.1")
        assert "unknown name: node nobody@127.0.0.1 is not running" in remote_unknown.stderr
        host = _cli("ping", "x@no-such-host.invalid")
        assert host.returncode == 1 and "cannot resolve host 'no-such-host.invalid'" in host.stderr
        cookie = _cli("ping", a.name, env={"MPACTORS_COOKIE": "another-cookie"})
        assert cookie.returncode == 1 and "refused cookie" in cookie.stderr, cookie.stderr
        rpc = _cli("rpc", a.name, "os:getpid", env={"MPACTORS_COOKIE": "another-cookie"})
        assert rpc.returncode == 1 and "unreachable: refused cookie" in rpc.stderr, rpc.stderr
        info = _cli("ps", a.name, env={"MPACTORS_COOKIE": "another-cookie"})
        assert info.returncode == 1 and "refused cookie" in info.stderr, info.stderr


def test_a_node_that_never_answers_is_a_timeout(no_port_mapper: int) -> None:
    port = no_port_mapper
    with socket.socket() as silent:  # accepts (the kernel does) and never says a word
        silent.bind(("127.0.0.5", port))
        silent.listen()
        done = _cli("ping", "mute@127.0.0.5", env={"MPACTORS_DIST_PORT": str(port)})
    assert done.returncode == 1 and "timeout: mute@127.0.0.5 did not complete the handshake" in done.stderr


def test_exit_and_quit_leave_the_shell_and_trace_of_a_dead_pid_fails(cluster: int) -> None:
    with run_node() as a, local_node("sh"):
        for leave in ("exit()", "quit()"):
            done = _cli("shell", a.name, input=f"print('before')\n{leave}\nprint('after')\n")
            assert done.returncode == 0, done.stderr
            assert done.stdout == "before\n", done.stdout
        dead = a.call("mpactors.spawn(lambda: None)")
        wait_until(lambda: a.call("mpactors.process_info(pid) is None", pid=dead), what="the actor ended")
        for command in ("info", "trace"):
            gone = _cli(command, str(dead))
            assert gone.returncode == 1 and "is not alive" in gone.stderr, (command, gone.stderr)


def test_the_license_file_is_mit_and_shipped_in_the_wheel(tmp_path: Path) -> None:
    import zipfile

    root = Path(__file__).resolve().parent.parent
    assert (root / "LICENSE").read_text().startswith("MIT License")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path), str(root)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("mpactors-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = zf.read(meta).decode()
        (licence,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert zf.read(licence).decode() == (root / "LICENSE").read_text()
    assert "License-Expression: MIT" in metadata.splitlines()


def test_a_detached_node_gets_its_cookie_through_a_pipe_not_argv_or_environment(
    epmd_port: int, mpactors_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cret-cookie-nobody-may-read"
    monkeypatch.setenv("MPACTORS_COOKIE", secret)
    name = unique_name("quiet")
    started = _cli("start", name, "--detached")
    assert started.returncode == 0, started.stderr
    full, os_pid = started.stdout.split()
    try:
        actor = _cli("spawn", full, "mpactors.demo:counter")
        assert actor.returncode == 0, actor.stderr
        actor_os_pid = _cli("info", actor.stdout.strip())
        assert actor_os_pid.returncode == 0, actor_os_pid.stderr
        node = psutil.Process(int(os_pid))
        procs = [node, *node.children(recursive=True)]
        procs += [psutil.Process(p) for p in _port_mappers(epmd_port)]
        checked = set()
        for proc in procs:
            try:
                for what in ("environ", "cmdline"):
                    with open(f"/proc/{proc.pid}/{what}", "rb") as f:
                        assert secret.encode() not in f.read(), (proc.cmdline(), what)
            except (FileNotFoundError, ProcessLookupError):
                continue  # a short-lived child (the rpc worker of a command) that ended meanwhile
            checked.add(proc.pid)
        # The node, its actor and the port mapper it started were all read.
        must = {int(os_pid), *_port_mappers(epmd_port)}
        must.add(int(re.search(r"^os_pid: +(\d+)$", actor_os_pid.stdout, re.MULTILINE).group(1)))  # type: ignore[union-attr]
        assert len(must) >= 3 and must <= checked, (must, checked)
        # And the node does use that cookie: a command with it gets in.
        assert _cli("ping", full).stdout == "pong\n"
    finally:
        stopped = _cli("stop", full)
        for pid in _port_mappers(epmd_port):
            psutil.Process(pid).kill()
    assert stopped.returncode == 0, stopped.stderr


def test_a_function_of_the_script_to_another_python_minor_version_fails_at_the_caller(
    cluster: int, tmp_path: object
) -> None:
    from pathlib import Path

    script = Path(str(tmp_path)) / "versions.py"
    script.write_text(
        "import sys, mpactors\n"
        "from mpactors import rpc\n"
        "def work():\n"
        "    return 1\n"
        "with mpactors.Node(sys.argv[2]):\n"
        "    try:\n"
        "        rpc.call(sys.argv[1], work, timeout=20)\n"
        "    except mpactors.BadArg as exc:\n"
        "        print('refused:', exc)\n"
        "    print('by reference:', rpc.call(sys.argv[1], 'mpactors:node', timeout=20))\n"
    )
    other_python = "from mpactors.dist import _compat\n_compat.LOCAL['python'] = [3, 99, 0]\n"
    with run_node(code=other_python) as b:
        done = subprocess.run([sys.executable, str(script), b.name, unique_name("ver")],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"refused: cannot send code by value to {b.name}: it runs Python 3.99.0" in done.stdout
    assert f"by reference: {b.name}" in done.stdout


def test_mpactors_start_takes_the_deployment_flags(no_port_mapper: int) -> None:
    port = str(no_port_mapper)
    env = {"MPACTORS_DIST_PORT": port}
    a = _cli("start", "fa@127.0.0.2", "--detached", "--dist-port", port, "--interface", "127.0.0.2")
    assert a.returncode == 0, a.stderr
    try:
        b = _cli("start", "fb@127.0.0.3", "--detached", "--dist-port", port, "--interface", "127.0.0.3",
                 "--seed", "fa@127.0.0.2", "--seed", "nobody@127.0.0.9")
        assert b.returncode == 0, b.stderr
        try:
            assert sorted(_listening(no_port_mapper)) == ["127.0.0.2", "127.0.0.3"]
            # b's seed connected it to a: nobody pinged.
            wait_until(lambda: _cli("nodes", "fa@127.0.0.2", env=env).stdout.split() == ["fb@127.0.0.3"],
                       SHORT_TIMEOUT * 2, what="the seed connection")
        finally:
            assert _cli("stop", "fb@127.0.0.3", env=env).returncode == 0
    finally:
        assert _cli("stop", "fa@127.0.0.2", env=env).returncode == 0
