"""``mpactors.global_registry``: cluster-wide names agreed by every node, across real node processes."""
from __future__ import annotations

from typing import Any, List

import pytest
from nodes import NodeProc, cluster, cookie, local_node, run_node, trap_and_forward, wait_forever  # noqa: F401
from support import LONG_TIMEOUT, SHORT_TIMEOUT, wait_until

import mpactors
from mpactors import global_registry as g
from mpactors.supervisor import ChildSpec, Supervisor

pytestmark = pytest.mark.timeout(240)


class Counter(mpactors.GenServer):
    """A counter, started under a global name by the tests."""

    def init(self, start: int = 0) -> None:
        self.n = start

    def handle_call(self, request: Any, frm: Any) -> Any:
        return (self.n, mpactors.node())

    def handle_cast(self, msg: Any) -> None:
        self.n += msg


def connect(*nodes: NodeProc) -> None:
    for n in nodes:
        assert mpactors.ping(n.name) == "pong"
    wait_until(lambda: all(len(n.call("mpactors.nodes()")) == len(nodes) for n in nodes), SHORT_TIMEOUT,
               what="a full mesh")


def seen_everywhere(nodes: List[NodeProc], name: Any) -> List[Any]:
    """What ``whereis_name(name)`` answers on this node and each of ``nodes``."""
    return [g.whereis_name(name)] + [n.call("mpactors.global_registry.whereis_name(x)", x=name) for n in nodes]


def test_a_registered_name_is_seen_by_every_node_and_refused_to_a_second_process(cluster: int) -> None:
    with local_node("ga"), run_node() as b, run_node() as c:
        connect(b, c)
        pid = b.call("mpactors.spawn(wait_forever)", wait_forever=wait_forever)
        assert b.call("mpactors.global_registry.register_name('svc', p)", p=pid) is True
        # Agreed before register_name returned: every node answers at once.
        assert seen_everywhere([b, c], "svc") == [pid, pid, pid]
        other = c.call("mpactors.spawn(wait_forever)", wait_forever=wait_forever)
        assert c.call("mpactors.global_registry.register_name('svc', p)", p=other) is False
        assert seen_everywhere([b, c], "svc") == [pid, pid, pid]
        assert "svc" in c.call("mpactors.global_registry.registered_names()")
        mpactors.register("me")
        g.send("svc", "ignored")  # reaches the process on b without error
        with pytest.raises(mpactors.BadArg):
            g.send("nobody", "x")
        g.unregister_name("svc")
        assert seen_everywhere([b, c], "svc") == [None, None, None]


def test_two_nodes_registering_one_name_at_once_get_exactly_one_true(cluster: int) -> None:
    with local_node("ga"), run_node() as b, run_node() as c:
        connect(b, c)
        for n in (b, c):  # start the servers, so both registrations race for real
            n.call("mpactors.global_registry.registered_names()")
        for round_ in range(3):
            name = f"race{round_}"
            pb = b.call("mpactors.spawn(wait_forever)", wait_forever=wait_forever)
            pc = c.call("mpactors.spawn(wait_forever)", wait_forever=wait_forever)
            rb = b.start_call("mpactors.global_registry.register_name(x, p)", x=name, p=pb)
            rc = c.start_call("mpactors.global_registry.register_name(x, p)", x=name, p=pc)
            results = [b.result(rb, LONG_TIMEOUT), c.result(rc, LONG_TIMEOUT)]
            assert sorted(results) == [False, True]
            winner = pb if results[0] else pc
            assert seen_everywhere([b, c], name) == [winner] * 3


def test_a_name_is_released_when_its_process_dies(cluster: int) -> None:
    with local_node("ga"), run_node() as b:
        connect(b)
        pid = b.call("mpactors.spawn(wait_forever)", wait_forever=wait_forever)
        assert g.register_name("worker", pid)
        mpactors.exit(pid, "kill")
        wait_until(lambda: seen_everywhere([b], "worker") == [None, None], SHORT_TIMEOUT, what="the name released")
        # and it can be taken again
        assert g.register_name("worker", mpactors.self())
        assert b.call("mpactors.global_registry.whereis_name('worker')") == mpactors.self()


def test_a_name_is_released_when_its_node_is_sigkilled(cluster: int) -> None:
    with local_node("ga"), run_node() as b, run_node(ticktime=2) as c:
        connect(b, c)
        pid = c.call("mpactors.spawn(wait_forever)", wait_forever=wait_forever)
        assert g.register_name("on-c", pid)
        assert seen_everywhere([b], "on-c") == [pid, pid]
        c.kill()
        wait_until(lambda: seen_everywhere([b], "on-c") == [None, None], LONG_TIMEOUT, what="the name released")


def test_after_a_partition_heals_exactly_one_process_keeps_the_name_and_the_other_is_signalled(
    cluster: int,
) -> None:
    # This process is hidden: it steers b and c without being part of their
    # cluster, so cutting b from c really splits the cluster in two.
    with local_node("gh", hidden=True), run_node() as b, run_node() as c:
        assert b.call("mpactors.ping(x)", x=c.name) == "pong"
        b.call("mpactors.global_registry.registered_names()")
        # Wait until the servers have started each other and their helpers are
        # gone: an rpc reply still in flight would reconnect the two sides.
        for n in (b, c):
            wait_until(lambda: n.call("mpactors.processes() == [mpactors.whereis('mpactors.global')]"),
                       SHORT_TIMEOUT, what=f"the global server alone on {n.name}")
        assert b.call("mpactors.disconnect_node(x)", x=c.name)
        wait_until(lambda: c.name not in b.call("mpactors.nodes()") and b.name not in c.call("mpactors.nodes()"),
                   SHORT_TIMEOUT, what="b and c apart")
        me = mpactors.self()
        pb = b.call("mpactors.spawn(trap_and_forward, me)", trap_and_forward=trap_and_forward, me=me)
        pc = c.call("mpactors.spawn(trap_and_forward, me)", trap_and_forward=trap_and_forward, me=me)
        # spawn returns before the new process runs: an exit signal that came
        # before trap_exit(True) would kill the loser instead of reaching us.
        for p in (pb, pc):
            mpactors.receive(("trapping", p), LONG_TIMEOUT)
        # each side of the partition registers the name: both succeed
        assert b.call("mpactors.global_registry.register_name('single', p)", p=pb) is True
        assert c.call("mpactors.global_registry.register_name('single', p)", p=pc) is True
        assert b.call("mpactors.ping(x)", x=c.name) == "pong"  # heal
        winner, loser = min(pb, pc), max(pb, pc)
        wait_until(lambda: [n.call("mpactors.global_registry.whereis_name('single')") for n in (b, c)]
                   == [winner, winner], SHORT_TIMEOUT, what="both nodes agreeing on the winner")
        signal = mpactors.receive(lambda m: m[0] == "forwarded" and type(m[2]) is mpactors.ExitSignal, SHORT_TIMEOUT)
        assert signal[1] == loser
        assert signal[2].reason == ("global_name_conflict", "single")
        # the winner got nothing, and the loser exactly one signal
        with pytest.raises(mpactors.Timeout):
            mpactors.receive(lambda m: m[0] == "forwarded" and type(m[2]) is mpactors.ExitSignal, 1.0)


def test_a_genserver_started_under_a_global_name_is_called_and_cast_from_another_node(cluster: int) -> None:
    with local_node("ga"), run_node() as b:
        connect(b)
        pid = Counter.start(5, name=("global", "counter"), node=b.name)
        assert pid.node == b.name
        assert g.whereis_name("counter") == pid
        mpactors.GenServer.cast(("global", "counter"), 2)
        assert mpactors.GenServer.call(("global", "counter"), "get") == (7, b.name)
        with pytest.raises(mpactors.MpactorsError, match="counter"):
            Counter.start(name=("global", "counter"))
        with pytest.raises(mpactors.RemoteError, match="no process"):
            mpactors.GenServer.call(("global", "nobody"), "get")
        mpactors.GenServer.cast(("global", "nobody"), 1)  # dropped, as a cast to a free name


def test_a_supervised_child_with_a_global_name_is_registered_again_after_a_restart(cluster: int) -> None:
    with local_node("ga"):
        spec = ChildSpec("counter", Counter, kwargs={"name": ("global", "supervised")})
        sup = Supervisor.start([spec])
        first = g.whereis_name("supervised")
        assert first is not None and mpactors.GenServer.call(("global", "supervised"), "get")[0] == 0
        mpactors.exit(first, "kill")
        second = wait_until(lambda: (g.whereis_name("supervised") or first) != first and g.whereis_name("supervised"),
                            SHORT_TIMEOUT, what="the restarted child's name")
        assert second != first
        mpactors.exit(sup, "kill")


def test_bad_arguments_are_refused_with_a_clear_error(cluster: int) -> None:
    with local_node("ga"):
        with pytest.raises(mpactors.BadArg, match="Pid"):
            g.register_name("x", "not a pid")
        with pytest.raises(mpactors.BadArg, match="hashable"):
            g.whereis_name(["a", "list"])
