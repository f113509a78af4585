"""Mid-size local messages through shared-memory rings (``_core/_ring.py``).

Messages above one pipe frame and below ``_bulk.THRESHOLD`` go into the
sender's ring for the receiver's pipe; a RING frame in the pipe names them.
These tests check order with the other paths (small frames, bulk files,
chunks), several senders, a full ring, the per-process ring limit, that no
file is left in ``/dev/shm`` when a sender, a receiver or a node is killed,
and that malformed RING frames lose only themselves.
"""
from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from typing import Any, List

import pytest

import mpactors
from mpactors import Pid
from mpactors._core import _bulk, _ring, mailbox
from support import LONG_TIMEOUT, wait_until
from test_bulk import blob, checker, files_in_node_dir, fd_count, idle, sender

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm on this system"),
]

T = _bulk.THRESHOLD
K = 1024


def ring_files() -> List[str]:
    return [f for f in files_in_node_dir() if "-r" in f]


# -- actors ----------------------------------------------------------------------------
def gated_checker(report_to: Pid, gate: str, senders: int, expect: int) -> None:
    """Read nothing until ``gate`` exists (the rings fill up), then check like ``checker``."""
    deadline = time.monotonic() + LONG_TIMEOUT
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    checker(report_to, senders, expect)


def gated_counter(report_to: Pid, gate: str) -> None:
    """Read nothing until ``gate`` exists, then count the messages that arrive until 'end'."""
    deadline = time.monotonic() + LONG_TIMEOUT
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    n = 0
    while mpactors.receive(timeout=LONG_TIMEOUT) != "end":
        n += 1
    mpactors.send(report_to, ("counted", n))


def mid_sender(dest: Pid, report_to: Pid, n: int) -> None:
    mpactors.send(report_to, ("os_pid", os.getpid()))
    for i in range(n):
        mpactors.send(dest, blob(64 * K, i))
    mpactors.send(report_to, "sent")
    time.sleep(LONG_TIMEOUT * 4)  # killed by the test


def fan_out(dests: List[Pid], report_to: Pid) -> None:
    for i in range(3):
        for k, d in enumerate(dests):
            mpactors.send(d, (k, i, 20 * K, blob(20 * K, k * 100_000 + i)))
    for d in dests:
        mpactors.send(d, (0, "done"))
    mpactors.send(report_to, ("rings", len(_ring._State.send_rings)))  # noqa: SLF001 - white-box


def one_checker(report_to: Pid, tag: int) -> None:
    for i in range(3):
        t, j, size, data = mpactors.receive(timeout=LONG_TIMEOUT)
        if (t, j) != (tag, i) or data != blob(size, tag * 100_000 + i):
            mpactors.send(report_to, ("bad", tag, i))
            return
    assert mpactors.receive(timeout=LONG_TIMEOUT) == (0, "done")
    mpactors.send(report_to, ("ok", tag))


# -- order and content ----------------------------------------------------------------------------
MID = [5 * K, 10, 64 * K, T - 100, 3, 4084, 100 * K, T + 1, 64 * K, 2 * T, 60 * K, 1]


def test_mid_size_messages_keep_order_with_small_and_large_ones(node: mpactors.Node) -> None:
    me = mpactors.self()
    check = mpactors.spawn(checker, me, 1, len(MID) * 4)
    mpactors.spawn(sender, check, MID * 4, 0)
    assert mpactors.receive(timeout=LONG_TIMEOUT) == ("ok", len(MID) * 4)
    wait_until(lambda: files_in_node_dir() == [], what="the ring file to be opened and unlinked")


def test_a_full_ring_keeps_the_order_of_several_senders(node: mpactors.Node, tmp_path: Any) -> None:
    # The receiver reads nothing at first: each sender's ring (1 MiB) fills,
    # the rest waits in the senders' backlogs, small messages behind it.
    me = mpactors.self()
    gate = str(tmp_path / "go")
    senders = 3
    sizes = [64 * K, 7, 100 * K, 5000] * 12  # about 4 MiB per sender
    check = mpactors.spawn(gated_checker, me, gate, senders, senders * len(sizes))
    for tag in range(senders):
        mpactors.spawn(sender, check, sizes, tag)
    wait_until(lambda: len(ring_files()) == senders, what="one ring per sender")
    open(gate, "w").close()
    assert mpactors.receive(timeout=LONG_TIMEOUT * 2) == ("ok", senders * len(sizes))
    wait_until(lambda: files_in_node_dir() == [], what="no file left")


def test_the_node_process_sends_and_receives_mid_size_messages(node: mpactors.Node) -> None:
    me = mpactors.self()
    for i in range(40):  # more than a ring holds: the node's flusher copies the rest in
        mpactors.send(me, (i, blob(64 * K, i)))
        mpactors.send(me, i)
    for i in range(40):
        assert mpactors.receive(timeout=LONG_TIMEOUT) == (i, blob(64 * K, i))
        assert mpactors.receive(timeout=LONG_TIMEOUT) == i


def test_a_process_writes_at_most_max_send_rings_and_chunks_the_rest(node: mpactors.Node) -> None:
    me = mpactors.self()
    n = _ring.MAX_SEND + 3
    dests = [mpactors.spawn(one_checker, me, k) for k in range(n)]
    mpactors.spawn(fan_out, dests, me)
    assert mpactors.receive(("rings", int), timeout=LONG_TIMEOUT) == ("rings", _ring.MAX_SEND)
    results = sorted(mpactors.receive(timeout=LONG_TIMEOUT) for _ in range(n))
    assert results == [("ok", k) for k in range(n)]


# -- nothing leaks ------------------------------------------------------------------------------------
def test_a_killed_receiver_leaves_no_ring_file_or_descriptor(node: mpactors.Node) -> None:
    before = fd_count()
    me = mpactors.self()
    sink = mpactors.spawn(idle)
    ref = mpactors.monitor(sink)
    for i in range(30):  # from the node's main process: its ring fills, the rest waits in its backlog
        mpactors.send(sink, blob(64 * K, i))
    actor = mpactors.spawn(mid_sender, sink, me, 30)  # and from an actor
    mpactors.receive("sent", timeout=LONG_TIMEOUT)
    assert len(ring_files()) == 2
    mpactors.exit(sink, "kill")
    assert mpactors.receive(mpactors.Down, timeout=LONG_TIMEOUT).ref == ref
    wait_until(lambda: files_in_node_dir() == [], what="the rings of the dead receiver to be removed")
    mpactors.exit(actor, "kill")
    wait_until(lambda: fd_count() <= before, what="the node's descriptors to return to their count")
    mpactors.send(me, "still works")
    assert mpactors.receive("still works", timeout=LONG_TIMEOUT) == "still works"


def test_a_sender_killed_with_sigkill_leaves_no_ring_file(node: mpactors.Node, tmp_path: Any) -> None:
    me = mpactors.self()
    gate = str(tmp_path / "go")
    sink = mpactors.spawn(gated_counter, me, gate)
    mpactors.spawn(mid_sender, sink, me, 40)  # 15 fit in the ring, the rest wait in its backlog
    _, os_pid = mpactors.receive(("os_pid", int), timeout=LONG_TIMEOUT)
    mpactors.receive("sent", timeout=LONG_TIMEOUT)
    assert len(ring_files()) == 1  # not opened yet: the receiver reads nothing
    os.kill(os_pid, signal.SIGKILL)
    wait_until(lambda: not _alive(os_pid), what="the sender to be gone")
    open(gate, "w").close()
    mpactors.send(sink, "end")
    _, n = mpactors.receive(("counted", int), timeout=LONG_TIMEOUT)
    assert 1 <= n <= 40  # those in the ring arrive; those in the dead sender's backlog never left it
    wait_until(lambda: files_in_node_dir() == [], what="the receiver to open and unlink the ring")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


_NODE_SCRIPT = """
import os, sys, time
import mpactors
from mpactors._core import _bulk

def idle(report_to):
    mpactors.send(report_to, ("pid", os.getpid()))
    time.sleep(600)

def mid(dest, report_to):
    mpactors.send(report_to, ("pid", os.getpid()))
    for i in range(40):
        mpactors.send(dest, bytes(65536))
    mpactors.send(report_to, "sent")
    time.sleep(600)

if __name__ == "__main__":
    with mpactors.Node():
        me = mpactors.self()
        sink = mpactors.spawn(idle, me)
        mpactors.spawn(mid, sink, me)
        for i in range(20):
            mpactors.send(sink, bytes(70000))
        pids = [mpactors.receive(("pid", int), timeout=60)[1] for _ in range(2)]
        mpactors.receive("sent", timeout=60)
        print(_bulk.directory(os.getpid()), *pids, flush=True)
        time.sleep(600)
"""


def test_a_node_killed_with_sigkill_leaves_its_rings_only_until_another_node_starts(tmp_path: Any) -> None:
    script = tmp_path / "node_script.py"
    script.write_text(_NODE_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        line = _read_line(proc, LONG_TIMEOUT)
        directory, *actor_pids = line.split()
        assert len([f for f in os.listdir(directory) if "-r" in f]) == 2  # the node's ring and the actor's
        proc.send_signal(signal.SIGKILL)
        proc.wait(LONG_TIMEOUT)
        for pid in actor_pids:  # they die with their node (PR_SET_PDEATHSIG)
            wait_until(lambda pid=pid: not _alive(int(pid)), what=f"actor {pid} to die with its node")
        with mpactors.Node():  # a node that starts removes the directories of dead nodes
            assert not os.path.exists(directory)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(LONG_TIMEOUT)
        if proc.stdout is not None:
            proc.stdout.close()


def _read_line(proc: "subprocess.Popen[str]", timeout: float) -> str:
    import select

    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the node script printed nothing"
    return proc.stdout.readline()


# -- bad input ------------------------------------------------------------------------------------------
def _ring_frame(payload: bytes) -> bytes:
    flags = mailbox.F_START | mailbox.F_END | mailbox.F_RING
    return struct.pack("<IIBI", os.getpid(), 0, flags, len(payload)) + payload


@pytest.mark.parametrize("payload", [
    b"",
    b"short",
    _ring.REF_HEAD.pack(0, 10) + b"../../etc/passwd",
    _ring.REF_HEAD.pack(0, 10) + b"1-2-r3/x",
    _ring.REF_HEAD.pack(0, 10) + b"1-2-3",  # a bulk name, not a ring's
    _ring.REF_HEAD.pack(0, 10) + b"abc-1-r99",  # well formed, no such ring
])
def test_a_malformed_ring_frame_loses_that_message_only(node: mpactors.Node, caplog: Any, payload: bytes) -> None:
    me = mpactors.self()
    fd = os.dup(node.kernel.table.writer_fds[0])  # type: ignore[union-attr] # the main mailbox's write end
    try:
        os.write(fd, _ring_frame(payload))
    finally:
        os.close(fd)
    mpactors.send(me, "after")
    assert mpactors.receive(timeout=LONG_TIMEOUT) == "after"
    assert "lost a message" in caplog.text


def test_a_ring_frame_out_of_the_ring_bounds_is_refused(node: mpactors.Node, caplog: Any) -> None:
    me = mpactors.self()
    fd = os.dup(node.kernel.table.writer_fds[0])  # type: ignore[union-attr]
    try:
        ring = _ring.SendRing.create(os.fstat(fd).st_ino)
        assert ring is not None
        for start, n in ((0, _ring.SIZE), (_ring.SIZE - 100, 200), (0, 0)):
            os.write(fd, _ring_frame(_ring.REF_HEAD.pack(start, n) + ring.name))
        ref = ring.put(b"\x80\x05K*.")  # a real message after them: pickle of 42
        assert ref is not None
        os.write(fd, _ring_frame(ref))
        ring.drop()
    finally:
        os.close(fd)
    assert mpactors.receive(timeout=LONG_TIMEOUT) == 42
    assert caplog.text.count("ring frame out of bounds") == 3
    mpactors.send(me, "after")
    assert mpactors.receive(timeout=LONG_TIMEOUT) == "after"


def test_two_threads_receive_mid_size_messages_decoded_a_few_at_a_time(node: mpactors.Node) -> None:
    # A receive decodes only ~128 KiB of shared-memory messages ahead; the rest
    # of what it read waits undecoded: the other thread must still get its own.
    import threading

    from mpactors.primitives import receive as blocking_receive

    got: dict = {"a": [], "b": []}

    def take(tag: str) -> None:
        for _ in range(20):
            got[tag].append(blocking_receive((tag, int, bytes), timeout=LONG_TIMEOUT)[1])

    threads = [threading.Thread(target=take, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    me = mpactors.self()
    for i in range(20):
        mpactors.send(me, ("a", i, blob(64 * K, i)))
        mpactors.send(me, ("b", i, blob(100 * K, i)))
    for t in threads:
        t.join(LONG_TIMEOUT)
        assert not t.is_alive()
    assert got == {"a": list(range(20)), "b": list(range(20))}
