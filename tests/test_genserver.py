"""GenServer: init, call, cast, info, terminate, errors; Supervisor strategies."""
from __future__ import annotations

from typing import Any, List

import pytest

import mpactors
from mpactors import ChildSpec, Down, GenServer, Supervisor
from mpactors.genserver import NOREPLY
from mpactors.supervisor import which_children
from support import SHORT_TIMEOUT, wait_until


class Stack(GenServer):
    def init(self, items: List[Any], report_to: Any = None) -> None:
        self.items = list(items)
        self.report_to = report_to
        self.deferred: Any = None

    def handle_call(self, request: Any, frm: Any) -> Any:
        if request == "pop":
            return self.items.pop()
        if request == "later":
            self.deferred = frm
            if self.report_to is not None:
                mpactors.send(self.report_to, "deferred")
            return NOREPLY
        if request == "stop":
            self.stop("normal")
            return "stopping"
        if request == "crash":
            raise KeyError("boom")
        return super().handle_call(request, frm)

    def handle_cast(self, msg: Any) -> None:
        if msg[0] == "push":
            self.items.append(msg[1])
        elif msg[0] == "answer":
            GenServer.reply(self.deferred, msg[1])

    def handle_info(self, msg: Any) -> None:
        if self.report_to is not None:
            mpactors.send(self.report_to, ("info", msg))

    def terminate(self, reason: Any) -> None:
        if self.report_to is not None:
            mpactors.send(self.report_to, ("terminated", reason))


class FailingInit(GenServer):
    def init(self) -> None:
        raise ValueError("cannot start")


def test_call_returns_what_handle_call_returns_and_cast_changes_state(node: mpactors.Node) -> None:
    pid = Stack.start([1, 2])
    GenServer.cast(pid, ("push", 3))
    assert GenServer.call(pid, "pop") == 3
    assert GenServer.call(pid, "pop") == 2


def test_a_named_server_is_reachable_by_name_and_by_name_and_node(node: mpactors.Node) -> None:
    pid = Stack.start([7, 8], name="stack")
    assert mpactors.whereis("stack") == pid
    assert GenServer.call("stack", "pop") == 8
    assert GenServer.call(("stack", mpactors.node()), "pop") == 7


def test_other_messages_go_to_handle_info(node: mpactors.Node) -> None:
    pid = Stack.start([], mpactors.self())
    mpactors.send(pid, "hello")
    assert mpactors.receive(("info", mpactors.ANY), timeout=SHORT_TIMEOUT) == ("info", "hello")


def _call_and_report(server: mpactors.Pid, request: Any, report_to: mpactors.Pid) -> None:
    mpactors.send(report_to, ("result", GenServer.call(server, request)))


def test_a_deferred_reply_reaches_the_caller(node: mpactors.Node) -> None:
    me = mpactors.self()
    pid = Stack.start([], me)
    mpactors.spawn(_call_and_report, pid, "later", me)
    assert mpactors.receive("deferred", timeout=SHORT_TIMEOUT) == "deferred"  # handle_call returned NOREPLY
    GenServer.cast(pid, ("answer", 42))
    assert mpactors.receive(("result", mpactors.ANY), timeout=SHORT_TIMEOUT) == ("result", 42)


def test_stop_runs_terminate_and_ends_the_server_normally(node: mpactors.Node) -> None:
    pid = Stack.start([], mpactors.self())
    ref = mpactors.monitor(pid)
    assert GenServer.call(pid, "stop") == "stopping"
    assert mpactors.receive(("terminated", mpactors.ANY), timeout=SHORT_TIMEOUT) == ("terminated", "normal")
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, pid, "normal")


def test_a_crashing_handle_call_raises_remote_error_in_the_caller(node: mpactors.Node) -> None:
    pid = Stack.start([], mpactors.self())
    with pytest.raises(mpactors.RemoteError) as info:
        GenServer.call(pid, "crash")
    assert info.value.type_name == "KeyError"
    assert "boom" in info.value.remote_traceback
    _, reason = mpactors.receive(("terminated", mpactors.ANY), timeout=SHORT_TIMEOUT)
    assert isinstance(reason, mpactors.Crash) and reason.type == "KeyError"


def test_a_call_that_times_out_raises_timeout_and_the_late_reply_never_arrives(node: mpactors.Node) -> None:
    pid = Stack.start([])
    with pytest.raises(mpactors.Timeout):
        GenServer.call(pid, "later", timeout=0.2)
    GenServer.cast(pid, ("answer", "late"))
    GenServer.call(pid, "stop")  # the cast above was handled before this call returns
    assert mpactors.flush() == []


def test_a_call_to_a_dead_or_unknown_server_fails_at_once(node: mpactors.Node) -> None:
    pid = Stack.start([])
    GenServer.call(pid, "stop")
    wait_until(lambda: mpactors.process_info(pid) is None)
    with pytest.raises(mpactors.RemoteError):
        GenServer.call(pid, "pop", timeout=SHORT_TIMEOUT)
    with pytest.raises(mpactors.RemoteError):
        GenServer.call("nobody", "pop")
    GenServer.cast("nobody", "ignored")  # dropped, as in Erlang


def test_start_raises_when_init_fails(node: mpactors.Node) -> None:
    with pytest.raises(mpactors.RemoteError, match="cannot start"):
        FailingInit.start()


def _worker(tag: str, report_to: mpactors.Pid) -> None:
    mpactors.send(report_to, ("started", tag, mpactors.self()))
    mpactors.receive()


def _started(n: int) -> List[Any]:
    return [mpactors.receive(("started", str, mpactors.Pid), timeout=SHORT_TIMEOUT) for _ in range(n)]


@pytest.mark.parametrize(
    "strategy, restarted",
    [("one_for_one", ["b"]), ("one_for_all", ["a", "b", "c"]), ("rest_for_one", ["b", "c"])],
)
def test_supervisor_strategies_restart_the_right_children(node: mpactors.Node, strategy: str, restarted: List[str]) -> None:
    me = mpactors.self()
    specs = [ChildSpec(t, _worker, args=(t, me)) for t in "abc"]
    sup = Supervisor.start(specs, strategy=strategy)
    first = {tag: pid for _, tag, pid in _started(3)}
    mpactors.exit(first["b"], "boom")
    again = _started(len(restarted))
    assert sorted(tag for _, tag, _ in again) == restarted  # each child reports from its own process
    children = {c[0]: c[1] for c in which_children(sup)}
    for tag in "abc":
        assert (children[tag] != first[tag]) == (tag in restarted)
    mpactors.exit(sup, "shutdown")


def test_restart_types_decide_which_exits_are_restarted(node: mpactors.Node) -> None:
    me = mpactors.self()
    specs = [
        ChildSpec("p", _worker, args=("p", me), restart="permanent"),
        ChildSpec("t", _worker, args=("t", me), restart="transient"),
        ChildSpec("x", _worker, args=("x", me), restart="temporary"),
    ]
    sup = Supervisor.start(specs, max_restarts=10)
    first = {tag: pid for _, tag, pid in _started(3)}
    mpactors.send(first["t"], "bye")  # returns: a normal exit, not restarted
    mpactors.send(first["p"], "bye")  # permanent: restarted even after a normal exit
    assert mpactors.receive(("started", "p", mpactors.Pid), timeout=SHORT_TIMEOUT)
    mpactors.exit(first["x"], "boom")  # temporary: never restarted, and no longer listed

    def settled() -> Any:
        children = {c[0]: c[1] for c in which_children(sup)}
        return children if "x" not in children and children["t"] is None else None

    children = wait_until(settled)
    assert children["p"] not in (None, first["p"])
    mpactors.exit(sup, "shutdown")


def test_too_many_restarts_make_the_supervisor_exit_with_shutdown(node: mpactors.Node) -> None:
    me = mpactors.self()
    sup = Supervisor.start([ChildSpec("a", _worker, args=("a", me))], max_restarts=2, max_seconds=30)
    ref = mpactors.monitor(sup)
    for _ in range(3):
        _, _, pid = mpactors.receive(("started", "a", mpactors.Pid), timeout=SHORT_TIMEOUT)
        mpactors.exit(pid, "boom")
    down = mpactors.receive(Down, timeout=SHORT_TIMEOUT)
    assert down == Down(ref, sup, "shutdown")
