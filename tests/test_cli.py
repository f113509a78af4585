"""The ``mpactors`` command, run for real: ``python -m mpactors ...`` in subprocesses.

Each test has a private port mapper port, ``MPACTORS_HOME`` and cookie. Nodes
started with ``--detached`` are reparented away from the test process, so the
``cli`` fixture records their OS pids (and their actors') in
``request.node.mpactors_pids`` for the leak check in conftest.py, and stops
them with ``mpactors stop`` at the end whatever happened.
"""
from __future__ import annotations

import ast
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import psutil
import pytest
from support import LONG_TIMEOUT, SHORT_TIMEOUT, all_gone, ancestors, pid_alive, wait_until

from mpactors import epmd as epmd_client
from mpactors.cli._common import short_host

ROOT = Path(__file__).resolve().parent.parent
COOKIE = "mpactors-cli-test-cookie"
COUNTER = "mpactors.demo:counter"
HOST = short_host()

pytestmark = pytest.mark.timeout(60)


def title(os_pid: int) -> str:
    """The process title as ps shows it."""
    return " ".join(psutil.Process(os_pid).cmdline()).strip()


def epmd_daemons(port: int) -> List[int]:
    """OS pids of port mappers serving ``port`` (found by their title)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if " ".join(proc.cmdline()).strip() == f"mpactors epmd port {port}":
                found.append(proc.pid)
        except psutil.Error:
            pass
    return found


class Cli:
    """Runs ``python -m mpactors`` with this test's environment; remembers what it started."""

    def __init__(self, env: Dict[str, str], request: pytest.FixtureRequest, port: int) -> None:
        self.env = env
        self.port = port
        self.request = request
        self.nodes: List[Tuple[str, int]] = []
        if not hasattr(request.node, "mpactors_pids"):
            request.node.mpactors_pids = []

    def run(
        self, *args: str, input: Optional[str] = None, expect: Optional[int] = 0, timeout: float = LONG_TIMEOUT
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "mpactors", *args], env=self.env, input=input, capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL if input is None else None, check=False,
        )
        if expect is not None:
            said = f"mpactors {' '.join(args)}: exit {result.returncode}\n{result.stdout}{result.stderr}"
            assert result.returncode == expect, said
        return result

    def sh(self, *argv: str, timeout: float = LONG_TIMEOUT) -> subprocess.CompletedProcess:
        """Run a script with this environment; tracks the nodes it reports starting."""
        env = dict(self.env, MPACTORS_CLI=f"{sys.executable} -m mpactors")
        proc = subprocess.Popen(list(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGTERM first: the script's trap stops the detached nodes it
            # started (SIGKILL would leave them running, and they would fail
            # later tests that look at every process on the host).
            proc.terminate()
            try:
                out, err = proc.communicate(timeout=LONG_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            self._track_started(out)
            raise AssertionError(f"{' '.join(argv)} timed out after {timeout:g} s:\n{out}{err}") from None
        self._track_started(out)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def _track_started(self, out: str) -> None:
        for name, pid in re.findall(r"^(\S+@\S+) (\d+)$", out, re.MULTILINE):
            self.track(name, int(pid))

    def start(self, name: str) -> Tuple[str, int]:
        """``mpactors start NAME --detached``; returns (full name, OS pid)."""
        out = self.run("start", name, "--detached").stdout.split()
        assert len(out) == 2, out
        self.track(out[0], int(out[1]))
        return out[0], int(out[1])

    def track(self, name: str, os_pid: int) -> None:
        self.nodes.append((name, os_pid))
        self.request.node.mpactors_pids.append(os_pid)

    def spawn(self, node: str, target: str = COUNTER, *args: str, name: Optional[str] = "counter") -> str:
        """``mpactors spawn NODE TARGET ARGS... --name NAME`` (registered before it returns); the pid."""
        named = ("--name", name) if name is not None else ()
        return self.run("spawn", node, target, *args, *named).stdout.strip()

    def ps_json(self, *args: str) -> List[Dict[str, Any]]:
        rows = json.loads(self.run("ps", "--json", *args).stdout)
        self.request.node.mpactors_pids.extend(row["os_pid"] for row in rows)
        return rows  # type: ignore[no-any-return]

    def cleanup(self) -> None:
        """Stop every node still running; record the port mappers started on our port."""
        for name, os_pid in self.nodes:
            try:
                actors = [p.pid for p in psutil.Process(os_pid).children()]
            except psutil.Error:
                continue  # gone already
            self.request.node.mpactors_pids.extend(actors)
            self.run("stop", name, expect=None)
        self.request.node.mpactors_pids.extend(epmd_daemons(self.port))


@pytest.fixture
def cli_env(epmd_port: int, mpactors_home: str, monkeypatch: pytest.MonkeyPatch) -> Dict[str, str]:
    monkeypatch.setenv("MPACTORS_COOKIE", COOKIE)
    return dict(os.environ)


@pytest.fixture
def cli(epmd: int, cli_env: Dict[str, str], request: pytest.FixtureRequest) -> Iterator[Cli]:
    """The command, with a private port mapper (the conftest ``epmd`` fixture)."""
    c = Cli(cli_env, request, epmd)
    try:
        yield c
    finally:
        c.cleanup()


@pytest.fixture
def bare_cli(epmd_port: int, cli_env: Dict[str, str], request: pytest.FixtureRequest) -> Iterator[Cli]:
    """The command with no port mapper running: the first node starts one, detached."""
    c = Cli(cli_env, request, epmd_port)
    try:
        yield c
    finally:
        c.cleanup()
        if epmd_daemons(epmd_port):
            epmd_client.kill(port=epmd_port, timeout=SHORT_TIMEOUT)


def test_a_detached_node_outlives_its_terminal_answers_ping_and_stops_with_its_actors(cli: Cli) -> None:
    # The launcher runs in a session of its own, like a terminal; hanging up
    # that session after the start must not touch the node.
    launcher = subprocess.Popen(
        ["sh", "-c", f'"{sys.executable}" -m mpactors start a --detached && exec sleep 60'],
        env=cli.env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        name, os_pid = launcher.stdout.readline().split()  # type: ignore[union-attr]
        cli.track(name, int(os_pid))
        os.killpg(launcher.pid, signal.SIGHUP)
        launcher.wait(SHORT_TIMEOUT)
    finally:
        launcher.kill()
        launcher.wait()
        launcher.stdout.close()  # type: ignore[union-attr]
    node_pid = int(os_pid)
    assert name == f"a@{HOST}"
    assert cli.run("ping", "a").stdout == "pong\n"
    assert pid_alive(node_pid)
    assert title(node_pid) == f"mpactors node a@{HOST}"
    assert os.getsid(node_pid) == node_pid != os.getsid(0)
    assert os.readlink(f"/proc/{node_pid}/fd/0") == "/dev/null"
    assert f"node a@{HOST} started (OS pid {node_pid})" in cli.run("logs", "a").stdout

    pid = cli.spawn("a")
    (row,) = cli.ps_json("a")
    assert row["pid"] == pid and row["registered_name"] == "counter"
    actor = row["os_pid"]
    assert node_pid in ancestors(actor)
    assert title(actor) == f"mpactors actor {pid} counter (mpactors.demo.counter)"

    assert cli.run("stop", "a").stdout == f"a@{HOST} stopped\n"
    assert all_gone([node_pid, actor])  # gone when stop returns, not later
    assert cli.run("ping", "a", expect=1).stdout == "pang\n"


def test_starting_a_name_that_is_running_fails_with_one_line(cli: Cli) -> None:
    cli.start("a")
    detached = cli.run("start", "a", "--detached", expect=1)
    assert detached.stderr == f"Error: node a@{HOST} is already running on this host\n"
    foreground = cli.run("start", "a", expect=1)
    assert foreground.stderr.splitlines() == [f"Error: node name 'a@{HOST}' is already in use on this host"]


def test_send_then_rpc_observe_the_effect_and_info_shows_the_actor(cli: Cli) -> None:
    cli.start("a")
    pid = cli.spawn("a")
    cli.run("send", "a", "counter", "('add', 40)")
    cli.run("send", f"a@{HOST}", pid, "('add', 2)")
    assert cli.run("rpc", "a", "mpactors.demo:total").stdout == "42\n"
    assert cli.run("rpc", "a", "operator:add", "1", "2").stdout == "3\n"
    info = cli.run("info", pid).stdout
    assert re.search(r"^registered_name: +counter$", info, re.MULTILINE), info
    assert re.search(r"^current: +mpactors\.demo\.counter$", info, re.MULTILINE), info


def test_spawn_with_a_taken_name_is_refused_and_starts_nothing(cli: Cli) -> None:
    cli.start("a")
    first = cli.spawn("a")
    before = {row["pid"] for row in cli.ps_json("a")}
    taken = cli.run("spawn", "a", COUNTER, "--name", "counter", expect=1)
    assert taken.stderr.splitlines() == [f"Error: the name 'counter' is already registered on a@{HOST}"]
    assert {row["pid"] for row in cli.ps_json("a")} == before  # nothing new runs
    unnamed = cli.spawn("a", name=None)  # a counter without --name has no name
    rows = {row["pid"]: row for row in cli.ps_json("a")}
    assert rows[unnamed]["registered_name"] is None and rows[first]["registered_name"] == "counter"


def test_failures_are_one_error_line_and_a_nonzero_exit(cli: Cli) -> None:
    cli.start("a")
    remote = cli.run("rpc", "a", "builtins:int", "x", expect=1)
    assert remote.stderr.splitlines() == [
        f"Error: ValueError: invalid literal for int() with base 10: 'x' (in builtins:int on a@{HOST})"
    ]
    unknown = cli.run("send", "a", "nobody", "1", expect=1)
    assert unknown.stderr == f"Error: no process is registered as 'nobody' on a@{HOST}\n"
    down = cli.run("nodes", "b", expect=1)
    assert down.stderr.startswith(f"Error: unknown name: node b@{HOST} is not running") and down.stderr.count("\n") == 1
    assert cli.run("stop", "b", expect=1).stderr.count("\n") == 1


def test_shell_fed_from_a_pipe_evaluates_inside_the_node(cli: Cli) -> None:
    name, node_pid = cli.start("a")
    result = cli.run("shell", "a", input="node()\nimport psutil; [p.pid for p in psutil.Process().parents()]\n"
                                         "1/0\nfor i in range(2):\n    i * 10\n\n")
    lines = result.stdout.splitlines()
    assert lines[0] == repr(name) and lines[2:] == ["0", "10"], lines
    assert node_pid in ast.literal_eval(lines[1])  # an actor of the node (its fork server's child under forkserver)
    assert "ZeroDivisionError: division by zero" in result.stderr
    # The shell's process on the node ends with the shell.
    wait_until(lambda: all("_cli_shell" not in r["current"] for r in cli.ps_json("a")), what="the shell process to end")


def test_trace_with_count_prints_what_an_actor_receives(cli: Cli) -> None:
    cli.start("a")
    pid = cli.spawn("a")
    tracer = subprocess.Popen(
        [sys.executable, "-m", "mpactors", "trace", pid, "--count", "2"],
        env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    try:
        errors: "queue.Queue[str]" = queue.Queue()

        def read_stderr() -> None:
            for line in tracer.stderr:  # type: ignore[union-attr]
                errors.put(line)

        threading.Thread(target=read_stderr, daemon=True).start()
        assert errors.get(timeout=LONG_TIMEOUT).startswith(f"tracing {pid}")
        cli.run("send", "a", "counter", "('add', 1)")
        cli.run("send", "a", "counter", "('add', 2)")
        out, _ = tracer.communicate(timeout=LONG_TIMEOUT)
    finally:
        tracer.kill()
        tracer.wait()
    assert tracer.returncode == 0
    assert out.splitlines() == [f"{pid} received ('add', 1)", f"{pid} received ('add', 2)"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_foreground_node_stops_cleanly_on_a_signal(cli: Cli, tmp_path: Path, signum: int) -> None:
    log = tmp_path / "f.log"
    with open(log, "w") as err:
        node = subprocess.Popen(
            [sys.executable, "-m", "mpactors", "start", "f"], env=cli.env, stderr=err, stdin=subprocess.DEVNULL,
        )
    try:
        wait_until(lambda: "f" in dict(epmd_client.names(port=cli.port)), LONG_TIMEOUT, 0.05, "node f to register")
        cli.spawn("f")
        def node_actors() -> List[int]:  # (under forkserver the fork server is a child too)
            return [p.pid for p in psutil.Process(node.pid).children(recursive=True)
                    if title(p.pid).startswith("mpactors actor ")]

        actors = wait_until(node_actors, what="the actor's process")
        assert len(actors) == 1 and title(node.pid) == f"mpactors node f@{HOST}"
        node.send_signal(signum)
        assert node.wait(LONG_TIMEOUT) == 0
    finally:
        node.kill()
        node.wait()
    wait_until(lambda: all_gone(actors), what="the actors to end")
    text = log.read_text()
    assert f"stopping on {signal.Signals(signum).name}" in text and f"node f@{HOST} stopped" in text


@pytest.mark.timeout(240)  # a dozen CLI commands, each a Python start: slow on a loaded machine
def test_cluster_script_ps_lists_the_actors_of_both_nodes_and_down_leaves_nothing(bare_cli: Cli) -> None:
    cli = bare_cli
    up = cli.sh(str(ROOT / "scripts" / "cluster"), "up", "2")
    assert up.returncode == 0, up.stdout + up.stderr
    assert [n for n, _ in cli.nodes] == [f"node1@{HOST}", f"node2@{HOST}"]
    (epmd_pid,) = epmd_daemons(cli.port)
    cli.request.node.mpactors_pids.append(epmd_pid)
    assert os.getsid(epmd_pid) == epmd_pid  # the port mapper too is detached

    counter = cli.spawn("node1")
    pong = cli.spawn("node2", "mpactors.demo:pong", name="pong")
    answer = cli.run("rpc", "node1", "mpactors.demo:ping", f"node2@{HOST}", "2").stdout
    assert answer == f"[('pong', 'node2@{HOST}', 0), ('pong', 'node2@{HOST}', 1)]\n"
    assert cli.run("nodes", "node1").stdout == f"node2@{HOST}\n"

    table = cli.run("ps").stdout.splitlines()
    assert table[0].split() == ["PID", "OS", "PID", "NAME", "CALLABLE", "STATUS", "MSGQ", "MEMORY", "CPU%"]
    assert [line.split()[:3] for line in table[1:]] == [
        [counter, str(_os_pid(cli, counter)), "counter"], [pong, str(_os_pid(cli, pong)), "pong"],
    ]
    for row in cli.ps_json():
        assert title(row["os_pid"]) == f"mpactors actor {row['pid']} {row['registered_name']} ({row['current']})"
    actors = [_os_pid(cli, counter), _os_pid(cli, pong)]

    down = cli.sh(str(ROOT / "scripts" / "cluster"), "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert all_gone([pid for _, pid in cli.nodes] + actors)
    # `epmd stop` returns once the port mapper no longer answers; its process exits just after.
    wait_until(lambda: not pid_alive(epmd_pid), what="the port mapper to exit")


def _os_pid(cli: Cli, pid: str) -> int:
    (row,) = [r for r in cli.ps_json() if r["pid"] == pid]
    return int(row["os_pid"])


def test_epmd_commands_start_list_and_stop_a_detached_port_mapper(bare_cli: Cli) -> None:
    cli = bare_cli
    started = cli.run("epmd", "--detached", "--host", "127.0.0.1").stdout
    match = re.fullmatch(rf"the port mapper on port {cli.port} started \(OS pid (\d+)\)\n", started)
    assert match, started
    cli.request.node.mpactors_pids.append(int(match[1]))
    assert cli.run("epmd", "--detached").stdout == f"the port mapper on port {cli.port} is already running\n"
    assert cli.run("epmd", "names").stdout == f"epmd: up and running on port {cli.port} with data:\n"
    assert cli.run("epmd", "stop").stdout == f"port mapper on port {cli.port} stopped\n"
    wait_until(lambda: not pid_alive(int(match[1])), what="the port mapper to exit")
    assert cli.run("epmd", "names", expect=1).stderr.count("\n") == 1


@pytest.mark.timeout(360)  # some twenty CLI commands, each a Python start: slow on a loaded machine
def test_the_demo_runs_to_the_end_and_leaves_nothing_behind(bare_cli: Cli) -> None:
    cli = bare_cli
    result = cli.sh(str(ROOT / "scripts" / "demo"), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [n for n, _ in cli.nodes] == [f"demo1@{HOST}", f"demo2@{HOST}"]
    out = result.stdout
    assert "\n42\n" in out
    assert f"mpactors node demo1@{HOST}" in out and "counter (mpactors.demo.counter)" in out
    assert f"\n'demo1@{HOST}'\n['demo2@{HOST}']\n" in out
    assert out.rstrip().endswith("(none)")
    assert all_gone([pid for _, pid in cli.nodes])
    wait_until(lambda: epmd_daemons(cli.port) == [], what="the port mapper to exit")
