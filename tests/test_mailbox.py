"""send / receive: delivery, ordering, selective receive, timeouts, big
messages and backpressure (send never waits for the receiver).

Every test runs a local-only node in the pytest process: ``mpactors.self()``
is the node's main process, and actors send to it.
"""
from __future__ import annotations

import errno
import os
import select
import time
from typing import Any, List

import pytest

import mpactors
from mpactors import ANY, Down, Pid, Timeout
from support import LONG_TIMEOUT, SHORT_TIMEOUT, wait_until

#: Every test here runs actor processes: fail fast (with stacks) instead of hanging.
pytestmark = pytest.mark.timeout(60)

N_ORDERED = 10_000


# -- actors (module level, so any start method can run them) ---------------
def echo(parent: Pid) -> None:
    """Send every message back to ``parent`` as ``('echo', msg)`` until 'stop'."""
    while True:
        msg = mpactors.receive(timeout=LONG_TIMEOUT)
        if msg == "stop":
            return
        mpactors.send(parent, ("echo", msg))


def send_range(dest: Any, n: int, tag: Any = None) -> None:
    """Send ``0..n-1`` (or ``(tag, i)``) to ``dest``."""
    for i in range(n):
        mpactors.send(dest, i if tag is None else (tag, i))


def check_range(report_to: Pid, n: int) -> None:
    """Receive ``n`` messages and report whether they were ``0..n-1`` in order."""
    got = [mpactors.receive(timeout=LONG_TIMEOUT) for _ in range(n)]
    bad = next((i for i, v in enumerate(got) if v != i), None)
    mpactors.send(report_to, ("checked", len(got), bad))


def send_range_then_report(dest: Pid, n: int, report_to: Pid) -> None:
    send_range(dest, n)
    mpactors.send(report_to, "sent")


def send_to_then_report(dests: List[Any], report_to: Pid) -> None:
    """Send to each of ``dests`` (some dead) and report that nothing raised."""
    try:
        for d in dests:
            mpactors.send(d, "hello?")
            mpactors.send(d, "hello again?")
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        mpactors.send(report_to, ("raised", repr(exc)))
    else:
        mpactors.send(report_to, "no error")


def send_big(dest: Pid, tag: str, count: int, size: int) -> None:
    for i in range(count):
        mpactors.send(dest, (tag, i, bytes([i % 256]) * size))


def wait_on_fifo_then_check(report_to: Pid, gate: str, count: int, size: int) -> None:
    """Do not read the mailbox until the FIFO ``gate`` is written to, then check what came.

    A named FIFO, not an inherited descriptor: forkserver and spawn children
    inherit none of the test's descriptors.
    """
    fd = os.open(gate, os.O_RDONLY | os.O_NONBLOCK)
    try:
        deadline = time.monotonic() + LONG_TIMEOUT
        # A FIFO with no writer yet reads as end of file: wait for the bytes themselves.
        while not os.read(fd, 2):
            if time.monotonic() > deadline:
                mpactors.send(report_to, ("gate never opened",))
                return
            select.select([fd], [], [], 0.05)
    finally:
        os.close(fd)
    ok = True
    for i in range(count):
        msg = mpactors.receive(timeout=LONG_TIMEOUT)
        ok = ok and msg[0] == i and len(msg[1]) == size and msg[1][:1] == bytes([i % 256])
    mpactors.send(report_to, ("received", count, ok))


def send_noise_until_stop(dest: Pid) -> None:
    while True:
        mpactors.send(dest, "noise")
        try:
            mpactors.receive("stop", timeout=0.005)
            return
        except Timeout:
            pass


def send_last_words(dest: Pid) -> None:
    send_range(dest, 100, tag="word")
    mpactors.send(dest, "last")


# -- basic delivery --------------------------------------------------------
def test_a_message_to_an_actor_comes_back_from_it(node: mpactors.Node) -> None:
    pid = mpactors.spawn(echo, mpactors.self())
    mpactors.send(pid, {"hello": [1, 2]})
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == ("echo", {"hello": [1, 2]})
    mpactors.send(pid, "stop")


def test_send_returns_the_message(node: mpactors.Node) -> None:
    msg = ("a", 1)
    assert mpactors.send(mpactors.self(), msg) is msg
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == msg


def test_the_main_process_can_send_to_itself(node: mpactors.Node) -> None:
    mpactors.send(mpactors.self(), "to me")
    assert mpactors.receive(timeout=0) == "to me"


def test_a_message_sent_to_a_registered_name_or_a_local_name_node_pair_arrives(node: mpactors.Node) -> None:
    mpactors.register("main")
    mpactors.send("main", 1)
    mpactors.send(("main", mpactors.node()), 2)
    assert [mpactors.receive(timeout=SHORT_TIMEOUT) for _ in range(2)] == [1, 2]


def test_sending_to_a_dead_pid_from_the_main_process_does_not_raise(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(send_range, mpactors.self(), 0)
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT).reason == "normal"
    assert mpactors.send(pid, "into the void") == "into the void"
    assert mpactors.process_info(pid) is None


def test_an_actor_sending_to_a_dead_pid_does_not_raise(node: mpactors.Node) -> None:
    dead, _ = mpactors.spawn_monitor(send_range, mpactors.self(), 0)
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT).reason == "normal"
    never_existed = Pid(mpactors.node(), 10_000, 0, dead.creation)
    other_incarnation = Pid(mpactors.node(), dead.id, 0, dead.creation + 1)
    mpactors.spawn(send_to_then_report, [dead, never_existed, other_incarnation], mpactors.self())
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == "no error"


def test_a_message_to_a_pid_of_another_node_incarnation_is_dropped(node: mpactors.Node) -> None:
    me = mpactors.self()
    stale = Pid(me.node, me.id, me.serial, me.creation + 1)
    mpactors.send(stale, "stale")
    mpactors.send(me, "fresh")
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == "fresh"
    assert mpactors.flush() == []


def test_a_message_sent_just_before_an_actor_ends_arrives_before_its_down(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(send_last_words, mpactors.self())
    got = [mpactors.receive(timeout=SHORT_TIMEOUT) for _ in range(102)]
    assert got[:100] == [("word", i) for i in range(100)]
    assert got[100] == "last"
    assert got[101] == Down(ref, pid, "normal")


# -- ordering --------------------------------------------------------------
@pytest.mark.timeout(60)
def test_ten_thousand_messages_from_an_actor_arrive_at_the_main_process_in_order(node: mpactors.Node) -> None:
    mpactors.spawn(send_range, mpactors.self(), N_ORDERED)
    got = [mpactors.receive(timeout=LONG_TIMEOUT) for _ in range(N_ORDERED)]
    assert got == list(range(N_ORDERED))
    with pytest.raises(Timeout):
        mpactors.receive(timeout=0)


@pytest.mark.timeout(60)
def test_ten_thousand_messages_between_two_actors_arrive_in_order(node: mpactors.Node) -> None:
    me = mpactors.self()
    receiver = mpactors.spawn(check_range, me, N_ORDERED)
    mpactors.spawn(send_range, receiver, N_ORDERED)
    assert mpactors.receive(timeout=LONG_TIMEOUT) == ("checked", N_ORDERED, None)


@pytest.mark.timeout(60)
def test_ten_thousand_messages_from_the_main_process_arrive_at_an_actor_in_order(node: mpactors.Node) -> None:
    receiver = mpactors.spawn(check_range, mpactors.self(), N_ORDERED)
    send_range(receiver, N_ORDERED)
    assert mpactors.receive(timeout=LONG_TIMEOUT) == ("checked", N_ORDERED, None)


@pytest.mark.timeout(60)
def test_messages_from_several_concurrent_senders_keep_each_senders_order(node: mpactors.Node) -> None:
    me = mpactors.self()
    tags = ["a", "b", "c", "d"]
    for tag in tags:
        mpactors.spawn(send_range, me, 2000, tag=tag)
    got = [mpactors.receive(timeout=LONG_TIMEOUT) for _ in range(2000 * len(tags))]
    for tag in tags:
        assert [i for t, i in got if t == tag] == list(range(2000))


# -- selective receive -----------------------------------------------------
def test_selective_receive_leaves_non_matching_messages_in_order(node: mpactors.Node) -> None:
    me = mpactors.self()
    for msg in [1, "a", 2, "b", 3, ("t", 1), 4]:
        mpactors.send(me, msg)
    assert mpactors.receive(str, timeout=SHORT_TIMEOUT) == "a"
    assert mpactors.receive(("t", ANY), timeout=SHORT_TIMEOUT) == ("t", 1)
    assert mpactors.flush() == [1, 2, "b", 3, 4]


def test_selective_receive_returns_the_oldest_matching_message(node: mpactors.Node) -> None:
    me = mpactors.self()
    for msg in [(1, "a"), (2, "b"), (1, "c")]:
        mpactors.send(me, msg)
    assert mpactors.receive((1, ANY), timeout=SHORT_TIMEOUT) == (1, "a")
    assert mpactors.receive((1, ANY), timeout=SHORT_TIMEOUT) == (1, "c")
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == (2, "b")


def test_selective_receive_waits_past_non_matching_messages_from_an_actor(node: mpactors.Node) -> None:
    me = mpactors.self()
    mpactors.spawn(send_range, me, 500, tag="n")
    mpactors.spawn(send_range_then_report, me, 0, me)
    assert mpactors.receive("sent", timeout=SHORT_TIMEOUT) == "sent"
    assert mpactors.receive(("n", 499), timeout=SHORT_TIMEOUT) == ("n", 499)
    assert mpactors.flush() == [("n", i) for i in range(499)]


@pytest.mark.parametrize(
    "pattern, expected",
    [
        (ANY, 1),
        (None, 1),
        (str, "two"),
        (bytes, b"three"),
        (("pair", int), ("pair", 4)),
        (("pair", ANY, ANY), ("pair", "x", "y")),
        ("two", "two"),
        (lambda m: isinstance(m, float), 5.5),
        ({"k": "v"}, {"k": "v"}),
    ],
    ids=["ANY", "None", "type-str", "type-bytes", "tuple-type", "tuple-ANY", "value", "predicate", "dict-value"],
)
def test_receive_takes_the_first_message_matching_each_kind_of_pattern(
    node: mpactors.Node, pattern: Any, expected: Any
) -> None:
    me = mpactors.self()
    msgs = [1, "two", b"three", ("pair", 4), ("pair", "x", "y"), 5.5, {"k": "v"}]
    for msg in msgs:
        mpactors.send(me, msg)
    assert mpactors.receive(pattern, timeout=SHORT_TIMEOUT) == expected
    rest = list(msgs)
    rest.remove(expected)
    assert mpactors.flush() == rest


def test_flush_returns_every_waiting_message_oldest_first_and_empties_the_mailbox(node: mpactors.Node) -> None:
    me = mpactors.self()
    for i in range(50):
        mpactors.send(me, i)
    wait_until(lambda: mpactors.process_info(me)["message_queue_len"] == 50)
    assert mpactors.flush() == list(range(50))
    assert mpactors.flush() == []


# -- timeouts --------------------------------------------------------------
def test_receive_with_a_timeout_and_no_message_raises_timeout(node: mpactors.Node) -> None:
    start = time.monotonic()
    with pytest.raises(Timeout) as info:
        mpactors.receive(timeout=0.2)
    elapsed = time.monotonic() - start
    assert 0.19 <= elapsed < 0.2 + SHORT_TIMEOUT
    assert "0.2" in str(info.value)
    assert isinstance(info.value, TimeoutError)


def test_receive_with_timeout_zero_only_looks(node: mpactors.Node) -> None:
    start = time.monotonic()
    with pytest.raises(Timeout):
        mpactors.receive(timeout=0)
    assert time.monotonic() - start < 1.0
    mpactors.send(mpactors.self(), "here")
    assert wait_until(lambda: mpactors.process_info(mpactors.self())["message_queue_len"] == 1)
    assert mpactors.receive(timeout=0) == "here"


def test_a_receive_timeout_leaves_the_non_matching_messages_in_order(node: mpactors.Node) -> None:
    me = mpactors.self()
    for msg in ["x", "y", "z"]:
        mpactors.send(me, msg)
    with pytest.raises(Timeout, match="nothing-like-this"):
        mpactors.receive("nothing-like-this", timeout=0.1)
    assert mpactors.flush() == ["x", "y", "z"]


@pytest.mark.timeout(30)
def test_a_stream_of_non_matching_messages_does_not_extend_the_receive_timeout(node: mpactors.Node) -> None:
    noisy = mpactors.spawn(send_noise_until_stop, mpactors.self())
    assert mpactors.receive("noise", timeout=SHORT_TIMEOUT) == "noise"
    start = time.monotonic()
    with pytest.raises(Timeout):
        mpactors.receive("never", timeout=0.5)
    elapsed = time.monotonic() - start
    mpactors.send(noisy, "stop")
    assert 0.49 <= elapsed < 0.5 + SHORT_TIMEOUT
    assert set(mpactors.flush()) <= {"noise"}


def test_an_actor_receive_timeout_raises_timeout_inside_the_actor(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(mpactors.receive, timeout=0.1)
    down = mpactors.receive(Down, timeout=SHORT_TIMEOUT)
    assert down.pid == pid
    assert down.reason.type == "Timeout"
    assert "timeout=0.1" in down.reason.message


# -- big messages and backpressure -------------------------------------------
@pytest.mark.timeout(60)
def test_a_ten_megabyte_message_goes_to_an_actor_and_back_intact(node: mpactors.Node) -> None:
    big = os.urandom(10 * 1024 * 1024)
    pid = mpactors.spawn(echo, mpactors.self())
    mpactors.send(pid, big)
    tag, back = mpactors.receive(timeout=LONG_TIMEOUT)
    assert tag == "echo"
    assert back == big
    mpactors.send(pid, "stop")


@pytest.mark.timeout(60)
def test_big_messages_from_concurrent_senders_are_reassembled_per_sender(node: mpactors.Node) -> None:
    me = mpactors.self()
    size, count = 200_000, 20
    for tag in ("a", "b", "c"):
        mpactors.spawn(send_big, me, tag, count, size)
    got = [mpactors.receive(timeout=LONG_TIMEOUT) for _ in range(3 * count)]
    for tag in ("a", "b", "c"):
        mine = [(i, data) for t, i, data in got if t == tag]
        assert [i for i, _ in mine] == list(range(count))
        assert all(data == bytes([i % 256]) * size for i, data in mine)


@pytest.mark.timeout(60)
def _open_writer(fifo: str) -> int:
    """A write descriptor of ``fifo``, or 0 while nobody has it open for reading."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return 0
        raise


def test_send_does_not_wait_for_a_receiver_that_is_not_reading(node: mpactors.Node, tmp_path: Any) -> None:
    # 64 MiB is far more than a pipe holds: the rest waits in the sender's backlog.
    size, count = 1024 * 1024, 64
    gate = os.path.join(str(tmp_path), "gate")
    os.mkfifo(gate)
    pid = mpactors.spawn(wait_on_fifo_then_check, mpactors.self(), gate, count, size)
    start = time.monotonic()
    for i in range(count):
        mpactors.send(pid, (i, bytes([i % 256]) * size))
    sending = time.monotonic() - start
    # The actor holds the FIFO open for reading (it opened it before its first
    # receive), so this open does not block for long; wait for it with a deadline.
    fd = wait_until(lambda: _open_writer(gate), LONG_TIMEOUT, what="the actor opening the gate")
    try:
        os.write(fd, b"go")
    finally:
        os.close(fd)
    assert mpactors.receive(timeout=LONG_TIMEOUT) == ("received", count, True)
    assert sending < SHORT_TIMEOUT


@pytest.mark.timeout(60)
def test_messages_to_self_beyond_the_pipe_capacity_are_all_received_in_order(node: mpactors.Node) -> None:
    me = mpactors.self()
    size, count = 256 * 1024, 40  # 10 MiB: more than the pipe holds
    for i in range(count):
        mpactors.send(me, (i, b"x" * size))
    got = [mpactors.receive(timeout=LONG_TIMEOUT) for _ in range(count)]
    assert [i for i, _ in got] == list(range(count))
    assert all(len(data) == size for _, data in got)


@pytest.mark.timeout(60)
def test_messages_an_actor_sent_before_returning_are_delivered_after_it_has_gone(node: mpactors.Node) -> None:
    me = mpactors.self()
    size, count = 1024 * 1024, 8  # more than the pipe holds: the actor's backlog is flushed at exit
    pid, ref = mpactors.spawn_monitor(send_big, me, "late", count, size)
    got = [mpactors.receive(("late", ANY, ANY), timeout=LONG_TIMEOUT) for _ in range(count)]
    assert [i for _, i, _ in got] == list(range(count))
    assert all(len(data) == size for _, _, data in got)
    assert mpactors.receive(Down, timeout=LONG_TIMEOUT) == Down(ref, pid, "normal")
