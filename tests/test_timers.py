"""Timers kept by the node: ``send_after``, ``send_interval``, ``cancel_timer``, ``read_timer``.

No assertion here depends on how fast the machine is: order and
at-most-once are checked with markers. The kernel writes timer messages
and its own messages (``Down``) to a mailbox in the order it decides them,
and a process's own sends after ``cancel_timer`` returned come after
anything the kernel delivered before it.
"""
from __future__ import annotations

import random
from typing import Any, List

import psutil
import pytest

import mpactors
from mpactors import BadArg, Down, Pid, Timeout, TimerRef
from nodes import cluster, cookie, local_node, run_node  # noqa: F401 - cluster and cookie are fixtures
from support import LONG_TIMEOUT, SHORT_TIMEOUT

pytestmark = pytest.mark.timeout(120)

MARK = "marker"


def until_marker() -> List[Any]:
    """Send a marker to myself and take every message that came before it."""
    me = mpactors.self()
    mark = (MARK, mpactors.make_ref())
    mpactors.send(me, mark)
    got = []
    while True:
        msg = mpactors.receive(timeout=LONG_TIMEOUT)
        if msg == mark:
            return got
        got.append(msg)


# -- actors --------------------------------------------------------------------
def race_cancels(n: int, report_to: Pid) -> None:
    """Start ``n`` short timers and cancel each at once; report (fired refs, cancelled refs, arrived)."""
    me = mpactors.self()
    results = []
    for i in range(n):  # due within about one kernel round trip of the cancel
        ref = mpactors.send_after(random.random() * 0.0003, me, ("t", i))
        results.append((i, mpactors.cancel_timer(ref)))
    arrived = [msg[1] for msg in until_marker()]
    mpactors.send(report_to, (results, arrived))


def timers_then_exit(report_to: Pid) -> None:
    one = mpactors.send_after(0.5, report_to, "from the dead")
    tick = mpactors.send_interval(0.02, report_to, "tick")
    mpactors.send(report_to, ("refs", one, tick))
    mpactors.receive("go", timeout=LONG_TIMEOUT)


def many_timers(first: int, n: int, report_to: Pid) -> None:
    """Arm ``first`` timers, report; on ``'more'`` arm ``n`` more, report the last one; then wait."""
    me = mpactors.self()
    for i in range(first):
        mpactors.send_after(3600.0, me, i)
    mpactors.send(report_to, ("armed", None))
    mpactors.receive("more", timeout=LONG_TIMEOUT)
    last = None
    for i in range(n):
        last = mpactors.send_after(3600.0, me, i)
    mpactors.send(report_to, ("armed", last))
    mpactors.receive("never", timeout=LONG_TIMEOUT * 4)


# -- one-shot timers ------------------------------------------------------------
def test_send_after_delivers_once_and_then_is_gone(node: mpactors.Node) -> None:
    me = mpactors.self()
    ref = mpactors.send_after(0.05, me, "hello")
    assert type(ref) is TimerRef
    left = mpactors.read_timer(ref)
    assert left is not None and 0.0 <= left <= 0.05
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == "hello"
    assert mpactors.read_timer(ref) is None
    assert mpactors.cancel_timer(ref) is None
    assert until_marker() == []


def test_timers_fire_in_the_order_they_are_due(node: mpactors.Node) -> None:
    me = mpactors.self()
    for delay, tag in ((0.3, "c"), (0.1, "a"), (0.2, "b"), (0.0, "now")):
        mpactors.send_after(delay, me, tag)
    assert [mpactors.receive(timeout=SHORT_TIMEOUT) for _ in range(4)] == ["now", "a", "b", "c"]


def test_cancel_before_due_returns_the_time_left_and_the_message_never_arrives(node: mpactors.Node) -> None:
    me = mpactors.self()
    ref = mpactors.send_after(1.0, me, "cancelled")
    left = mpactors.cancel_timer(ref)
    assert left is not None and 0.0 <= left <= 1.0
    assert mpactors.cancel_timer(ref) is None  # second cancel: nothing pending
    mpactors.send_after(1.2, me, "later")  # due after the cancelled one would have been
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == "later"
    assert until_marker() == []


def test_cancel_at_the_moment_of_firing_delivers_at_most_once_and_says_which(node: mpactors.Node) -> None:
    """Thousands of timers due within 0.3 ms, each cancelled right away, in an actor
    (requests over its control connection) and in the node's main process:
    ``None`` from ``cancel_timer`` exactly for those whose message arrived, once."""
    me = mpactors.self()
    n = 1500
    mpactors.spawn(race_cancels, n, me)
    results, arrived = mpactors.receive(timeout=LONG_TIMEOUT * 2)
    race_cancels(n, me)  # the same from the node's main process
    results2, arrived2 = mpactors.receive(timeout=LONG_TIMEOUT)
    for results, arrived in ((results, arrived), (results2, arrived2)):
        assert len(arrived) == len(set(arrived)), "a timer message arrived twice"
        fired = {i for i, left in results if left is None}
        assert set(arrived) == fired
        assert all(left is None or left >= 0.0 for _, left in results)
    # Both outcomes happen (else the race was not exercised at all).
    all_results = results + results2
    assert any(left is None for _, left in all_results) and any(left is not None for _, left in all_results)


# -- intervals -------------------------------------------------------------------
def test_send_interval_repeats_until_cancelled(node: mpactors.Node) -> None:
    me = mpactors.self()
    ref = mpactors.send_interval(0.02, me, "tick")
    for _ in range(5):
        assert mpactors.receive(timeout=SHORT_TIMEOUT) == "tick"
    left = mpactors.read_timer(ref)
    assert left is not None and left <= 0.02
    assert mpactors.cancel_timer(ref) is not None
    mark = (MARK, mpactors.make_ref())
    mpactors.send(me, mark)
    mpactors.send_after(0.2, me, "after")  # ten intervals later
    got = []
    while True:
        msg = mpactors.receive(timeout=SHORT_TIMEOUT)
        got.append(msg)
        if msg == "after":
            break
    # Ticks delivered before the cancel may precede the marker; none after it.
    assert got[got.index(mark) + 1:] == ["after"]
    assert set(got[:got.index(mark)]) <= {"tick"}
    assert mpactors.read_timer(ref) is None


# -- owners ----------------------------------------------------------------------
def test_a_dead_owners_timers_are_cancelled(node: mpactors.Node) -> None:
    me = mpactors.self()
    pid, mref = mpactors.spawn_monitor(timers_then_exit, me)
    _, one, tick = mpactors.receive(lambda m: isinstance(m, tuple) and m[0] == "refs", timeout=LONG_TIMEOUT)
    assert mpactors.receive("tick", timeout=SHORT_TIMEOUT) == "tick"
    mpactors.send(pid, "go")
    while True:  # in arrival order: ticks until the owner's Down (the kernel sends both)
        msg = mpactors.receive(timeout=LONG_TIMEOUT)
        if type(msg) is Down:
            assert (msg.ref, msg.pid) == (mref, pid)
            break
        assert msg == "tick"
    assert mpactors.read_timer(one) is None and mpactors.read_timer(tick) is None
    assert mpactors.cancel_timer(one) is None
    mpactors.send_after(0.7, me, "sentinel")  # due after the dead owner's one-shot
    got = []
    while True:
        msg = mpactors.receive(timeout=SHORT_TIMEOUT)
        if msg == "sentinel":
            break
        got.append(msg)
    assert got == []  # no tick after the Down, and never "from the dead"


def test_any_process_of_the_node_can_cancel_a_timer(node: mpactors.Node) -> None:
    me = mpactors.self()
    ref = mpactors.send_after(30.0, me, "never")
    mpactors.spawn(lambda: mpactors.send(me, ("cancelled", mpactors.cancel_timer(ref))))
    tag, left = mpactors.receive(timeout=LONG_TIMEOUT)
    assert tag == "cancelled" and left is not None and 0 < left <= 30.0
    assert mpactors.read_timer(ref) is None


# -- destinations -----------------------------------------------------------------
def test_a_name_is_looked_up_when_the_timer_fires(node: mpactors.Node) -> None:
    me = mpactors.self()
    # Set before the name exists; due long after it does (a kernel round trip is far shorter).
    mpactors.send_after(1.0, "timer-test-name", "to the name")
    mpactors.send_after(1.0, ("timer-test-name", mpactors.node()), "to (name, node)")
    mpactors.send_after(0.05, "nobody-has-this-name", "dropped")  # Erlang: no error, no message
    mpactors.register("timer-test-name")
    try:
        got = {mpactors.receive(timeout=SHORT_TIMEOUT) for _ in range(2)}
        assert got == {"to the name", "to (name, node)"}
        mpactors.send_after(0.1, me, "sentinel")  # due after the dropped one
        assert mpactors.receive(timeout=SHORT_TIMEOUT) == "sentinel"
        assert until_marker() == []
    finally:
        mpactors.unregister("timer-test-name")


@pytest.mark.usefixtures("cluster")
def test_timers_deliver_to_another_node() -> None:
    with run_node() as b, local_node():
        me = mpactors.self()
        mpactors.register("timer-dest")
        b.call("mpactors.send_after(0.05, me, 'from b by pid')", me=me)
        b.call("mpactors.send_after(0.05, (name, mine), 'from b by name')", name="timer-dest", mine=mpactors.node())
        got = {mpactors.receive(timeout=LONG_TIMEOUT) for _ in range(2)}
        assert got == {"from b by pid", "from b by name"}
        ref = mpactors.send_after(0.05, ("harness", b.name), "to b")
        assert type(ref) is TimerRef
        assert b.call("'to b' in inbox or mpactors.receive('to b', timeout=t) == 'to b'", t=LONG_TIMEOUT)
        # A TimerRef of another node is no timer of this one (Erlang: false).
        remote_ref = b.call("mpactors.send_after(30.0, mpactors.self(), 'x')")
        assert mpactors.read_timer(remote_ref) is None and mpactors.cancel_timer(remote_ref) is None
        assert b.call("mpactors.cancel_timer(r) is not None", r=remote_ref)


class CantPickle:
    def __reduce__(self) -> Any:
        raise TypeError("this object refuses to be pickled")


# -- bad input ----------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda me: mpactors.send_after(-1, me, "x"),
    lambda me: mpactors.send_after("1", me, "x"),
    lambda me: mpactors.send_after(True, me, "x"),
    lambda me: mpactors.send_after(float("nan"), me, "x"),
    lambda me: mpactors.send_after(float("inf"), me, "x"),
    lambda me: mpactors.send_interval(0, me, "x"),
    lambda me: mpactors.send_after(1, 42, "x"),
    lambda me: mpactors.send_after(1, ("a", 1), "x"),
    lambda me: mpactors.send_after(1, "", "x"),
    lambda me: mpactors.send_after(1, me, CantPickle()),
    lambda me: mpactors.cancel_timer("not a ref"),
    lambda me: mpactors.read_timer(mpactors.make_ref()),
])
def test_bad_input_raises_badarg_and_loses_nothing(node: mpactors.Node, call: Any) -> None:
    me = mpactors.self()
    ok = mpactors.send_after(0.05, me, "still works")
    with pytest.raises(BadArg, match=r"\w"):
        call(me)
    assert mpactors.receive("still works", timeout=SHORT_TIMEOUT) == "still works"
    assert mpactors.read_timer(ok) is None


def _armed(msg: object) -> bool:
    return isinstance(msg, tuple) and msg[0] == "armed"


# -- cost ---------------------------------------------------------------------------
@pytest.mark.usefixtures("cluster")
@pytest.mark.timeout(300)
def test_100000_pending_timers_cost_no_process_and_under_100_mib() -> None:
    """The timers live in the node's kernel: its process count and thread count
    do not change, and its RSS grows by less than 100 MiB; they go with their owner."""
    n = 100_000
    with run_node() as b, local_node():
        me = mpactors.self()
        node_ps = psutil.Process(b.os_pid)
        b.call("import test_timers")
        owner = b.call("mpactors.spawn(test_timers.many_timers, 100, n, me)", me=me, n=n)
        mpactors.receive(_armed, timeout=LONG_TIMEOUT)
        children_before = len(node_ps.children(recursive=True))
        threads_before = node_ps.num_threads()
        rss_before = node_ps.memory_info().rss
        mpactors.send(owner, "more")
        _, last = mpactors.receive(_armed, timeout=LONG_TIMEOUT * 6)
        assert b.call("mpactors.read_timer(r) is not None", r=last)
        grown = node_ps.memory_info().rss - rss_before
        assert len(node_ps.children(recursive=True)) == children_before  # still only the owner actor
        assert node_ps.num_threads() == threads_before
        assert grown < 100 * 2**20, f"node RSS grew by {grown / 2**20:.1f} MiB for {n} timers"
        print(f"{n} pending timers: node RSS +{grown / 2**20:.1f} MiB")
        mpactors.exit(owner, "kill")
        assert b.call(
            "result = None\nimport time\nwhile result is None:\n"
            "    result = mpactors.read_timer(r) is None or None\n    time.sleep(0.01)", r=last, timeout=LONG_TIMEOUT,
        )


def test_a_timer_message_is_an_ordinary_message(node: mpactors.Node) -> None:
    me = mpactors.self()
    mpactors.send(me, "first")
    mpactors.send_after(0.0, me, ("timed", 1))
    assert mpactors.receive(("timed", int), timeout=SHORT_TIMEOUT) == ("timed", 1)
    assert mpactors.receive(timeout=0) == "first"
    with pytest.raises(Timeout):
        mpactors.receive(timeout=0)
