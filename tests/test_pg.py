"""``mpactors.pg``: process groups across real node processes, eventually consistent."""
from __future__ import annotations

import pickle
from typing import Any, List

import pytest
from nodes import NodeProc, cluster, cookie, local_node, run_node, wait_forever  # noqa: F401
from support import LONG_TIMEOUT, SHORT_TIMEOUT, wait_until

import mpactors
from mpactors import pg

pytestmark = pytest.mark.timeout(240)

#: SPEC: every node sees a join within 1 s on a connected cluster (scaled for loaded machines).
CONVERGENCE = SHORT_TIMEOUT / 5


def connect(*nodes: NodeProc) -> None:
    for n in nodes:
        assert mpactors.ping(n.name) == "pong"
    wait_until(lambda: all(len(n.call("mpactors.nodes()")) == len(nodes) for n in nodes), SHORT_TIMEOUT,
               what="a full mesh")


def members_everywhere(nodes: List[NodeProc], group: Any) -> List[List[mpactors.Pid]]:
    """``sorted(get_members(group))`` on this node and on each of ``nodes``."""
    return [sorted(pg.get_members(group))] + [
        sorted(n.call("mpactors.pg.get_members(x)", x=group)) for n in nodes
    ]


def warm_up(nodes: List[NodeProc]) -> None:
    """Start the pg servers and wait until each node's server knows every other."""
    pg.join("warm-up")
    for n in nodes:
        n.call("mpactors.pg.join('warm-up')")
    wait_until(lambda: all(len(m) == len(nodes) + 1 for m in members_everywhere(nodes, "warm-up")),
               LONG_TIMEOUT, what="the pg servers to know each other")


def test_a_join_on_one_node_is_seen_by_every_node_within_a_second(cluster: int) -> None:
    with local_node("pa"), run_node() as b, run_node() as c:
        connect(b, c)
        warm_up([b, c])
        for round_ in range(3):
            group = ("room", round_)
            pid = b.call("p = mpactors.spawn(wait_forever); mpactors.pg.join(g, p); result = p",
                         wait_forever=wait_forever, g=group)
            wait_until(lambda: members_everywhere([b, c], group) == [[pid]] * 3, CONVERGENCE,
                       what=f"{group} on every node")
        assert b.call("mpactors.pg.get_local_members(x)", x=("room", 2)) == [pid]
        assert pg.get_local_members(("room", 2)) == []
        assert {("room", 0), ("room", 1), ("room", 2), "warm-up"} <= set(c.call("mpactors.pg.which_groups()"))


def test_a_process_may_join_several_times_and_leaves_one_membership_at_a_time(cluster: int) -> None:
    with local_node("pa"), run_node() as b:
        connect(b)
        me = mpactors.self()
        pg.join("twice")
        pg.join("twice", [me])
        assert pg.get_local_members("twice") == [me, me]
        wait_until(lambda: b.call("mpactors.pg.get_members('twice')") == [me, me], SHORT_TIMEOUT)
        pg.leave("twice")
        wait_until(lambda: b.call("mpactors.pg.get_members('twice')") == [me], SHORT_TIMEOUT)
        pg.leave("twice", me)
        wait_until(lambda: b.call("mpactors.pg.get_members('twice')") == [], SHORT_TIMEOUT)
        assert "twice" not in pg.which_groups()


def test_a_member_that_dies_leaves_its_groups_on_every_node(cluster: int) -> None:
    with local_node("pa"), run_node() as b, run_node() as c:
        connect(b, c)
        pid = c.call("p = mpactors.spawn(wait_forever); mpactors.pg.join('g1', p); mpactors.pg.join('g2', p); result = p",
                     wait_forever=wait_forever)
        wait_until(lambda: members_everywhere([b, c], "g1") == [[pid]] * 3, LONG_TIMEOUT)
        mpactors.exit(pid, "kill")
        wait_until(lambda: members_everywhere([b, c], "g1") == [[]] * 3 and members_everywhere([b, c], "g2") == [[]] * 3,
                   SHORT_TIMEOUT, what="the dead member gone everywhere")


def test_the_members_of_a_sigkilled_node_leave_and_monitors_hear_of_it(cluster: int) -> None:
    with local_node("pa"), run_node() as b, run_node(ticktime=2) as c:
        connect(b, c)
        ref, members = pg.monitor("workers")
        assert members == []
        pids = c.call("ps = [mpactors.spawn(wait_forever) for _ in range(2)]; mpactors.pg.join('workers', ps); result = ps",
                      wait_forever=wait_forever)
        event = mpactors.receive(pg.PgEvent, LONG_TIMEOUT)
        assert event == pg.PgEvent(ref, "workers", "join", pids)
        wait_until(lambda: sorted(b.call("mpactors.pg.get_members('workers')")) == sorted(pids), SHORT_TIMEOUT)
        c.kill()
        event = mpactors.receive(pg.PgEvent, LONG_TIMEOUT)
        assert (event.ref, event.group, event.kind, sorted(event.pids)) == (ref, "workers", "leave", sorted(pids))
        wait_until(lambda: b.call("mpactors.pg.get_members('workers')") == [], LONG_TIMEOUT)
        assert pg.demonitor(ref) is True
        assert pg.demonitor(ref) is False


def test_monitor_events_say_who_joined_and_left_and_stop_after_demonitor(cluster: int) -> None:
    with local_node("pa"), run_node() as b:
        connect(b)
        first = b.call("p = mpactors.spawn(wait_forever); mpactors.pg.join('chat', p); result = p",
                       wait_forever=wait_forever)
        wait_until(lambda: pg.get_members("chat") == [first], SHORT_TIMEOUT)
        ref, members = pg.monitor("chat")
        assert members == [first]
        me = mpactors.self()
        pg.join("chat")
        assert mpactors.receive(pg.PgEvent, SHORT_TIMEOUT) == pg.PgEvent(ref, "chat", "join", [me])
        b.call("mpactors.pg.leave('chat', p)", p=first)
        assert mpactors.receive(pg.PgEvent, SHORT_TIMEOUT) == pg.PgEvent(ref, "chat", "leave", [first])
        pg.demonitor(ref)
        pg.leave("chat")
        with pytest.raises(mpactors.Timeout):
            mpactors.receive(pg.PgEvent, 0.5)
        event = pg.PgEvent(ref, "chat", "join", [me])
        assert pickle.loads(pickle.dumps(event)) == event


def test_after_a_partition_heals_each_side_sees_the_others_members_again(cluster: int) -> None:
    with local_node("ph", hidden=True), run_node() as b, run_node() as c:
        assert b.call("mpactors.ping(x)", x=c.name) == "pong"
        pb = b.call("p = mpactors.spawn(wait_forever); mpactors.pg.join('g', p); result = p", wait_forever=wait_forever)
        wait_until(lambda: c.call("mpactors.pg.get_members('g')") == [pb], LONG_TIMEOUT)
        # the servers' start-up helpers gone: an rpc reply in flight would reconnect the sides
        wait_until(lambda: len(c.call("mpactors.processes()")) == 1, SHORT_TIMEOUT)
        wait_until(lambda: len(b.call("mpactors.processes()")) == 2, SHORT_TIMEOUT)
        assert b.call("mpactors.disconnect_node(x)", x=c.name)
        wait_until(lambda: c.call("mpactors.pg.get_members('g')") == [], SHORT_TIMEOUT, what="b's members dropped on c")
        pc = c.call("p = mpactors.spawn(wait_forever); mpactors.pg.join('g', p); result = p", wait_forever=wait_forever)
        assert b.call("mpactors.pg.get_members('g')") == [pb]
        assert b.call("mpactors.ping(x)", x=c.name) == "pong"
        both = sorted([pb, pc])
        wait_until(lambda: [sorted(n.call("mpactors.pg.get_members('g')")) for n in (b, c)] == [both, both],
                   SHORT_TIMEOUT, what="both sides merged")


def test_joining_a_process_of_another_node_or_a_bad_group_is_refused(cluster: int) -> None:
    with local_node("pa"), run_node() as b:
        connect(b)
        remote = b.call("mpactors.spawn(wait_forever)", wait_forever=wait_forever)
        with pytest.raises(mpactors.BadArg, match="join and leave on the member's own node"):
            pg.join("g", remote)
        with pytest.raises(mpactors.BadArg, match="hashable"):
            pg.join(["not", "hashable"])
        with pytest.raises(mpactors.BadArg, match="Pid"):
            pg.join("g", ["nope"])
