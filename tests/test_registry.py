"""Node-local names and process lists: self, register, unregister, whereis,
registered, processes.
"""
from __future__ import annotations

from typing import Any

import pytest

import mpactors
from mpactors import BadArg, Down, Pid
from support import LONG_TIMEOUT, SHORT_TIMEOUT, wait_until

#: Every test here runs actor processes: fail fast (with stacks) instead of hanging.
pytestmark = pytest.mark.timeout(60)


# -- actors -------------------------------------------------------------------
def wait_for_stop() -> None:
    mpactors.receive("stop", timeout=LONG_TIMEOUT)


def register_self_then_serve(name: str, report_to: Pid) -> None:
    mpactors.register(name)
    mpactors.send(report_to, ("registered", mpactors.self(), mpactors.whereis(name)))
    while True:
        msg = mpactors.receive(timeout=LONG_TIMEOUT)
        if msg == "stop":
            return
        mpactors.send(report_to, ("served", msg))


def send_by_name(name: str, msg: Any, report_to: Pid) -> None:
    try:
        mpactors.send(name, msg)
    except BadArg as exc:
        mpactors.send(report_to, ("badarg", str(exc)))
    else:
        mpactors.send(report_to, ("sent", name))


def query_registry(report_to: Pid) -> None:
    mpactors.send(report_to, ("registry", mpactors.registered(), mpactors.whereis("main"), mpactors.processes()))


# -- self ------------------------------------------------------------------------
def test_self_in_the_main_process_is_the_node_pid(node: mpactors.Node) -> None:
    me = mpactors.self()
    assert isinstance(me, Pid)
    assert me == node.pid
    assert me.node == mpactors.node() == "nonode@nohost"
    assert mpactors.self() == me


# -- register / whereis / unregister --------------------------------------------
def test_a_registered_name_resolves_to_its_pid_and_receives_messages(node: mpactors.Node) -> None:
    pid = mpactors.spawn(register_self_then_serve, "server", mpactors.self())
    assert mpactors.receive(("registered", Pid, Pid), timeout=SHORT_TIMEOUT) == ("registered", pid, pid)
    assert mpactors.whereis("server") == pid
    assert "server" in mpactors.registered()
    assert mpactors.process_info(pid)["registered_name"] == "server"
    mpactors.send("server", "hello")
    assert mpactors.receive(("served", str), timeout=SHORT_TIMEOUT) == ("served", "hello")
    mpactors.send("server", "stop")


def test_the_main_process_can_register_another_pid_and_itself(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    mpactors.register("worker", pid)
    mpactors.register("main")
    assert mpactors.whereis("worker") == pid
    assert mpactors.whereis("main") == mpactors.self()
    assert mpactors.registered() == ["main", "worker"]
    mpactors.send("worker", "stop")


def test_an_actor_sees_the_same_registry_as_the_main_process(node: mpactors.Node) -> None:
    mpactors.register("main")
    worker = mpactors.spawn(wait_for_stop)
    mpactors.register("worker", worker)
    probe = mpactors.spawn(query_registry, mpactors.self())
    tag, names, main, procs = mpactors.receive(("registry", list, Pid, list), timeout=SHORT_TIMEOUT)
    assert names == ["main", "worker"]
    assert main == mpactors.self()
    assert set(procs) == {worker, probe}
    mpactors.send(worker, "stop")


def test_unregister_frees_the_name(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    mpactors.register("temp", pid)
    mpactors.unregister("temp")
    assert mpactors.whereis("temp") is None
    assert "temp" not in mpactors.registered()
    assert mpactors.process_info(pid)["registered_name"] is None
    mpactors.register("temp2", pid)
    assert mpactors.whereis("temp2") == pid
    mpactors.send(pid, "stop")


def test_a_name_is_freed_when_its_process_ends(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(wait_for_stop)
    mpactors.register("short-lived", pid)
    mpactors.send("short-lived", "stop")
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, pid, "normal")
    wait_until(lambda: mpactors.whereis("short-lived") is None)
    assert "short-lived" not in mpactors.registered()
    other = mpactors.spawn(wait_for_stop)
    mpactors.register("short-lived", other)
    mpactors.send("short-lived", "stop")


def test_whereis_of_an_unknown_name_is_none(node: mpactors.Node) -> None:
    assert mpactors.whereis("nobody") is None


def test_registered_is_empty_on_a_new_node(node: mpactors.Node) -> None:
    assert mpactors.registered() == []


def test_registering_a_taken_name_raises_bad_arg_and_keeps_the_first(node: mpactors.Node) -> None:
    a, b = mpactors.spawn(wait_for_stop), mpactors.spawn(wait_for_stop)
    mpactors.register("taken", a)
    with pytest.raises(BadArg, match="taken"):
        mpactors.register("taken", b)
    assert mpactors.whereis("taken") == a
    mpactors.send(a, "stop")
    mpactors.send(b, "stop")


def test_registering_the_same_name_twice_for_the_same_pid_raises_bad_arg(node: mpactors.Node) -> None:
    mpactors.register("twice")
    with pytest.raises(BadArg):
        mpactors.register("twice")
    assert mpactors.whereis("twice") == mpactors.self()


def test_a_process_can_have_only_one_name(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    mpactors.register("first", pid)
    with pytest.raises(BadArg, match="first"):
        mpactors.register("second", pid)
    assert mpactors.whereis("second") is None
    mpactors.send(pid, "stop")


def test_registering_a_dead_pid_raises_bad_arg(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(wait_for_stop)
    mpactors.send(pid, "stop")
    mpactors.receive(Down, timeout=SHORT_TIMEOUT)
    with pytest.raises(BadArg, match="not a live local process"):
        mpactors.register("ghost", pid)
    assert mpactors.whereis("ghost") is None


@pytest.mark.parametrize("bad_name", ["", "undefined", 42, None, ("a", "b")])
def test_registering_an_invalid_name_raises_bad_arg(node: mpactors.Node, bad_name: Any) -> None:
    with pytest.raises(BadArg):
        mpactors.register(bad_name)
    assert mpactors.registered() == []


def test_registering_something_that_is_not_a_pid_raises_bad_arg(node: mpactors.Node) -> None:
    with pytest.raises(BadArg):
        mpactors.register("name", "not a pid")  # type: ignore[arg-type]
    assert mpactors.registered() == []


def test_unregistering_an_unknown_name_raises_bad_arg(node: mpactors.Node) -> None:
    with pytest.raises(BadArg, match="nobody"):
        mpactors.unregister("nobody")


def test_sending_to_an_unregistered_name_raises_bad_arg_in_the_main_process_and_in_an_actor(
    node: mpactors.Node,
) -> None:
    with pytest.raises(BadArg, match="nobody"):
        mpactors.send("nobody", "hello")
    mpactors.spawn(send_by_name, "nobody", "hello", mpactors.self())
    tag, text = mpactors.receive(timeout=SHORT_TIMEOUT)
    assert tag == "badarg" and "nobody" in text


def test_an_actor_can_send_to_a_registered_name(node: mpactors.Node) -> None:
    mpactors.register("main")
    mpactors.spawn(send_by_name, "main", "by name", mpactors.self())
    assert mpactors.receive("by name", timeout=SHORT_TIMEOUT) == "by name"
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == ("sent", "main")


# -- processes --------------------------------------------------------------------
def test_processes_lists_the_live_actors_but_not_the_main_process(node: mpactors.Node) -> None:
    assert mpactors.processes() == []
    pids = [mpactors.spawn(wait_for_stop) for _ in range(3)]
    assert sorted(mpactors.processes()) == sorted(pids)
    assert mpactors.self() not in mpactors.processes()
    for pid in pids:
        mpactors.send(pid, "stop")
    wait_until(lambda: mpactors.processes() == [], what="every actor to end")
