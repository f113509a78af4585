"""Every example runs to its end, as a user would run it, and leaves nothing behind."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import LONG_TIMEOUT

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name: str, *args: str, env: dict = None) -> str:  # type: ignore[assignment]
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True, text=True, timeout=LONG_TIMEOUT * 2, env=full_env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_pingpong_reports_its_round_trips() -> None:
    out = run("pingpong.py", "500")
    assert "500 round trips in" in out


def test_ring_passes_the_token_and_prints_its_rate() -> None:
    out = run("ring.py", "10", "50")
    assert "ring of 10 actors, 50 rounds:" in out and "messages/s" in out


def test_the_supervised_counter_comes_back_after_a_crash() -> None:
    out = run("counter_genserver.py")
    assert "count: 15" in out
    assert "count after restart: 10" in out


@pytest.mark.timeout(120)
def test_two_nodes_talk_through_the_port_mapper(epmd: int) -> None:
    out = run("two_nodes.py", env={"MPACTORS_COOKIE": "example-cookie"})
    assert "-> pong" in out
    assert "reply: ('echo', 'server@" in out
    assert "ended: bye" in out


@pytest.mark.timeout(120)
def test_broadcast_reaches_every_node_of_the_mesh(epmd: int) -> None:
    out = run("broadcast.py", "3", env={"MPACTORS_COOKIE": "example-cookie"})
    assert out.count("'hello, cluster')") == 3


@pytest.mark.timeout(300)
def test_the_supervision_tree_heals_a_killed_worker_and_a_killed_node(mpactors_home: str) -> None:
    from mpactors import epmd

    from support import free_port

    port = free_port()  # no port mapper there: the example starts one, and must stop it
    out = run("supervision_tree.py", env={"MPACTORS_COOKIE": "example-cookie", "MPACTORS_EPMD_PORT": str(port)})
    assert out.count("healed: pinger says ('pong', 'tree_b@") == 2
    assert "keeper: node tree_b@" in out and out.rstrip().endswith("done")
    assert not epmd.is_running(port=port, timeout=1.0)


@pytest.mark.timeout(300)
def test_the_chat_room_spans_three_nodes_and_loses_a_killed_one(mpactors_home: str) -> None:
    from mpactors import epmd

    from support import free_port

    port = free_port()  # no port mapper there: the example starts one, and must stop it
    out = run("chat.py", env={"MPACTORS_COOKIE": "example-cookie", "MPACTORS_EPMD_PORT": str(port)})
    assert "every node sees alice, bob, carol in the room" in out
    for who in ("alice", "bob", "carol"):
        for line in ("alice: hello, room", "bob: hi alice", "carol: hey both"):
            assert f"{who:5} hears {line}" in out
    assert "alice saw carol leave the room" in out and "bob saw carol leave the room" in out
    assert "the room now: alice, bob" in out
    after = out[out.index("the room now"):]
    assert "carol hears" not in after and after.count(" hears ") == 4
    assert out.rstrip().endswith("done")
    assert not epmd.is_running(port=port, timeout=1.0)


@pytest.mark.timeout(300)
def test_the_global_scheduler_moves_when_its_node_is_killed(mpactors_home: str) -> None:
    import re

    from mpactors import epmd

    from support import free_port

    port = free_port()
    out = run("scheduler.py", env={"MPACTORS_COOKIE": "example-cookie", "MPACTORS_EPMD_PORT": str(port)})
    first = re.search(r"the scheduler started on (sched_[bc])@", out)
    again = re.search(r"the scheduler started again on (sched_[bc])@", out)
    assert first and again and first[1] != again[1], out
    assert re.search(rf"SIGKILL node {first[1]}@", out)
    assert re.search(rf"moved: {first[1]}@\S+ -> {again[1]}@", out)
    assert "global names: ['scheduler']" in out
    assert out.rstrip().endswith("done")
    assert not epmd.is_running(port=port, timeout=1.0)
