"""Process titles: ``ps`` shows ``mpactors node NAME`` for a node and
``mpactors actor <pid> [registered name] (callable name)`` for each actor.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Iterator

import psutil
import pytest

import mpactors
from support import LONG_TIMEOUT, wait_until

#: Every test here runs actor processes: fail fast (with stacks) instead of hanging.
pytestmark = pytest.mark.timeout(60)

needs_ps = pytest.mark.skipif(shutil.which("ps") is None, reason="needs the ps command")




@pytest.fixture(params=["fork", "forkserver", "spawn"])
def node(request: pytest.FixtureRequest, multiprocessing_helpers: None) -> Iterator[mpactors.Node]:
    with mpactors.Node(start_method=request.param) as n:
        yield n


def wait_for_stop() -> None:
    mpactors.receive("stop", timeout=LONG_TIMEOUT)


def psutil_title(os_pid: int) -> str:
    """The title as psutil reads it (/proc/PID/cmdline), padding dropped."""
    return " ".join(part for part in psutil.Process(os_pid).cmdline() if part).strip()


def ps_title(os_pid: int) -> str:
    """The title as ``ps -o args=`` prints it."""
    out = subprocess.run(["ps", "-o", "args=", "-p", str(os_pid)], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _os_pid(pid: mpactors.Pid) -> int:
    return mpactors.process_info(pid)["os_pid"]  # type: ignore[index, no-any-return]


def test_the_node_process_is_titled_mpactors_node_and_its_name() -> None:
    before = psutil_title(os.getpid())
    with mpactors.Node():
        assert psutil_title(os.getpid()) == "mpactors node nonode@nohost"
    assert psutil_title(os.getpid()) == before


@needs_ps
def test_ps_shows_the_node_title() -> None:
    with mpactors.Node():
        assert ps_title(os.getpid()) == "mpactors node nonode@nohost"


def test_an_actor_is_titled_with_its_pid_and_callable_name(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    expected = f"mpactors actor {pid} (test_titles.wait_for_stop)"
    assert str(pid) == f"<nonode@nohost.{pid.id}.0>"
    assert wait_until(lambda: psutil_title(_os_pid(pid)) == expected, timeout=LONG_TIMEOUT, what=expected)
    mpactors.send(pid, "stop")


@needs_ps
def test_ps_shows_the_registered_name_between_pid_and_callable_and_drops_it_on_unregister(
    node: mpactors.Node,
) -> None:
    pid = mpactors.spawn(wait_for_stop)
    os_pid = _os_pid(pid)
    mpactors.register("logger", pid)
    named = f"mpactors actor {pid} logger (test_titles.wait_for_stop)"
    wait_until(lambda: ps_title(os_pid) == named, timeout=LONG_TIMEOUT, what=named)
    mpactors.unregister("logger")
    unnamed = f"mpactors actor {pid} (test_titles.wait_for_stop)"
    wait_until(lambda: ps_title(os_pid) == unnamed, timeout=LONG_TIMEOUT, what=unnamed)
    mpactors.send(pid, "stop")


def test_a_lambda_actor_is_titled_with_the_lambdas_qualified_name() -> None:
    with mpactors.Node():
        pid = mpactors.spawn(lambda: mpactors.receive("stop", timeout=LONG_TIMEOUT))
        expected = (
            f"mpactors actor {pid} "
            "(test_titles.test_a_lambda_actor_is_titled_with_the_lambdas_qualified_name.<locals>.<lambda>)"
        )
        wait_until(lambda: psutil_title(_os_pid(pid)) == expected, timeout=LONG_TIMEOUT, what=expected)
        mpactors.send(pid, "stop")


def test_every_actor_of_a_node_shows_up_among_its_descendants_by_title() -> None:
    with mpactors.Node():
        pids = [mpactors.spawn(wait_for_stop) for _ in range(5)]
        expected = {f"mpactors actor {p} (test_titles.wait_for_stop)" for p in pids}

        def titles() -> set:
            out = set()
            for child in psutil.Process().children(recursive=True):
                try:
                    out.add(psutil_title(child.pid))
                except psutil.Error:
                    pass
            return out

        wait_until(lambda: expected <= titles(), timeout=LONG_TIMEOUT, what="every actor's title")
        for p in pids:
            mpactors.send(p, "stop")
