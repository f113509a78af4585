"""Links and exit signals, with Erlang's semantics.

* a linked process dies with the same reason, unless it traps exits, in
  which case it receives ``ExitSignal(pid, reason)``;
* reason ``'normal'`` does not kill a process that does not trap exits;
* ``exit(pid, 'kill')`` cannot be trapped, and the victim dies ``'killed'``;
* an uncaught exception gives a ``Crash`` reason (type name + traceback text).

Who died with which reason is observed with monitors from the node's main
process, which traps exits where a test needs ``ExitSignal`` messages.
"""
from __future__ import annotations

import time
from typing import Any, Optional

import pytest

import mpactors
from mpactors import BadArg, Crash, Down, ExitSignal, Pid, ProcessExit, Timeout
from support import LONG_TIMEOUT, SHORT_TIMEOUT, wait_until

#: Every test here runs actor processes: fail fast (with stacks) instead of hanging.
pytestmark = pytest.mark.timeout(60)


# -- actors --------------------------------------------------------------------
def wait_for_stop() -> None:
    mpactors.receive("stop", timeout=LONG_TIMEOUT)


def crash_on(trigger: Any = "crash") -> None:
    mpactors.receive(trigger, timeout=LONG_TIMEOUT)
    raise ZeroDivisionError("asked to crash")


def divide_by_zero() -> None:
    1 / 0  # noqa: B018 - the crash under test


def exit_with(reason: Any) -> None:
    mpactors.receive("go", timeout=LONG_TIMEOUT)
    mpactors.exit(reason)


def link_then_wait(other: Pid, report_to: Pid) -> None:
    mpactors.link(other)
    mpactors.send(report_to, ("linked", mpactors.self()))
    wait_for_stop()


def trap_link_then_forward(other: Optional[Pid], report_to: Pid) -> None:
    """Trap exits, link to ``other``, and forward every message to ``report_to``."""
    mpactors.trap_exit(True)
    if other is not None:
        mpactors.link(other)
    mpactors.send(report_to, ("linked", mpactors.self()))
    while True:
        msg = mpactors.receive(timeout=LONG_TIMEOUT)
        if msg == "stop":
            return
        mpactors.send(report_to, ("got", msg))


def exit_self_normal(trap: bool) -> None:
    """exit(self(), 'normal'): ends a non-trapping process; a trapping one gets a message."""
    mpactors.trap_exit(trap)
    mpactors.exit(mpactors.self(), "normal")
    msg = mpactors.receive(timeout=LONG_TIMEOUT)
    mpactors.exit(("survived", msg))


def chain(depth: int, report_to: Pid) -> None:
    """Spawn-link a chain of ``depth`` more processes; the last one crashes on 'crash'."""
    if depth == 0:
        mpactors.send(report_to, ("chain", mpactors.self()))
        crash_on()
        return
    mpactors.send(report_to, ("chain", mpactors.self()))
    mpactors.spawn_link(chain, depth - 1, report_to)
    wait_for_stop()


def unlink_then_wait(other: Pid, report_to: Pid) -> None:
    mpactors.link(other)
    mpactors.unlink(other)
    mpactors.send(report_to, ("unlinked", mpactors.self()))
    wait_for_stop()


def _linked(pattern: Any = ("linked", Pid)) -> Pid:
    return mpactors.receive(pattern, timeout=SHORT_TIMEOUT)[1]


def _down_of(pid: Pid, timeout: float = SHORT_TIMEOUT) -> Down:
    return mpactors.receive(lambda m: type(m) is Down and m.pid == pid, timeout=timeout)


def _is_alive(pid: Pid) -> bool:
    return mpactors.process_info(pid) is not None


# -- propagation ---------------------------------------------------------------
def test_a_crash_kills_a_linked_process_with_the_same_reason(node: mpactors.Node) -> None:
    victim = mpactors.spawn(crash_on)
    linked = mpactors.spawn(link_then_wait, victim, mpactors.self())
    assert _linked() == linked
    ref_v, ref_l = mpactors.monitor(victim), mpactors.monitor(linked)
    mpactors.send(victim, "crash")
    down_v, down_l = _down_of(victim), _down_of(linked)
    assert (down_v.ref, down_l.ref) == (ref_v, ref_l)
    assert isinstance(down_v.reason, Crash)
    assert down_l.reason == down_v.reason


def test_an_exception_gives_a_crash_reason_with_the_type_name_and_traceback_text(node: mpactors.Node) -> None:
    mpactors.trap_exit(True)
    pid = mpactors.spawn_link(divide_by_zero)
    sig = mpactors.receive(ExitSignal, timeout=SHORT_TIMEOUT)
    assert sig.pid == pid
    assert isinstance(sig.reason, Crash)
    assert sig.reason.type == "ZeroDivisionError"
    assert sig.reason.message == "division by zero"
    assert "Traceback (most recent call last)" in sig.reason.traceback
    assert "divide_by_zero" in sig.reason.traceback
    assert "1 / 0" in sig.reason.traceback


def test_a_crash_travels_along_a_chain_of_links(node: mpactors.Node) -> None:
    me = mpactors.self()
    mpactors.spawn(chain, 3, me)
    members = [mpactors.receive(("chain", Pid), timeout=SHORT_TIMEOUT)[1] for _ in range(4)]
    refs = {mpactors.monitor(p): p for p in members}
    mpactors.send(members[-1], "crash")
    downs = [mpactors.receive(Down, timeout=SHORT_TIMEOUT) for _ in range(4)]
    assert {d.pid for d in downs} == set(members)
    assert all(refs[d.ref] == d.pid for d in downs)
    assert len({d.reason for d in downs}) == 1
    assert downs[0].reason.type == "ZeroDivisionError"


def test_normal_exit_does_not_kill_a_linked_process_that_does_not_trap_exits(node: mpactors.Node) -> None:
    ender = mpactors.spawn(exit_with, "normal")
    survivor = mpactors.spawn(link_then_wait, ender, mpactors.self())
    assert _linked() == survivor
    ref = mpactors.monitor(ender)
    mpactors.send(ender, "go")
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, ender, "normal")
    assert _is_alive(survivor)
    assert mpactors.process_info(survivor)["links"] == []
    mpactors.send(survivor, "stop")


def test_returning_from_the_callable_is_a_normal_exit_that_does_not_kill_linked_processes(
    node: mpactors.Node,
) -> None:
    ender = mpactors.spawn(wait_for_stop)
    survivor = mpactors.spawn(link_then_wait, ender, mpactors.self())
    assert _linked() == survivor
    ref = mpactors.monitor(ender)
    mpactors.send(ender, "stop")
    assert _down_of(ender) == Down(ref, ender, "normal")
    assert _is_alive(survivor)
    mpactors.send(survivor, "stop")


def test_a_trapping_process_receives_exit_signal_with_the_pid_and_reason(node: mpactors.Node) -> None:
    mpactors.trap_exit(True)
    pid = mpactors.spawn_link(exit_with, ("shutdown", "custom"))
    mpactors.send(pid, "go")
    assert mpactors.receive(ExitSignal, timeout=SHORT_TIMEOUT) == ExitSignal(pid, ("shutdown", "custom"))


def test_a_trapping_process_receives_exit_signal_normal_when_a_linked_process_returns(node: mpactors.Node) -> None:
    mpactors.trap_exit(True)
    pid = mpactors.spawn_link(wait_for_stop)
    mpactors.send(pid, "stop")
    assert mpactors.receive(ExitSignal, timeout=SHORT_TIMEOUT) == ExitSignal(pid, "normal")


def test_a_trapping_actor_survives_a_crash_of_a_linked_process(node: mpactors.Node) -> None:
    victim = mpactors.spawn(crash_on)
    trapper = mpactors.spawn(trap_link_then_forward, victim, mpactors.self())
    assert _linked() == trapper
    mpactors.send(victim, "crash")
    tag, sig = mpactors.receive(("got", ExitSignal), timeout=SHORT_TIMEOUT)
    assert sig.pid == victim and sig.reason.type == "ZeroDivisionError"
    assert _is_alive(trapper)
    mpactors.send(trapper, "stop")


def test_mpactors_exit_inside_an_actor_ends_it_with_that_reason(node: mpactors.Node) -> None:
    mpactors.trap_exit(True)
    pid = mpactors.spawn_link(exit_with, {"why": "done"})
    ref = mpactors.monitor(pid)
    mpactors.send(pid, "go")
    assert mpactors.receive(ExitSignal, timeout=SHORT_TIMEOUT) == ExitSignal(pid, {"why": "done"})
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, pid, {"why": "done"})


def test_an_exit_reason_kills_a_non_trapping_linked_actor_with_the_same_reason(node: mpactors.Node) -> None:
    ender = mpactors.spawn(exit_with, "shutdown")
    linked = mpactors.spawn(link_then_wait, ender, mpactors.self())
    assert _linked() == linked
    ref = mpactors.monitor(linked)
    mpactors.send(ender, "go")
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, linked, "shutdown")


def test_unlink_stops_a_crash_from_propagating(node: mpactors.Node) -> None:
    victim = mpactors.spawn(crash_on)
    survivor = mpactors.spawn(unlink_then_wait, victim, mpactors.self())
    assert _linked(("unlinked", Pid)) == survivor
    ref = mpactors.monitor(victim)
    mpactors.send(victim, "crash")
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT).ref == ref
    assert _is_alive(survivor)
    mpactors.send(survivor, "stop")


def test_links_are_listed_on_both_sides_and_removed_by_unlink(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    me = mpactors.self()
    mpactors.link(pid)
    assert mpactors.process_info(pid)["links"] == [me]
    assert mpactors.process_info(me)["links"] == [pid]
    mpactors.unlink(pid)
    assert mpactors.process_info(pid)["links"] == []
    assert mpactors.process_info(me)["links"] == []
    mpactors.send(pid, "stop")


def test_linking_twice_or_to_oneself_changes_nothing(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    me = mpactors.self()
    mpactors.link(pid)
    mpactors.link(pid)
    mpactors.link(me)
    assert mpactors.process_info(me)["links"] == [pid]
    mpactors.unlink(pid)
    mpactors.send(pid, "stop")


# -- exit/2 ----------------------------------------------------------------------
def test_exit_kill_cannot_be_trapped_and_is_reported_as_killed(node: mpactors.Node) -> None:
    trapper = mpactors.spawn(trap_link_then_forward, None, mpactors.self())
    assert _linked() == trapper
    mpactors.trap_exit(True)
    mpactors.link(trapper)
    ref = mpactors.monitor(trapper)
    mpactors.exit(trapper, "kill")
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, trapper, "killed")
    assert mpactors.receive(ExitSignal, timeout=SHORT_TIMEOUT) == ExitSignal(trapper, "killed")


def test_a_process_killed_with_kill_takes_its_non_trapping_links_down_as_killed(node: mpactors.Node) -> None:
    victim = mpactors.spawn(wait_for_stop)
    linked = mpactors.spawn(link_then_wait, victim, mpactors.self())
    assert _linked() == linked
    ref = mpactors.monitor(linked)
    mpactors.exit(victim, "kill")
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, linked, "killed")


def test_a_trapping_link_of_a_killed_process_receives_killed_and_lives(node: mpactors.Node) -> None:
    victim = mpactors.spawn(wait_for_stop)
    trapper = mpactors.spawn(trap_link_then_forward, victim, mpactors.self())
    assert _linked() == trapper
    mpactors.exit(victim, "kill")
    assert mpactors.receive(("got", ExitSignal), timeout=SHORT_TIMEOUT) == ("got", ExitSignal(victim, "killed"))
    assert _is_alive(trapper)
    mpactors.send(trapper, "stop")


def test_exit_normal_to_a_trapping_process_delivers_exit_signal_from_the_caller(node: mpactors.Node) -> None:
    trapper = mpactors.spawn(trap_link_then_forward, None, mpactors.self())
    assert _linked() == trapper
    mpactors.exit(trapper, "normal")
    assert mpactors.receive(("got", ExitSignal), timeout=SHORT_TIMEOUT) == ("got", ExitSignal(mpactors.self(), "normal"))
    assert _is_alive(trapper)
    mpactors.send(trapper, "stop")


def test_exit_normal_to_a_process_that_does_not_trap_exits_is_ignored(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    ref = mpactors.monitor(pid)
    mpactors.exit(pid, "normal")
    with pytest.raises(Timeout):
        mpactors.receive(Down, timeout=0.3)
    assert _is_alive(pid)
    mpactors.send(pid, "stop")
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, pid, "normal")


def test_exit_with_a_reason_ends_a_process_that_does_not_trap_exits_with_that_reason(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    ref = mpactors.monitor(pid)
    mpactors.exit(pid, "shutdown")
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, pid, "shutdown")


def test_exit_with_a_reason_to_a_trapping_process_is_a_message(node: mpactors.Node) -> None:
    trapper = mpactors.spawn(trap_link_then_forward, None, mpactors.self())
    assert _linked() == trapper
    mpactors.exit(trapper, ("bye", 1))
    assert mpactors.receive(("got", ExitSignal), timeout=SHORT_TIMEOUT) == ("got", ExitSignal(mpactors.self(), ("bye", 1)))
    assert _is_alive(trapper)
    mpactors.send(trapper, "stop")


def test_exit_to_a_dead_pid_does_nothing(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(wait_for_stop)
    mpactors.send(pid, "stop")
    mpactors.receive(Down, timeout=SHORT_TIMEOUT)
    mpactors.exit(pid, "kill")
    mpactors.exit(pid, "shutdown")
    assert mpactors.process_info(pid) is None


# -- link to a dead process, trap_exit -------------------------------------------
def test_linking_to_a_dead_pid_while_trapping_exits_gives_exit_signal_noproc(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(wait_for_stop)
    mpactors.send(pid, "stop")
    mpactors.receive(Down, timeout=SHORT_TIMEOUT)
    mpactors.trap_exit(True)
    mpactors.link(pid)
    assert mpactors.receive(ExitSignal, timeout=SHORT_TIMEOUT) == ExitSignal(pid, "noproc")
    assert mpactors.process_info(mpactors.self())["links"] == []


def test_trap_exit_returns_the_previous_flag_and_shows_in_process_info(node: mpactors.Node) -> None:
    me = mpactors.self()
    assert mpactors.trap_exit(True) is False
    assert mpactors.process_info(me)["trap_exit"] is True
    assert mpactors.trap_exit(False) is True
    assert mpactors.process_info(me)["trap_exit"] is False


def test_the_main_process_linked_to_a_crashing_actor_gets_process_exit_from_receive(node: mpactors.Node) -> None:
    # The node's main process cannot be torn down: its receive raises instead.
    pid = mpactors.spawn_link(crash_on)
    mpactors.send(pid, "crash")
    with pytest.raises(ProcessExit) as info:
        mpactors.receive(timeout=SHORT_TIMEOUT)
    assert isinstance(info.value.reason, Crash)
    assert info.value.reason.type == "ZeroDivisionError"
    wait_until(lambda: mpactors.process_info(pid) is None)
    # The main process goes on, without the broken link.
    mpactors.send(mpactors.self(), "still here")
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == "still here"
    assert mpactors.process_info(mpactors.self())["links"] == []


@pytest.mark.parametrize("bad", [None, "name", 42, ("a", "b")])
def test_exit_signals_and_links_need_a_pid(node: mpactors.Node, bad: Any) -> None:
    with pytest.raises(BadArg):
        mpactors.exit(bad, "kill")
    with pytest.raises(BadArg):
        mpactors.link(bad)
    with pytest.raises(BadArg):
        mpactors.unlink(bad)


def test_an_actor_exiting_with_reason_kill_sends_its_links_a_trappable_kill(node: mpactors.Node) -> None:
    # Only exit(pid, 'kill') is untrappable; a *link* carrying 'kill' is an
    # ordinary reason, as in Erlang.
    ender = mpactors.spawn(exit_with, "kill")
    trapper = mpactors.spawn(trap_link_then_forward, ender, mpactors.self())
    assert _linked() == trapper
    mpactors.send(ender, "go")
    assert mpactors.receive(("got", ExitSignal), timeout=SHORT_TIMEOUT) == ("got", ExitSignal(ender, "kill"))
    assert _is_alive(trapper)
    mpactors.send(trapper, "stop")


def test_exit_normal_sent_to_oneself_ends_a_process_that_does_not_trap_exits(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(exit_self_normal, False)
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, pid, "normal")


def test_exit_normal_sent_to_oneself_while_trapping_is_a_message(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(exit_self_normal, True)
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, pid, ("survived", ExitSignal(pid, "normal")))


class _SlowSetName:
    """A descriptor whose ``__set_name__`` waits: an exit signal lands inside it."""

    def __init__(self, report_to: Pid) -> None:
        self.report_to = report_to

    def __set_name__(self, owner: type, name: str) -> None:
        mpactors.send(self.report_to, "in __set_name__")
        time.sleep(LONG_TIMEOUT)


def define_a_class_slowly(report_to: Pid) -> None:
    type("Slow", (), {"attr": _SlowSetName(report_to)})


def test_an_actor_ended_by_an_exit_signal_inside_set_name_dies_with_the_signals_reason(node: mpactors.Node) -> None:
    # Python 3.9-3.11 wrap an exception raised in __set_name__ in a RuntimeError;
    # the actor must still die with the exit signal's reason, not a Crash
    # (seen under spawn and load: the signal reached an actor still importing).
    pid, ref = mpactors.spawn_monitor(define_a_class_slowly, mpactors.self())
    mpactors.receive("in __set_name__", timeout=LONG_TIMEOUT)
    mpactors.exit(pid, "custom-reason")
    assert mpactors.receive(Down, timeout=LONG_TIMEOUT) == Down(ref, pid, "custom-reason")
