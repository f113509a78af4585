"""Large local messages through shared memory (``mpactors._core._bulk``).

Messages whose pickle is at least ``_bulk.THRESHOLD`` bytes travel as a file
in the node's ``/dev/shm`` directory named by a small frame in the mailbox
pipe. These tests check what a user sees (content and order, with small
messages of the same sender, under every start method and many senders) and
what must not leak (files, descriptors) when a receiver dies with such
messages in flight, or a sender writes to a receiver already gone.
"""
from __future__ import annotations

import os
import pickle
from typing import Any, Iterator, List

import pytest

import mpactors
from mpactors import Pid
from mpactors._core import _bulk, _ring
from nodes import cluster, cookie, local_node, run_node  # noqa: F401 - cluster and cookie are fixtures
from support import LONG_TIMEOUT, wait_until

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm on this system"),
]

T = _bulk.THRESHOLD
BIG = _ring.BIG_MAX + 1024  # what the node's own writers (big ring) put in a file
_OVERHEAD = len(pickle.dumps(b"", pickle.HIGHEST_PROTOCOL))


def blob(pickled_size: int, seed: int) -> bytes:
    """Bytes whose pickle is about ``pickled_size`` long, with content that depends on ``seed``."""
    n = max(0, pickled_size - _OVERHEAD - 8)  # bytes objects > 255 use a longer length field
    return (seed.to_bytes(4, "little") * (n // 4 + 1))[:n]


def node_dir() -> str:
    return _bulk.directory(os.getpid())


def files_in_node_dir() -> List[str]:
    try:
        return os.listdir(node_dir())
    except FileNotFoundError:
        return []


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- actors (module level: any start method can run them) ---------------------------
def sender(dest: Pid, sizes: List[int], tag: int) -> None:
    for i, size in enumerate(sizes):
        mpactors.send(dest, (tag, i, size, blob(size, tag * 100_000 + i)))
    mpactors.send(dest, (tag, "done"))


def checker(report_to: Pid, senders: int, expect: int) -> None:
    """Receive every sender's messages; report ('ok', count) or ('bad', why)."""
    seen = {tag: 0 for tag in range(senders)}
    done = 0
    total = 0
    while done < senders:
        msg = mpactors.receive(timeout=LONG_TIMEOUT)
        if msg[1] == "done":
            done += 1
            continue
        tag, i, size, data = msg
        if i != seen[tag]:
            mpactors.send(report_to, ("bad", f"sender {tag}: got #{i}, expected #{seen[tag]}"))
            return
        if data != blob(size, tag * 100_000 + i):
            mpactors.send(report_to, ("bad", f"sender {tag}: #{i} has wrong content"))
            return
        seen[tag] += 1
        total += 1
    mpactors.send(report_to, ("ok", total) if total == expect else ("bad", f"{total} of {expect}"))


def idle() -> None:
    """Never read the mailbox (a receive would drain the pipe): whatever is sent stays in flight."""
    import time

    time.sleep(LONG_TIMEOUT * 4)  # killed by the test, or by the node's stop


def hold_writer_then_send(dest: Pid, report_to: Pid, n: int, size: int) -> None:
    mpactors.send(dest, "hello")  # fetch the writer of dest's mailbox now
    mpactors.send(report_to, ("holding", mpactors.self()))
    mpactors.receive("go", timeout=LONG_TIMEOUT)
    for i in range(n):
        mpactors.send(dest, blob(size, i))
    mpactors.send(report_to, "sent")
    mpactors.receive(timeout=LONG_TIMEOUT)


# -- content and order ------------------------------------------------------------------
MIXED = [100, T + 10, 200, 4 * T, T - 1000, T, T + 1, 3, 16 * T, 50]


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_large_and_small_messages_keep_order_and_content_under_every_start_method(
    method: str, multiprocessing_helpers: None
) -> None:
    with mpactors.Node(start_method=method):
        me = mpactors.self()
        check = mpactors.spawn(checker, me, 1, len(MIXED))
        mpactors.spawn(sender, check, MIXED, 0)
        assert mpactors.receive(timeout=LONG_TIMEOUT) == ("ok", len(MIXED))
        # the node's own process sends and receives large messages too
        big = blob(2 * T, 7)
        mpactors.send(me, ("x", big))
        mpactors.send(me, "small after")
        assert mpactors.receive(timeout=LONG_TIMEOUT) == ("x", big)
        assert mpactors.receive(timeout=LONG_TIMEOUT) == "small after"
        assert files_in_node_dir() == []
    assert not os.path.exists(node_dir()), "the node's bulk directory outlived the node"


def test_sizes_around_the_threshold(node: mpactors.Node) -> None:
    me = mpactors.self()
    sizes = list(range(T - 40, T + 40, 3))
    check = mpactors.spawn(checker, me, 1, len(sizes))
    mpactors.spawn(sender, check, sizes, 0)
    assert mpactors.receive(timeout=LONG_TIMEOUT) == ("ok", len(sizes))


def test_mid_size_messages_use_one_ring_and_large_ones_a_file_each(node: mpactors.Node) -> None:
    me = mpactors.self()
    sink = mpactors.spawn(idle)  # never reads: whatever went to shared memory stays there
    mpactors.send(sink, blob(3000, 0))  # one pipe frame
    assert files_in_node_dir() == []
    mid = blob(T - 200, 1)
    assert len(pickle.dumps(mid, pickle.HIGHEST_PROTOCOL)) < T
    mpactors.send(sink, mid)
    mpactors.send(sink, blob(64 * 1024, 2))
    rings = files_in_node_dir()
    assert len(rings) == 1 and "-r" in rings[0], rings  # one ring for this sender and receiver
    # The node's own writers have a second, big ring (the remote path's): up
    # to _ring.BIG_MAX a message goes there, above it into a file of its own.
    mpactors.send(sink, blob(T + 200, 2))
    mpactors.send(sink, blob(T + 300, 3))
    both = files_in_node_dir()
    assert len(both) == 2 and all("-r" in name for name in both), both
    mpactors.send(sink, blob(_ring.BIG_MAX + 200, 2))
    assert len(files_in_node_dir()) == 3
    mpactors.exit(sink, "kill")
    wait_until(lambda: files_in_node_dir() == [], what="the dead receiver's file to be removed")
    mpactors.send(me, "still works")
    assert mpactors.receive(timeout=LONG_TIMEOUT) == "still works"


def test_many_senders_each_keep_their_order() -> None:
    with mpactors.Node():
        me = mpactors.self()
        senders = 6
        sizes = [T + 1, 10, 2 * T, 100, T - 10, T * 3] * 3
        check = mpactors.spawn(checker, me, senders, senders * len(sizes))
        for tag in range(senders):
            mpactors.spawn(sender, check, sizes, tag)
        assert mpactors.receive(timeout=LONG_TIMEOUT * 2) == ("ok", senders * len(sizes))
        assert files_in_node_dir() == []


@pytest.mark.usefixtures("cluster")
def test_large_and_small_messages_keep_their_order_across_nodes() -> None:
    # b's reader and our router carry them; each node's delivery uses its own directory
    with run_node() as b, local_node():
        me = mpactors.self()
        check = mpactors.spawn(checker, me, 1, len(MIXED))
        mpactors.spawn(sender, check, MIXED, 0, node=b.name)
        assert mpactors.receive(timeout=LONG_TIMEOUT * 2) == ("ok", len(MIXED))
        remote_check = mpactors.spawn(checker, me, 1, len(MIXED), node=b.name)
        mpactors.spawn(sender, remote_check, MIXED, 0)
        assert mpactors.receive(timeout=LONG_TIMEOUT * 2) == ("ok", len(MIXED))
        assert files_in_node_dir() == []


# -- nothing leaks --------------------------------------------------------------------------
def test_a_receiver_killed_with_large_messages_in_flight_leaves_no_file_or_descriptor() -> None:
    with mpactors.Node():
        before = fd_count()
        me = mpactors.self()
        sink = mpactors.spawn(idle)
        ref = mpactors.monitor(sink)
        for i in range(12):
            mpactors.send(sink, blob(BIG, i))  # from the node's main process (a file each above its ring's limit)
        mpactors.spawn(sender, sink, [T + 5] * 8, 1)  # and from an actor
        wait_until(lambda: len(files_in_node_dir()) >= 12 + 8, what="the large messages to be in flight")
        mpactors.exit(sink, "kill")
        assert mpactors.receive(mpactors.Down, timeout=LONG_TIMEOUT).ref == ref
        wait_until(lambda: files_in_node_dir() == [], what="the files of the dead receiver to be removed")
        wait_until(lambda: fd_count() <= before, what="the node's descriptors to return to their count")
        mpactors.send(me, "still works")
        assert mpactors.receive(timeout=LONG_TIMEOUT) == "still works"



def test_a_sender_holding_the_writer_of_a_dead_receiver_leaves_no_file() -> None:
    with mpactors.Node():
        me = mpactors.self()
        sink = mpactors.spawn(idle)
        ref = mpactors.monitor(sink)
        mpactors.spawn(hold_writer_then_send, sink, me, 5, 2 * T)
        _, holder = mpactors.receive(("holding", Pid), timeout=LONG_TIMEOUT)
        mpactors.exit(sink, "kill")
        assert mpactors.receive(mpactors.Down, timeout=LONG_TIMEOUT).ref == ref
        wait_until(lambda: files_in_node_dir() == [], what="the sweep after the receiver died")
        mpactors.send(holder, "go")  # its writes now fail with EPIPE: it removes its own files
        assert mpactors.receive("sent", timeout=LONG_TIMEOUT) == "sent"
        assert files_in_node_dir() == []
        mpactors.send(holder, "stop")


# -- the module on its own ------------------------------------------------------------------------
@pytest.fixture
def bulk_dir() -> Iterator[str]:
    _bulk.start_node()
    try:
        assert _bulk._State.dir is not None  # noqa: SLF001 - the module's own test
        yield _bulk._State.dir  # noqa: SLF001
    finally:
        _bulk.stop_node()


def test_store_and_load_round_trip_and_unlink(bulk_dir: str) -> None:
    ref = _bulk.store(b"x" * 1000, 42)
    assert ref is not None and ref.startswith(b"2a-")
    assert len(os.listdir(bulk_dir)) == 1
    before = fd_count()
    m = _bulk.load(ref)
    assert bytes(m) == b"x" * 1000
    m.close()
    assert os.listdir(bulk_dir) == []
    assert fd_count() == before
    ref = _bulk.store(b"y" * 10, 42)
    assert ref is not None
    assert _bulk.load(ref, copy=True) == b"y" * 10


@pytest.mark.parametrize("ref", [b"../../etc/passwd", b"", b"2a-1-1/x", b"zz-1-1", b"2a-1-1\n"])
def test_a_malformed_reference_is_refused(bulk_dir: str, ref: bytes) -> None:
    with pytest.raises(ValueError, match="malformed bulk reference"):
        _bulk.load(ref)


def test_a_missing_file_raises_oserror(bulk_dir: str) -> None:
    with pytest.raises(OSError):
        _bulk.load(b"2a-1-99")


def test_a_broken_reference_in_a_mailbox_loses_that_message_only(node: mpactors.Node, caplog: Any) -> None:
    import struct

    from mpactors._core import mailbox

    me = mpactors.self()
    fd = os.dup(node.kernel.table.writer_fds[0])  # type: ignore[union-attr] # the main mailbox's write end
    try:  # a whole bulk frame naming a file that does not exist
        os.write(fd, struct.pack("<IIBI", os.getpid(), 0, mailbox.F_START | mailbox.F_END | mailbox.F_BULK, 7)
                 + b"1-2-abc")
    finally:
        os.close(fd)
    mpactors.send(me, "after")
    assert mpactors.receive(timeout=LONG_TIMEOUT) == "after"
    assert "lost a large message" in caplog.text


def test_a_node_removes_the_directories_of_dead_nodes_only(tmp_path: Any) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs
    stale = _bulk.directory(proc.pid)
    live = _bulk.directory(os.getppid())
    for d in (stale, live):
        os.makedirs(d, mode=0o700, exist_ok=True)
        with open(os.path.join(d, "1-2-3"), "wb") as f:
            f.write(b"x")
    try:
        _bulk.start_node()
        assert not os.path.exists(stale)
        assert os.path.exists(os.path.join(live, "1-2-3"))
    finally:
        _bulk.stop_node()
        import shutil

        shutil.rmtree(live, ignore_errors=True)
        shutil.rmtree(stale, ignore_errors=True)
