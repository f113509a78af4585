"""No orphans, no silent deaths.

* an actor killed with SIGKILL fires its links and monitors with 'killed'
  within 1 s;
* a node process killed with SIGKILL (run as a subprocess here) leaves no
  actor behind after 2 s, whatever the start method;
* ``stop()`` ends every actor, even one that ignores SIGTERM.
"""
from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import time
from typing import List

import psutil
import pytest

import mpactors
from mpactors import Down, ExitSignal, Pid
from support import LONG_TIMEOUT, SHORT_TIMEOUT, all_gone, pid_alive, python_c, wait_until

#: Every test here runs actor processes: fail fast (with stacks) instead of hanging.
pytestmark = pytest.mark.timeout(60)

#: The guarantees under test (SPEC "No orphans").
ACTOR_DEATH_REPORTED_WITHIN = 1.0
NODE_DEATH_CLEANED_WITHIN = 2.0


# -- actors -------------------------------------------------------------------
def wait_for_stop() -> None:
    mpactors.receive("stop", timeout=LONG_TIMEOUT)


def link_then_wait(other: Pid, report_to: Pid, trap: bool) -> None:
    mpactors.trap_exit(trap)
    mpactors.link(other)
    mpactors.send(report_to, ("linked", mpactors.self()))
    msg = mpactors.receive(timeout=LONG_TIMEOUT)
    mpactors.send(report_to, ("got", msg))
    wait_for_stop()


def ignore_sigterm_and_spin(report_to: Pid) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    mpactors.send(report_to, "ignoring SIGTERM")
    while True:
        pass


def sleep_in_c() -> None:
    # pytest's faulthandler, inherited through fork, would print a "Fatal
    # Python error" traceback into the run's output when a test SIGSEGVs us.
    faulthandler.disable()
    time.sleep(LONG_TIMEOUT)


def trap_and_wait() -> None:
    mpactors.trap_exit(True)
    wait_for_stop()


def spawn_more(count: int, report_to: Pid) -> None:
    for _ in range(count):
        mpactors.spawn(wait_for_stop)
    mpactors.send(report_to, "spawned")
    wait_for_stop()


def _os_pid(pid: Pid) -> int:
    return mpactors.process_info(pid)["os_pid"]  # type: ignore[index, no-any-return]


# -- an actor killed with SIGKILL -------------------------------------------------
def test_sigkill_of_an_actor_fires_its_links_and_monitors_with_killed_within_one_second(node: mpactors.Node) -> None:
    me = mpactors.self()
    victim = mpactors.spawn(wait_for_stop)
    trapping = mpactors.spawn(link_then_wait, victim, me, True)
    plain = mpactors.spawn(link_then_wait, victim, me, False)
    linked = {mpactors.receive(("linked", Pid), timeout=SHORT_TIMEOUT)[1] for _ in range(2)}
    assert linked == {trapping, plain}
    mpactors.trap_exit(True)
    mpactors.link(victim)
    ref = mpactors.monitor(victim)
    plain_ref = mpactors.monitor(plain)
    os_pid = _os_pid(victim)

    start = time.monotonic()
    os.kill(os_pid, signal.SIGKILL)
    down = mpactors.receive(lambda m: type(m) is Down and m.ref == ref, timeout=SHORT_TIMEOUT)
    sig = mpactors.receive(ExitSignal, timeout=SHORT_TIMEOUT)
    elapsed = time.monotonic() - start

    assert down == Down(ref, victim, "killed")
    assert sig == ExitSignal(victim, "killed")
    assert elapsed < ACTOR_DEATH_REPORTED_WITHIN
    # The trapping actor got the signal as a message; the other died 'killed'.
    assert mpactors.receive(("got", ExitSignal), timeout=SHORT_TIMEOUT) == ("got", ExitSignal(victim, "killed"))
    assert mpactors.receive(lambda m: type(m) is Down and m.ref == plain_ref, timeout=SHORT_TIMEOUT) == Down(
        plain_ref, plain, "killed"
    )
    assert mpactors.process_info(trapping) is not None
    mpactors.send(trapping, "stop")


def test_a_killed_actor_is_reaped_and_forgotten(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(wait_for_stop)
    mpactors.register("victim", pid)
    os_pid = _os_pid(pid)
    os.kill(os_pid, signal.SIGKILL)
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, pid, "killed")
    assert not pid_alive(os_pid)  # reaped: not even a zombie
    assert mpactors.process_info(pid) is None
    assert mpactors.whereis("victim") is None
    assert pid not in mpactors.processes()


def test_an_actor_killed_by_another_signal_is_reported_with_that_signal(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(sleep_in_c)
    os.kill(_os_pid(pid), signal.SIGSEGV)
    down = mpactors.receive(Down, timeout=SHORT_TIMEOUT)
    assert down.ref == ref
    assert down.reason not in ("normal", "killed")
    assert "SIGSEGV" in str(down.reason)


# -- the node killed with SIGKILL --------------------------------------------------
NODE_SCRIPT = r"""
import sys
import mpactors

node = mpactors.Node(start_method=sys.argv[1]).start()
me = mpactors.self()
# A few idle actors, one busy, and one spawned by an actor.
pids = [mpactors.spawn(mpactors.receive, "never sent") for _ in range(4)]
pids.append(mpactors.spawn(exec, "while True: pass"))
mpactors.spawn(lambda: mpactors.send(me, mpactors.spawn(mpactors.receive, "never")))
pids.append(mpactors.receive(mpactors.Pid, timeout=30))
os_pids = [mpactors.process_info(p)["os_pid"] for p in pids]
print(" ".join(map(str, os_pids)), flush=True)
sys.stdin.read()
"""


def _start_node_subprocess(method: str) -> "tuple[subprocess.Popen, List[int]]":
    proc = python_c(NODE_SCRIPT, method, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    os_pids = [int(p) for p in line.split()]
    return proc, os_pids


def _end_node_subprocess(proc: subprocess.Popen, os_pids: List[int]) -> None:
    """Kill the node subprocess and any process it left behind (cleanup)."""
    proc.kill()
    proc.wait(timeout=SHORT_TIMEOUT)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()
    for p in os_pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_sigkill_of_the_node_leaves_no_actor_after_two_seconds(method: str) -> None:
    proc, os_pids = _start_node_subprocess(method)
    helpers: List[int] = []
    try:
        assert len(os_pids) == 6, f"the node subprocess did not report its actors: {os_pids!r}"
        assert all(pid_alive(p) for p in os_pids)
        helpers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True) if c.pid not in os_pids]
        proc.kill()
        proc.wait(timeout=SHORT_TIMEOUT)
        start = time.monotonic()
        wait_until(lambda: all_gone(os_pids), timeout=NODE_DEATH_CLEANED_WITHIN + 1.0, what="the actors to go")
        assert time.monotonic() - start < NODE_DEATH_CLEANED_WITHIN
        # The start method's helpers (fork server, resource tracker) go too.
        wait_until(lambda: all_gone(helpers), timeout=NODE_DEATH_CLEANED_WITHIN, what="the helpers to go")
    finally:
        _end_node_subprocess(proc, os_pids + helpers)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["SIGTERM", "stdin closed: the script ends without stop()"])
def test_a_node_process_that_ends_any_other_way_leaves_no_actor(how: str) -> None:
    proc, os_pids = _start_node_subprocess("fork")
    try:
        assert len(os_pids) == 6
        if how == "SIGTERM":
            proc.terminate()
        else:
            proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=SHORT_TIMEOUT + NODE_DEATH_CLEANED_WITHIN)
        wait_until(lambda: all_gone(os_pids), timeout=NODE_DEATH_CLEANED_WITHIN, what="the actors to go")
    finally:
        _end_node_subprocess(proc, os_pids)


# -- stop() ------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_stop_ends_every_actor_even_one_that_ignores_sigterm() -> None:
    with mpactors.Node() as n:
        me = mpactors.self()
        stubborn = mpactors.spawn(ignore_sigterm_and_spin, me)
        assert mpactors.receive("ignoring SIGTERM", timeout=SHORT_TIMEOUT)
        pids = [stubborn, mpactors.spawn(sleep_in_c), mpactors.spawn(trap_and_wait), mpactors.spawn(wait_for_stop)]
        mpactors.spawn(spawn_more, 3, me)
        assert mpactors.receive("spawned", timeout=SHORT_TIMEOUT)
        all_pids = mpactors.processes()
        assert len(all_pids) == 8 and set(pids) < set(all_pids)
        os_pids = [_os_pid(p) for p in all_pids]
        start = time.monotonic()
        n.stop()
        stopping = time.monotonic() - start
    # stop() waits for the actors: they are already gone, not just signalled.
    assert all_gone(os_pids)
    assert stopping < NODE_DEATH_CLEANED_WITHIN + 1.0


def test_leaving_the_node_block_by_an_exception_stops_the_actors() -> None:
    os_pids: List[int] = []
    with pytest.raises(RuntimeError, match="test body failed"):
        with mpactors.Node():
            os_pids = [_os_pid(mpactors.spawn(wait_for_stop)) for _ in range(3)]
            raise RuntimeError("test body failed")
    assert len(os_pids) == 3
    wait_until(lambda: all_gone(os_pids), timeout=NODE_DEATH_CLEANED_WITHIN)


def test_stop_is_idempotent_and_the_node_can_start_again() -> None:
    n = mpactors.Node()
    n.start()
    try:
        first = mpactors.self()
        os_pid = _os_pid(mpactors.spawn(wait_for_stop))
    finally:
        n.stop()
    n.stop()
    assert not n.alive
    assert not pid_alive(os_pid)
    with pytest.raises(mpactors.NotAlive):
        mpactors.self()
    with mpactors.Node() as again:
        assert again.alive
        assert mpactors.self() != first  # a new incarnation: a new creation
        assert mpactors.processes() == []


def test_stop_ends_the_actors_of_every_start_method(multiprocessing_helpers: None) -> None:
    os_pids: List[int] = []
    for method in ("forkserver", "spawn"):
        with mpactors.Node(start_method=method):
            os_pids += [_os_pid(mpactors.spawn(wait_for_stop)) for _ in range(2)]
        assert all_gone(os_pids)
    assert len(os_pids) == 4



@pytest.mark.timeout(60)
def test_stop_returns_when_many_actors_ignore_sigterm_and_the_node_can_start_again() -> None:
    """Regression: once SIGKILL went out, a second wait computed ``select(inf)``
    (OverflowError), the stop request died unanswered and ``stop()`` hung."""
    n = mpactors.Node()
    n.start()
    try:
        me = mpactors.self()
        pids = [mpactors.spawn(ignore_sigterm_and_spin, me) for _ in range(30)]
        for _ in pids:
            assert mpactors.receive("ignoring SIGTERM", timeout=LONG_TIMEOUT)
        os_pids = [_os_pid(p) for p in pids]
    finally:
        n.stop()
    assert not n.alive
    assert all_gone(os_pids)
    with mpactors.Node() as again:
        assert again.alive


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_output_the_node_buffered_before_a_spawn_is_written_once(method: str) -> None:
    """A line printed (unflushed, to a pipe) before spawns appears once, not once per actor.

    The CI failure this guards against: ``examples/supervision_tree.py`` printed
    a line, then the node forked actors; each child inherited the buffered line
    and wrote it again when it flushed its streams at exit.
    """
    code = (
        "import mpactors\n"
        f"with mpactors.Node(start_method={method!r}):\n"
        "    print('printed once')\n"
        "    pids = [mpactors.spawn(print, 'child') for _ in range(3)]\n"
        "    for p in pids:\n"
        "        mpactors.monitor(p)\n"
        "    for _ in pids:\n"
        "        mpactors.receive(mpactors.Down, timeout=30)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as in CI
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=LONG_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.count("printed once") == 1, out
    assert out.count("child") == 3, out
