"""process_info of local pids: status, queue length, links, monitors, name,
OS pid, memory, CPU and the running callable - answered even while the
actor's own code is busy.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict

import psutil
import pytest

import mpactors
from mpactors import BadArg, Down, Pid
from support import LONG_TIMEOUT, SHORT_TIMEOUT, ancestors, wait_until

#: Every test here runs actor processes: fail fast (with stacks) instead of hanging.
pytestmark = pytest.mark.timeout(60)

KEYS = {
    "status", "message_queue_len", "links", "monitors", "monitored_by", "registered_name",
    "os_pid", "memory", "cpu_percent", "current", "trap_exit", "node",
}


# -- actors -------------------------------------------------------------------
def wait_for_stop() -> None:
    mpactors.receive("stop", timeout=LONG_TIMEOUT)


def spin(seconds: float) -> None:
    """Burn CPU without ever touching the mailbox."""
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1


def sleep_in_c(seconds: float) -> None:
    time.sleep(seconds)  # blocked in C: only the control thread can answer


def trap_then_wait(report_to: Pid) -> None:
    mpactors.trap_exit(True)
    mpactors.send(report_to, "trapping")
    wait_for_stop()


def report_main_info(main: Pid) -> None:
    mpactors.receive("go", timeout=LONG_TIMEOUT)
    wait_until(lambda: mpactors.process_info(main)["status"] == "waiting", timeout=SHORT_TIMEOUT)
    mpactors.send(main, ("main info", mpactors.process_info(main)))


def _info(pid: Pid) -> Dict[str, Any]:
    info = mpactors.process_info(pid)
    assert info is not None, f"{pid} is not alive"
    return info


# -- the keys -------------------------------------------------------------------
def test_process_info_of_an_actor_has_every_documented_key(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    info = _info(pid)
    assert KEYS <= set(info)
    assert info["node"] == mpactors.node()
    mpactors.send(pid, "stop")


def test_an_actor_blocked_in_receive_is_waiting(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    wait_until(lambda: _info(pid)["status"] == "waiting", what="the actor to block in receive")
    mpactors.send(pid, "stop")


@pytest.mark.timeout(60)
def test_a_busy_actor_is_running_and_uses_cpu(node: mpactors.Node) -> None:
    pid = mpactors.spawn(spin, LONG_TIMEOUT)
    assert _info(pid)["status"] == "running"
    wait_until(lambda: (_info(pid)["cpu_percent"] or 0) > 10, what="the spinning actor to show CPU use")
    mpactors.exit(pid, "kill")


def test_an_idle_actor_uses_little_cpu(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    wait_until(lambda: _info(pid)["status"] == "waiting")
    assert isinstance(_info(pid)["cpu_percent"], float)
    # The first reading averages over the actor's start; later ones measure
    # the time since the previous call, when it only waits.
    wait_until(lambda: 0.0 <= _info(pid)["cpu_percent"] < 5.0, what="an idle actor's CPU use to drop")
    mpactors.send(pid, "stop")


def test_process_info_answers_while_the_actor_is_blocked_in_a_c_call(node: mpactors.Node) -> None:
    pid = mpactors.spawn(sleep_in_c, LONG_TIMEOUT)
    for i in range(3):
        mpactors.send(pid, i)
    wait_until(lambda: _info(pid)["message_queue_len"] == 3, what="the queue length of a sleeping actor")
    assert _info(pid)["status"] == "running"
    mpactors.exit(pid, "kill")


def test_message_queue_len_counts_the_messages_waiting_in_the_mailbox(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    assert _info(pid)["message_queue_len"] == 0
    for msg in ["a", "b", ("c",)]:
        mpactors.send(pid, msg)
    wait_until(lambda: _info(pid)["message_queue_len"] == 3, what="three waiting messages")
    mpactors.send(pid, "stop")


def test_links_monitors_and_monitored_by_are_listed(node: mpactors.Node) -> None:
    me = mpactors.self()
    pid = mpactors.spawn(wait_for_stop)
    mpactors.link(pid)
    mpactors.monitor(pid)
    info, mine = _info(pid), _info(me)
    assert info["links"] == [me] and mine["links"] == [pid]
    assert info["monitored_by"] == [me] and mine["monitors"] == [pid]
    assert info["monitors"] == [] and mine["monitored_by"] == []
    mpactors.unlink(pid)
    mpactors.send(pid, "stop")


def test_registered_name_is_shown_and_none_without_a_name(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    assert _info(pid)["registered_name"] is None
    mpactors.register("named", pid)
    assert _info(pid)["registered_name"] == "named"
    mpactors.send(pid, "stop")


def test_os_pid_is_the_actor_process_and_memory_is_its_rss(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    # Once it waits in receive its memory holds still: a process started by
    # forkserver or spawn is still importing (its RSS growing) just after spawn.
    info = wait_until(lambda: (i := _info(pid))["status"] == "waiting" and i, LONG_TIMEOUT, what="the actor waiting")
    proc = psutil.Process(info["os_pid"])
    assert info["os_pid"] != os.getpid()
    assert os.getpid() in ancestors(info["os_pid"])
    assert isinstance(info["memory"], int) and info["memory"] > 1024 * 1024
    # RSS moves a little between two reads: same order of magnitude.
    assert 0.5 < info["memory"] / proc.memory_info().rss < 2.0
    mpactors.send(pid, "stop")


def test_current_names_the_callable(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    assert _info(pid)["current"] == "test_process_info.wait_for_stop"
    mpactors.send(pid, "stop")
    lam = mpactors.spawn(lambda: mpactors.receive("stop", timeout=LONG_TIMEOUT))
    assert "<lambda>" in _info(lam)["current"]
    mpactors.send(lam, "stop")


def test_trap_exit_is_shown(node: mpactors.Node) -> None:
    pid = mpactors.spawn(trap_then_wait, mpactors.self())
    assert mpactors.receive("trapping", timeout=SHORT_TIMEOUT) == "trapping"
    assert _info(pid)["trap_exit"] is True
    other = mpactors.spawn(wait_for_stop)
    assert _info(other)["trap_exit"] is False
    mpactors.send(pid, "stop")
    mpactors.send(other, "stop")


# -- the main process ----------------------------------------------------------------
def test_process_info_of_the_main_process_describes_this_process(node: mpactors.Node) -> None:
    me = mpactors.self()
    for i in range(2):
        mpactors.send(me, i)
    info = _info(me)
    assert KEYS <= set(info)
    assert info["os_pid"] == os.getpid()
    assert info["status"] == "running"
    assert info["message_queue_len"] == 2
    assert isinstance(info["memory"], int) and info["memory"] > 0
    assert mpactors.flush() == [0, 1]


def test_the_main_process_is_waiting_while_it_blocks_in_receive(node: mpactors.Node) -> None:
    me = mpactors.self()
    pid = mpactors.spawn(report_main_info, me)
    mpactors.send(pid, "go")
    tag, info = mpactors.receive(("main info", dict), timeout=SHORT_TIMEOUT)
    assert info["status"] == "waiting"
    assert info["os_pid"] == os.getpid()


# -- dead and bad pids ---------------------------------------------------------------
def test_process_info_of_a_dead_or_unknown_pid_is_none(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(wait_for_stop)
    mpactors.send(pid, "stop")
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT).ref == ref
    assert mpactors.process_info(pid) is None
    assert mpactors.process_info(Pid(mpactors.node(), 12345, 0, pid.creation)) is None
    assert mpactors.process_info(Pid(mpactors.node(), pid.id, 0, pid.creation + 1)) is None


@pytest.mark.parametrize("bad", [None, "main", 0, ("nonode@nohost", 0)])
def test_process_info_of_something_that_is_not_a_pid_raises_bad_arg(node: mpactors.Node, bad: Any) -> None:
    with pytest.raises(BadArg):
        mpactors.process_info(bad)
