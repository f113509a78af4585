"""Bad input is refused where it is given, or logged where it arrives, and
service goes on.

* a message that cannot be pickled raises ``BadArg`` at ``send``, naming the
  type, and nothing is sent;
* a message the receiver cannot unpickle is logged and dropped, and the
  receiver goes on with its next message;
* a bad destination, timeout, name or pid raises ``BadArg``.

Fault objects: ``CantPickle`` refuses to be pickled, ``CrashAtUnpickle``
pickles but raises when loaded.
"""
from __future__ import annotations

import logging
import sys
import types
from typing import Any

import pytest

import mpactors
from mpactors import BadArg, Crash, Down, NodeError, NotAlive, Pid
from support import LONG_TIMEOUT, SHORT_TIMEOUT

#: Every test here runs actor processes: fail fast (with stacks) instead of hanging.
pytestmark = pytest.mark.timeout(60)


class CantPickle:
    """A fault object: refuses to be pickled (by pickle and by dill)."""

    def __reduce__(self) -> Any:
        raise TypeError("CantPickle refuses to be pickled")


def _explode(*args: Any) -> None:
    raise RuntimeError("CrashAtUnpickle cannot be loaded")


class CrashAtUnpickle:
    """A fault object: pickles fine, raises when loaded."""

    def __reduce__(self) -> Any:
        return (_explode, ())


# -- actors -------------------------------------------------------------------
def forward_all(report_to: Pid) -> None:
    """Forward every message to ``report_to`` until 'stop'."""
    while True:
        msg = mpactors.receive(timeout=LONG_TIMEOUT)
        if msg == "stop":
            return
        mpactors.send(report_to, ("forwarded", msg))


def try_to_send_unpicklable(report_to: Pid) -> None:
    try:
        mpactors.send(report_to, ("unpicklable", CantPickle()))
    except BadArg as exc:
        mpactors.send(report_to, ("badarg", str(exc)))
    mpactors.send(report_to, "after")


def send_instance_of_a_class_only_this_process_has(report_to: Pid) -> None:
    """Pickle refers to classes by module and name: the receiver has neither."""
    module = types.ModuleType("only_in_the_sender")
    sys.modules[module.__name__] = module

    class Secret:
        pass

    Secret.__module__ = module.__name__
    Secret.__qualname__ = Secret.__name__ = "Secret"
    module.Secret = Secret  # type: ignore[attr-defined]
    mpactors.send(report_to, Secret())
    mpactors.send(report_to, "after the secret")


def wait_for_stop() -> None:
    mpactors.receive("stop", timeout=LONG_TIMEOUT)


def reply(to: Pid, *args: Any) -> None:
    mpactors.send(to, ("args", args))


def exit_with_unpicklable_reason() -> None:
    mpactors.exit(CantPickle())


# -- unpicklable messages ---------------------------------------------------------
def test_an_unpicklable_message_raises_bad_arg_at_send_naming_the_type_and_nothing_is_sent(node: mpactors.Node) -> None:
    me = mpactors.self()
    with pytest.raises(BadArg, match="CantPickle"):
        mpactors.send(me, CantPickle())
    with pytest.raises(BadArg, match="generator"):
        mpactors.send(me, (i for i in range(3)))
    mpactors.send(me, "only this")
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == "only this"
    assert mpactors.flush() == []


def test_an_unpicklable_message_to_an_actor_raises_and_the_actor_gets_only_the_next_one(node: mpactors.Node) -> None:
    pid = mpactors.spawn(forward_all, mpactors.self())
    with pytest.raises(BadArg, match="CantPickle"):
        mpactors.send(pid, ["wrapped", CantPickle()])
    mpactors.send(pid, "next")
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == ("forwarded", "next")
    mpactors.send(pid, "stop")


def test_an_unpicklable_message_to_a_name_raises_bad_arg(node: mpactors.Node) -> None:
    pid = mpactors.spawn(forward_all, mpactors.self())
    mpactors.register("fwd", pid)
    with pytest.raises(BadArg, match="CantPickle"):
        mpactors.send("fwd", CantPickle())
    with pytest.raises(BadArg, match="CantPickle"):
        mpactors.send(("fwd", mpactors.node()), CantPickle())
    mpactors.send("fwd", "next")
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == ("forwarded", "next")
    mpactors.send(pid, "stop")


def test_an_unpicklable_message_raises_bad_arg_inside_an_actor_too(node: mpactors.Node) -> None:
    mpactors.spawn(try_to_send_unpicklable, mpactors.self())
    tag, text = mpactors.receive(timeout=SHORT_TIMEOUT)
    assert tag == "badarg" and "CantPickle" in text
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == "after"


# -- messages the receiver cannot unpickle -----------------------------------------
def test_the_main_process_logs_a_message_it_cannot_unpickle_and_receives_the_next(
    node: mpactors.Node, caplog: pytest.LogCaptureFixture
) -> None:
    me = mpactors.self()
    with caplog.at_level(logging.ERROR, logger="mpactors"):
        mpactors.send(me, CrashAtUnpickle())
        mpactors.send(me, "next")
        assert mpactors.receive(timeout=SHORT_TIMEOUT) == "next"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "unpickle" in errors[0].getMessage()
    assert "CrashAtUnpickle cannot be loaded" in errors[0].getMessage()


def test_an_actor_drops_a_message_it_cannot_unpickle_and_goes_on_receiving(node: mpactors.Node) -> None:
    pid = mpactors.spawn(forward_all, mpactors.self())
    ref = mpactors.monitor(pid)
    mpactors.send(pid, CrashAtUnpickle())
    mpactors.send(pid, "first good")
    mpactors.send(pid, ("tuple", CrashAtUnpickle()))
    mpactors.send(pid, "second good")
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == ("forwarded", "first good")
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == ("forwarded", "second good")
    mpactors.send(pid, "stop")
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, pid, "normal")


def test_an_instance_of_a_class_only_the_sender_has_is_logged_and_dropped(
    node: mpactors.Node, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="mpactors"):
        mpactors.spawn(send_instance_of_a_class_only_this_process_has, mpactors.self())
        assert mpactors.receive(timeout=SHORT_TIMEOUT) == "after the secret"
    assert any("only_in_the_sender" in r.getMessage() for r in caplog.records)
    assert mpactors.flush() == []


def test_a_spawn_whose_arguments_cannot_be_loaded_in_the_actor_ends_it_with_a_crash(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(reply, mpactors.self(), CrashAtUnpickle())
    down = mpactors.receive(Down, timeout=SHORT_TIMEOUT)
    assert (down.ref, down.pid) == (ref, pid)
    assert isinstance(down.reason, Crash)
    assert down.reason.type == "RuntimeError"
    assert "cannot be loaded" in down.reason.message
    # The node goes on.
    mpactors.spawn(reply, mpactors.self(), "fine")
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == ("args", ("fine",))


def test_an_exit_reason_that_cannot_be_pickled_still_reaches_monitors(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(exit_with_unpicklable_reason)
    down = mpactors.receive(Down, timeout=SHORT_TIMEOUT)
    assert (down.ref, down.pid) == (ref, pid)
    assert "CantPickle" in str(down.reason)


# -- bad destinations ----------------------------------------------------------------
def test_send_to_an_unregistered_name_raises_bad_arg_naming_it(node: mpactors.Node) -> None:
    with pytest.raises(BadArg, match="'nobody'"):
        mpactors.send("nobody", "hello")
    with pytest.raises(BadArg, match="'nobody'"):
        mpactors.send(("nobody", mpactors.node()), "hello")


@pytest.mark.parametrize("dest", [42, None, 1.5, ("only-one",), ("a", "b", "c"), ("name", 7), ["name", "node"]])
def test_send_to_something_that_is_not_a_destination_raises_bad_arg(node: mpactors.Node, dest: Any) -> None:
    with pytest.raises(BadArg, match="cannot send to"):
        mpactors.send(dest, "hello")


# -- bad timeouts ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "timeout", [-1, -0.001, "1", [1], float("nan")], ids=["-1", "-0.001", "str", "list", "nan"]
)
def test_a_bad_receive_timeout_raises_bad_arg(node: mpactors.Node, timeout: Any) -> None:
    mpactors.send(mpactors.self(), "waiting")
    with pytest.raises(BadArg, match="timeout"):
        mpactors.receive(timeout=timeout)
    assert mpactors.flush() == ["waiting"]


@pytest.mark.parametrize("timeout", [1e7, float("inf")], ids=["1e7", "inf"])
def test_a_very_long_receive_timeout_still_returns_a_waiting_message(node: mpactors.Node, timeout: float) -> None:
    mpactors.send(mpactors.self(), "here")
    assert mpactors.receive(timeout=timeout) == "here"


# -- bad names ------------------------------------------------------------------------
def test_registering_a_name_twice_raises_bad_arg(node: mpactors.Node) -> None:
    a, b = mpactors.spawn(wait_for_stop), mpactors.spawn(wait_for_stop)
    mpactors.register("once", a)
    with pytest.raises(BadArg, match="already registered"):
        mpactors.register("once", b)
    with pytest.raises(BadArg):
        mpactors.register("once", a)
    assert mpactors.whereis("once") == a
    mpactors.send(a, "stop")
    mpactors.send(b, "stop")


# -- bad nodes --------------------------------------------------------------------------
def test_mpactors_functions_outside_a_node_raise_not_alive() -> None:
    for call in (
        mpactors.self,
        mpactors.node,
        mpactors.processes,
        lambda: mpactors.send(Pid("a@h", 1), "x"),
        lambda: mpactors.receive(timeout=0),
    ):
        with pytest.raises(NotAlive, match="Node"):
            call()


def test_a_second_node_in_one_process_raises_node_error(node: mpactors.Node) -> None:
    with pytest.raises(NodeError, match="one node per process"):
        mpactors.Node().start()
    assert node.alive
    assert mpactors.self() == node.pid


@pytest.mark.parametrize("kwargs", [{"start_method": "threads"}, {"ticktime": 0}, {"ticktime": -5}])
def test_bad_node_options_raise_bad_arg(kwargs: Any) -> None:
    with pytest.raises(BadArg):
        mpactors.Node(**kwargs)
