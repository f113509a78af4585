"""Local mailboxes: one pipe per process, many writers, one reader.

Every local process (the node's main process and each actor) owns the read end
of one pipe, created and handed out by its node. Any local process that holds
the write end sends straight into it: no hop through the node, no feeder
thread, one ``write`` per small message. This is the design the benchmark
asks for (a round trip no slower than two raw ``multiprocessing.Queue``s); a
``multiprocessing.Queue`` itself cannot be handed to a process that already
runs, whereas a pipe's write end can (``SCM_RIGHTS``, see ``_kernel``).

Frames on the pipe (little endian)::

    offset  size  field
    0       4     writer's OS pid   - reassembly key for chunked messages
    4       4     sender id         - local actor id of the sender (for logs)
    8       1     flags             - START=1, END=2, SYSTEM=4, BULK=8, RING=16
    9       4     payload length    - at most ``CHUNK`` bytes
    13      n     payload           - a slice of the pickled message

A frame is never longer than ``PIPE_BUF`` (4096 bytes), so POSIX makes each
``write`` atomic: frames of concurrent writers never interleave *inside* a
frame, and there is no cross-process writer lock at all. A bigger message
goes through shared memory and one small whole frame takes its place in the
pipe: below ``_bulk.THRESHOLD`` (128 KiB) into the writer's ring for this
pipe (a RING frame names the ring and the message's place in it, see
``_ring``), from there on into a file of its own (a BULK frame names it, see
``_bulk``). The writers of the remote path (a process's writer into its
node's router pipe, the node's own writers into local mailboxes: ``big=True``)
have a second, 4 MiB ring for messages from ``_bulk.THRESHOLD`` up to
``_ring.BIG_MAX`` (1.06 MiB), so a remote message of up to a MiB makes no
file on either node. Only when neither is possible (no ``/dev/shm``, too
many rings) is it cut into chunks, which the reader reassembles per writer.

``send`` never waits for the receiver: the write end is non-blocking, and when
the pipe is full the frames go to the writer's backlog, which a flusher thread
in the sending process empties as the reader catches up. Once a destination
has a backlog, later messages queue behind it, so order is kept.
"""
from __future__ import annotations

import collections
import errno
import fcntl
import logging
import mmap
import os
import select
import struct
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from .. import _codec
from . import _bulk, _ring
from ._counters import COUNTERS as _COUNTERS, ENABLED as _COUNTING
from ..errors import ProcessExit, Timeout
from ..messages import AliasReply
from ..pattern import compile_pattern

__all__ = ["Mailbox", "MailboxWriter", "RawReader", "make_pipe", "flush_all", "SYSTEM_EXIT", "REMOTE_SENDER", "READ_HERE"]

log = logging.getLogger(__name__)

_HDR = struct.Struct("<IIBI")
HDR_SIZE = _HDR.size
PIPE_BUF = getattr(select, "PIPE_BUF", 4096)
CHUNK = PIPE_BUF - HDR_SIZE
F_START, F_END, F_SYSTEM = 1, 2, 4
F_BULK = 8  # the payload is a reference to a shared-memory file (see _bulk)
F_RING = 16  # the payload names a message in the writer's shared-memory ring (see _ring)
_F_WHOLE = F_START | F_END
_READ_SIZE = 1 << 16
_PIPE_SIZE = 1 << 20  # F_SETPIPE_SZ: fewer trips through the backlog
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
_RING_WAIT = 0.0002  # s between looks at a full ring's room (the flusher, while a message waits)
# The longest wait between looks while nothing moves: a reader busy with a large
# message (a MiB takes a millisecond or more to unpickle) must not find its
# sender asleep for 50 ms when it catches up.
_RING_WAIT_MAX = 0.005

#: Payload of a SYSTEM frame telling the node's main process it was killed.
SYSTEM_EXIT = "exit"
#: Sender id of messages that came from another node (the frame's sender field).
REMOTE_SENDER = 0xFFFFFFFF
#: What ``Mailbox.reader`` returns to let a blocking receive read the pipe itself.
READ_HERE: Any = type("ReadHere", (), {"__repr__": lambda self: "READ_HERE"})()


def _sender_text(sender: int) -> str:
    if sender == REMOTE_SENDER:
        return "another node"
    if sender == 0:
        return "the node's main process or kernel"
    return f"local actor {sender}"


def make_pipe() -> Tuple[int, int]:
    """A new mailbox pipe ``(read_fd, write_fd)``, its write end non-blocking.

    It starts at the kernel's default size (64 KiB); the first writer that
    finds it full grows it to 1 MiB (allocating that for every actor up
    front costs more than the fork).
    """
    r, w = os.pipe()
    os.set_blocking(w, False)
    return r, w


def _grow(fd: int) -> bool:
    """Make a full pipe bigger, once; True if it grew."""
    try:
        before = fcntl.fcntl(fd, _F_GETPIPE_SZ)
        return fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE) > before
    except OSError:  # capped by /proc/sys/fs/pipe-max-size: the backlog copes
        return False


class _ProcessState:
    """Per-process writer state, refreshed after fork."""

    ospid = os.getpid()


def _after_fork() -> None:
    _ProcessState.ospid = os.getpid()
    _Flusher.instance = None
    MailboxWriter.backlogged = set()


os.register_at_fork(after_in_child=_after_fork)


class MailboxWriter:
    """The write end of one mailbox, as held by one process.

    ``put`` returns False when the mailbox's owner is gone (the pipe is
    broken): the caller treats the pid as dead and drops the message, as
    Erlang does.
    """

    __slots__ = ("fd", "lock", "backlog", "dead", "grown", "ino", "rings", "no_ring", "ring_max", "__weakref__")

    # Writers with frames waiting; owned by whoever holds each writer's lock.
    backlogged: "set[MailboxWriter]" = set()

    def __init__(self, fd: int, big: bool = False) -> None:
        self.fd = fd
        #: ``big``: a second, big ring (``_ring.BIG_SIZE``) for messages from
        #: ``_bulk.THRESHOLD`` up to ``_ring.BIG_MAX``: the writers of the
        #: remote path (a process's writer into the router pipe, the node's
        #: writers into its mailboxes), so that a message of up to a MiB makes
        #: no file. Smaller messages keep the small ring: a ring the size of
        #: four 1 MiB messages would let 60 messages of 64 KiB pile up at each
        #: hop (more memory touched, and the router copying what its socket
        #: did not take). Both rings' frames go through the one pipe, in order.
        self.ring_max = _ring.BIG_MAX if big else _bulk.THRESHOLD
        self.lock = threading.Lock()
        self.backlog: Deque[Any] = collections.deque()  # frames, and _Deferred messages
        self.dead = False
        self.grown = False
        self.ino = 0  # the pipe's inode, once a bulk message needed it
        # This process's rings for the pipe (lock held): [small, big], the big
        # one for messages from _bulk.THRESHOLD on; a ring that could not be
        # made is not tried again at every message (no_ring).
        self.rings: List[Optional[_ring.SendRing]] = [None, None]
        self.no_ring = [False, False]

    def _inode(self) -> int:
        if not self.ino:
            try:
                self.ino = os.fstat(self.fd).st_ino
            except OSError:
                return 0
        return self.ino

    def _frames(self, payload: bytes, sender: int, flags: int, direct: bool = False, head: bytes = b"") -> List[Any]:
        """The frames of one message, ``head + payload`` (``lock`` held: a ring's space is reserved in pipe order).

        With ``direct`` (no earlier message of this call waits for the ring) a
        message for the ring is copied in at once when nothing waits in the
        backlog and there is room: no copy of ``payload`` is kept (nor is
        ``head + payload`` joined).
        """
        n = len(head) + len(payload)
        if n <= CHUNK:
            return [_HDR.pack(_ProcessState.ospid, sender, _F_WHOLE | flags, n) + head + payload]
        ring = self._ring_for(n) if n < self.ring_max else None
        if ring is not None:
            if direct and not self.backlog:
                ref = ring.put(payload, head)
                if ref is not None:
                    return [_HDR.pack(_ProcessState.ospid, sender, _F_WHOLE | F_RING | flags, len(ref)) + ref]
            if type(payload) is not bytes and not (type(payload) is memoryview and type(payload.obj) is bytes):
                payload = bytes(payload)  # it may wait in the backlog: the caller may reuse its buffer
            return [_Deferred(payload, sender, flags, head)]  # into the ring as its turn comes (_write_locked)
        if head:
            payload = head + payload
        frame = self._bulk_frame(payload, sender, flags) if n >= _bulk.THRESHOLD else None
        return [frame] if frame is not None else _chunks(payload, sender, flags)

    def _ring_for(self, n: int) -> Optional[_ring.SendRing]:
        """This process's ring for an ``n``-byte message to the pipe, made now if need be, or None (``lock`` held)."""
        big = int(n >= _bulk.THRESHOLD)
        ring = self.rings[big]
        if ring is not None and ring.pid == _ProcessState.ospid:
            return ring
        if self.no_ring[big]:
            return None
        ring = self.rings[big] = _ring.SendRing.create(self._inode(), _ring.BIG_SIZE if big else _ring.SIZE)
        self.no_ring[big] = ring is None  # no directory, or too many rings: files or chunks from now on
        return ring

    def _resolve(self, d: "_Deferred") -> Optional[List[bytes]]:
        """The frames of a message waiting for room in the ring, or None while the ring is full."""
        ring = self.rings[len(d.head) + len(d.payload) >= _bulk.THRESHOLD]
        if ring is None or ring.pid != _ProcessState.ospid:  # gone (fork, dead reader): chunks
            return _chunks(d.head + d.payload, d.sender, d.flags)
        ref = ring.put(d.payload, d.head)
        if ref is None:
            return None
        return [_HDR.pack(_ProcessState.ospid, d.sender, _F_WHOLE | F_RING | d.flags, len(ref)) + ref]

    def _bulk_frame(self, payload: bytes, sender: int, flags: int) -> Optional[bytes]:
        """A bulk frame for a large payload (see ``_bulk``), or None to use chunks."""
        ref = _bulk.store(payload, self._inode()) if self._inode() else None
        if ref is None:
            return None
        return _HDR.pack(_ProcessState.ospid, sender, _F_WHOLE | F_BULK | flags, len(ref)) + ref

    def put(self, payload: bytes, sender: int = 0, flags: int = 0, head: bytes = b"") -> bool:
        """Queue ``head + payload`` (a pickled message, ``head`` a route record's) for the reader; never blocks."""
        n = len(head) + len(payload)
        if n <= CHUNK:  # the common case: no lock until the write
            return self._write([_HDR.pack(_ProcessState.ospid, sender, _F_WHOLE | flags, n) + head + payload])
        if n >= self.ring_max:  # the file is written outside the lock
            if head:
                payload = head + payload
            bulk = self._bulk_frame(payload, sender, flags)
            return self._write([bulk] if bulk is not None else _chunks(payload, sender, flags))
        with self.lock:
            if self.dead:
                return False
            return self._write_locked(self._frames(payload, sender, flags, direct=True, head=head))

    def put_many(self, payloads: List[bytes], sender: int = 0) -> bool:
        """Queue several pickled messages, packing whole frames into writes of at most ``PIPE_BUF``."""
        writes: List[Any] = []
        current: List[bytes] = []
        size = 0
        direct = True  # until a message of this call waits for the ring
        with self.lock:
            if self.dead:
                return False
            for payload in payloads:
                for frame in self._frames(payload, sender, 0, direct):
                    if type(frame) is _Deferred:  # written on its own, as its turn comes
                        direct = False
                        if current:
                            writes.append(b"".join(current))
                            current, size = [], 0
                        writes.append(frame)
                        continue
                    if size + len(frame) > PIPE_BUF and current:
                        writes.append(b"".join(current))
                        current, size = [], 0
                    current.append(frame)
                    size += len(frame)
            if current:
                writes.append(b"".join(current))
            return self._write_locked(writes)

    def _write(self, writes: List[bytes]) -> bool:
        """Write atomic pieces (each at most PIPE_BUF) in order, or queue the rest."""
        with self.lock:
            return self._write_locked(writes)

    def _write_locked(self, writes: List[Any]) -> bool:
        """``_write`` with ``lock`` held (a piece may be a message waiting for the ring)."""
        if self.dead:
            _discard(writes)
            return False
        backlog = self.backlog
        if backlog:
            backlog.extend(writes)
            if type(backlog[0]) is _Deferred:  # the ring may have room by now
                self._flush_locked()
            return not self.dead
        if len(writes) == 1 and type(writes[0]) is bytes:  # the common case: one atomic write
            try:
                os.write(self.fd, writes[0])
                return True
            except BlockingIOError:
                pass
            except OSError as exc:
                if isinstance(exc, BrokenPipeError) or exc.errno in (errno.EPIPE, errno.EBADF):
                    self._die()
                    _discard(writes)
                    return False
                raise
        backlog.extend(writes)
        if not self._flush_locked() and not self.grown and type(backlog[0]) is bytes:
            self.grown = True
            _grow(self.fd)
            self._flush_locked()
        if self.dead:
            return False
        if backlog:
            _Flusher.kick(self)
        return True

    def _flush_locked(self, check_reader: bool = False) -> bool:
        """Write the backlog until the pipe is full or the ring has no room; True when empty.

        With ``check_reader`` (the flusher) a full ring whose reader is gone ends the writer.
        """
        backlog = self.backlog
        while backlog:
            piece = backlog[0]
            if type(piece) is _Deferred:
                frames = self._resolve(piece)
                if frames is None:  # the ring is full: unless its reader is gone, wait
                    if check_reader and _bulk.reader_gone(self.fd):
                        self._die()
                        _discard(backlog)
                        backlog.clear()
                        return True
                    return False
                backlog.popleft()
                backlog.extendleft(reversed(frames))
                continue
            try:
                os.write(self.fd, piece)
            except BlockingIOError:
                return False
            except OSError as exc:
                if not (isinstance(exc, BrokenPipeError) or exc.errno in (errno.EPIPE, errno.EBADF)):
                    log.debug("mailbox write failed: %s", exc)
                self._die()
                _discard(backlog)
                backlog.clear()
                return True
            backlog.popleft()
        return True

    def waits_for_ring(self) -> bool:
        """The oldest backlogged message waits for room in the ring (no descriptor event tells)."""
        backlog = self.backlog
        return bool(backlog) and type(backlog[0]) is _Deferred

    def flush(self) -> bool:
        """Write backlogged frames until the pipe is full (or the ring); True when empty."""
        with self.lock:
            return self._flush_locked(check_reader=True)

    def _die(self) -> None:
        """The reader is gone (``lock`` held): the ring's file, if unread, goes too."""
        self.dead = True
        rings, self.rings = self.rings, [None, None]
        for ring in rings:
            if ring is not None and ring.pid == _ProcessState.ospid:
                ring.remove()

    def close(self) -> None:
        """Close this process's copy of the write end."""
        with self.lock:
            self.dead = True
            rings, self.rings = self.rings, [None, None]
            for ring in rings:
                if ring is not None and ring.pid == _ProcessState.ospid:
                    ring.drop()  # an unread ring file stays for its reader, or goes in the sweep
            _discard(self.backlog)
            self.backlog.clear()
            if self.ino:
                _bulk.sweep(self.fd, self.ino)
            else:
                try:
                    _bulk.sweep(self.fd, os.fstat(self.fd).st_ino)
                except OSError:
                    pass
            try:
                os.close(self.fd)
            except OSError:
                pass


class _Deferred:
    """A mid-size message in a writer's backlog, to be copied into the ring when it has room.

    ``head + payload`` is the message: a route record's head is kept apart
    (joining it would copy the message once more).
    """

    __slots__ = ("payload", "sender", "flags", "head")

    def __init__(self, payload: bytes, sender: int, flags: int, head: bytes = b"") -> None:
        self.payload = payload
        self.sender = sender
        self.flags = flags
        self.head = head


def _discard(pieces: Any) -> None:
    """Remove the shared-memory files of bulk frames in ``pieces`` that will never be written."""
    unpack = _HDR.unpack_from
    for piece in pieces:
        if type(piece) is _Deferred:
            continue
        pos, end = 0, len(piece)
        while end - pos >= HDR_SIZE:
            _, _, flags, n = unpack(piece, pos)
            if flags & F_BULK:
                _bulk.remove(bytes(piece[pos + HDR_SIZE : pos + HDR_SIZE + n]))
            pos += HDR_SIZE + n


def _chunks(payload: bytes, sender: int, flags: int) -> List[bytes]:
    view = memoryview(payload)
    n = len(payload)
    frames = []
    pack = _HDR.pack
    ospid = _ProcessState.ospid
    for start in range(0, n, CHUNK):
        part = view[start : start + CHUNK]
        f = flags
        if start == 0:
            f |= F_START
        if start + CHUNK >= n:
            f |= F_END
        frames.append(pack(ospid, sender, f, len(part)) + part)
    return frames


class _Flusher(threading.Thread):
    """Empties writers' backlogs when their readers catch up (one per process)."""

    instance: Optional[_Flusher] = None
    _start_lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__(name="mpactors-flusher", daemon=True)
        self.writers: "set[MailboxWriter]" = set()
        self.cond = threading.Condition()

    @classmethod
    def kick(cls, writer: MailboxWriter) -> None:
        with cls._start_lock:
            if cls.instance is None:
                cls.instance = _Flusher()
                cls.instance.start()
            inst = cls.instance
        with inst.cond:
            inst.writers.add(writer)
            inst.cond.notify()

    def run(self) -> None:
        delay = _RING_WAIT  # between looks at full rings: doubles while no reader consumes
        while True:
            with self.cond:
                while not self.writers:
                    self.cond.wait()
                writers = list(self.writers)
            poller = select.poll()
            ring_wait = False
            for w in writers:
                if w.dead:
                    continue
                if w.waits_for_ring():
                    ring_wait = True
                else:
                    poller.register(w.fd, select.POLLOUT)
            if ring_wait:  # no event says when a reader consumed: look again soon
                poller.poll(int(delay * 1000))
                if delay < 0.001:
                    time.sleep(delay)
            else:
                poller.poll(50)
            before = sum(len(w.backlog) for w in writers)
            for w in writers:
                if w.flush():
                    with self.cond:
                        if not w.backlog:
                            self.writers.discard(w)
            if ring_wait:  # a reader that stopped reading costs a look every 5 ms, not 5,000 a second
                moved = sum(len(w.backlog) for w in writers) < before
                delay = _RING_WAIT if moved else min(delay * 2, _RING_WAIT_MAX)

    def pending(self) -> bool:
        with self.cond:
            return any(w.backlog and not w.dead for w in self.writers)


def flush_all(timeout: float) -> bool:
    """Wait until this process's backlogs are written (at exit); True if all were."""
    inst = _Flusher.instance
    if inst is None:
        return True
    deadline = time.monotonic() + timeout
    while inst.pending():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class Mailbox:
    """The reading side of a process's mailbox, with Erlang's save queue.

    Messages read from the pipe are decoded into ``queue`` in arrival order;
    ``receive`` takes the oldest that matches and leaves the rest in order.
    ``lock`` serialises everyone who reads: the owner's threads, its control
    thread (which drains the pipe to report ``message_queue_len``) and an
    event loop's reader (``_aioloop``, through ``poll``/``pull``). Whoever
    drains the pipe and queues messages wakes the others
    (``_wake_readers``): the one thread that polls the pipe, the threads
    waiting for it (``_drained``), and the event loop (``notify``).
    """

    def __init__(self, fd: int, owner: str = "") -> None:
        self.fd = fd
        self.owner = owner
        os.set_blocking(fd, False)
        self.lock = threading.Lock()
        # Threads of one process that receive at once: one polls the pipe,
        # the others wait for ``_drained`` (the main process's threads).
        self._polling = False
        self._followers = 0  # threads waiting for ``_drained``
        self._drained = threading.Condition(self.lock)
        self.queue: Deque[Any] = collections.deque()
        self._buf = b""
        self._pending: Optional[Tuple[bytes, int]] = None  # read, not decoded yet (see _read_pipe)
        self._budget: Optional[int] = None
        self._partial: Dict[int, List[bytes]] = {}
        self._rings: Optional[_ring.RecvRings] = None  # writers' rings, mapped on their first frame
        self.waiting = False
        self._exit: Optional[ProcessExit] = None
        #: Active aliases: an ``AliasReply`` for any other ref is dropped on arrival.
        self.aliases: "set[Any]" = set()
        #: Called with each message as it arrives (tracing), or None.
        self.on_arrival: Optional[Callable[[Any], None]] = None
        #: Messages taken out of ``queue`` so far: a scan position is valid only
        #: while this is unchanged (several readers: threads, an event loop).
        self.removed = 0
        #: An event loop that reads this mailbox (``_aioloop``), or None:
        #: ``notify`` is called after any drain that queued messages, and
        #: ``reader(match, timeout)`` takes a blocking receive's wait (it
        #: returns ``READ_HERE`` to let the caller read the pipe itself).
        self.notify: Optional[Callable[[], None]] = None
        self.reader: Optional[Callable[[Any, Optional[float]], Any]] = None
        # Another thread that drains the pipe (process_info's queue length)
        # takes the bytes a waiting receive polls for: it wakes it here.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # -- reading -----------------------------------------------------------
    def _drain(self, ahead: bool = False) -> bool:
        """Read what the pipe holds now into ``queue``; False at end of file.

        With ``ahead`` (a receive) it may stop after a few shared-memory
        messages (``_read_pipe``); without, it decodes everything read.
        """
        before = len(self.queue)
        if ahead:
            alive = self._read_pipe(self._AHEAD)
        else:
            alive = self._read_pipe()
            while alive and self._pending is not None:
                alive = self._read_pipe()
        if len(self.queue) > before or not alive or self._exit is not None or self._pending is not None:
            self._wake_readers()  # (frames left undecoded: a thread polling the pipe must look again)
        return alive

    def _wake_readers(self) -> None:
        """Messages were queued: whoever else waits for this mailbox looks again (``lock`` held)."""
        if self.notify is not None:  # an event loop's reader
            self.notify()
        if self._polling:  # another thread polls the pipe for bytes this drain took
            try:
                os.write(self._wake_w, b"!")
            except OSError:  # already awake
                pass
        if self._followers:
            self._drained.notify_all()

    def wake_readers(self) -> None:
        """Make every waiting receive look again (an event loop started or stopped reading)."""
        with self.lock:
            self._wake_readers()

    def _read_pipe(self, ahead: Optional[int] = None) -> bool:
        """Read and decode what the pipe holds; with ``ahead``, stop after about that many bytes of shared-memory messages.

        A receive decodes only a little ahead of what it takes (``_AHEAD``):
        a 64 KiB read of the pipe may name a thousand ring messages, and
        copying them all out of the rings at once makes the reader's heap
        grow and shrink (a page fault per 4 KiB) instead of reusing the same
        memory. The frames not decoded yet wait in ``_pending``.
        """
        self._budget = ahead
        pending = self._pending
        if pending is not None:
            self._pending = None
            self._parse(pending[0], pending[1])
            if self._pending is not None:
                return True
        while True:
            try:
                data = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                if self._rings is not None and self._rings.retiring:
                    self._rings.empty()  # no frame of a dead writer is left
                return True
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            if not data:
                return False
            self._parse(self._buf + data if self._buf else data)
            if self._pending is not None or len(data) < _READ_SIZE:
                return True

    #: Bytes of shared-memory messages a receive decodes ahead of what it takes.
    _AHEAD = 128 * 1024

    def _parse(self, buf: bytes, pos: int = 0) -> None:
        end = len(buf)
        unpack = _HDR.unpack_from
        while end - pos >= HDR_SIZE:
            ospid, sender, flags, n = unpack(buf, pos)
            if end - pos - HDR_SIZE < n:
                break
            body = buf[pos + HDR_SIZE : pos + HDR_SIZE + n]
            pos += HDR_SIZE + n
            if flags & _F_WHOLE == _F_WHOLE:
                if flags & (F_RING | F_BULK):
                    if flags & F_RING:
                        self._deliver_ring(body, ospid, sender, flags)
                    else:
                        self._deliver_bulk(body, sender, flags)
                    if self._budget is not None:
                        self._budget -= 1 << 16  # about one message's worth
                        if self._budget <= 0 and pos < end:
                            self._pending = (buf, pos)
                            self._buf = b""
                            return
                else:
                    self._deliver(body, sender, flags)
                continue
            if flags & F_START:
                self._partial[ospid] = [body]
            elif ospid in self._partial:
                self._partial[ospid].append(body)
            else:  # a tail whose head we never saw: its writer died mid-message
                continue
            if flags & F_END:
                self._deliver(b"".join(self._partial.pop(ospid)), sender, flags)
        self._buf = buf[pos:]

    def _deliver(self, body: bytes, sender: int, flags: int) -> None:
        try:
            msg = _codec.loads(body)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure
            log.error(
                "%s dropped a message from %s it cannot unpickle: %s: %s",
                self.owner or "mailbox", _sender_text(sender), type(exc).__name__, exc,
            )
            return
        if flags & F_SYSTEM:
            if isinstance(msg, tuple) and msg and msg[0] == SYSTEM_EXIT:
                self._exit = ProcessExit(msg[1])
            return
        if type(msg) is AliasReply and msg.ref not in self.aliases:
            return  # its caller stopped waiting: drop it, as Erlang drops to a dead alias
        self.queue.append(msg)
        if _COUNTING:
            _COUNTERS.messages_in += 1
            _COUNTERS.bytes_in += len(body)
        if self.on_arrival is not None:
            self.on_arrival(msg)

    def _deliver_bulk(self, ref: bytes, sender: int, flags: int) -> None:
        try:
            body = _bulk.load(ref, copy=self._bulk_copy)
        except (OSError, ValueError) as exc:
            log.error("%s lost a large message from %s: %s", self.owner or "mailbox", _sender_text(sender), exc)
            return
        try:
            self._deliver(body, sender, flags)
        finally:
            if isinstance(body, mmap.mmap):
                body.close()

    def _deliver_ring(self, ref: bytes, ospid: int, sender: int, flags: int) -> None:
        rings = self._rings
        if rings is None:
            rings = self._rings = _ring.RecvRings()
        try:
            mm, offset, n, end = rings.open(ref, ospid)
        except (OSError, ValueError) as exc:
            log.error("%s lost a message from %s: %s", self.owner or "mailbox", _sender_text(sender), exc)
            return
        try:
            if self._bulk_copy:
                self._deliver(mm[offset : offset + n], sender, flags)
            else:
                with memoryview(mm) as whole, whole[offset : offset + n] as view:
                    self._deliver(view, sender, flags)  # type: ignore[arg-type]
        finally:
            rings.done(mm, end)

    #: Bulk payloads as bytes (kept past delivery) rather than a mapping (unpickled at once).
    _bulk_copy = False

    def fds(self) -> List[int]:
        """Every descriptor this mailbox reads (a forked child must not keep them)."""
        return [self.fd, self._wake_r, self._wake_w]

    def deactivate_alias(self, ref: Any) -> None:
        """Stop accepting replies for ``ref`` and drop any already queued."""
        with self.lock:
            self.aliases.discard(ref)
            self._drain()
            for msg in [m for m in self.queue if type(m) is AliasReply and m.ref == ref]:
                self.queue.remove(msg)
                self.removed += 1

    def requeue(self, msg: Any) -> None:
        """Put back ``msg``, taken by a receive that was cancelled before it saw it, as the oldest."""
        with self.lock:
            self.queue.appendleft(msg)
            self.removed += 1  # positions moved: scans start again
            if self.notify is not None:
                self.notify()

    # -- the API -----------------------------------------------------------
    def receive(self, match: Any = None, timeout: Optional[float] = None) -> Any:
        """The oldest message matching ``match``; :class:`Timeout` after ``timeout`` s."""
        pred: Callable[[Any], bool] = compile_pattern(match)
        deadline = None if timeout is None else time.monotonic() + timeout
        cursor = [0, self.removed]
        polled = False
        poller = None
        while True:
            reader = self.reader
            if reader is not None:  # an event loop reads this mailbox: hand it the wait
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                msg = reader(match, left)
                if msg is not READ_HERE:
                    return msg
            with self.lock:
                self._raise_exit()
                found, msg = self._take(pred, cursor)
                if found:
                    return msg
                if self._pending is not None:  # frames read already: decode more of them first
                    if not self._drain(ahead=True):
                        raise ProcessExit("noconnection")
                    continue
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0 and polled:
                    raise Timeout(f"no matching message within timeout={timeout!r}s (pattern {match!r})")
                if self._polling:
                    # Another thread of this process polls the pipe: it wakes
                    # us when it drained (one poller, so none misses a message
                    # another thread read).
                    self._followers += 1
                    try:
                        self._drained.wait(None if remaining is None else max(0.0, remaining))
                    finally:
                        self._followers -= 1
                    polled = True
                    continue
                self._polling = True
            try:
                # poll() takes a C int of milliseconds: wait in slices of ~24 days.
                wait_ms = -1 if remaining is None else max(0, int(min(remaining * 1000 + 0.999, 2**31 - 1)))
                if poller is None:
                    poller = select.poll()
                    poller.register(self.fd, select.POLLIN)
                    poller.register(self._wake_r, select.POLLIN)
                self.waiting = True
                try:
                    events = poller.poll(wait_ms)
                finally:
                    self.waiting = False
                polled = True
                if len(events) > 1 or (events and events[0][0] == self._wake_r):
                    _read_all(self._wake_r)
            finally:
                with self.lock:
                    self._polling = False
                    if self._followers:
                        self._drained.notify_all()
                    alive = self._drain(ahead=True)
            if not alive:
                raise ProcessExit("noconnection")

    def poll(self, pred: Callable[[Any], bool], cursor: List[int], drain: bool = True) -> Tuple[bool, Any]:
        """One step of :meth:`receive` that never waits: ``(True, msg)`` or ``(False, None)``.

        Drains the pipe, then takes the oldest message ``pred`` accepts at or
        after ``cursor`` (``[index, removed]``, updated in place: start with
        ``[0, mailbox.removed]``). Raises :class:`ProcessExit` as ``receive``
        does. With ``drain=False`` it looks only at what is queued already.
        The event loop's reader (``_aioloop``) is its caller.
        """
        with self.lock:
            alive = self._drain() if drain else True
            self._raise_exit()
            found, msg = self._take(pred, cursor)
            if not found and not alive:
                raise ProcessExit("noconnection")
            return found, msg

    def pull(self) -> bool:
        """Move what the pipe holds into the queue (an exit stays pending); False at end of file."""
        with self.lock:
            return self._drain()

    def _raise_exit(self) -> None:
        if self._exit is not None:
            exc, self._exit = self._exit, None
            raise exc

    def _take(self, pred: Callable[[Any], bool], cursor: List[int]) -> Tuple[bool, Any]:
        """Selective receive's scan (caller holds ``lock``): take the oldest match from ``cursor`` on.

        Messages before ``cursor[0]`` were already refused by ``pred``; if
        another reader took messages since (``removed`` moved), positions
        shifted and the scan starts again at 0.
        """
        q = self.queue
        i = cursor[0] if cursor[1] == self.removed else 0
        n = len(q)
        while i < n:
            msg = q[i]
            if pred(msg):
                del q[i]
                self.removed += 1
                cursor[0], cursor[1] = i, self.removed
                if _COUNTING:
                    _COUNTERS.handled += 1
                return True, msg
            i += 1
        cursor[0], cursor[1] = n, self.removed
        return False, None

    def __len__(self) -> int:
        """Messages waiting (the pipe is drained first); safe from any thread."""
        with self.lock:
            before = len(self.queue)
            self._drain()
            n = len(self.queue)
            if n > before and self.waiting:
                try:
                    os.write(self._wake_w, b"!")
                except OSError:  # already awake
                    pass
            return n

    def flush(self) -> List[Any]:
        """Take every waiting message out, oldest first."""
        with self.lock:
            self._drain()
            out = list(self.queue)
            self.queue.clear()
            self.removed += len(out)
            return out


def _read_all(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except OSError:
        pass


class RawReader(Mailbox):
    """Reads frames like a mailbox but keeps the bodies as bytes (the node's router)."""

    _bulk_copy = True

    def _deliver(self, body: bytes, sender: int, flags: int) -> None:
        self.queue.append(body)

    def take(self) -> Tuple[List[bytes], bool]:
        """The complete bodies readable now, and False once every writer is gone."""
        with self.lock:
            alive = self._drain()
            out = list(self.queue)
            self.queue.clear()
            return out, alive
