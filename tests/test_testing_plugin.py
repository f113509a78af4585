"""The pytest plugin ``mpactors.testing``: fixtures, faults, leak reports, hang dumps.

The project's own pytest configuration loads the plugin (``-p mpactors.testing``
in ``pyproject.toml``), so the first tests use its fixtures directly; the
others run a user's test file in a pytest subprocess (``pytester``) and check
what that user sees.
"""
from __future__ import annotations


import os
import textwrap
import time
from typing import Any, Callable, List

import psutil
import pytest
from support import LONG_TIMEOUT, SHORT_TIMEOUT, all_gone, wait_until

import mpactors
from mpactors import NodeDown, config, epmd
from mpactors.testing import CLUSTER_TICKTIME, RemoteNode, heal, partition

Cluster = Callable[..., List[RemoteNode]]


def echo() -> None:
    while True:
        sender, msg = mpactors.receive()
        mpactors.send(sender, msg)


def wait_forever() -> None:
    mpactors.receive()


def rpc(node: RemoteNode, fn: str, *args: Any) -> Any:
    return mpactors.rpc.call(node.name, fn, *args, timeout=SHORT_TIMEOUT)


def sees(node: RemoteNode, other: RemoteNode) -> bool:
    return other.name in rpc(node, "mpactors:nodes")


# -- the fixtures, used directly --------------------------------------------------------
def test_mpactors_node_is_a_started_local_node_that_runs_actors(mpactors_node: mpactors.Node) -> None:
    assert mpactors_node.alive and mpactors.node() == "nonode@nohost"
    pid = mpactors.spawn(echo)
    mpactors.send(pid, (mpactors.self(), "hello"))
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == "hello"
    mpactors.exit(pid, "kill")


def test_cluster_nodes_and_the_local_node_share_a_private_port_mapper_and_cookie(
    mpactors_cluster: Cluster, mpactors_node: mpactors.Node
) -> None:
    a, b = mpactors_cluster(2)
    port = int(os.environ["MPACTORS_EPMD_PORT"])
    assert port != config.EPMD_DEFAULT_PORT
    registered = {name for name, _ in epmd.names(port=port)}
    assert {n.name.partition("@")[0] for n in (a, b)} | {mpactors_node.name.partition("@")[0]} <= registered
    assert mpactors.ping(a.name) == mpactors.ping(b.name) == "pong"
    assert rpc(a, "mpactors:ping", b.name) == "pong"
    assert a.os_pid != b.os_pid != os.getpid()
    # actors spawned there are the node's processes: its children, or its fork server's
    pid = mpactors.spawn(wait_forever, node=a.name)
    os_pid = mpactors.process_info(pid)["os_pid"]
    assert a.os_pid in [p.pid for p in psutil.Process(os_pid).parents()]
    assert os_pid in [p.pid for p in a.processes()]
    mpactors.exit(pid, "kill")


def test_a_killed_cluster_node_is_seen_down_and_its_actors_go_with_it(
    mpactors_cluster: Cluster, mpactors_node: mpactors.Node
) -> None:
    (a,) = mpactors_cluster(1)
    mpactors.spawn(wait_forever, node=a.name)
    actors = wait_until(lambda: [p.pid for p in a.processes() if p.pid != a.os_pid], what="the actor on a")
    mpactors.monitor_node(a.name)
    a.kill()
    assert mpactors.receive(NodeDown, timeout=SHORT_TIMEOUT) == NodeDown(a.name)
    wait_until(lambda: all_gone(actors + [a.os_pid]), what="a and its actor to be gone")


def test_a_paused_node_is_frozen_with_its_actors_declared_down_after_the_ticktime_and_comes_back(
    mpactors_cluster: Cluster, mpactors_node: mpactors.Node
) -> None:
    (a,) = mpactors_cluster(1)
    pid = mpactors.spawn(wait_forever, node=a.name)
    wait_until(lambda: len(a.processes()) > 1, what="the actor on a")
    mpactors.monitor_node(a.name)
    a.pause()
    try:
        assert {p.status() for p in a.processes()} == {psutil.STATUS_STOPPED}
        started = time.monotonic()
        assert mpactors.receive(NodeDown, timeout=LONG_TIMEOUT) == NodeDown(a.name)
        assert time.monotonic() - started < CLUSTER_TICKTIME * 3 + SHORT_TIMEOUT
    finally:
        a.resume()
    assert psutil.STATUS_STOPPED not in {p.status() for p in a.processes()}
    assert mpactors.ping(a.name) == "pong"
    mpactors.exit(pid, "kill")


def test_partition_cuts_two_nodes_both_ways_even_through_the_mesh_and_heal_restores_them(
    mpactors_cluster: Cluster, mpactors_node: mpactors.Node
) -> None:
    a, b, c = mpactors_cluster(3)
    assert rpc(a, "mpactors:ping", b.name) == "pong"
    partition(a, b)
    wait_until(lambda: not sees(a, b) and not sees(b, a), LONG_TIMEOUT, what="a and b to see each other down")
    assert rpc(a, "mpactors:ping", b.name) == "pang"
    assert rpc(b, "mpactors:ping", a.name) == "pang"
    # both still reach c, and c reaches both: c keeps telling a about b, in vain
    assert rpc(c, "mpactors:ping", a.name) == rpc(c, "mpactors:ping", b.name) == "pong"
    assert rpc(a, "mpactors:ping", c.name) == rpc(b, "mpactors:ping", c.name) == "pong"
    assert not sees(a, b) and not sees(b, a)
    heal(a, b)
    assert rpc(a, "mpactors:ping", b.name) == "pong"
    assert sees(b, a)


def test_the_local_node_can_be_partitioned_from_a_cluster_node(
    mpactors_cluster: Cluster, mpactors_node: mpactors.Node
) -> None:
    (a,) = mpactors_cluster(1)
    assert mpactors.ping(a.name) == "pong"
    mpactors.monitor_node(a.name)
    partition(mpactors_node, a.name)
    assert mpactors.receive(NodeDown, timeout=LONG_TIMEOUT) == NodeDown(a.name)
    assert mpactors.ping(a.name) == "pang"
    heal(a, mpactors_node.name)
    assert mpactors.ping(a.name) == "pong"


def test_the_fixtures_reject_bad_input_with_clear_errors(mpactors_cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="n must be a positive int, not 0"):
        mpactors_cluster(0)
    with pytest.raises(ValueError, match="do not pass cookie="):
        mpactors_cluster(1, cookie="x")
    (a,) = mpactors_cluster(1)
    with pytest.raises(ValueError, match="cannot partition .* from itself"):
        partition(a, a)
    with pytest.raises(ValueError, match="'nobody@nowhere' is not a node of this test's cluster"):
        partition(a, "nobody@nowhere")


def test_partition_outside_a_cluster_test_says_what_is_missing() -> None:
    with pytest.raises(RuntimeError, match="need the mpactors_cluster fixture"):
        partition("a@h", "b@h")


# -- as a user sees it: a test file run by pytest with the plugin -------------------------
@pytest.fixture
def user_tests(pytester: pytest.Pytester) -> Callable[..., Any]:
    def run(source: str, *args: str) -> Any:
        pytester.makepyfile(test_user=textwrap.dedent(source))
        return pytester.runpytest_subprocess("-p", "mpactors.testing", "-p", "no:cacheprovider", *args,
                                             timeout=LONG_TIMEOUT * 4)

    return run


def test_a_user_test_that_leaks_an_actor_fails_naming_it(user_tests: Callable[..., Any]) -> None:
    result = user_tests(
        """
        import mpactors

        def forgotten_worker():
            mpactors.receive()

        def test_leaks_locally(mpactors_node):
            mpactors.spawn(forgotten_worker)

        def test_leaks_on_a_cluster_node(mpactors_cluster, mpactors_node):
            (a,) = mpactors_cluster(1)
            mpactors.spawn(forgotten_worker, node=a.name)

        def test_ends_its_actor(mpactors_node):
            pid = mpactors.spawn(forgotten_worker)
            mpactors.exit(pid, "kill")
        """
    )
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.re_match_lines([
        r"E? *actor left running: <nonode@nohost\.\d+\.0> \(OS pid \d+, test_user\.forgotten_worker\)",
        r"E? *actor left running: <t\w+n1@\S+\.\d+\.0> \(OS pid \d+, test_user\.forgotten_worker\) on t\w+n1@\S+",
    ], consecutive=False)


def test_every_process_the_fixtures_started_is_gone_after_the_test_even_a_failed_one(
    user_tests: Callable[..., Any], tmp_path: Any
) -> None:
    pids_file = tmp_path / "pids"
    result = user_tests(
        f"""
        import os, psutil, mpactors
        from mpactors.testing import partition

        def sleeper():
            mpactors.receive()

        def test_fails_with_everything_running(mpactors_cluster, mpactors_node):
            a, b = mpactors_cluster(2)
            mpactors.spawn(sleeper, node=a.name)
            partition(a, b)
            b.pause()
            pids = [p.pid for n in (a, b) for p in n.processes()]
            pids += [p.pid for p in psutil.Process().children(recursive=True)]
            open({str(pids_file)!r}, "w").write(" ".join(map(str, pids)))
            assert False, "the test fails"
        """
    )
    result.assert_outcomes(failed=1, errors=1)  # the failure, and the leaked sleeper
    for line in ("*the test fails*", "*actor left running*test_user.sleeper*", "*mpactors node logs*"):
        result.stdout.fnmatch_lines([line])
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) >= 4  # port mapper, two nodes, the sleeper
    wait_until(lambda: all_gone(pids), what=f"processes {pids} to be gone")


def test_a_port_mapper_a_test_left_running_detached_fails_it_and_is_stopped(
    user_tests: Callable[..., Any], mpactors_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import secrets

    from mpactors.testing import processes_with_env

    probe = secrets.token_hex(8)
    monkeypatch.setenv("LEAK_PROBE", probe)  # to find what the user's run leaves, and only that
    try:
        result = user_tests(
            """
            import os, socket, subprocess, sys

            # A node in a process that ends: the port mapper it starts is no child of the test.
            NODE = "import mpactors; mpactors.Node('leaky', cookie='leak-check').start().stop()"

            def test_leaves_a_port_mapper(mpactors_node):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    port = s.getsockname()[1]
                env = dict(os.environ, MPACTORS_EPMD_PORT=str(port))
                subprocess.run([sys.executable, "-c", NODE], check=True, timeout=60, env=env)

            def test_leaves_nothing(mpactors_node):
                pass
            """
        )
        result.assert_outcomes(passed=2, errors=1)
        result.stdout.fnmatch_lines(["*process outlived the test (killed): * mpactors epmd port * (not a child*"])
        # Under forkserver and spawn the node's process started multiprocessing's
        # resource tracker, which ends by itself once its parent has: give it
        # the moment to, then nothing of the run may be left.
        wait_until(lambda: not processes_with_env("LEAK_PROBE", probe), what="the user's run to leave nothing")
    finally:
        leaked = processes_with_env("LEAK_PROBE", probe)
        for p in leaked:
            p.kill()
        psutil.wait_procs(leaked, timeout=10)


@pytest.mark.timeout(180)
def test_a_test_that_times_out_dumps_the_stacks_of_its_nodes_and_actors(user_tests: Callable[..., Any]) -> None:
    # The test hangs only once both actors run (they say so first): a slow
    # start on a loaded machine cannot pass for a missing dump.
    result = user_tests(
        """
        import time
        import pytest, mpactors

        def stuck_in_a_local_actor(to):
            mpactors.send(to, "local started")
            time.sleep(1000)

        def stuck_in_a_remote_actor(to):
            mpactors.send(to, "remote started")
            time.sleep(1000)

        @pytest.mark.timeout(30)
        def test_hangs(mpactors_cluster, mpactors_node):
            (a,) = mpactors_cluster(1)
            mpactors.spawn(stuck_in_a_local_actor, mpactors.self())
            mpactors.spawn(stuck_in_a_remote_actor, mpactors.self(), node=a.name)
            for _ in range(2):
                print("actor says:", mpactors.receive(timeout=20))
            mpactors.receive()
        """,
        "-ra",
    )
    result.assert_outcomes(failed=1, errors=1)
    out = result.stdout.str() + result.stderr.str()
    assert "Timeout" in out
    assert "actor says: local started" in out and "actor says: remote started" in out
    assert "dumped the stacks of" in out
    for fn in ("stuck_in_a_local_actor", "stuck_in_a_remote_actor"):
        assert f"in {fn}" in out, f"no stack of {fn} in:\n{out}"
