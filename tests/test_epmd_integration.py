"""Nodes and the port mapper together (SPEC "Port mapper").

* the first node on a host starts the port mapper, detached, when none answers;
* a registration lives exactly as long as its node (SIGKILL included);
* Erlang's ``epmd -names`` lists mpactors nodes, and Erlang's own epmd can
  serve them (skipped when Erlang's ``epmd`` is not installed).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Iterator, List, Optional

import psutil
import pytest
from nodes import cluster, cookie, echo, local_node, run_node  # noqa: F401 - fixtures
from support import LONG_TIMEOUT, SHORT_TIMEOUT, pid_alive, wait_until

import mpactors
from mpactors import ANY, epmd

pytestmark = pytest.mark.timeout(60)

ERLANG_EPMD: Optional[str] = shutil.which("epmd")
needs_erlang = pytest.mark.skipif(
    ERLANG_EPMD is None, reason="Erlang's epmd is not installed (apt-get install erlang-base)"
)


def daemons_on(port: int) -> List[psutil.Process]:
    """Our port mapper processes serving ``port`` (by command line or process title)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if f"mpactors epmd port {port}" in cmdline or ("mpactors.epmd" in cmdline and f"--port {port}" in cmdline):
            found.append(proc)
    return found


def kill_and_wait(os_pid: int) -> None:
    try:
        os.kill(os_pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_until(lambda: not pid_alive(os_pid), SHORT_TIMEOUT, what=f"process {os_pid} to die")


@pytest.fixture
def started_daemons(request: pytest.FixtureRequest) -> Iterator[List[int]]:
    """OS pids of port mappers a test made a node start; they are killed at the end.

    They run detached (a session of their own) and outlive the node that
    started them, so the leftover-process check learns of them through
    ``request.node.mpactors_pids``.
    """
    pids: List[int] = []
    request.node.mpactors_pids = pids
    try:
        yield pids
    finally:
        for os_pid in pids:
            kill_and_wait(os_pid)


# ---------------------------------------------------------------- auto-start


@pytest.mark.usefixtures("cookie")
def test_the_first_node_on_a_host_starts_the_port_mapper_when_none_answers(
    epmd_port: int, mpactors_home: str, started_daemons: List[int]
) -> None:
    assert not epmd.is_running(timeout=1.0)
    with run_node() as b:
        daemon = wait_until(lambda: daemons_on(epmd_port), what="the port mapper process")
        assert len(daemon) == 1
        started_daemons.append(daemon[0].pid)
        assert epmd.is_running()
        assert epmd.port_please(b.alive_name) is not None
        assert os.getsid(daemon[0].pid) == daemon[0].pid, "the port mapper should run in a session of its own"
        assert os.getsid(daemon[0].pid) != os.getsid(b.os_pid)

        with run_node() as c, local_node() as a:  # later nodes use it, start no other
            assert mpactors.ping(b.name) == "pong"
            assert mpactors.ping(c.name) == "pong"
            assert [p.pid for p in daemons_on(epmd_port)] == started_daemons
            names = dict(epmd.names())
            assert {b.alive_name, c.alive_name, a.name.partition("@")[0]} <= set(names)

    # the port mapper outlives the node that started it, and forgot every node
    assert pid_alive(started_daemons[0])
    wait_until(lambda: epmd.names() == [], what="every node to be unregistered")
    assert (Path(mpactors_home) / "logs" / "epmd.log").is_file()


# ---------------------------------------------------------------- registrations


@pytest.mark.usefixtures("cluster")
def test_the_port_mapper_forgets_a_sigkilled_node_at_once() -> None:
    with run_node() as b:
        assert epmd.port_please(b.alive_name) is not None
        b.kill()
        wait_until(lambda: epmd.port_please(b.alive_name) is None, 1.0, what=f"{b.name} to be forgotten")
        with run_node(b.alive_name) as again, local_node():  # the name can be taken at once
            assert mpactors.ping(again.name) == "pong"


@pytest.mark.usefixtures("cluster")
def test_a_node_registers_the_port_it_listens_on_and_unregisters_when_it_stops() -> None:
    with local_node() as a:
        alive = a.name.partition("@")[0]
        port = epmd.port_please(alive)
        assert port is not None
        assert port in {c.laddr.port for c in _connections(os.getpid()) if c.status == psutil.CONN_LISTEN}
    assert epmd.port_please(alive) is None  # Node.stop() closed the registration


@pytest.mark.usefixtures("cluster")
def test_a_hidden_node_registers_as_hidden() -> None:
    with run_node(hidden=True) as h, run_node() as b:
        hidden_info, visible_info = epmd.lookup(h.alive_name), epmd.lookup(b.alive_name)
        assert hidden_info is not None and hidden_info.hidden
        assert visible_info is not None and not visible_info.hidden


def _connections(os_pid: int) -> list:
    proc = psutil.Process(os_pid)
    return (getattr(proc, "net_connections", None) or proc.connections)("tcp")  # type: ignore[no-any-return]


# ---------------------------------------------------------------- Erlang's epmd


def _erlang_epmd_names(port: int) -> List[tuple]:
    assert ERLANG_EPMD is not None
    result = subprocess.run(
        [ERLANG_EPMD, "-port", str(port), "-names"], capture_output=True, text=True, timeout=LONG_TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"epmd: up and running on port {port} with data:"), result.stdout
    return [(m[1], int(m[2])) for m in re.finditer(r"^name (\S+) at port (\d+)$", result.stdout, re.MULTILINE)]


@needs_erlang
@pytest.mark.usefixtures("cluster")
def test_erlang_epmd_names_lists_our_running_nodes(epmd_port: int) -> None:
    with run_node() as b, run_node(hidden=True) as h, local_node() as a:
        listed = _erlang_epmd_names(epmd_port)
        expected = {(n.partition("@")[0], epmd.port_please(n.partition("@")[0])) for n in (a.name, b.name, h.name)}
        assert set(listed) == expected
    assert _erlang_epmd_names(epmd_port) == []


@pytest.fixture
def erlang_epmd(epmd_port: int) -> Iterator[int]:
    """Erlang's epmd on the private port, loopback only; yields the port."""
    assert ERLANG_EPMD is not None
    proc = subprocess.Popen(
        [ERLANG_EPMD, "-port", str(epmd_port), "-address", "127.0.0.1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: proc.poll() is not None or epmd.is_running(timeout=1.0), LONG_TIMEOUT)
        assert proc.poll() is None, f"Erlang's epmd exited with {proc.returncode}"
        yield epmd_port
    finally:
        proc.kill()
        proc.wait(LONG_TIMEOUT)


@needs_erlang
@pytest.mark.usefixtures("cookie")
def test_nodes_find_each_other_through_erlangs_own_epmd(erlang_epmd: int) -> None:
    with run_node() as b, local_node():
        assert daemons_on(erlang_epmd) == []  # ours was not started: Erlang's answered
        assert mpactors.ping(b.name) == "pong"
        pid = mpactors.spawn(echo, node=b.name)
        mpactors.send(pid, (mpactors.self(), "via erlang's epmd"))
        assert mpactors.receive(("echo", pid, ANY), timeout=SHORT_TIMEOUT)[2] == "via erlang's epmd"
        b.kill()
        wait_until(lambda: epmd.port_please(b.alive_name) is None, 1.0, what=f"{b.name} to be forgotten")
