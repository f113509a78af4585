"""Tests of tally.py with mpactors' pytest plugin (loaded in pyproject.toml)."""
from __future__ import annotations

import time
from typing import Callable

import pytest

import mpactors
import tally
from mpactors.testing import heal, partition


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for ``check()`` to hold (actors run concurrently: never sleep a fixed time)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_one_tally_on_the_test_node(mpactors_node):
    (pid,) = tally.start([mpactors.node()])
    tally.add(mpactors.node(), 2)
    tally.add(mpactors.node(), 3)
    assert tally.total(mpactors.node()) == 5
    tally.stop([mpactors.node()])  # an actor left running would fail this test, by name


def test_increments_reach_every_node(mpactors_node, mpactors_cluster):
    nodes = [n.name for n in mpactors_cluster(3)]
    tally.start(nodes)
    tally.add(nodes[0], 4)
    tally.add(nodes[2], 1)
    for node in nodes:
        eventually(lambda node=node: tally.total(node) == 5)
    tally.stop(nodes)


def test_a_killed_node_takes_its_tally_with_it(mpactors_node, mpactors_cluster):
    a, b = mpactors_cluster(2)
    pid_a, _ = tally.start([a.name, b.name])
    ref = mpactors.monitor(pid_a)
    a.kill()  # SIGKILL: a crashed machine
    down = mpactors.receive(lambda m: isinstance(m, mpactors.Down) and m.ref == ref, timeout=20)
    assert down.reason == "noconnection"
    tally.add(b.name, 1)  # the survivor carries on
    assert tally.total(b.name) == 1
    tally.stop([b.name])


def test_a_partition_keeps_increments_apart_until_it_heals(mpactors_node, mpactors_cluster):
    a, b = mpactors_cluster(2)
    tally.start([a.name, b.name])
    tally.add(a.name, 1)
    eventually(lambda: tally.total(b.name) == 1)
    partition(a, b)
    tally.add(a.name, 10)  # lost on the way to b: the network is cut
    assert tally.total(a.name) == 11
    assert tally.total(b.name) == 1
    heal(a, b)
    tally.add(a.name, 100)  # reconnects, and b sees this one
    eventually(lambda: tally.total(b.name) == 101)
    tally.stop([a.name, b.name])


def test_a_test_that_forgets_an_actor_fails_naming_it(pytester: pytest.Pytester):
    # What the plugin reports when a test leaves an actor running.
    pytester.makepyfile(
        """
        import tally

        def test_forgets_to_stop(mpactors_node):
            tally.start([mpactors_node.name])
        """
    )
    result = pytester.runpytest_subprocess("-p", "mpactors.testing")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*actor left running: <*> (OS pid *, tally.tally)*"])
