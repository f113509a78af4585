"""The cluster mesh (SPEC "Cluster"): visible nodes connect transitively, hidden ones do not.

Whether two nodes share a connection is checked from the outside too: the
established TCP connections of the node processes (psutil), so "not meshed"
does not rely on anybody's ``nodes()`` alone.
"""
from __future__ import annotations

import os
import time

import pytest
from nodes import cluster, cookie, established_peers, local_node, remote_ports, run_node  # noqa: F401 - fixtures
from support import SHORT_TIMEOUT, wait_until

import mpactors
from mpactors import NodeUp, epmd

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("cluster")]


def listen_port(node_name: str) -> int:
    port = epmd.port_please(node_name.partition("@")[0])
    assert port is not None, f"{node_name} is not registered"
    return port


def tcp_linked(os_pid_a: int, name_a: str, os_pid_b: int, name_b: str) -> bool:
    """True when processes a and b hold a node-to-node connection (either side dialled)."""
    return listen_port(name_b) in established_peers(os_pid_a) or listen_port(name_a) in established_peers(os_pid_b)


def pinging(node: str) -> str:
    """Setup code for run_node: connect to ``node`` before ready."""
    return f"assert mpactors.ping({node!r}) == 'pong'"


def test_a_node_that_connects_to_one_member_is_meshed_with_every_member_it_knows() -> None:
    with run_node() as c, run_node(code=pinging(c.name)) as b, local_node() as a:
        assert mpactors.nodes() == []
        mpactors.monitor_nodes(True)

        assert mpactors.ping(b.name) == "pong"  # only b is ever named here
        wait_until(lambda: mpactors.nodes() == sorted([b.name, c.name]), what="a to be connected to c through b")
        assert {mpactors.receive(NodeUp, timeout=SHORT_TIMEOUT) for _ in range(2)} == {NodeUp(b.name), NodeUp(c.name)}
        assert tcp_linked(os.getpid(), a.name, c.os_pid, c.name)
        assert c.call("mpactors.nodes()") == sorted([a.name, b.name])
        assert b.call("mpactors.nodes()") == sorted([a.name, c.name])


def test_the_mesh_grows_to_four_nodes_from_a_single_ping() -> None:
    with run_node() as d, run_node(code=pinging(d.name)) as c, run_node(code=pinging(c.name)) as b, local_node() as a:
        assert mpactors.ping(b.name) == "pong"  # a names only b
        everyone = sorted([a.name, b.name, c.name, d.name])
        wait_until(lambda: mpactors.nodes() == [n for n in everyone if n != a.name], what="a to mesh with c and d")
        for node in (b, c, d):
            assert node.call("mpactors.nodes()") == [n for n in everyone if n != node.name]


def test_a_hidden_node_appears_in_no_ones_nodes_and_is_not_meshed() -> None:
    setup_b = "mpactors.monitor_nodes(True)"
    with run_node() as c, run_node(code=setup_b) as b, local_node() as a, run_node(hidden=True) as h:
        assert b.call("mpactors.ping(c)", c=c.name) == "pong"  # b and c: visible, meshed
        assert h.call("mpactors.ping(b)", b=b.name) == "pong"  # h: hidden, connects to b only
        assert mpactors.ping(b.name) == "pong"
        wait_until(lambda: mpactors.nodes() == sorted([b.name, c.name]), what="a to mesh with c")

        assert c.name not in h.call("mpactors.nodes()")
        assert mpactors.nodes() == sorted([b.name, c.name])  # a itself talks to h, yet does not list it
        assert b.call("mpactors.nodes()") == sorted([a.name, c.name])
        assert c.call("mpactors.nodes()") == sorted([a.name, b.name])
        assert NodeUp(h.name) not in b.call("inbox")
        assert NodeUp(c.name) in b.call("inbox")
        assert tcp_linked(h.os_pid, h.name, b.os_pid, b.name)
        assert not tcp_linked(h.os_pid, h.name, c.os_pid, c.name)


def test_a_hidden_node_uses_the_node_it_connects_to_without_joining_the_cluster() -> None:
    setup_b = "mpactors.monitor_nodes(True)\n"
    with run_node() as c, run_node(code=setup_b + pinging(c.name)) as b, local_node(hidden=True) as h:
        assert b.call("mpactors.nodes()") == [c.name]  # b and c: a cluster of two
        assert NodeUp(h.name) not in b.call("inbox")
        assert not tcp_linked(os.getpid(), h.name, c.os_pid, c.name)  # b did not introduce h to c

        me = mpactors.self()
        pid = mpactors.spawn(lambda: mpactors.send(me, ("hello from", mpactors.node())), node=b.name)
        assert pid.node == b.name
        assert mpactors.receive(("hello from", b.name), timeout=SHORT_TIMEOUT)

        assert c.call("mpactors.nodes()") == [b.name]  # h may talk to c directly, still unlisted
        assert b.call("mpactors.nodes()") == [c.name]
        # As in Erlang, every connection of a hidden node is hidden on both ends.
        assert mpactors.nodes() == []
        assert b.name in mpactors.nodes("hidden") and b.name in mpactors.nodes("connected")
        assert b.call("mpactors.nodes('hidden')") == [h.name]


_PING_AT = """
import time
while time.monotonic() < at:  # both nodes leave this loop at the same instant
    pass
result = mpactors.ping(other)
"""


def connections_between(os_pid_a: int, name_a: str, os_pid_b: int, name_b: str) -> int:
    """How many node-to-node TCP connections processes a and b share (either side dialled)."""
    port_a, port_b = listen_port(name_a), listen_port(name_b)
    return sum(1 for p in remote_ports(os_pid_a) if p == port_b) + sum(1 for p in remote_ports(os_pid_b) if p == port_a)


@pytest.mark.timeout(60)
def test_two_nodes_that_connect_to_each_other_at_once_end_up_with_one_connection() -> None:
    with run_node() as b, run_node() as c, local_node():
        for _ in range(10):
            at = time.monotonic() + 0.2
            from_b = b.start_call(_PING_AT, at=at, other=c.name)
            from_c = c.start_call(_PING_AT, at=at, other=b.name)
            assert (b.result(from_b), c.result(from_c)) == ("pong", "pong")
            assert c.name in b.call("mpactors.nodes()") and b.name in c.call("mpactors.nodes()")
            wait_until(lambda: connections_between(b.os_pid, b.name, c.os_pid, c.name) == 1,
                       what="the losing connection to close")
            assert b.call("mpactors.disconnect_node(other)", other=c.name) is True
            wait_until(lambda: b.name not in c.call("mpactors.nodes()"), what="c to see the disconnect")
