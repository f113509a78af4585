"""More of gen_server (SPEC Part 2): stop from outside, AlreadyStarted, send_request /
wait_response, multi_call / abcast, Continue / handle_continue.

Erlang outcomes these follow (OTP 25, ``gen_server.erl``/``proc_lib.erl``):
``gen_server:stop`` of a dead pid exits ``noproc``; a second ``start`` with a
taken name returns ``{error, {already_started, Pid}}``; ``multi_call`` returns
``{Replies, BadNodes}``; ``{continue, C}`` runs before the next message.
"""
from __future__ import annotations

import pickle
import time
from typing import Any, List

import pytest
from nodes import cluster, cookie, local_node, run_node  # noqa: F401 - fixtures
from support import SHORT_TIMEOUT, wait_until

import mpactors
from mpactors import Down, GenServer, genserver
from mpactors.genserver import NOREPLY, Continue, RequestId

pytestmark = pytest.mark.timeout(60)


class Recorder(GenServer):
    """Reports its callbacks to ``report_to``; defers calls on request."""

    def init(self, report_to: Any = None, block_terminate: bool = False) -> None:
        self.report_to = report_to
        self.block_terminate = block_terminate
        self.deferred: List[Any] = []

    def _report(self, event: Any) -> None:
        if self.report_to is not None:
            mpactors.send(self.report_to, event)

    def handle_call(self, request: Any, frm: Any) -> Any:
        if request == "whoami":
            return mpactors.node()
        if isinstance(request, tuple) and request[0] == "defer":
            self.deferred.append((frm, request[1]))
            return NOREPLY
        if request == "release":  # answer every deferred call, newest first
            for frm_, value in reversed(self.deferred):
                GenServer.reply(frm_, value)
            self.deferred = []
            return "released"
        return ("echo", request)

    def handle_cast(self, msg: Any) -> None:
        self._report(("cast", mpactors.node(), msg))

    def terminate(self, reason: Any) -> None:
        self._report(("terminated", reason))
        if self.block_terminate:
            mpactors.receive("never sent")


class Continuing(GenServer):
    """Keeps a log of its callbacks; ``init`` and the handlers return ``Continue``."""

    def init(self) -> Any:
        self.log: List[Any] = ["init"]
        return Continue("from init")

    def handle_continue(self, arg: Any) -> Any:
        self.log.append(("continue", arg))
        if arg == "chain":
            return Continue("chained")
        return None

    def handle_call(self, request: Any, frm: Any) -> Any:
        if request == "log":
            return list(self.log)
        self.log.append(("call", request))
        return ("ok", Continue("after call"))

    def handle_cast(self, msg: Any) -> Any:
        self.log.append(("cast", msg))
        return Continue("chain")

    def handle_info(self, msg: Any) -> Any:
        self.log.append(("info", msg))
        return Continue("after info")


# -- stop ------------------------------------------------------------------------
def test_stop_runs_terminate_and_returns_once_the_server_is_gone(node: mpactors.Node) -> None:
    pid = Recorder.start(mpactors.self())
    ref = mpactors.monitor(pid)
    assert genserver.stop(pid) is None
    assert mpactors.process_info(pid) is None  # gone when stop returned
    assert mpactors.receive(("terminated", mpactors.ANY), timeout=SHORT_TIMEOUT) == ("terminated", "normal")
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, pid, "normal")


def test_stop_with_a_reason_ends_the_server_with_that_reason(node: mpactors.Node) -> None:
    pid = Recorder.start(mpactors.self(), name="to-stop")
    ref = mpactors.monitor(pid)
    genserver.stop("to-stop", ("custom", 1))
    assert mpactors.receive(("terminated", mpactors.ANY), timeout=SHORT_TIMEOUT) == ("terminated", ("custom", 1))
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, pid, ("custom", 1))


def test_stop_of_a_server_that_is_not_running_raises_noproc(node: mpactors.Node) -> None:
    pid = Recorder.start()
    genserver.stop(pid)
    with pytest.raises(mpactors.NoProc):
        genserver.stop(pid)
    with pytest.raises(mpactors.NoProc):
        genserver.stop("nobody-has-this-name")


def test_stop_raises_timeout_when_terminate_does_not_finish_in_time(node: mpactors.Node) -> None:
    pid = Recorder.start(mpactors.self(), block_terminate=True)
    started = time.monotonic()
    with pytest.raises(mpactors.Timeout):
        genserver.stop(pid, timeout=0.3)
    assert time.monotonic() - started < SHORT_TIMEOUT
    assert mpactors.receive(("terminated", "normal"), timeout=SHORT_TIMEOUT)
    assert mpactors.process_info(pid) is not None  # still blocked in terminate
    ref = mpactors.monitor(pid)
    mpactors.exit(pid, "kill")
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, pid, "killed")


def test_stop_is_not_a_genserver_method_and_self_stop_keeps_its_meaning() -> None:
    assert GenServer.stop is not genserver.stop  # inside a server, self.stop(reason)
    assert GenServer.send_request is genserver.send_request
    assert GenServer.wait_response is genserver.wait_response
    assert GenServer.multi_call is genserver.multi_call
    assert GenServer.abcast is genserver.abcast


# -- AlreadyStarted -------------------------------------------------------------------
def test_start_with_a_taken_name_raises_already_started_naming_the_holder(node: mpactors.Node) -> None:
    holder = Recorder.start(name="taken")
    before = set(mpactors.processes())
    with pytest.raises(mpactors.AlreadyStarted) as info:
        Recorder.start(name="taken")
    assert info.value.pid == holder
    assert isinstance(info.value, mpactors.MpactorsError)
    copy = pickle.loads(pickle.dumps(info.value))
    assert copy.pid == holder and str(copy) == str(info.value)
    wait_until(lambda: set(mpactors.processes()) == before, what="the refused server to end")
    genserver.stop(holder)


def test_noproc_is_an_mpactors_error_and_pickles() -> None:
    err = mpactors.NoProc("gone")
    assert isinstance(err, mpactors.MpactorsError)
    assert str(pickle.loads(pickle.dumps(err))) == "gone"


# -- send_request / wait_response ---------------------------------------------------
def test_many_requests_in_flight_are_each_answered_even_out_of_order(node: mpactors.Node) -> None:
    pid = Recorder.start()
    ids = [genserver.send_request(pid, ("defer", i)) for i in range(20)]
    assert all(isinstance(r, RequestId) for r in ids)
    assert GenServer.call(pid, "release") == "released"  # replies are sent newest first
    for i in reversed(range(20)):  # and waited for in yet another order
        assert genserver.wait_response(ids[i], timeout=SHORT_TIMEOUT) == i
    assert mpactors.flush() == []
    genserver.stop(pid)


def test_after_wait_response_times_out_the_late_reply_never_arrives(node: mpactors.Node) -> None:
    pid = Recorder.start()
    request = genserver.send_request(pid, ("defer", "late"))
    with pytest.raises(mpactors.Timeout):
        genserver.wait_response(request, timeout=0.2)
    assert GenServer.call(pid, "release") == "released"  # the late reply was sent before this answer
    assert mpactors.flush() == []
    genserver.stop(pid)


def test_a_server_that_dies_with_requests_in_flight_fails_them_promptly(node: mpactors.Node) -> None:
    pid = Recorder.start()
    ids = [genserver.send_request(pid, ("defer", i)) for i in range(3)]
    mpactors.exit(pid, "kill")
    started = time.monotonic()
    for request in ids:
        with pytest.raises(mpactors.RemoteError, match="killed"):
            genserver.wait_response(request, timeout=30)
    assert time.monotonic() - started < SHORT_TIMEOUT
    with pytest.raises(mpactors.RemoteError):
        genserver.wait_response(genserver.send_request(pid, "x"), timeout=30)  # already dead: noproc
    with pytest.raises(mpactors.RemoteError):
        genserver.wait_response(genserver.send_request("unregistered", "x"), timeout=30)
    assert mpactors.flush() == []


def test_check_response_ends_a_request_taken_by_ones_own_receive(node: mpactors.Node) -> None:
    pid = Recorder.start()
    request = genserver.send_request(pid, "hello")
    msg = mpactors.receive(request.is_response, timeout=SHORT_TIMEOUT)
    assert genserver.check_response(msg, request) == ("echo", "hello")
    with pytest.raises(mpactors.BadArg):
        genserver.check_response("unrelated", request)
    genserver.stop(pid)


# -- Continue ---------------------------------------------------------------------------
def test_handle_continue_runs_before_any_new_message(node: mpactors.Node) -> None:
    pid = Continuing.start()
    mpactors.send(pid, "info")  # queued while handle_continue may still be pending
    GenServer.cast(pid, "c")
    assert GenServer.call(pid, "req") == "ok"
    log = GenServer.call(pid, "log")
    assert log == [
        "init", ("continue", "from init"),
        ("info", "info"), ("continue", "after info"),
        ("cast", "c"), ("continue", "chain"), ("continue", "chained"),
        ("call", "req"), ("continue", "after call"),
    ]
    genserver.stop(pid)


# -- several nodes ----------------------------------------------------------------------
@pytest.mark.usefixtures("cluster")
def test_multi_call_collects_replies_and_names_the_bad_nodes() -> None:
    with run_node() as b, run_node() as c, local_node() as here:
        assert mpactors.ping(b.name) == "pong" and mpactors.ping(c.name) == "pong"
        mine = Recorder.start(name="svc")
        theirs = Recorder.start(name="svc", node=b.name)
        missing = "nosuchnode@" + here.name.partition("@")[2]
        nodes = [here.name, b.name, c.name, missing]  # c runs no "svc"; missing does not exist
        started = time.monotonic()
        replies, bad = genserver.multi_call(nodes, "svc", "whoami", timeout=SHORT_TIMEOUT)
        assert replies == {here.name: here.name, b.name: b.name}
        assert bad == [c.name, missing]
        assert time.monotonic() - started < SHORT_TIMEOUT  # nobody waited for the timeout
        assert mpactors.flush() == []
        genserver.stop(theirs)
        genserver.stop(mine)


@pytest.mark.usefixtures("cluster")
def test_abcast_reaches_the_named_server_on_every_node() -> None:
    with run_node() as b, local_node() as here:
        me = mpactors.self()
        mine = Recorder.start(me, name="svc")
        theirs = Recorder.start(me, name="svc", node=b.name)
        assert genserver.abcast([here.name, b.name, "nosuchnode@nowhere"], "svc", "hi") is None
        got = {mpactors.receive(("cast", str, "hi"), timeout=SHORT_TIMEOUT)[1] for _ in range(2)}
        assert got == {here.name, b.name}
        genserver.stop(("svc", b.name))
        assert mpactors.receive(("terminated", "normal"), timeout=SHORT_TIMEOUT)
        assert mpactors.process_info(theirs) is None
        genserver.stop(mine)


@pytest.mark.usefixtures("cluster")
def test_a_request_to_a_server_whose_node_dies_raises_node_error() -> None:
    with run_node() as b, local_node():
        pid = Recorder.start(name="svc", node=b.name)
        request = genserver.send_request(pid, ("defer", 1))
        b.kill()
        started = time.monotonic()
        with pytest.raises(mpactors.NodeError):
            genserver.wait_response(request, timeout=30)
        assert time.monotonic() - started < SHORT_TIMEOUT
