"""gen_server's idle timeout: a callback returns ``IdleTimeout(seconds)``; if no
message arrives within ``seconds``, ``handle_info(IdleTimeout(seconds))`` runs.

Erlang (OTP 25, ``gen_server.erl``): ``{noreply, State, Timeout}`` and
``{reply, Reply, State, Timeout}`` make the loop ``receive ... after Timeout``
and deliver ``handle_info(timeout, State)``; any message cancels it, and a
callback that returns no timeout waits forever. No test here asserts a
duration: order is checked with the server's own log.
"""
from __future__ import annotations

from typing import Any, List

import pytest

import mpactors
from mpactors import Crash, Down, GenServer, genserver
from mpactors.genserver import IdleTimeout
from support import LONG_TIMEOUT, SHORT_TIMEOUT

pytestmark = pytest.mark.timeout(60)


class Idler(GenServer):
    """Logs every callback; reports each idle timeout to ``report_to``."""

    def init(self, report_to: Any, first: Any = None) -> Any:
        self.report_to = report_to
        self.log: List[Any] = []
        self.ticks = 0
        return first

    def handle_call(self, request: Any, frm: Any) -> Any:
        self.log.append(("call", request))
        if request == "log":
            return list(self.log)
        if isinstance(request, tuple) and request[0] == "arm":
            return ("armed", IdleTimeout(request[1]))
        return "ok"  # no timeout: wait for messages only

    def handle_cast(self, msg: Any) -> Any:
        self.log.append(("cast", msg))
        return IdleTimeout(msg) if isinstance(msg, (int, float)) else None

    def handle_info(self, msg: Any) -> Any:
        self.log.append(("info", msg))
        if type(msg) is IdleTimeout:
            self.ticks += 1
            mpactors.send(self.report_to, ("idle", self.ticks, msg))
            if self.ticks < 3:
                return IdleTimeout(msg.seconds)  # keep ticking while idle, three times
        return None


def _idle(n: int) -> Any:
    return mpactors.receive(lambda m: isinstance(m, tuple) and m[:2] == ("idle", n), timeout=LONG_TIMEOUT)


def _quiet_period(seconds: float) -> None:
    """Let ``seconds`` pass (a timer, not a sleep), so a pending idle timeout would have fired."""
    me = mpactors.self()
    mark = ("quiet", mpactors.make_ref())
    mpactors.send_after(seconds, me, mark)
    mpactors.receive(mark, timeout=LONG_TIMEOUT)


def test_init_can_return_an_idle_timeout_and_handle_info_gets_it(node: mpactors.Node) -> None:
    pid = Idler.start(mpactors.self(), IdleTimeout(0.05))
    for n in (1, 2, 3):
        assert _idle(n) == ("idle", n, IdleTimeout(0.05))
    _quiet_period(0.3)
    log = genserver.call(pid, "log")
    assert [e for e in log if e[0] == "info"] == [("info", IdleTimeout(0.05))] * 3  # stopped after the third
    genserver.stop(pid)


def test_a_reply_with_an_idle_timeout_and_a_message_cancels_it(node: mpactors.Node) -> None:
    pid = Idler.start(mpactors.self())
    assert genserver.call(pid, ("arm", 0.05)) == "armed"
    assert _idle(1) == ("idle", 1, IdleTimeout(0.05))
    # handle_info re-armed; a call that returns a plain reply cancels it.
    assert genserver.call(pid, "plain") == "ok"
    _quiet_period(0.3)
    log = genserver.call(pid, "log")
    after = log[log.index(("call", "plain")) + 1:]
    assert after == [("call", "log")], "an idle timeout fired after a message had cancelled it"
    genserver.stop(pid)


def test_a_cast_can_arm_it_too_and_stop_works_while_armed(node: mpactors.Node) -> None:
    me = mpactors.self()
    pid = Idler.start(me)
    genserver.cast(pid, 0.05)
    assert _idle(1) == ("idle", 1, IdleTimeout(0.05))
    genserver.cast(pid, 3600)  # armed for an hour: stop must not wait for it
    mref = mpactors.monitor(pid)
    genserver.stop(pid, timeout=SHORT_TIMEOUT)
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT).ref == mref


def test_a_bad_idle_timeout_crashes_the_server_with_a_clear_error(node: mpactors.Node) -> None:
    pid = Idler.start(mpactors.self())
    mref = mpactors.monitor(pid)
    genserver.cast(pid, -1)
    down = mpactors.receive(Down, timeout=LONG_TIMEOUT)
    assert down.ref == mref and isinstance(down.reason, Crash)
    assert down.reason.type == "BadArg" and "timeout" in down.reason.message.lower()


def test_idle_timeout_is_offered_on_genserver_too() -> None:
    assert GenServer.IdleTimeout is IdleTimeout
    assert "IdleTimeout" in genserver.__all__
