"""Mid-size local messages through a shared-memory ring per sender and receiver.

A mailbox pipe is written by many processes, so each write must stay within
``PIPE_BUF`` (4 KiB) to be atomic: a 64 KiB message would go as 16 frames,
cut by the writer and joined again by the reader in Python. From one frame's
size up to ``_bulk.THRESHOLD`` a writer instead copies the pickled message
into a *ring*, a file of its node's ``/dev/shm`` directory that it maps once
per destination pipe, and writes one small ``RING`` frame through the pipe::

    offset  size  field
    0       8     start      - position of the message in the ring's byte stream
    8       4     length
    12      n     ring name  - ``<pipe inode>-<writer pid>-r<sequence>`` (hex)

The frame travels with the writer's other frames, so one sender's order is
kept whatever path each message takes. The reader maps a ring the first
time one of its frames arrives and unlinks the file at once (from then on
the memory is shared by the two processes only, and freed when both unmap or
die). It unpickles straight from the mapping, then stores ``start + length``
into the ring's header (``consumed``, 8 bytes at offset 0): the writer
reuses the space up to there. A message never wraps: when it does not fit
before the end, the writer skips to the ring's start. Ring positions are
reserved and the frame written under the writer's lock, so frames reach the
pipe in ring order and ``consumed`` only moves forward. (The header store is
an aligned 8-byte write, read by the other side as a whole: true on x86-64
and arm64; the pipe's system calls order the message bytes themselves.)

Bounds: a ring is :data:`SIZE` bytes, or :data:`BIG_SIZE` for the writers
that carry other nodes' messages (a process's writer into its node's router
pipe, and the node's own writers into local mailboxes: messages up to
:data:`BIG_MAX` go through those rings rather than a file each, see
``mailbox.MailboxWriter``); a process has at most
:data:`MAX_SEND` rings (one per destination it sent mid-size messages to,
the rest use chunks); a full ring (a slow reader) sends the message in
chunks. A reader keeps the rings it maps; beyond :data:`MAX_RECV` it drops,
at the next moment its pipe is empty, those whose writer process is gone
(a dead process writes no more frames, and an empty pipe holds none of its
old ones).

Files: a ring's file exists from the first frame's write until its reader
opens it. If the reader dies first, the node removes the files addressed to
its pipe when it closes its writer (``_bulk.sweep``: the name starts with
the pipe's inode), and a writer that gets ``EPIPE`` removes its own; the
node's directory goes when the node stops.
"""
from __future__ import annotations

import itertools
import mmap
import os
import re
import struct
import weakref
from typing import Any, Dict, List, Optional, Tuple

from . import _bulk

__all__ = ["SIZE", "BIG_SIZE", "BIG_MAX", "MAX_SEND", "MAX_RECV", "SendRing", "RecvRings", "REF_HEAD"]

#: Bytes per ring (header included): room for a few messages below ``_bulk.THRESHOLD``.
SIZE = 1024 * 1024
#: Bytes per big ring (the remote path's writers, see above).
BIG_SIZE = 4 * 1024 * 1024
#: Largest message a big ring carries (a MiB of data and its pickle and route headers; bigger ones use a file).
BIG_MAX = 1024 * 1024 + 64 * 1024
_SIZES = (SIZE, BIG_SIZE)  # what a reader accepts
#: Rings one process writes at most (memory: at most ``MAX_SEND * BIG_SIZE`` of tmpfs).
MAX_SEND = 8
#: Rings a reader keeps before it drops those of dead writers.
MAX_RECV = 16
_HEAD = 64  # header: consumed (u64), then padding to a cache line
_Q = struct.Struct("<Q")
REF_HEAD = struct.Struct("<QI")
_NAME = re.compile(rb"[0-9a-f]{1,16}-[0-9a-f]{1,8}-r[0-9a-f]{1,16}\Z")


class _State:
    seq = itertools.count()
    send_rings: "weakref.WeakSet[SendRing]" = weakref.WeakSet()
    mapped: "weakref.WeakSet[RecvRings]" = weakref.WeakSet()


def _after_fork() -> None:
    """A forked child holds its parent's mappings: it must never write them."""
    _State.seq = itertools.count()
    for ring in list(_State.send_rings):
        ring.drop()
    for rings in list(_State.mapped):
        rings.close()


os.register_at_fork(after_in_child=_after_fork)


class SendRing:
    """The writer's side of one ring (use it under the writer's lock)."""

    __slots__ = ("name", "mm", "head", "pid", "data", "__weakref__")

    def __init__(self, name: bytes, mm: mmap.mmap, size: int = SIZE) -> None:
        self.name = name
        self.mm: Optional[mmap.mmap] = mm
        self.head = 0
        self.pid = os.getpid()
        self.data = size - _HEAD  # bytes of messages it holds

    @classmethod
    def create(cls, pipe_ino: int, size: int = SIZE) -> Optional["SendRing"]:
        """A new ring of ``size`` bytes for the pipe ``pipe_ino``, or None (no node directory, too many rings)."""
        path = _bulk.current_dir()
        if path is None or not pipe_ino or len(_State.send_rings) >= MAX_SEND:
            return None
        name = f"{pipe_ino:x}-{os.getpid():x}-r{next(_State.seq):x}"
        full = os.path.join(path, name)
        try:
            fd = os.open(full, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError:
            return None
        try:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size)
        except OSError:
            _unlink(full)
            return None
        finally:
            os.close(fd)
        ring = cls(name.encode(), mm, size)
        _State.send_rings.add(ring)
        return ring

    def put(self, payload: Any, prefix: bytes = b"") -> Optional[bytes]:
        """Copy ``prefix + payload`` in; the RING frame's payload, or None if the ring has no room."""
        mm = self.mm
        h = len(prefix)
        n = h + len(payload)
        data = self.data
        if mm is None or n > data:
            return None
        consumed = _Q.unpack_from(mm, 0)[0]
        head = self.head
        pos = head % data
        if pos + n > data:  # never wrap a message: skip to the start
            head += data - pos
            pos = 0
        if head + n - consumed > data:
            return None
        start = _HEAD + pos
        if h:
            mm[start : start + h] = prefix
        mm[start + h : start + n] = payload
        self.head = head + n
        return REF_HEAD.pack(head, n) + self.name

    def drop(self) -> None:
        """Unmap (the file, if its reader never opened it, is removed by its sweep)."""
        mm, self.mm = self.mm, None
        _State.send_rings.discard(self)
        if mm is not None:
            try:
                mm.close()
            except (BufferError, ValueError):  # pragma: no cover - nothing exports it
                pass

    def remove(self) -> None:
        """The reader is gone: unmap and unlink the file if it is still there."""
        self.drop()
        path = _bulk.current_dir()
        if path is not None:
            _unlink(os.path.join(path, self.name.decode()))


class RecvRings:
    """The rings one mailbox reads (its owner holds the mailbox's lock)."""

    def __init__(self) -> None:
        self.rings: Dict[bytes, Tuple[mmap.mmap, int, int]] = {}  # name -> (mapping, writer pid, data bytes)
        self.retiring: List[bytes] = []
        _State.mapped.add(self)

    def open(self, ref: bytes, ospid: int) -> Tuple[mmap.mmap, int, int, int]:
        """``(mapping, offset, length, end)`` of the message a RING frame names.

        Raises ValueError for a malformed frame, OSError for a ring that cannot
        be opened (its file is gone).
        """
        if len(ref) <= REF_HEAD.size:
            raise ValueError(f"ring frame too short ({len(ref)} bytes)")
        start, n = REF_HEAD.unpack_from(ref, 0)
        name = bytes(ref[REF_HEAD.size :])
        entry = self.rings.get(name)
        if entry is None:
            entry = self._map(name, ospid)
        mm, _, data = entry
        pos = start % data
        if n == 0 or pos + n > data:
            raise ValueError(f"ring frame out of bounds (start {start}, length {n})")
        return mm, _HEAD + pos, n, start + n

    def _map(self, name: bytes, ospid: int) -> Tuple[mmap.mmap, int, int]:
        if not _NAME.match(name):
            raise ValueError(f"malformed ring name {name[:40]!r}")
        path = _bulk.current_dir()
        if path is None:
            raise OSError("no shared-memory directory in this process")
        full = os.path.join(path, name.decode())
        fd = os.open(full, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            _unlink(full)
            size = os.fstat(fd).st_size
            if size not in _SIZES:
                raise ValueError(f"ring {name.decode()} is {size} bytes, not one of {_SIZES}")
            mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        if len(self.rings) >= MAX_RECV:
            self._retire_dead()
        entry = self.rings[name] = (mm, ospid, size - _HEAD)
        return entry

    @staticmethod
    def done(mm: mmap.mmap, end: int) -> None:
        """The message up to ``end`` is read: its writer may reuse the space."""
        _Q.pack_into(mm, 0, end)

    def _retire_dead(self) -> None:
        for name, (_, ospid, _) in self.rings.items():
            if name not in self.retiring and not _alive(ospid):
                self.retiring.append(name)

    def empty(self) -> None:
        """The pipe is empty: unmap the rings whose writers were found dead before."""
        names, self.retiring = self.retiring, []
        for name in names:
            entry = self.rings.pop(name, None)
            if entry is not None:
                _close(entry[0])

    def close(self) -> None:
        """Unmap every ring."""
        for mm, _, _ in self.rings.values():
            _close(mm)
        self.rings.clear()
        self.retiring = []


def _close(mm: mmap.mmap) -> None:
    try:
        mm.close()
    except (BufferError, ValueError):  # a message still viewed: the GC unmaps it
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
