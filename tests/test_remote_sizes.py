"""Messages of every size between two nodes, around each threshold of the remote path.

On its way a remote message crosses the sender's router pipe (a frame, the
sender's 1 MiB ring below ``_bulk.THRESHOLD``, its 4 MiB ring up to
``_ring.BIG_MAX``, a file above), the connection, and the receiver's mailbox
pipe (the same three paths, written by the receiving node). These tests send
sizes on both sides of each threshold, interleaved with small messages from
the same sender, plain and over TLS, and check order and content; a receiver
that stops reading must not stall the rest; a sender killed mid-stream must
leave no file in the node's ``/dev/shm`` directory once the node stops.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Iterator, List

import pytest
from nodes import cluster, cookie, echo, local_node, run_node  # noqa: F401 - cluster and cookie are fixtures
from support import LONG_TIMEOUT, wait_until
from test_bulk import blob, checker, idle, sender
from tls_certs import OPENSSL, make_certs, tls_env, tls_for

import mpactors
from mpactors import ANY, Pid
from mpactors._core import _bulk, _ring, mailbox

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.usefixtures("cluster"),
    pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm on this system"),
]

T = _bulk.THRESHOLD
#: Each threshold a message's size can cross on the remote path (pickled sizes; the
#: route record adds its head, 30-50 bytes, so each sweep reaches past both sides).
THRESHOLDS = [mailbox.CHUNK, T, _ring.SIZE, _ring.BIG_MAX]


def sweep(around: int) -> List[int]:
    return list(range(around - 96, around + 72, 12))


def mixed_sizes() -> List[int]:
    """Every sweep, a small message after each large one, and a few beyond the big ring."""
    sizes: List[int] = []
    for i, size in enumerate(s for t in THRESHOLDS for s in sweep(t)):
        sizes += [size, 20 + i % 200]
    return sizes + [3 * _ring.BIG_MAX, 50, _ring.BIG_SIZE + 4096, 10, 64 * 1024, 5]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if OPENSSL is None:
        pytest.skip("the openssl command is needed to make test certificates")
    return make_certs(tmp_path_factory.mktemp("tls-certs"))


def node_files(os_pid: int) -> List[str]:
    try:
        return os.listdir(_bulk.directory(os_pid))
    except FileNotFoundError:
        return []


# -- actors (spawned on the other node by reference: this directory is on its path) ------
def stream(dest: Pid, report_to: Pid) -> None:
    """Tell ``report_to`` this OS pid, then send mixed sizes to ``dest`` until killed."""
    mpactors.send(report_to, ("streaming", os.getpid()))
    sizes = [100, 64 * 1024, T + 100, 600 * 1024, _ring.BIG_MAX - 200, 2 * _ring.BIG_MAX]
    i = 0
    while True:
        size = sizes[i % len(sizes)]
        mpactors.send(dest, (i, size, blob(size, i)))
        i += 1


def checking_sink(report_to: Pid, report_after: int) -> None:
    """Check order and content of ``stream``'s messages; report once ``report_after`` arrived."""
    expect = 0
    while True:
        i, size, data = mpactors.receive()
        if i != expect or data != blob(size, i):
            mpactors.send(report_to, ("bad", f"got #{i} (size {size}), expected #{expect}"))
            return
        expect += 1
        if expect == report_after:
            mpactors.send(report_to, ("seen", expect))


# -- tests -------------------------------------------------------------------------------
@pytest.fixture(params=["plain", "tls"])
def two_nodes(request: pytest.FixtureRequest) -> Iterator[str]:
    """This process and a node in a subprocess, plain or TLS; yields the other node's name."""
    if request.param == "tls":
        certs = request.getfixturevalue("certs")
        with run_node(env=tls_env(certs)) as b, local_node(tls=tls_for(certs)):
            yield b.name
    else:
        with run_node() as b, local_node():
            yield b.name


def test_sizes_around_every_threshold_keep_order_and_content(two_nodes: str) -> None:
    me = mpactors.self()
    sizes = mixed_sizes()
    check = mpactors.spawn(checker, me, 1, len(sizes), node=two_nodes)
    mpactors.spawn(sender, check, sizes, 0)  # a local actor: its router pipe, rings and files
    assert mpactors.receive((str, ANY), timeout=LONG_TIMEOUT) == ("ok", len(sizes))
    # and the node's own process (its own writer into the router pipe)
    check = mpactors.spawn(checker, me, 1, len(sizes), node=two_nodes)
    sender(check, sizes, 0)
    assert mpactors.receive((str, ANY), timeout=LONG_TIMEOUT) == ("ok", len(sizes))
    assert node_files(os.getpid()) == []


def test_a_receiver_that_stops_reading_stalls_nobody_and_leaves_no_file_once_killed() -> None:
    with run_node() as b, local_node():
        me = mpactors.self()
        stuck = mpactors.spawn(idle, node=b.name)
        ref = mpactors.monitor(stuck)
        # more than both rings of the receiving node's writer hold, in each size
        load = [64 * 1024] * 40 + [T + 1000] * 10 + [_ring.BIG_MAX - 1000] * 8 + [2 * _ring.BIG_MAX] * 2
        mpactors.spawn(sender, stuck, load, 0)
        wait_until(lambda: len(node_files(b.os_pid)) >= 2, LONG_TIMEOUT, what="b's rings to the stuck receiver")
        for _ in range(3):  # meanwhile the connection, the router and the rest of b work
            check = mpactors.spawn(checker, me, 1, 6, node=b.name)
            mpactors.spawn(sender, check, [10, 64 * 1024, T + 50, _ring.BIG_MAX - 500, 3 * T, 20], 0)
            assert mpactors.receive((str, ANY), timeout=LONG_TIMEOUT) == ("ok", 6)
        pong = mpactors.spawn(echo, node=b.name)
        mpactors.send(pong, (me, "still there"))
        assert mpactors.receive(("echo", pong, ANY), timeout=LONG_TIMEOUT)[2] == "still there"
        mpactors.exit(stuck, "kill")
        assert mpactors.receive(mpactors.Down, timeout=LONG_TIMEOUT).ref == ref
        wait_until(lambda: node_files(b.os_pid) == [], LONG_TIMEOUT, what="b's files for the dead receiver to go")
        wait_until(lambda: node_files(os.getpid()) == [], LONG_TIMEOUT, what="this node's files to go")


def test_a_sender_killed_mid_stream_leaves_no_file_once_its_node_stops() -> None:
    with run_node() as b:
        with local_node():
            me = mpactors.self()
            sink = mpactors.spawn(checking_sink, me, 40, node=b.name)
            mpactors.spawn(stream, sink, me)
            _, os_pid = mpactors.receive(("streaming", int), timeout=LONG_TIMEOUT)
            assert mpactors.receive((str, ANY), timeout=LONG_TIMEOUT) == ("seen", 40)
            os.kill(os_pid, signal.SIGKILL)  # wherever it is: in a ring, a file, a frame
            # the router and the connection still work, in both directions
            pong = mpactors.spawn(echo, node=b.name)
            for size in (10, 64 * 1024, _ring.BIG_MAX - 300):
                mpactors.send(pong, (me, b"x" * size))
                assert len(mpactors.receive(("echo", pong, ANY), timeout=LONG_TIMEOUT)[2]) == size
            mpactors.send(pong, "stop")
            mpactors.exit(sink, "kill")
            directory = _bulk.directory(os.getpid())
        assert not os.path.exists(directory), f"the node left {directory}: {os.listdir(directory)}"
        wait_until(lambda: node_files(b.os_pid) == [], LONG_TIMEOUT, what="b's files to go")
