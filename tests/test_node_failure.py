"""Node failure (SPEC "Guarantees": node failure, no orphans).

A peer that dies (SIGKILL) or goes silent (SIGSTOP) for ``ticktime`` seconds is
reported as node-down: links break with ``'noconnection'``, monitors fire, and
``monitor_node`` subscribers get ``NodeDown``. Both this node and the test node
run with ``TICKTIME`` so the silent case stays short.
"""
from __future__ import annotations

import time
from typing import Any

import pytest
from nodes import cluster, cookie, forward, local_node, run_node, unique_name, wait_forever  # noqa: F401 - fixtures
from support import LONG_TIMEOUT, SHORT_TIMEOUT, wait_until

import mpactors
from mpactors import ANY, Down, ExitSignal, NodeDown, config

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("cluster")]

TICKTIME = 2.0


def recv_by(deadline: float, pattern: Any) -> Any:
    """The next message matching ``pattern``, which must arrive before ``deadline`` (monotonic)."""
    try:
        return mpactors.receive(pattern, timeout=max(0.0, deadline - time.monotonic()))
    except mpactors.Timeout:
        raise AssertionError(f"no {pattern!r} before the deadline") from None


def test_sigkill_of_a_node_breaks_links_and_fires_monitors_with_noconnection() -> None:
    with run_node(ticktime=TICKTIME) as b, local_node(ticktime=TICKTIME):
        me = mpactors.self()
        mpactors.trap_exit(True)
        linked = mpactors.spawn_link(wait_forever, node=b.name)
        monitored, ref = mpactors.spawn_monitor(wait_forever, node=b.name)
        by_name = mpactors.spawn(wait_forever, node=b.name)
        b.call("mpactors.register('named', pid)", pid=by_name)
        mpactors.monitor_node(b.name)

        def linked_actor() -> None:
            mpactors.link(by_name)
            mpactors.send(me, "linked")
            mpactors.receive()

        local, local_ref = mpactors.spawn_monitor(linked_actor)
        assert mpactors.receive("linked", timeout=SHORT_TIMEOUT)
        assert mpactors.process_info(by_name)["links"] == [local]
        assert len(b.actor_processes()) == 3

        b.kill()
        deadline = time.monotonic() + TICKTIME + 1.0
        assert recv_by(deadline, ExitSignal) == ExitSignal(linked, "noconnection")
        assert recv_by(deadline, lambda m: type(m) is Down and m.ref == ref) == Down(ref, monitored, "noconnection")
        assert recv_by(deadline, NodeDown) == NodeDown(b.name)
        # a local actor that does not trap exits dies of the broken link
        assert recv_by(deadline, Down) == Down(local_ref, local, "noconnection")
        assert mpactors.nodes() == []
        wait_until(lambda: not b.actors_left(), 2.0, what="the killed node's actors to be gone")


def test_a_node_stopped_with_sigstop_is_reported_down_after_ticktime() -> None:
    with run_node(ticktime=TICKTIME) as b, local_node(ticktime=TICKTIME):
        assert mpactors.ping(b.name) == "pong"
        pid, ref = mpactors.spawn_monitor(wait_forever, node=b.name)
        mpactors.monitor_node(b.name)

        b.pause()
        start = time.monotonic()
        assert recv_by(start + TICKTIME + 1.0, NodeDown) == NodeDown(b.name)
        elapsed = time.monotonic() - start
        assert elapsed >= TICKTIME / 2, f"declared down after only {elapsed:.2f} s"
        assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, pid, "noconnection")
        assert mpactors.nodes() == []

        b.resume()  # it comes back: the connection can be made again
        wait_until(lambda: mpactors.ping(b.name) == "pong", LONG_TIMEOUT, what="a pong from the resumed node")
        assert mpactors.nodes() == [b.name]


def test_links_break_with_noconnection_when_a_node_goes_silent() -> None:
    with run_node(ticktime=TICKTIME) as b, local_node(ticktime=TICKTIME):
        mpactors.trap_exit(True)
        pid = mpactors.spawn_link(wait_forever, node=b.name)
        b.pause()
        start = time.monotonic()
        assert recv_by(start + TICKTIME + 1.0, ExitSignal) == ExitSignal(pid, "noconnection")


def test_a_node_that_comes_back_can_be_pinged_and_old_pids_do_not_reach_the_new_one() -> None:
    name = unique_name("phoenix")
    with local_node(ticktime=TICKTIME):
        me = mpactors.self()
        mpactors.monitor_nodes(True)
        with run_node(name, ticktime=TICKTIME) as first:
            old = mpactors.spawn(forward, me, node=first.name)
            mpactors.send(old, "hello old")
            assert mpactors.receive(("forwarded", old, ANY), timeout=SHORT_TIMEOUT)[2] == "hello old"
            first.kill()
            assert mpactors.receive(NodeDown, timeout=TICKTIME + 1.0) == NodeDown(first.name)

        with run_node(name, ticktime=TICKTIME) as second:
            assert second.name == first.name
            assert mpactors.ping(second.name) == "pong"
            new = mpactors.spawn(forward, me, node=second.name)
            # the same node and number: only the creation tells them apart
            assert (new.node, new.id, new.serial) == (old.node, old.id, old.serial)
            assert new.creation != old.creation and new != old

            mpactors.send(old, "stale")
            mpactors.send(new, "fresh")
            assert mpactors.receive(("forwarded", ANY, ANY), timeout=SHORT_TIMEOUT) == ("forwarded", new, "fresh")
            with pytest.raises(mpactors.Timeout):
                mpactors.receive(("forwarded", ANY, ANY), timeout=0.3)

            assert mpactors.process_info(old) is None
            assert mpactors.process_info(new) is not None
            ref = mpactors.monitor(old)
            assert mpactors.receive(Down, timeout=SHORT_TIMEOUT) == Down(ref, old, "noproc")
            assert mpactors.nodes() == [second.name]


@pytest.mark.timeout(60)
def test_ping_of_a_frozen_node_answers_pang_in_bounded_time_without_holding_up_other_nodes(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config, "HANDSHAKE_TIMEOUT", 6.0)  # read at each handshake: short, yet room for c to answer first
    with run_node() as frozen, run_node() as c, local_node():
        me = mpactors.self()

        def pinger() -> None:
            mpactors.receive("go")
            start = time.monotonic()
            answer = mpactors.ping(c.name)
            mpactors.send(me, ("pinged", answer, time.monotonic() - start))

        helper = mpactors.spawn(pinger)
        frozen.pause()  # never connected: the handshake will get no answer
        start = time.monotonic()
        mpactors.send(helper, "go")
        assert mpactors.ping(frozen.name) == "pang"
        pang_took = time.monotonic() - start
        assert pang_took < config.CONNECT_TIMEOUT + config.HANDSHAKE_TIMEOUT + 1.0
        _, answer, took = mpactors.receive(("pinged", ANY, ANY), timeout=SHORT_TIMEOUT)
        # c answered before the frozen node's handshake was given up on (ordering, not a time bound)
        assert (answer, took < pang_took) == ("pong", True)
        assert mpactors.nodes() == [c.name]


def test_a_stopped_peer_that_cannot_take_more_bytes_does_not_stall_the_others() -> None:
    # b is stopped (SIGSTOP) with megabytes on their way to it: its socket is
    # full and this node keeps the rest. Traffic with c must still flow (one
    # event loop serves every peer), and b gets everything once it resumes.
    with run_node() as b, run_node() as c, local_node():
        me = mpactors.self()
        sink = mpactors.spawn(count_bytes, me, 8, node=b.name)
        echo_pid = mpactors.spawn(forward, me, node=c.name)
        b.pause()
        for _ in range(8):
            mpactors.send(sink, bytes(4 * 1024 * 1024))
        for i in range(20):
            mpactors.send(echo_pid, ("via c", i))
            assert mpactors.receive(("forwarded", echo_pid, ANY), timeout=SHORT_TIMEOUT)[2] == ("via c", i)
        b.resume()
        assert mpactors.receive(("bytes", ANY), timeout=LONG_TIMEOUT) == ("bytes", 8 * 4 * 1024 * 1024)


def count_bytes(report_to: mpactors.Pid, n: int) -> None:
    total = 0
    for _ in range(n):
        total += len(mpactors.receive())
    mpactors.send(report_to, ("bytes", total))
