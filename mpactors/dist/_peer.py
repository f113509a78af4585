"""One connection to another node: batching writer, reader, ticks.

Frames on an established connection are described in :mod:`mpactors.dist._wire`.
A :class:`Peer` is created pending (frames queue up) and becomes *up* once
the handshake is done; its writer thread sends batches and ticks, its reader
thread hands batches to its owner (:class:`PeerEvents`, the distribution
layer) and reports a lost connection - end of file, an error, or silence
past ``ticktime`` (the net tick timeout) - which :mod:`mpactors.dist._nodedown`
turns into a node down.
"""
from __future__ import annotations

import collections
import select
import socket
import struct
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Callable, Deque, Dict, List, Optional, Protocol, Tuple, Union

from .. import _codec
from ._faults import is_blocked
from ._handshake import shutdown_conn
from ._wire import CTRL, FRAME, LEN, MAX_FRAME, TICK

__all__ = ["Peer", "PeerEvents"]


class PeerEvents(Protocol):
    """What a :class:`Peer`'s threads tell their owner (the distribution layer)."""

    def handle_batch(self, peer: Peer, data: bytes) -> None:
        """Reader thread: a batch of frames arrived."""

    def connection_lost(self, peer: Peer, why: str) -> None:
        """Any thread: the connection is gone (``why`` says how)."""

    def close_private(self, closable: Union[socket.socket, Connection]) -> None:
        """Close a node-private descriptor (actors forked later must not see its number)."""


class Peer:
    """One connection to another node (pending until the handshake is done).

    Frames queued while the connection is pending, or while a send is in
    progress, go out in one batch from the writer thread. When the link is
    idle, ``put`` sends straight from the calling thread (non-blocking; the
    writer finishes whatever the socket did not take), which saves a thread
    switch per message.
    """

    def __init__(self, events: PeerEvents, name: str, ticktime: float) -> None:
        self.events = events
        self.name = name
        self.ticktime = ticktime  # silence past this is a lost connection
        self.conn: Optional[Connection] = None
        self.sock: Optional[socket.socket] = None  # a dup of conn's socket, for sends
        self.direct = True  # any thread may send on ``sock`` (not over TLS: the writer only)
        self.creation = 0
        self.hidden = False
        self.compat: Optional[Dict[str, Any]] = None  # the peer's dist._compat info, once up
        self.up = False
        self.closed = False
        self.outgoing: Deque[bytes] = collections.deque()
        self.partial = b""  # the rest of a direct send the socket did not take
        self.busy = False  # a thread is sending on the socket
        self.cond = threading.Condition()
        self.tick_interval = ticktime / 4
        self.last_send = time.monotonic()
        self.waiters: List[Callable[[bool], None]] = []
        # Once its threads run, only the reader closes ``conn`` and only the
        # writer closes ``sock``; others shut the socket down to wake them.
        # Closing a descriptor under a thread that still uses it would let
        # that thread read or write whatever socket reuses the number next.
        self.threads = False
        self.io_lock = threading.Lock()
        # Batches handed to the kernel thread and not yet delivered (under
        # ``cond``): while any are, later batches follow them there.
        self.in_kernel = 0

    # -- sending (any thread) ----------------------------------------------
    def put(self, kind: int, body: bytes) -> None:
        self._put(FRAME.pack(kind, len(body)) + body)

    def put_many(self, items: List[Tuple[int, bytes]]) -> None:
        """Several frames in one message on the wire (the router's batches)."""
        pack = FRAME.pack
        self._put(b"".join(pack(kind, len(body)) + body for kind, body in items))

    def _put(self, frame: bytes) -> None:
        with self.cond:
            if self.closed or is_blocked(self.name):  # a cut link (dist._faults) drops it
                return
            if not self.up or not self.direct or self.busy or self.outgoing or self.partial:
                self.outgoing.append(frame)
                self.cond.notify()
                return
            self.busy = True
        data = LEN.pack(len(frame)) + frame
        sent = 0
        try:
            sent = self.sock.send(data, socket.MSG_DONTWAIT)  # type: ignore[union-attr]
        except BlockingIOError:
            pass
        except OSError:
            sent = len(data)  # broken: the reader thread reports the loss
        with self.cond:
            if sent < len(data):
                self.partial = data[sent:]
            self.busy = False
            self.last_send = time.monotonic()
            if self.partial or self.outgoing:
                self.cond.notify()

    def ctrl(self, *msg: Any) -> None:
        self.put(CTRL, _codec.dumps(msg))

    def _next_batch(self) -> Optional[bytes]:
        """Writer thread: wait for something to send (or a tick); None when closed."""
        with self.cond:
            while not self.closed and (self.busy or not (self.outgoing or self.partial)):
                wait = self.last_send + self.tick_interval - time.monotonic()
                if wait <= 0 and not self.busy:
                    break
                self.cond.wait(wait if wait > 0 else self.tick_interval)
            if self.closed:
                return None
            data, self.partial = self.partial, b""
            if self.outgoing:
                batch = b"".join(self.outgoing)
                self.outgoing.clear()
                data += LEN.pack(len(batch)) + batch
            elif not data:
                data = LEN.pack(FRAME.size) + FRAME.pack(TICK, 0)
            self.busy = True
            return data

    def _writer(self) -> None:
        sock = self.sock
        assert sock is not None
        try:
            self._write_loop(sock)
        finally:
            with self.cond:
                while self.busy:  # a direct send from put() is still using the socket
                    self.cond.wait(0.1)
                self.busy = True  # and none may start now
            with self.io_lock:
                self.events.close_private(sock)

    def _write_loop(self, sock: socket.socket) -> None:
        try:
            while True:
                data = self._next_batch()
                if data is None:
                    return
                try:
                    if not is_blocked(self.name):  # a cut link (dist._faults): bytes vanish
                        sock.sendall(data)
                finally:
                    with self.cond:
                        self.busy = False
                        self.last_send = time.monotonic()
                        self.cond.notify_all()
        except (OSError, ValueError) as exc:
            if not self.closed:
                self.events.connection_lost(self, f"send failed: {exc}")

    def _reader(self) -> None:
        conn = self.conn
        assert conn is not None
        try:
            self._read_loop(conn)
        finally:
            with self.io_lock:
                self.events.close_private(conn)

    def _read_loop(self, conn: Connection) -> None:
        timeout = self.ticktime
        poller = select.poll()  # kept: Connection.poll() builds a selector per call
        poller.register(conn.fileno(), select.POLLIN)
        timeout_ms = int(timeout * 1000)
        # Over TLS, decrypted bytes may wait in the SSL object, unseen by poll.
        ready = (lambda: poller.poll(timeout_ms)) if isinstance(conn, Connection) else (lambda: conn.poll(timeout))
        try:
            while True:
                if not ready():
                    self.events.connection_lost(self, f"silent for {timeout:g} s (net tick timeout)")
                    return
                data = conn.recv_bytes(MAX_FRAME)
                self.events.handle_batch(self, data)
        except (EOFError, OSError, ValueError, TypeError) as exc:
            # (TypeError: the connection was closed under us, its handle is None)
            if not self.closed:
                why = "closed by peer" if isinstance(exc, EOFError) else f"receive failed: {exc}"
                self.events.connection_lost(self, why)

    def start(self) -> None:
        self.threads = True
        for fn, what in ((self._reader, "reader"), (self._writer, "writer")):
            threading.Thread(target=fn, name=f"mpactors-dist-{what} {self.name}", daemon=True).start()

    def flush(self, deadline: float) -> None:
        """Wait (until ``deadline``) for queued frames of an established connection to go out."""
        with self.cond:
            while self.up and (self.outgoing or self.partial or self.busy):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.cond.notify_all()
                self.cond.wait(left)

    def close(self) -> None:
        """Any thread: end the connection; its reader and writer close the descriptors."""
        with self.cond:
            self.closed = True
            self.outgoing.clear()
            self.cond.notify_all()
        with self.io_lock:
            if self.conn is not None and not self.conn.closed:
                shutdown_conn(self.conn)
                if not self.threads:
                    self.events.close_private(self.conn)
            if self.sock is not None and not self.threads:
                self.events.close_private(self.sock)
