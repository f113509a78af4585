"""spawn, spawn_link, spawn_monitor: callables of every kind, under every
start method, and many actors that are all gone after ``stop()``.

The ``node`` fixture runs each test under ``fork``, ``forkserver`` and
``spawn``; those last two import this module in the child, so the actor
functions here are module-level.
"""
from __future__ import annotations

import functools
import os
import threading
from typing import Any, Iterator, List

import psutil
import pytest

import mpactors
from mpactors import BadArg, Down, ExitSignal, Pid
from support import LONG_TIMEOUT, SHORT_TIMEOUT, all_gone, wait_until

#: Every test here runs actor processes: fail fast (with stacks) instead of hanging.
pytestmark = pytest.mark.timeout(60)

START_METHODS = ["fork", "forkserver", "spawn"]




@pytest.fixture(params=START_METHODS)
def node(request: pytest.FixtureRequest, multiprocessing_helpers: None) -> Iterator[mpactors.Node]:
    with mpactors.Node(start_method=request.param) as n:
        yield n


@pytest.fixture
def fork_node() -> Iterator[mpactors.Node]:
    with mpactors.Node(start_method="fork") as n:
        yield n


# -- actors -------------------------------------------------------------------
def reply(to: Pid, *args: Any, **kwargs: Any) -> None:
    mpactors.send(to, ("args", args, kwargs))


def report_identity(to: Pid) -> None:
    mpactors.send(to, ("me", mpactors.self(), mpactors.node(), os.getpid(), os.getppid()))


def report_identity_and_wait(to: Pid) -> None:
    report_identity(to)
    wait_for_stop()


def wait_for_stop() -> None:
    mpactors.receive("stop", timeout=LONG_TIMEOUT)


def crash_at_once() -> None:
    raise ZeroDivisionError("at once")


def return_at_once() -> None:
    pass


def spawn_child_and_report(to: Pid) -> None:
    child = mpactors.spawn(report_identity_and_wait, to)
    mpactors.send(to, ("child", child))
    wait_for_stop()


class CallableObject:
    def __init__(self, to: Pid) -> None:
        self.to = to

    def __call__(self, word: str) -> None:
        mpactors.send(self.to, ("object", word))

    def method(self, word: str) -> None:
        mpactors.send(self.to, ("method", word))


def _expect(pattern: Any = None) -> Any:
    return mpactors.receive(pattern, timeout=LONG_TIMEOUT)


# -- callables -------------------------------------------------------------------
def test_a_module_level_function_runs_with_its_positional_arguments(node: mpactors.Node) -> None:
    mpactors.spawn(reply, mpactors.self(), 1, "two", (3,))
    assert _expect() == ("args", (1, "two", (3,)), {})


def test_keyword_arguments_reach_the_callable(node: mpactors.Node) -> None:
    mpactors.spawn(reply, mpactors.self(), 1, a="x", b=[2])
    assert _expect() == ("args", (1,), {"a": "x", "b": [2]})


def test_a_keyword_argument_named_like_a_spawn_parameter_other_than_node_reaches_the_callable(
    node: mpactors.Node,
) -> None:
    mpactors.spawn(reply, mpactors.self(), fn="f", args=(), kwargs={}, link=True, monitor=True)
    assert _expect() == ("args", (), {"fn": "f", "args": (), "kwargs": {}, "link": True, "monitor": True})


def test_a_lambda_spawns(node: mpactors.Node) -> None:
    me = mpactors.self()
    mpactors.spawn(lambda: mpactors.send(me, "from a lambda"))
    assert _expect() == "from a lambda"


def test_a_closure_spawns_with_the_values_it_captured(node: mpactors.Node) -> None:
    me = mpactors.self()
    secret = {"n": 41}

    def closure() -> None:
        mpactors.send(me, ("closure", secret["n"] + 1))

    mpactors.spawn(closure)
    assert _expect() == ("closure", 42)


def test_a_closure_over_a_runtime_function_spawns(node: mpactors.Node) -> None:
    me, send = mpactors.self(), mpactors.send
    mpactors.spawn(lambda: send(me, "closure over send"))
    assert _expect() == "closure over send"


def test_a_self_contained_lambda_and_closure_spawn(node: mpactors.Node) -> None:
    # Neither refers to a global: this isolates lambda/closure transport from
    # what they reference.
    me = mpactors.self()
    mpactors.spawn(lambda to: __import__("mpactors").send(to, "lambda"), me)

    def closure() -> None:
        import mpactors as m

        m.send(me, "closure")

    mpactors.spawn(closure)
    assert sorted([_expect(), _expect()]) == ["closure", "lambda"]


def test_a_callable_object_a_bound_method_and_a_partial_spawn(node: mpactors.Node) -> None:
    obj = CallableObject(mpactors.self())
    mpactors.spawn(obj, "called")
    assert _expect(("object", str)) == ("object", "called")
    mpactors.spawn(obj.method, "bound")
    assert _expect(("method", str)) == ("method", "bound")
    mpactors.spawn(functools.partial(reply, mpactors.self(), 1), 2, k=3)
    assert _expect(("args", tuple, dict)) == ("args", (1, 2), {"k": 3})


def test_an_actor_knows_its_own_pid_and_node(node: mpactors.Node) -> None:
    pid = mpactors.spawn(report_identity, mpactors.self())
    tag, me, where, os_pid, _ = _expect(("me", Pid, str, int, int))
    assert me == pid
    assert where == mpactors.node() == pid.node
    assert os_pid != os.getpid()
    assert pid != mpactors.self()


def test_an_actor_is_an_os_process_descending_from_the_node(node: mpactors.Node) -> None:
    mpactors.spawn(report_identity_and_wait, mpactors.self())
    _, pid, _, os_pid, ppid = _expect(("me", Pid, str, int, int))
    assert mpactors.process_info(pid)["os_pid"] == os_pid
    descendants = {p.pid for p in psutil.Process().children(recursive=True)}
    assert os_pid in descendants
    if node.start_method != "forkserver":  # forkserver's children are the server's
        assert ppid == os.getpid()
    mpactors.send(pid, "stop")


def test_an_actor_can_spawn_an_actor_of_the_same_node(node: mpactors.Node) -> None:
    parent = mpactors.spawn(spawn_child_and_report, mpactors.self())
    _, child = _expect(("child", Pid))
    _, me, where, os_pid, _ = _expect(("me", Pid, str, int, int))
    assert me == child and where == mpactors.node()
    assert set(mpactors.processes()) >= {parent, child}
    mpactors.send(parent, "stop")
    mpactors.send(child, "stop")


def test_every_spawn_gives_a_new_pid(fork_node: mpactors.Node) -> None:
    pids = [mpactors.spawn(return_at_once) for _ in range(20)]
    assert len(set(pids)) == 20
    assert all(p.node == mpactors.node() and p.creation == mpactors.self().creation for p in pids)


# -- spawn_link / spawn_monitor ---------------------------------------------------
def test_spawn_monitor_returns_the_pid_and_a_ref_that_its_down_carries(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(return_at_once)
    assert isinstance(pid, Pid) and isinstance(ref, mpactors.Ref)
    assert _expect(Down) == Down(ref, pid, "normal")


@pytest.mark.timeout(60)
def test_spawn_monitor_is_atomic_even_for_an_actor_that_ends_at_once(fork_node: mpactors.Node) -> None:
    # Were spawn and monitor two steps, an actor that ends in between would
    # give 'noproc' instead of its real reason.
    for _ in range(50):
        pid, ref = mpactors.spawn_monitor(crash_at_once)
        down = _expect(Down)
        assert (down.ref, down.pid) == (ref, pid)
        assert down.reason != "noproc"
        assert down.reason.type == "ZeroDivisionError"


@pytest.mark.timeout(60)
def test_spawn_link_is_atomic_even_for_an_actor_that_ends_at_once(fork_node: mpactors.Node) -> None:
    mpactors.trap_exit(True)
    for _ in range(50):
        pid = mpactors.spawn_link(crash_at_once)
        sig = _expect(ExitSignal)
        assert sig.pid == pid
        assert sig.reason != "noproc"
        assert sig.reason.type == "ZeroDivisionError"


def test_spawn_link_links_the_caller_and_the_new_actor(node: mpactors.Node) -> None:
    pid = mpactors.spawn_link(wait_for_stop)
    info = mpactors.process_info(pid)
    assert info["links"] == [mpactors.self()]
    assert pid in mpactors.process_info(mpactors.self())["links"]
    mpactors.send(pid, "stop")


def test_spawn_monitor_makes_the_caller_monitor_the_new_actor(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(wait_for_stop)
    assert mpactors.process_info(pid)["monitored_by"] == [mpactors.self()]
    assert pid in mpactors.process_info(mpactors.self())["monitors"]
    mpactors.send(pid, "stop")
    assert _expect(Down) == Down(ref, pid, "normal")


# -- bad arguments -------------------------------------------------------------------
@pytest.mark.parametrize("not_callable", [None, 42, "print", (print,)])
def test_spawning_something_that_is_not_callable_raises_bad_arg(fork_node: mpactors.Node, not_callable: Any) -> None:
    with pytest.raises(BadArg, match="callable"):
        mpactors.spawn(not_callable)
    assert mpactors.processes() == []


def test_spawning_with_an_unpicklable_argument_raises_bad_arg_and_starts_nothing(fork_node: mpactors.Node) -> None:
    gen = (i for i in range(3))
    with pytest.raises(BadArg, match="generator"):
        mpactors.spawn(reply, mpactors.self(), gen)
    with pytest.raises(BadArg):
        mpactors.spawn_link(reply, mpactors.self(), lock=threading.Lock(), gen=gen)
    assert mpactors.processes() == []


def test_spawn_outside_a_node_raises_not_alive() -> None:
    with pytest.raises(mpactors.NotAlive):
        mpactors.spawn(return_at_once)


def test_spawn_on_its_own_node_name_starts_a_local_actor(fork_node: mpactors.Node) -> None:
    pid = mpactors.spawn(reply, mpactors.self(), "local", node=mpactors.node())
    assert pid.node == mpactors.node()
    assert _expect() == ("args", ("local",), {})


def test_spawn_on_another_node_of_a_node_that_is_not_distributed_raises(fork_node: mpactors.Node) -> None:
    with pytest.raises(mpactors.NodeError, match="not distributed"):
        mpactors.spawn(return_at_once, node="elsewhere@host")
    assert mpactors.processes() == []


# -- many actors, all gone after stop ---------------------------------------------------
def _os_pids(pids: List[Pid]) -> List[int]:
    return [mpactors.process_info(p)["os_pid"] for p in pids]


@pytest.mark.timeout(120)
def test_two_hundred_actors_start_and_are_all_gone_after_stop() -> None:
    with mpactors.Node(start_method="fork") as n:
        pids = [mpactors.spawn(wait_for_stop) for _ in range(200)]
        assert len(set(pids)) == 200
        assert sorted(mpactors.processes()) == sorted(pids)
        os_pids = _os_pids(pids)
        assert len(set(os_pids)) == 200
        assert all(psutil.pid_exists(p) for p in os_pids)
        n.stop()
        assert not n.alive
    wait_until(lambda: all_gone(os_pids), timeout=2.0, what="every actor to be gone after stop()")
    assert not [c for c in psutil.Process().children(recursive=True) if c.pid in os_pids]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_actors_of_every_start_method_are_all_gone_after_stop(method: str, multiprocessing_helpers: None) -> None:
    with mpactors.Node(start_method=method):
        pids = [mpactors.spawn(wait_for_stop) for _ in range(5)]
        os_pids = _os_pids(pids)
        assert all(psutil.pid_exists(p) for p in os_pids)
    wait_until(lambda: all_gone(os_pids), timeout=2.0, what="every actor to be gone after stop()")


@pytest.mark.timeout(120)
def test_stopping_a_node_while_its_actors_are_ending_does_not_crash_the_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Actors that end just as stop() begins: the kernel must not trip over
    # the exits it has already handled while stopping.
    crashes: List[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashes.append(args.exc_value))
    for _ in range(20):
        with mpactors.Node(start_method="fork"):
            for _ in range(20):
                mpactors.spawn(return_at_once)
    assert crashes == []


def test_processes_lists_live_actors_only(fork_node: mpactors.Node) -> None:
    keep = mpactors.spawn(wait_for_stop)
    gone, ref = mpactors.spawn_monitor(return_at_once)
    assert _expect(Down).pid == gone
    assert mpactors.processes() == [keep]
    assert mpactors.self() not in mpactors.processes()
    mpactors.send(keep, "stop")
    wait_until(lambda: mpactors.processes() == [], timeout=SHORT_TIMEOUT)
