"""Monitors: ``Down(ref, pid, reason)`` arrives exactly once, ``'noproc'``
for a process that is already dead, never after ``demonitor``; and every
way an actor can end maps to the exit reason its monitors see.
"""
from __future__ import annotations

import sys
from typing import Any

import pytest

import mpactors
from mpactors import BadArg, Crash, Down, Pid, Ref, Timeout
from support import LONG_TIMEOUT, SHORT_TIMEOUT, wait_until

#: Every test here runs actor processes: fail fast (with stacks) instead of hanging.
pytestmark = pytest.mark.timeout(60)


# -- actors -------------------------------------------------------------------
def wait_for_stop() -> None:
    mpactors.receive("stop", timeout=LONG_TIMEOUT)


def return_at_once() -> None:
    pass


def monitor_and_forward(target: Any, report_to: Pid) -> None:
    ref = mpactors.monitor(target)
    mpactors.send(report_to, ("monitoring", ref))
    down = mpactors.receive(Down, timeout=LONG_TIMEOUT)
    mpactors.send(report_to, ("forwarded", down))


def monitor_then_wait(target: Pid, report_to: Pid) -> None:
    mpactors.monitor(target)
    mpactors.send(report_to, ("monitoring", mpactors.self()))
    wait_for_stop()


def end_with_exception() -> None:
    raise KeyError("missing")


def end_with_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def end_with_sys_exit(*args: Any) -> None:
    sys.exit(*args)


def end_with_mpactors_exit(reason: Any) -> None:
    mpactors.exit(reason)


def _down(timeout: float = SHORT_TIMEOUT) -> Down:
    return mpactors.receive(Down, timeout=timeout)


def _no_down(wait: float = 0.3) -> bool:
    try:
        mpactors.receive(Down, timeout=wait)
    except Timeout:
        return True
    return False


def _dead_pid() -> Pid:
    pid, ref = mpactors.spawn_monitor(return_at_once)
    assert _down() == Down(ref, pid, "normal")
    return pid


# -- Down -----------------------------------------------------------------------
def test_a_monitor_delivers_down_normal_exactly_once_when_the_process_returns(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    ref = mpactors.monitor(pid)
    assert isinstance(ref, Ref)
    mpactors.send(pid, "stop")
    assert _down() == Down(ref, pid, "normal")
    assert _no_down()


def test_down_for_an_exception_carries_a_crash_with_type_and_traceback_text(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(end_with_exception)
    down = _down()
    assert (down.ref, down.pid) == (ref, pid)
    assert isinstance(down.reason, Crash)
    assert down.reason.type == "KeyError"
    assert "missing" in down.reason.message
    assert "end_with_exception" in down.reason.traceback
    assert down.reason.traceback.rstrip().endswith("KeyError: 'missing'")


def test_monitoring_a_dead_pid_gives_down_noproc(node: mpactors.Node) -> None:
    pid = _dead_pid()
    ref = mpactors.monitor(pid)
    assert _down() == Down(ref, pid, "noproc")
    assert _no_down()


def test_monitoring_a_pid_that_never_existed_gives_down_noproc(node: mpactors.Node) -> None:
    ghost = Pid(mpactors.node(), 999_999, 0, mpactors.self().creation)
    ref = mpactors.monitor(ghost)
    assert _down() == Down(ref, ghost, "noproc")


def test_monitoring_an_unregistered_name_gives_down_noproc_naming_it(node: mpactors.Node) -> None:
    ref = mpactors.monitor("nobody")
    assert _down() == Down(ref, ("nobody", mpactors.node()), "noproc")


def test_monitoring_a_registered_name_reports_the_end_of_its_process(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    mpactors.register("server", pid)
    ref = mpactors.monitor("server")
    mpactors.send("server", "stop")
    down = _down()
    assert (down.ref, down.reason) == (ref, "normal")


def test_two_monitors_of_one_process_each_get_their_own_down(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    refs = {mpactors.monitor(pid), mpactors.monitor(pid)}
    assert len(refs) == 2
    mpactors.send(pid, "stop")
    downs = [_down(), _down()]
    assert {d.ref for d in downs} == refs
    assert all(d.pid == pid and d.reason == "normal" for d in downs)
    assert _no_down()


def test_a_monitor_does_not_take_the_watcher_down(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(end_with_exception)
    assert _down().reason.type == "KeyError"
    mpactors.send(mpactors.self(), "still here")
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == "still here"


def test_an_actor_can_monitor_another_actor(node: mpactors.Node) -> None:
    target = mpactors.spawn(wait_for_stop)
    mpactors.spawn(monitor_and_forward, target, mpactors.self())
    _, ref = mpactors.receive(("monitoring", Ref), timeout=SHORT_TIMEOUT)
    mpactors.exit(target, "shutdown")
    assert mpactors.receive(("forwarded", Down), timeout=SHORT_TIMEOUT) == ("forwarded", Down(ref, target, "shutdown"))


def test_monitors_show_in_process_info_of_both_sides(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    me = mpactors.self()
    ref = mpactors.monitor(pid)
    assert mpactors.process_info(pid)["monitored_by"] == [me]
    assert mpactors.process_info(me)["monitors"] == [pid]
    assert mpactors.demonitor(ref) is True
    assert mpactors.process_info(pid)["monitored_by"] == []
    assert mpactors.process_info(me)["monitors"] == []
    mpactors.send(pid, "stop")


def test_a_watcher_that_dies_no_longer_monitors_its_target(node: mpactors.Node) -> None:
    target = mpactors.spawn(wait_for_stop)
    watcher = mpactors.spawn(monitor_then_wait, target, mpactors.self())
    assert mpactors.receive(("monitoring", Pid), timeout=SHORT_TIMEOUT) == ("monitoring", watcher)
    assert mpactors.process_info(target)["monitored_by"] == [watcher]
    mpactors.exit(watcher, "kill")
    wait_until(lambda: mpactors.process_info(target)["monitored_by"] == [], what="the dead watcher's monitor to go")
    mpactors.send(target, "stop")


# -- demonitor ------------------------------------------------------------------
def test_demonitor_before_the_end_means_no_down(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    ref = mpactors.monitor(pid)
    assert mpactors.demonitor(ref) is True
    assert mpactors.demonitor(ref) is False
    ref2 = mpactors.monitor(pid)
    mpactors.send(pid, "stop")
    assert _down() == Down(ref2, pid, "normal")
    assert _no_down()


def test_demonitor_flush_drops_a_down_already_delivered_and_keeps_other_messages(node: mpactors.Node) -> None:
    me = mpactors.self()
    pid = mpactors.spawn(wait_for_stop)
    ref = mpactors.monitor(pid)
    other = mpactors.spawn(wait_for_stop)
    other_ref = mpactors.monitor(other)
    mpactors.send(me, "before")
    mpactors.send(pid, "stop")
    mpactors.send(other, "stop")
    wait_until(lambda: mpactors.process_info(me)["message_queue_len"] == 3, what="both Downs to arrive")
    mpactors.send(me, "after")
    mpactors.demonitor(ref, flush=True)
    assert mpactors.receive("before", timeout=0) == "before"
    assert mpactors.receive(Down, timeout=0) == Down(other_ref, other, "normal")
    assert mpactors.flush() == ["after"]


def test_demonitor_flush_of_a_live_monitor_means_no_down(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    ref = mpactors.monitor(pid)
    assert mpactors.demonitor(ref, flush=True) is True
    mpactors.send(pid, "stop")
    wait_until(lambda: mpactors.process_info(pid) is None)
    assert _no_down()


def test_demonitor_of_an_unknown_ref_returns_false(node: mpactors.Node) -> None:
    assert mpactors.demonitor(mpactors.make_ref()) is False
    assert mpactors.demonitor(mpactors.make_ref(), flush=True) is False


def test_monitor_needs_a_pid_or_a_name(node: mpactors.Node) -> None:
    for bad in (42, None, 1.5):
        with pytest.raises(BadArg):
            mpactors.monitor(bad)


# -- how an actor ends -> the reason its monitors see -------------------------------
@pytest.mark.parametrize(
    "fn, args, expected",
    [
        (return_at_once, (), "normal"),
        (end_with_sys_exit, (), "normal"),
        (end_with_sys_exit, (0,), "normal"),
        (end_with_sys_exit, (3,), 3),
        (end_with_sys_exit, ("bye",), "bye"),
        (end_with_mpactors_exit, ("shutdown",), "shutdown"),
        (end_with_mpactors_exit, (("custom", [1, 2]),), ("custom", [1, 2])),
        (end_with_mpactors_exit, ("normal",), "normal"),
    ],
    ids=["return", "sys.exit()", "sys.exit(0)", "sys.exit(3)", "sys.exit('bye')", "exit-shutdown", "exit-term",
         "exit-normal"],
)
def test_each_way_an_actor_ends_gives_its_exit_reason(node: mpactors.Node, fn: Any, args: tuple, expected: Any) -> None:
    pid, ref = mpactors.spawn_monitor(fn, *args)
    assert _down() == Down(ref, pid, expected)


def test_a_base_exception_from_the_callable_is_a_crash_too(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(end_with_keyboard_interrupt)
    reason = _down().reason
    assert isinstance(reason, Crash)
    assert reason.type == "KeyboardInterrupt"


def test_exit_kill_from_the_node_is_seen_as_killed(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(wait_for_stop)
    mpactors.exit(pid, "kill")
    assert _down() == Down(ref, pid, "killed")
