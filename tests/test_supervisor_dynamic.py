"""Supervisor, dynamic and across nodes (SPEC Part 2).

Erlang outcomes these follow (OTP 25 ``supervisor.erl``): ``start_child``
with a running id gives ``{error, {already_started, Pid}}``, with a present
one ``{error, already_present}``; ``terminate_child`` keeps the spec,
``delete_child`` of a running child gives ``{error, running}``; a temporary
child's spec is deleted when it ends; ``count_children`` of a
``simple_one_for_one`` supervisor has ``specs`` 1; children are terminated
in reverse start order; a failed restart is retried (``try_again_restart``)
and counts toward the restart intensity.
"""
from __future__ import annotations

import re
import time
from typing import Any, Dict

import pytest
from nodes import cluster, cookie, local_node, run_node, wait_forever  # noqa: F401 - fixtures
from support import LONG_TIMEOUT, SHORT_TIMEOUT, wait_until

import mpactors
from mpactors import ChildSpec, Down, GenServer, Supervisor, genserver
from mpactors.supervisor import (
    count_children, delete_child, restart_child, start_child, terminate_child, which_children,
)

pytestmark = pytest.mark.timeout(90)


def worker(tag: Any, report_to: mpactors.Pid, *extra: Any) -> None:
    """A child that reports ``('started', tag, pid, extra)`` and waits; returns on ``'bye'``."""
    mpactors.send(report_to, ("started", tag, mpactors.self(), extra))
    if mpactors.receive() == "bye":
        return


class Reporter(GenServer):
    """A GenServer child that reports its start and its ``terminate``."""

    def init(self, tag: Any, report_to: mpactors.Pid) -> None:
        self.tag, self.report_to = tag, report_to
        mpactors.send(report_to, ("started", self.tag, mpactors.self(), ()))

    def terminate(self, reason: Any) -> None:
        mpactors.send(self.report_to, ("terminated", self.tag, reason))


def started(n: int) -> Dict[Any, mpactors.Pid]:
    """The next ``n`` start reports, as ``{tag: pid}``."""
    out = {}
    for _ in range(n):
        _, tag, pid, _ = mpactors.receive(("started", mpactors.ANY, mpactors.Pid, tuple), timeout=SHORT_TIMEOUT)
        out[tag] = pid
    return out


def pids(sup: Any) -> Dict[Any, Any]:
    return {cid: pid for cid, pid, _ in which_children(sup)}


@pytest.mark.parametrize(
    "strategy, restarted",
    [("one_for_one", {"b"}), ("one_for_all", {"a", "b", "c"}), ("rest_for_one", {"b", "c"})],
)
def test_children_added_with_start_child_are_restarted_by_the_strategy(
    node: mpactors.Node, strategy: str, restarted: set,
) -> None:
    me = mpactors.self()
    sup = Supervisor.start([ChildSpec("a", worker, args=("a", me))], strategy=strategy)
    first = started(1)
    for tag in "bc":
        pid = start_child(sup, ChildSpec(tag, worker, args=(tag, me)))
        first.update(started(1))
        assert first[tag] == pid
    assert [cid for cid, _, _ in which_children(sup)] == ["a", "b", "c"]
    mpactors.exit(first["b"], "boom")
    again = started(len(restarted))
    assert set(again) == restarted
    now = pids(sup)
    assert {tag for tag in "abc" if now[tag] != first[tag]} == restarted
    genserver.stop(sup)


def test_start_child_refuses_a_running_or_present_id(node: mpactors.Node) -> None:
    me = mpactors.self()
    sup = Supervisor.start([ChildSpec("a", worker, args=("a", me))])
    first = started(1)
    with pytest.raises(mpactors.AlreadyStarted) as info:
        start_child(sup, ChildSpec("a", worker, args=("a", me)))
    assert info.value.pid == first["a"]
    terminate_child(sup, "a")
    with pytest.raises(mpactors.BadArg, match="already present"):
        start_child(sup, ChildSpec("a", worker, args=("a", me)))
    with pytest.raises(mpactors.BadArg):
        start_child(sup, "not a spec")
    genserver.stop(sup)


def test_terminate_restart_and_delete_child_follow_otp(node: mpactors.Node) -> None:
    me = mpactors.self()
    sup = Supervisor.start([ChildSpec("a", worker, args=("a", me)), ChildSpec("g", Reporter, args=("g", me))])
    first = started(2)
    terminate_child(sup, "g")
    assert mpactors.receive(("terminated", "g", mpactors.ANY), timeout=SHORT_TIMEOUT) == ("terminated", "g", "shutdown")
    assert mpactors.process_info(first["g"]) is None
    assert which_children(sup) == [("a", first["a"], "worker"), ("g", None, "worker")]  # the spec stays
    with pytest.raises(mpactors.BadArg, match="running"):
        restart_child(sup, "a")
    with pytest.raises(mpactors.BadArg, match="running"):
        delete_child(sup, "a")
    new = restart_child(sup, "g")
    assert started(1) == {"g": new} and new != first["g"]
    terminate_child(sup, "g")
    delete_child(sup, "g")
    assert [cid for cid, _, _ in which_children(sup)] == ["a"]
    with pytest.raises(mpactors.BadArg, match="no child"):
        terminate_child(sup, "g")
    genserver.stop(sup)


def test_a_finished_temporary_child_is_no_longer_listed_or_counted(node: mpactors.Node) -> None:
    me = mpactors.self()
    sup = Supervisor.start([
        ChildSpec("p", worker, args=("p", me)),
        ChildSpec("t", worker, args=("t", me), restart="transient"),
        ChildSpec("x", worker, args=("x", me), restart="temporary"),
        ChildSpec("s", Supervisor, args=([],), type="supervisor"),
    ])
    first = started(3)
    assert count_children(sup) == {"specs": 4, "active": 4, "supervisors": 1, "workers": 3}
    mpactors.send(first["x"], "bye")
    mpactors.send(first["t"], "bye")
    wait_until(lambda: [c for c in which_children(sup) if c[0] in "tx"] == [("t", None, "worker")])
    assert count_children(sup) == {"specs": 3, "active": 2, "supervisors": 1, "workers": 2}
    genserver.stop(sup)


def test_simple_one_for_one_starts_instances_from_the_template(node: mpactors.Node) -> None:
    me = mpactors.self()
    sup = Supervisor.start([ChildSpec("tmpl", worker, args=("inst", me))], strategy="simple_one_for_one")
    assert which_children(sup) == []
    p1 = start_child(sup, [1])
    p2 = start_child(sup, (2, "two"))
    reports = [mpactors.receive(("started", "inst", mpactors.Pid, tuple), timeout=SHORT_TIMEOUT) for _ in range(2)]
    assert {r[2]: r[3] for r in reports} == {p1: (1,), p2: (2, "two")}  # template args + extra args
    assert which_children(sup) == [(None, p1, "worker"), (None, p2, "worker")]
    assert count_children(sup) == {"specs": 1, "active": 2, "supervisors": 0, "workers": 2}
    mpactors.exit(p1, "boom")  # permanent: restarted with the same extra args
    again = mpactors.receive(("started", "inst", mpactors.Pid, tuple), timeout=SHORT_TIMEOUT)
    assert again[3] == (1,) and again[2] != p1
    terminate_child(sup, p2)  # a simple_one_for_one child is named by its pid, and removed
    assert which_children(sup) == [(None, again[2], "worker")]
    with pytest.raises(mpactors.BadArg):
        restart_child(sup, again[2])
    with pytest.raises(mpactors.BadArg):
        start_child(sup, ChildSpec("x", worker))
    genserver.stop(sup)


def test_children_stop_in_reverse_start_order_with_terminate_and_shutdown_times(node: mpactors.Node) -> None:
    me = mpactors.self()

    def stubborn(report_to: mpactors.Pid) -> None:
        mpactors.trap_exit(True)  # ignores 'shutdown': killed after its shutdown time
        mpactors.send(report_to, ("started", "stubborn", mpactors.self(), ()))
        while True:
            mpactors.receive()

    specs = [ChildSpec(tag, Reporter, args=(tag, me)) for tag in "ab"]
    specs.insert(1, ChildSpec("stubborn", stubborn, args=(me,), shutdown=0.5))
    sup = Supervisor.start(specs)
    first = started(3)
    start_child(sup, ChildSpec("c", Reporter, args=("c", me)))  # started last, stopped first
    first.update(started(1))
    ref = mpactors.monitor(first["stubborn"])
    began = time.monotonic()
    genserver.stop(sup, timeout=LONG_TIMEOUT)
    took = time.monotonic() - began
    order = [mpactors.receive(("terminated", str, "shutdown"), timeout=SHORT_TIMEOUT)[1] for _ in range(3)]
    assert order == ["c", "b", "a"]
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, first["stubborn"], "killed")
    assert 0.5 <= took < SHORT_TIMEOUT
    assert all(mpactors.process_info(pid) is None for pid in first.values())


# -- across nodes ---------------------------------------------------------------------
TICKTIME = 2.0


def _log_count(text: str, pattern: str) -> int:
    return len(re.findall(pattern, text))


@pytest.mark.usefixtures("cluster")
def test_a_remote_child_whose_node_is_killed_counts_failed_restarts_toward_the_intensity() -> None:
    with run_node(ticktime=TICKTIME) as b, run_node(ticktime=TICKTIME) as c, local_node(ticktime=TICKTIME):
        me = mpactors.self()
        specs = [ChildSpec("remote", worker, args=("remote", me), node=b.name)]
        sup = Supervisor.start(specs, node=c.name, max_restarts=3, max_seconds=60, retry_delay=0.1)
        first = started(1)
        assert first["remote"].node == b.name
        ref = mpactors.monitor(sup)
        b.kill()
        # lost (restart 1 fails), retried twice more (2, 3), the 4th exceeds the intensity
        assert mpactors.receive(Down, timeout=LONG_TIMEOUT) == Down(ref, sup, "shutdown")
        log = c.wait_log(r"reached the restart intensity").string
        assert _log_count(log, r"child 'remote' \(\S+\) exited with 'noconnection'") == 1  # one crash report
        assert _log_count(log, r"child 'remote' failed to start on " + re.escape(b.name)) == 3


@pytest.mark.usefixtures("cluster")
def test_remote_children_come_back_by_restart_type_when_their_node_returns() -> None:
    with run_node(ticktime=TICKTIME) as b, local_node(ticktime=TICKTIME):
        me = mpactors.self()
        specs = [
            ChildSpec("p", worker, args=("p", me), node=b.name),
            ChildSpec("t", Reporter, args=("t", me), node=b.name, restart="transient"),
            ChildSpec("x", worker, args=("x", me), node=b.name, restart="temporary"),
            ChildSpec("local", worker, args=("local", me)),
        ]
        sup = Supervisor.start(specs, max_restarts=200, max_seconds=120, retry_delay=0.2)
        first = started(4)
        alive_name = b.alive_name
        b.kill()
        with run_node(alive_name, ticktime=TICKTIME) as b2:
            again = {}
            deadline = time.monotonic() + LONG_TIMEOUT
            while set(again) != {"p", "t"}:
                _, tag, pid, _ = mpactors.receive(
                    ("started", mpactors.ANY, mpactors.Pid, tuple), timeout=max(0.0, deadline - time.monotonic())
                )
                again[tag] = pid
            assert all(pid.node == b2.name for pid in again.values())
            now = pids(sup)
            assert set(now) == {"p", "t", "local"}  # the temporary child is gone
            assert now["local"] == first["local"]  # one_for_one: the local child was left alone
            assert count_children(sup)["active"] == 3
            genserver.stop(sup, timeout=LONG_TIMEOUT)
            assert mpactors.receive(("terminated", "t", "shutdown"), timeout=SHORT_TIMEOUT)


@pytest.mark.usefixtures("cluster")
def test_a_supervision_tree_spans_nodes_and_reports_a_crash_once() -> None:
    with run_node() as b, local_node():
        me = mpactors.self()
        inner = [ChildSpec("w", worker, args=("w", me))]
        specs = [ChildSpec("sub", Supervisor, args=(inner,), node=b.name, type="supervisor")]
        top = Supervisor.start(specs)
        first = started(1)
        [(cid, sub, kind)] = which_children(top)
        assert (cid, sub.node, kind) == ("sub", b.name, "supervisor")
        assert first["w"].node == b.name
        mpactors.exit(first["w"], "boom")
        assert started(1)["w"] != first["w"]
        log = b.wait_log(r"child 'w' \(\S+\) exited with 'boom'").string
        assert _log_count(log, r"child 'w' \(\S+\) exited with") == 1
        genserver.stop(top)
        assert mpactors.process_info(sub) is None
