"""Distribution between two nodes (SPEC "Node to node", "Python API", "Guarantees").

The pytest process is one node (``local_node``), the other runs in a
subprocess (``run_node``); all traffic is on 127.0.0.1 through a private port
mapper (the ``cluster`` fixture).
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any

import pytest
from nodes import (  # noqa: F401 - cluster and cookie are fixtures
    cluster,
    cookie,
    count_in_order,
    drain,
    echo,
    exit_on,
    exit_on_go,
    exit_with,
    flood,
    forward,
    hold_mailbox,
    link_then_send,
    local_node,
    relay,
    run_node,
    send_many,
    short_host,
    trap_and_forward,
    unique_name,
    wait_forever,
)
from support import LONG_TIMEOUT, SHORT_TIMEOUT, ancestors, wait_until

import mpactors
from mpactors import ANY, Down, ExitSignal, NodeDown, NodeUp

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("cluster")]


class OnlyHere:
    """Pickled by reference to this module, which a node without tests on its path cannot import."""


def recv(pattern: Any = None, timeout: float = SHORT_TIMEOUT) -> Any:
    return mpactors.receive(pattern, timeout=timeout)


def nothing_more(pattern: Any = None, timeout: float = 0.3) -> bool:
    """True when no message matching ``pattern`` arrives within ``timeout``."""
    try:
        mpactors.receive(pattern, timeout=timeout)
    except mpactors.Timeout:
        return True
    return False


# ---------------------------------------------------------------- ping, nodes()


def test_ping_answers_pong_for_a_running_node_and_pang_for_an_unknown_one() -> None:
    with run_node() as b, local_node():
        assert mpactors.ping(b.name) == "pong"
        assert mpactors.ping(b.name) == "pong"  # already connected
        assert mpactors.ping(mpactors.node()) == "pong"
        assert mpactors.ping(f"{unique_name('nobody')}@{short_host()}") == "pang"


def test_a_pang_is_not_remembered_once_the_node_starts() -> None:
    name = unique_name("late")
    with local_node():
        assert mpactors.ping(f"{name}@{short_host()}") == "pang"
        with run_node(name) as b:
            assert mpactors.ping(b.name) == "pong"


def test_ping_of_something_that_is_not_a_node_name_raises_bad_arg() -> None:
    with local_node(), pytest.raises(mpactors.BadArg):
        mpactors.ping("no-at-sign")


def test_nodes_lists_a_connected_peer_on_both_sides_and_monitor_nodes_reports_it() -> None:
    with run_node(code="mpactors.monitor_nodes(True)") as b, local_node():
        assert mpactors.nodes() == []
        mpactors.monitor_nodes(True)
        assert mpactors.ping(b.name) == "pong"
        assert mpactors.nodes() == [b.name]
        assert recv(NodeUp) == NodeUp(b.name)
        assert b.call("mpactors.nodes()") == [mpactors.node()]
        assert NodeUp(mpactors.node()) in b.call("inbox")


# ---------------------------------------------------------------- sending


def test_send_to_a_remote_pid_delivers_the_message() -> None:
    with run_node(code="import nodes\nep = mpactors.spawn(nodes.echo)") as b, local_node():
        pid = b.call("ep")
        assert pid.node == b.name
        assert mpactors.send(pid, (mpactors.self(), {"payload": [1, 2.5, "x"]})) is not None
        assert recv() == ("echo", pid, {"payload": [1, 2.5, "x"]})


def test_an_actor_sends_to_a_remote_pid_and_gets_the_answer() -> None:
    with run_node(code="import nodes\nep = mpactors.spawn(nodes.echo)") as b, local_node():
        remote = b.call("ep")
        me = mpactors.self()

        def ask() -> None:
            mpactors.send(remote, (mpactors.self(), "from an actor"))
            mpactors.send(me, ("asker got", mpactors.receive(timeout=SHORT_TIMEOUT)))

        asker = mpactors.spawn(ask)
        assert recv() == ("asker got", ("echo", remote, "from an actor"))
        assert asker.node == mpactors.node()


def test_send_to_a_registered_name_on_another_node_delivers_the_message() -> None:
    code = "import nodes\nmpactors.register('echo', mpactors.spawn(nodes.echo))"
    with run_node(code=code) as b, local_node():
        mpactors.send(("echo", b.name), (mpactors.self(), "by name"))
        _, pid, x = recv(("echo", ANY, ANY))
        assert x == "by name"
        assert pid == b.call("mpactors.whereis('echo')")


def test_send_to_an_unknown_name_on_another_node_is_dropped_silently() -> None:
    code = "import nodes\nmpactors.register('echo', mpactors.spawn(nodes.echo))"
    with run_node(code=code) as b, local_node():
        assert mpactors.ping(b.name) == "pong"
        assert mpactors.send(("nobody", b.name), (mpactors.self(), "lost")) == (mpactors.self(), "lost")
        mpactors.send(("echo", b.name), (mpactors.self(), "kept"))
        assert recv()[2] == "kept"  # the first answer is for the second message
        assert nothing_more()
        assert b.call("inbox") == []  # not delivered to anyone else either
        assert mpactors.nodes() == [b.name]  # and the connection is still up


@pytest.mark.timeout(60)
def test_send_to_a_pid_of_a_node_that_does_not_exist_is_dropped_silently() -> None:
    ghost = mpactors.Pid(f"{unique_name('ghost')}@{short_host()}", 1, 0, 1)
    with run_node() as b, local_node():
        assert mpactors.send(ghost, "into the void") == "into the void"
        assert mpactors.send(("name", ghost.node), "into the void") == "into the void"
        assert mpactors.ping(b.name) == "pong"  # the node carries on
        assert mpactors.nodes() == [b.name]


def test_a_message_the_receiving_node_cannot_unpickle_is_logged_and_later_messages_arrive() -> None:
    with run_node(importable=False) as b, local_node():
        me = mpactors.self()

        def report() -> None:
            while True:
                mpactors.send(me, ("got", mpactors.receive()))

        pid = mpactors.spawn(report, node=b.name)
        mpactors.send(pid, OnlyHere())  # b cannot import this test module
        mpactors.send(pid, "after")
        assert recv(("got", ANY)) == ("got", "after")
        b.wait_log(r"from another node it cannot unpickle.*No module named 'test_dist'")
        assert mpactors.process_info(pid) is not None


def test_a_large_message_crosses_nodes_intact() -> None:
    with run_node() as b, local_node():
        pid = mpactors.spawn(echo, node=b.name)
        big = os.urandom(8 * 1024 * 1024)
        mpactors.send(pid, (mpactors.self(), big))
        assert recv(("echo", pid, ANY), LONG_TIMEOUT)[2] == big


def test_ten_thousand_messages_arrive_in_order_across_nodes_both_ways() -> None:
    n = 10_000
    with run_node() as b, local_node():
        counter = mpactors.spawn(count_in_order, mpactors.self(), n, node=b.name)
        for i in range(n):
            mpactors.send(counter, i)
        assert recv(("counted", ANY, ANY), LONG_TIMEOUT) == ("counted", n, True)

        mpactors.spawn(send_many, mpactors.self(), n, node=b.name)
        got = [recv(timeout=LONG_TIMEOUT) for _ in range(n + 1)]
        assert got == list(range(n)) + ["done"]


def test_pids_sent_inside_messages_stay_valid_on_every_node() -> None:
    with run_node() as c, run_node() as b, local_node():
        me = mpactors.self()
        local_actor = mpactors.spawn(forward, me)
        remote_relay = mpactors.spawn(relay, node=b.name)
        third_party = mpactors.spawn(forward, me, node=c.name)
        targets = (me, local_actor, third_party)
        mpactors.send(remote_relay, (targets, {"nested": [("hello", me)]}))

        assert recv({"nested": [("hello", me)]}) == {"nested": [("hello", me)]}
        assert recv(("forwarded", local_actor, ANY))[2] == {"nested": [("hello", me)]}
        assert recv(("forwarded", third_party, ANY))[2] == {"nested": [("hello", me)]}
        _, relay_pid, echoed = recv(("relayed", ANY, ANY))
        assert relay_pid == remote_relay
        assert echoed == targets  # equal and hashable after two trips
        assert {p.node for p in echoed} == {mpactors.node(), c.name}


# ---------------------------------------------------------------- remote spawn


def test_spawn_on_a_remote_node_runs_a_closure_there() -> None:
    with run_node(importable=False) as b, local_node():
        me = mpactors.self()
        secret = ["captured", 42]

        def closure() -> None:
            import psutil

            parents = [p.pid for p in psutil.Process().parents()]
            mpactors.send(me, ("ran", mpactors.node(), os.getpid(), parents, secret))

        pid = mpactors.spawn(closure, node=b.name)
        assert pid.node == b.name
        _, where, os_pid, parents, value = recv(("ran", ANY, ANY, ANY, ANY))
        assert (where, value) == (b.name, secret)
        assert b.os_pid in parents[:2]  # the node, or its fork server under forkserver
        assert os_pid != b.os_pid


def test_spawn_on_a_remote_node_runs_a_lambda_with_arguments() -> None:
    with run_node(importable=False) as b, local_node():
        me = mpactors.self()
        pid = mpactors.spawn(lambda x, y=0: mpactors.send(me, ("lambda", mpactors.node(), x * 2 + y)), 20, node=b.name, y=2)
        assert pid.node == b.name
        assert recv(("lambda", ANY, ANY)) == ("lambda", b.name, 42)


def test_spawn_monitor_on_a_remote_node_reports_the_reason_it_ended_with() -> None:
    with run_node(importable=False) as b, local_node():
        pid, ref = mpactors.spawn_monitor(lambda: mpactors.exit(("finished", 7)), node=b.name)
        assert pid.node == b.name
        assert recv(Down) == Down(ref, pid, ("finished", 7))


def test_spawn_on_an_unreachable_node_raises_node_error() -> None:
    with local_node(), pytest.raises(mpactors.NodeError):
        mpactors.spawn(wait_forever, node=f"{unique_name('ghost')}@{short_host()}")


# ---------------------------------------------------------------- links, monitors, exit


def test_a_remote_link_delivers_the_reason_the_remote_actor_died_with() -> None:
    with run_node() as b, local_node():
        mpactors.trap_exit(True)
        pid = mpactors.spawn_link(exit_on, ("custom", 42), node=b.name)
        mpactors.send(pid, "go")
        assert recv(ExitSignal) == ExitSignal(pid, ("custom", 42))


def test_a_local_actor_linked_to_a_remote_actor_dies_with_its_reason() -> None:
    with run_node() as b, local_node():
        me = mpactors.self()
        remote = mpactors.spawn(exit_on, "remote-reason", node=b.name)

        def linked() -> None:
            mpactors.link(remote)
            mpactors.send(me, "linked")
            mpactors.receive()

        local, ref = mpactors.spawn_monitor(linked)
        assert recv("linked") == "linked"
        assert mpactors.process_info(remote)["links"] == [local]  # the link is in place there
        mpactors.send(remote, "go")
        assert recv(Down) == Down(ref, local, "remote-reason")


def test_a_remote_actor_linked_to_a_local_one_dies_with_its_reason() -> None:
    with run_node() as b, local_node():
        me = mpactors.self()
        remote, ref = mpactors.spawn_monitor(wait_forever, node=b.name)

        def linker() -> None:
            mpactors.link(remote)
            mpactors.send(me, "linked")
            mpactors.receive()
            mpactors.exit("local-reason")

        local = mpactors.spawn(linker)
        assert recv("linked") == "linked"
        assert mpactors.process_info(remote)["links"] == [local]
        mpactors.send(local, "go")
        assert recv(Down) == Down(ref, remote, "local-reason")


def test_unlink_from_a_remote_actor_removes_the_link_on_both_nodes() -> None:
    with run_node() as b, local_node():
        remote, ref = mpactors.spawn_monitor(wait_forever, node=b.name)
        mpactors.link(remote)
        assert mpactors.process_info(remote)["links"] == [mpactors.self()]
        mpactors.unlink(remote)
        assert mpactors.process_info(remote)["links"] == []
        mpactors.exit(remote, "bye")
        assert recv(Down) == Down(ref, remote, "bye")
        assert nothing_more(ExitSignal)


def test_a_remote_monitor_delivers_the_reason_the_remote_actor_died_with() -> None:
    with run_node() as b, local_node():
        pid = mpactors.spawn(exit_on, {"why": "done"}, node=b.name)
        ref = mpactors.monitor(pid)
        assert mpactors.process_info(pid) is not None  # the monitor request went first
        mpactors.send(pid, "go")
        assert recv(Down) == Down(ref, pid, {"why": "done"})
        assert nothing_more(Down)  # delivered once


def test_a_crash_on_a_remote_node_is_reported_with_the_exception_type() -> None:
    with run_node(importable=False) as b, local_node():
        pid, ref = mpactors.spawn_monitor(lambda: 1 / 0, node=b.name)
        down = recv(Down)
        assert (down.ref, down.pid) == (ref, pid)
        assert isinstance(down.reason, mpactors.Crash)
        assert down.reason.type == "ZeroDivisionError"
        assert "ZeroDivisionError" in down.reason.traceback


def test_monitor_of_a_dead_remote_pid_gives_noproc() -> None:
    with run_node() as b, local_node():
        pid, ref = mpactors.spawn_monitor(exit_with, "normal", node=b.name)
        assert recv(Down) == Down(ref, pid, "normal")
        ref2 = mpactors.monitor(pid)
        assert ref2 != ref
        assert recv(Down) == Down(ref2, pid, "noproc")


def test_demonitor_of_a_remote_pid_stops_the_down_message() -> None:
    with run_node() as b, local_node():
        pid = mpactors.spawn(exit_on, "bye", node=b.name)
        ref = mpactors.monitor(pid)
        assert mpactors.demonitor(ref) is True
        assert mpactors.process_info(pid)["monitored_by"] == []
        mpactors.send(pid, "go")
        ref2 = mpactors.monitor(pid)  # sync point: this one does fire
        assert recv(Down).ref == ref2
        assert nothing_more(Down)


def test_link_to_a_dead_remote_pid_gives_noproc_to_a_process_trapping_exits() -> None:
    with run_node() as b, local_node():
        pid, ref = mpactors.spawn_monitor(exit_with, "normal", node=b.name)
        assert recv(Down) == Down(ref, pid, "normal")
        mpactors.trap_exit(True)
        mpactors.link(pid)
        assert recv(ExitSignal) == ExitSignal(pid, "noproc")


def test_exit_with_a_reason_ends_a_remote_actor_with_that_reason() -> None:
    with run_node() as b, local_node():
        pid, ref = mpactors.spawn_monitor(wait_forever, node=b.name)
        mpactors.exit(pid, ("go", "away"))
        assert recv(Down) == Down(ref, pid, ("go", "away"))


def test_exit_reaches_a_remote_actor_that_traps_exits_as_a_message() -> None:
    with run_node() as b, local_node():
        me = mpactors.self()
        pid, ref = mpactors.spawn_monitor(trap_and_forward, me, node=b.name)
        assert recv(("trapping", pid)) == ("trapping", pid)
        mpactors.exit(pid, "please")
        assert recv(("forwarded", pid, ANY)) == ("forwarded", pid, ExitSignal(me, "please"))
        mpactors.exit(pid, "normal")
        assert recv(("forwarded", pid, ANY)) == ("forwarded", pid, ExitSignal(me, "normal"))
        mpactors.exit(pid, "kill")  # cannot be trapped
        assert recv(Down) == Down(ref, pid, "killed")


def test_exit_normal_does_not_end_a_remote_actor() -> None:
    with run_node() as b, local_node():
        pid, _ = mpactors.spawn_monitor(echo, node=b.name)
        mpactors.exit(pid, "normal")
        assert mpactors.process_info(pid) is not None  # the signal was handled there by now
        mpactors.send(pid, (mpactors.self(), "still there?"))
        assert recv(("echo", pid, ANY)) == ("echo", pid, "still there?")
        assert nothing_more(Down)


# ---------------------------------------------------------------- process_info


def test_process_info_of_a_remote_pid_describes_the_remote_actor() -> None:
    with run_node() as b, local_node():
        me = mpactors.self()
        pid = mpactors.spawn_link(hold_mailbox, node=b.name)
        b.call("mpactors.register('holder', pid)", pid=pid)
        for i in range(3):
            mpactors.send(pid, i)

        def queued_three() -> Any:
            info = mpactors.process_info(pid)
            return info if (info["message_queue_len"], info["status"]) == (3, "waiting") else None

        info = wait_until(queued_three, what="three queued messages, the actor waiting for more")
        assert info["registered_name"] == "holder"
        assert "hold_mailbox" in info["current"]
        assert info["links"] == [me]
        assert info["monitors"] == []
        assert info["os_pid"] in {p.pid for p in b.actor_processes()}
        assert b.os_pid in ancestors(info["os_pid"])
        assert isinstance(info["memory"], int) and info["memory"] > 0
        assert isinstance(info["cpu_percent"], float)


def test_process_info_of_a_remote_actor_does_not_make_it_miss_messages() -> None:
    # process_info reads the actor's queue length while the actor may be
    # blocked in receive: a message arriving meanwhile must still wake it.
    with run_node() as b, local_node():
        me = mpactors.self()
        pid = mpactors.spawn(echo, node=b.name)

        def inspector() -> None:
            while True:
                mpactors.process_info(pid)

        spy = mpactors.spawn(inspector)
        for i in range(300):
            mpactors.send(pid, (me, i))
            try:
                recv(("echo", pid, i))
            except mpactors.Timeout:
                info = mpactors.process_info(pid)
                pytest.fail(f"round trip {i} got no answer; the remote actor is {info['status']!r} "
                            f"with {info['message_queue_len']} message(s) in its queue")
        mpactors.exit(spy, "kill")


def test_process_info_of_a_dead_remote_pid_is_none() -> None:
    with run_node() as b, local_node():
        pid, ref = mpactors.spawn_monitor(exit_with, "normal", node=b.name)
        assert recv(Down) == Down(ref, pid, "normal")
        assert mpactors.process_info(pid) is None


# ---------------------------------------------------------------- disconnect_node


def test_disconnect_node_gives_node_down_to_monitor_node_subscribers_and_the_node_can_be_pinged_again() -> None:
    with run_node() as b, local_node():
        assert mpactors.ping(b.name) == "pong"
        b.call(f"mpactors.monitor_node({mpactors.node()!r})")
        mpactors.monitor_node(b.name)
        mpactors.monitor_node(b.name)  # stacked: two NodeDown messages

        assert mpactors.disconnect_node(b.name) is True
        assert recv(NodeDown) == NodeDown(b.name)
        assert recv(NodeDown) == NodeDown(b.name)
        assert nothing_more(NodeDown)
        assert mpactors.nodes() == []
        assert mpactors.disconnect_node(b.name) is False  # not connected any more

        assert mpactors.ping(b.name) == "pong"
        assert mpactors.nodes() == [b.name]
        assert NodeDown(mpactors.node()) in b.call("inbox")  # the peer saw it too
        assert b.call("mpactors.nodes()") == [mpactors.node()]


@pytest.mark.timeout(90)
def test_a_node_answers_a_ping_right_after_disconnect_node_every_time() -> None:
    # The peer may not have noticed the old connection close when the new
    # one arrives; that must not turn the new connection away.
    with run_node() as b, local_node():
        answers = []
        for _ in range(30):
            assert mpactors.ping(b.name) == "pong"
            assert mpactors.disconnect_node(b.name) is True
            answers.append(mpactors.ping(b.name))
        assert answers == ["pong"] * 30


@pytest.mark.timeout(90)
def test_disconnect_node_while_the_peer_keeps_sending_leaves_no_error_behind(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The peer reconnects by itself to deliver its next message, so our pings
    # race its connects; whatever wins, nothing may crash or log an error.
    crashed: list = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append((args.thread.name, repr(args.exc_value))))
    with run_node() as b, local_node():
        mpactors.register("sink", mpactors.spawn(drain))
        mpactors.spawn(flood, ("sink", mpactors.node()), b"x" * 30, node=b.name)
        answers = []
        with caplog.at_level(logging.ERROR, logger="mpactors"):
            for _ in range(100):
                answers.append(mpactors.ping(b.name))
                mpactors.disconnect_node(b.name)
                if answers[-1] != "pong":
                    break  # (each pang costs a handshake timeout)
        local_errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        remote_errors = [line for line in b.log_text().splitlines() if " ERROR " in line]
        assert crashed[:3] == []
        assert local_errors[:3] == [] and remote_errors[:3] == []
        assert answers.count("pang") == 0


def test_disconnect_node_breaks_links_on_both_sides_with_noconnection() -> None:
    with run_node() as b, local_node():
        mpactors.trap_exit(True)
        pid = mpactors.spawn_link(wait_forever, node=b.name)
        assert mpactors.disconnect_node(b.name) is True
        assert recv(ExitSignal) == ExitSignal(pid, "noconnection")
        # the remote actor, linked to us and not trapping exits, died of it too
        wait_until(lambda: mpactors.process_info(pid) is None, what="the remote linked actor to die")


def test_monitor_node_of_an_unreachable_node_gives_node_down_at_once() -> None:
    ghost = f"{unique_name('ghost')}@{short_host()}"
    with local_node():
        mpactors.monitor_node(ghost)
        assert recv(NodeDown) == NodeDown(ghost)


def test_a_message_never_overtakes_a_link_sent_before_it() -> None:
    # b links to our actor, then sends it "go"; the actor exits on "go" at
    # once. The link was established first, so b must get the real reason,
    # never 'noproc' (which it would if "go" overtook the link signal).
    with run_node() as b, local_node():
        me = mpactors.self()
        for _ in range(20):
            target = mpactors.spawn(exit_on_go, "boom")
            mpactors.spawn(link_then_send, target, me, node=b.name)
            assert recv(("linked exit", ANY)) == ("linked exit", "boom")


def _dist_threads() -> "list[str]":
    """The distribution layer's long-lived threads in this process (handshake threads excluded)."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("mpactors-dist"))


def test_the_distribution_layer_has_one_event_loop_thread_whatever_the_number_of_peers() -> None:
    with run_node() as b, run_node() as c, local_node():
        before = _dist_threads()
        assert "mpactors-dist-loop" in before
        assert mpactors.ping(b.name) == "pong"
        one = _dist_threads()
        assert mpactors.ping(c.name) == "pong"
        two = _dist_threads()
        assert before == one == two, (before, one, two)
        assert b.call(f"mpactors.ping({c.name!r})") == "pong"  # and the traffic flows
        pid = mpactors.spawn(echo, node=c.name)
        mpactors.send(pid, (mpactors.self(), "hi"))
        assert recv(("echo", pid, ANY)) == ("echo", pid, "hi")
