"""One connection to another node: its send buffer, its receive buffer, ticks.

Frames on an established connection are described in :mod:`mpactors.dist._wire`.
A :class:`Peer` is created pending (frames queue up) and becomes *up* once
the handshake is done; then its socket (plain, or a non-blocking
``ssl.SSLSocket``) belongs to the node's event loop (:mod:`mpactors.dist._loop`),
which calls :meth:`Peer.write_out` and :meth:`Peer.read_in`. No thread per
connection: the loop writes what ``put`` queued, reads whole batches and hands
them to the owner (:class:`PeerEvents`, the distribution layer), sends a TICK
after ``ticktime/4`` of silence and reports a lost connection - end of file,
an error, or silence past ``ticktime`` (the net tick timeout) - which
:mod:`mpactors.dist._nodedown` turns into a node down.

Sends never wait: frames are kept per peer (buffers, not copies: header and
body go out with one ``sendmsg``) until the socket takes them, so a slow peer
holds only its own frames. Over a plain socket, a thread that is not the loop
tries a non-blocking send itself when nothing is queued (one thread switch
less per message); over TLS only the loop writes.
"""
from __future__ import annotations

import collections
import socket
import ssl
import threading
import time
from typing import Any, Callable, Container, Deque, Dict, List, Optional, Protocol, Tuple, Union

from .. import _codec
from ._faults import is_blocked
from ._wire import CTRL, FRAME, LEN, MAX_FRAME, TICK

__all__ = ["Peer", "PeerEvents", "Buffer"]

Buffer = Union[bytes, bytearray, memoryview]

_JOIN_BELOW = 64 * 1024  # a batch smaller than this is joined into one buffer
_IOV_MAX = 512  # buffers per sendmsg
_TLS_CHUNK = 256 * 1024  # bytes per SSL write (small buffers are joined up to this)
_RBUF = 256 * 1024  # the receive buffer; a bigger batch gets a buffer of its own
_SPARE_MAX = 8 * 1024 * 1024  # a big batch's buffer up to this size is kept for the next (no page faults)
_TICK = LEN.pack(FRAME.size) + FRAME.pack(TICK, 0)


class PeerEvents(Protocol):
    """What a :class:`Peer` tells its owner (the distribution layer)."""

    def handle_batch(self, peer: Peer, data: Buffer) -> None:
        """Event loop: a batch of frames arrived (bytes, or a buffer of its own)."""

    def connection_lost(self, peer: Peer, why: str) -> None:
        """Any thread: the connection is gone (``why`` says how)."""

    def close_private(self, closable: Any) -> None:
        """Close a node-private descriptor (actors forked later must not see its number)."""


class Peer:
    """One connection to another node (pending until the handshake is done)."""

    def __init__(self, events: PeerEvents, name: str, ticktime: float) -> None:
        self.events = events
        self.name = name
        self.ticktime = ticktime  # silence past this is a lost connection
        self.conn: Any = None  # the handshake's connection (closed once the loop has the socket)
        self.sock: Optional[socket.socket] = None  # non-blocking; the loop's (plain or SSLSocket)
        self.tls = False
        self.creation = 0
        self.hidden = False
        self.compat: Optional[Dict[str, Any]] = None  # the peer's dist._compat info, once up
        self.up = False
        self.closed = False
        self.cond = threading.Condition()
        self.out: Deque[Buffer] = collections.deque()  # under ``cond``
        self.inflight: Optional[memoryview] = None  # TLS: a write to repeat as is (loop only)
        self.tick_interval = ticktime / 4
        self.last_send = self.last_recv = time.monotonic()
        self.waiters: List[Callable[[bool], None]] = []
        self.loop: Any = None  # the event loop, once it owns the socket (``wake``, ``ident``)
        self.want_write = False  # registered for EVENT_WRITE (loop only)
        self.io_done = False  # the loop closed the socket (loop only)
        # Batches handed to the kernel thread and not yet delivered (under
        # ``cond``): while any are, later batches follow them there.
        self.in_kernel = 0
        # Receiving (loop only): complete batches are cut from ``rbuf``; a
        # batch too big for it is read straight into ``big`` (its own buffer).
        self.rbuf = bytearray(_RBUF)
        self.rview = memoryview(self.rbuf)
        self.rstart = self.rend = 0
        self.big: Optional[memoryview] = None  # a view of ``big_buf`` (which may be longer)
        self.big_buf: Optional[bytearray] = None
        self.big_pos = 0

    # -- sending (any thread) ----------------------------------------------
    def put(self, kind: int, body: Buffer) -> None:
        self._put([LEN.pack(FRAME.size + len(body)) + FRAME.pack(kind, len(body)) + body])

    def put_many(self, items: List[Tuple[int, Buffer]]) -> None:
        """Several frames in one batch on the wire (the router's batches)."""
        pack = FRAME.pack
        total = 0
        parts: List[Buffer] = [b""]
        for kind, body in items:
            n = len(body)
            parts.append(pack(kind, n))
            parts.append(body)
            total += 5 + n
        parts[0] = LEN.pack(total)
        self._put([b"".join(parts)] if total < _JOIN_BELOW else parts)

    def copy_views(self, owners: Container[int], recent: int) -> None:
        """Copy the queued views of memory the caller takes back.

        ``owners`` are the ``id``s of the objects viewed (the router's ring
        mappings); only the last ``recent`` + 1 queued buffers can hold such
        views (``put_many`` appends; a TLS write may put the unwritten part of
        one back in front), plus the TLS write in flight. What the socket
        already took needs nothing.
        """
        with self.cond:
            out = self.out
            for i in range(len(out) - 1, max(-1, len(out) - 2 - recent), -1):
                buf = out[i]
                if type(buf) is memoryview and id(buf.obj) in owners:
                    out[i] = bytes(buf)
            inflight = self.inflight
            if inflight is not None and id(inflight.obj) in owners:
                self.inflight = memoryview(bytes(inflight))  # the same bytes (OpenSSL accepts a moved buffer)

    def ctrl(self, *msg: Any) -> None:
        self.put(CTRL, _codec.dumps(msg))

    def _put(self, parts: List[Buffer]) -> None:
        loop = self.loop
        with self.cond:
            if self.closed or self.io_done or is_blocked(self.name):  # a cut link (dist._faults) drops it
                return
            if loop is None or not self.up:
                self.out.extend(parts)
                return  # the loop writes it once it has the socket
            in_loop = threading.get_ident() == loop.ident
            if len(parts) == 1 and not self.out and not self.tls and not self.want_write:
                # The common case: one buffer, an idle plain socket.
                data = parts[0]
                try:
                    sent = self.sock.send(data)  # type: ignore[union-attr]
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except (OSError, ValueError, AttributeError):
                    return  # broken: the loop reports the loss when it reads
                self.last_send = time.monotonic()
                if sent == len(data):
                    return
                self.out.append(memoryview(data)[sent:])
            else:
                self.out.extend(parts)
                if not self.want_write and len(self.out) == len(parts) and (in_loop or not self.tls):
                    # The socket is idle: write now, from this thread.
                    if self.tls:
                        self._send_tls()
                    else:
                        self._send_plain()
                    if not self.out and self.inflight is None:
                        return
        loop.dirty(self)  # the loop writes the rest (or reports the failure)

    def _send_plain(self) -> bool:
        """Write queued buffers until the socket is full (``cond`` held); False if it failed."""
        sock = self.sock
        out = self.out
        try:
            while out:
                bufs = list(out) if len(out) <= _IOV_MAX else [out[i] for i in range(_IOV_MAX)]
                sent = sock.sendmsg(bufs)  # type: ignore[union-attr]
                self.last_send = time.monotonic()
                while sent:
                    first = out[0]
                    n = len(first) if not isinstance(first, memoryview) else first.nbytes
                    if sent >= n:
                        out.popleft()
                        sent -= n
                    else:
                        out[0] = memoryview(first)[sent:]
                        sent = 0
        except (BlockingIOError, InterruptedError):
            pass
        except (OSError, ValueError, AttributeError):
            out.clear()  # broken: the loop reports the loss when it reads
            return False
        return True

    def _send_tls(self) -> bool:
        """Loop: write into the TLS stream until it would block (``cond`` held); False if it failed."""
        sock = self.sock
        out = self.out
        try:
            while self.inflight is not None or out:
                if self.inflight is None:
                    first = out.popleft()
                    if len(first) < _TLS_CHUNK and out:
                        pieces = [first]
                        size = len(first)
                        while out and size + len(out[0]) <= _TLS_CHUNK:
                            size += len(out[0])
                            pieces.append(out.popleft())
                        first = b"".join(pieces)
                    view = memoryview(first).cast("B")
                    if view.nbytes > _TLS_CHUNK:
                        out.appendleft(view[_TLS_CHUNK:])
                        view = view[:_TLS_CHUNK]
                    self.inflight = view
                sent = sock.send(self.inflight)  # type: ignore[union-attr]
                self.last_send = time.monotonic()
                if sent < self.inflight.nbytes:
                    self.inflight = self.inflight[sent:]
                else:
                    self.inflight = None
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError, InterruptedError):
            pass
        except (OSError, ValueError, AttributeError):
            out.clear()
            self.inflight = None
            return False
        return True

    def write_out(self) -> Optional[bool]:
        """Loop: write what is queued; True if some is left, False when all is out, None if it failed."""
        with self.cond:
            if self.io_done or self.sock is None:
                self.out.clear()
                return False
            if is_blocked(self.name):
                self.out.clear()
                self.inflight = None
            ok = self._send_tls() if self.tls else self._send_plain()
            left = bool(self.out) or self.inflight is not None
            if not left:
                self.cond.notify_all()  # flush() waits for this
        if not ok:
            return None
        return left

    def tick(self, now: float) -> None:
        """Loop: send a TICK if nothing went out for ``tick_interval``."""
        with self.cond:
            if self.out or self.inflight is not None:
                return
            if is_blocked(self.name):  # a cut link: the peer hears silence
                self.last_send = now
                return
            self.out.append(_TICK)
            self.last_send = now

    # -- receiving (event loop) ------------------------------------------------
    def read_in(self) -> Optional[str]:
        """Loop: read what the socket has and hand over whole batches; why the connection ended, or None."""
        sock = self.sock
        assert sock is not None
        tls = self.tls
        reads = 0
        while True:
            try:
                if self.big is not None:
                    want = len(self.big) - self.big_pos
                    n = sock.recv_into(self.big[self.big_pos :])
                else:
                    if self.rend == len(self.rbuf):
                        self._compact()
                    want = len(self.rbuf) - self.rend
                    n = sock.recv_into(self.rview[self.rend :])
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return None
            except (OSError, ValueError) as exc:
                return f"receive failed: {exc}"
            if not n:
                return "closed by peer"
            reads += 1
            self.last_recv = time.monotonic()
            if self.big is not None:
                self.big_pos += n
                if self.big_pos == len(self.big):
                    big, buf, self.big, self.big_buf = self.big, self.big_buf, None, None
                    self.events.handle_batch(self, big)  # consumers copy what they keep (Router.deliver)
                    loop = self.loop
                    if buf is not None and len(buf) <= _SPARE_MAX and loop is not None:
                        if loop.spare is None or len(loop.spare) < len(buf):
                            loop.spare = buf
            else:
                self.rend += n
                why = self._batches()
                if why is not None:
                    return why
            if self.closed:
                return None
            if tls and sock.pending():  # type: ignore[attr-defined]  # decrypted bytes select cannot see
                continue
            if reads >= 16 or (not tls and n < want):
                return None  # select says when there is more

    def _compact(self) -> None:
        left = self.rend - self.rstart
        if left and self.rstart:
            self.rbuf[:left] = self.rbuf[self.rstart : self.rend]
        self.rstart, self.rend = 0, left

    def _batches(self) -> Optional[str]:
        """Hand over the complete batches in ``rbuf``; start ``big`` for a large one."""
        view, unpack = self.rview, LEN.unpack_from
        while self.rend - self.rstart >= 4:
            (size,) = unpack(self.rbuf, self.rstart)
            if size < 0 or size > MAX_FRAME:
                return f"receive failed: bad batch length {size}"
            have = self.rend - self.rstart - 4
            start = self.rstart + 4
            if have >= size:
                self.rstart = start + size
                self.events.handle_batch(self, bytes(view[start : start + size]))
                if self.closed:
                    return None
                continue
            if size + 4 > len(self.rbuf):  # too big for rbuf: read the rest into a buffer of its own
                loop = self.loop
                buf = loop.spare if loop is not None else None
                if buf is not None and len(buf) >= size:
                    loop.spare = None
                else:
                    buf = bytearray(size)
                big = memoryview(buf)[:size]
                big[:have] = view[start : self.rend]
                self.big, self.big_buf, self.big_pos = big, buf, have
                self.rstart = self.rend = 0
                return None
            break
        if self.rstart == self.rend:
            self.rstart = self.rend = 0
        elif len(self.rbuf) - self.rstart < 4 + _RBUF // 4:
            self._compact()
        return None

    # -- life cycle ---------------------------------------------------------------
    def flush(self, deadline: float) -> None:
        """Wait (until ``deadline``) for queued frames of an established connection to go out."""
        with self.cond:
            while self.up and self.loop is not None and (self.out or self.inflight is not None) and not self.io_done:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.loop.dirty(self)
                self.cond.wait(min(left, 0.05))

    def close(self) -> None:
        """Any thread: end the connection; the loop closes the socket (or this, before the loop has it)."""
        with self.cond:
            self.closed = True
            self.out.clear()
            self.cond.notify_all()
            loop = self.loop
        if loop is not None:
            loop.drop(self)
        elif self.conn is not None and not getattr(self.conn, "closed", True):
            self.events.close_private(self.conn)

    def close_io(self) -> None:
        """Loop: close the socket (once)."""
        if self.io_done:
            return
        with self.cond:
            self.io_done = True
            self.out.clear()
            self.inflight = None
            self.cond.notify_all()
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.events.close_private(self.sock)
        self.big = self.big_buf = None
