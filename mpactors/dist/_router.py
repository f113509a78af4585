"""The router: messages between local processes and other nodes, both ways.

Outgoing: every local process writes its remote sends into its node's router
pipe (:mod:`mpactors._core._route`); :meth:`Router.drain` (the node's event
loop, :mod:`mpactors.dist._loop`, when the pipe is readable, or the kernel
before it sends a signal) forwards each body, unchanged and uncopied, to the
connection for its node, one batch per peer per drain.

Incoming: the event loop hands each batch read from a peer to :meth:`Router.deliver`.
MSG and NAMED frames go straight into local mailboxes; from the first CTRL
frame on, the rest of the batch - and every batch after it until the kernel
has caught up - goes to the kernel thread, so a message never overtakes a
signal sent before it.
"""
from __future__ import annotations

import logging
import threading
from multiprocessing.connection import Connection
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple, cast

from .. import _codec, config
from .._core._kernel import Kernel
from .._core._route import route_head
from .._core._bulk import load as load_bulk
from .._core._ring import RecvRings
from .._core.mailbox import REMOTE_SENDER, MailboxWriter, RawReader, make_pipe
from ..errors import MpactorsError
from ._peer import Buffer, Peer
from ._wire import CTRL, FRAME, MSG, MSG_HDR, NAME_HDR, NAMED, ROUTE, TICK

__all__ = ["Router", "RouterOwner"]

log = logging.getLogger("mpactors.dist")


class RouterOwner(Protocol):
    """What the :class:`Router` needs of the distribution layer."""

    name: str
    closing: bool
    peers: Dict[str, Peer]

    def connect(self, name: str, done: Optional[Callable[[bool], None]] = None) -> Peer:
        """Kernel thread: the peer for ``name``, connecting if needed."""

    def handle_ctrl(self, peer: Peer, msg: tuple) -> None:
        """Kernel thread: a decoded control message."""

    def connection_lost(self, peer: Peer, why: str) -> None:
        """Any thread: the connection to ``peer`` is gone."""


class _RouteReader(RawReader):
    """The router pipe's reader: a record in shared memory is sent from there.

    A record in its own file (``_bulk``): the mapping (an ``mmap``) is queued
    as the record's body, and the event loop sends from it; it is unmapped
    when the last view of it has been written. A record in the writer's ring
    (``_ring``, up to ``_ring.BIG_MAX``): a ``memoryview`` of the ring is
    queued, and the ring's space is given back only by :meth:`release`, once
    the router has sent what the sockets took and copied the rest
    (:meth:`Router.drain`). Either way no copy of a large message is made in
    the sending node while its connection keeps up.
    """

    def __init__(self, fd: int, owner: str = "") -> None:
        super().__init__(fd, owner)
        #: Rings whose space is held by queued views: id(mapping) -> (mapping, end of the last record).
        self.held: Dict[int, Tuple[Any, int]] = {}

    def _deliver_ring(self, ref: bytes, ospid: int, sender: int, flags: int) -> None:
        rings = self._rings
        if rings is None:
            rings = self._rings = RecvRings()
        try:
            mm, offset, n, end = rings.open(ref, ospid)
        except (OSError, ValueError) as exc:
            log.error("the router lost a message from local process %d: %s", sender, exc)
            return
        self.queue.append(memoryview(mm)[offset : offset + n])
        self.held[id(mm)] = (mm, end)  # one writer's frames come in ring order: the last end is the furthest

    def release(self) -> None:
        """The views handed out are sent or copied: give their rings' space back to the writers."""
        held, self.held = self.held, {}
        for mm, end in held.values():
            try:
                RecvRings.done(mm, end)
            except ValueError:  # pragma: no cover - unmapped meanwhile (its writer died)
                pass

    def _deliver_bulk(self, ref: bytes, sender: int, flags: int) -> None:
        try:
            body = load_bulk(ref)
        except (OSError, ValueError) as exc:
            log.error("the router lost a large message from local process %d: %s", sender, exc)
            return
        self.queue.append(body)


class Router:
    """The router pipe (read by the event loop); delivery of incoming frames."""

    def __init__(self, owner: RouterOwner, kernel: Kernel) -> None:
        self.owner = owner
        self.kernel = kernel
        r, w = make_pipe()
        self.reader = _RouteReader(r, owner="router")
        self.lock = threading.Lock()
        # Every local process writes its remote sends here (the write end is
        # inherited or passed like a mailbox's); actors keep it, the read end
        # stays in the node.
        self.conn = Connection(w, readable=False)
        self.writer = MailboxWriter(w, big=True)
        self.private_fd = r

    def close(self) -> None:
        self.writer.dead = True
        self.conn.close()

    # -- outgoing -------------------------------------------------------------------
    def route(self, dest: object, payload: bytes) -> None:
        """Any thread: send pickled ``payload`` to a remote pid or ``(name, node)``.

        Through the router pipe, like every local process's remote sends: the
        router connects when needed, and the kernel drains it before it sends
        a signal, so order holds.
        """
        self.writer.put(payload, 0, head=route_head(dest))

    def drain(self) -> bool:
        """Forward every remote send written so far; False once the router is closed.

        The kernel calls it before it sends a signal to another node, so a
        process's messages always go out before its exit signal or ``Down``.
        """
        if not self.lock.acquire(timeout=config.CONNECT_TIMEOUT):
            return True
        try:
            bodies, alive = self.reader.take()
            held = self.reader.held
            by_node: Dict[str, List[Tuple[int, Buffer]]] = {}
            for body in bodies:  # one message on the wire per peer per drain
                kind, n = ROUTE.unpack_from(body)
                node = bytes(body[3 : 3 + n]).decode("utf-8", "replace")
                rest = body[3 + n :] if len(body) < 4096 else memoryview(body)[3 + n :]  # large: no copy
                by_node.setdefault(node, []).append((kind, rest))
            try:
                for node, items in by_node.items():
                    peer = self._send_to(node, items)
                    if held and peer is not None:  # what the socket did not take is copied
                        peer.copy_views(held, 1 + 2 * len(items))
            finally:
                if held:
                    self.reader.release()
            return alive
        except OSError:
            return False
        finally:
            self.lock.release()

    def _send_to(self, node: str, items: List[Tuple[int, Buffer]]) -> Optional[Peer]:
        """Queue ``items`` on the connection to ``node``; the peer, or None if they were dropped."""
        peer = self.owner.peers.get(node)
        if peer is None or peer.closed:
            if node == self.owner.name or self.owner.closing:
                return None
            try:
                peer = self.kernel.call(self.owner.connect, node, timeout=config.CONNECT_TIMEOUT)
            except MpactorsError:
                return None  # the node is stopping
        peer.put_many(items)
        return peer

    # -- incoming ---------------------------------------------------------------------
    def deliver(self, peer: Peer, data: Buffer) -> None:
        """Event loop: deliver a batch of frames from ``peer`` (order kept, see above)."""
        with peer.cond:
            if peer.in_kernel:
                peer.in_kernel += 1
                self.kernel.cast(self._kernel_batch, peer, bytes(data), 0)  # ``data`` may be reused
                return
        start = self._deliver_frames(peer, data, 0, stop_at_ctrl=True)
        if start is not None:
            with peer.cond:
                peer.in_kernel += 1
            self.kernel.cast(self._kernel_batch, peer, data if type(data) is bytes else bytes(data), start)

    def _kernel_batch(self, peer: Peer, data: Buffer, start: int) -> None:
        """Kernel thread: the rest of a batch, control messages included, in order."""
        try:
            self._deliver_frames(peer, data, start, stop_at_ctrl=False)
        finally:
            with peer.cond:
                peer.in_kernel -= 1

    def _deliver_frames(self, peer: Peer, data: Buffer, pos: int, stop_at_ctrl: bool) -> Optional[int]:
        """Deliver frames from ``pos``; with ``stop_at_ctrl``, the offset of the first control frame.

        Consecutive messages for one mailbox go in as few pipe writes as
        possible; anything else flushes them first, so order holds. A large
        batch (a buffer of its own) is read through a memoryview: its bodies
        reach the mailbox writer (or its shared-memory file) uncopied.
        """
        end = len(data)
        if end > 65536 and not isinstance(data, memoryview):
            data = memoryview(data)
        unpack = FRAME.unpack_from
        writer_for, whereis = self.kernel.writer_for, self.kernel.whereis
        target: Optional[MailboxWriter] = None
        pending: List[Buffer] = []
        while pos < end:
            kind, n = unpack(data, pos)
            if kind == CTRL and stop_at_ctrl:
                break
            body = data[pos + 5 : pos + 5 + n]
            pos += 5 + n
            w = None
            if kind == MSG:
                aid, creation = MSG_HDR.unpack_from(body)
                w = writer_for(aid, creation)
                payload = body[8:]
            elif kind == NAMED:
                (k,) = NAME_HDR.unpack_from(body)
                pid = whereis(bytes(body[2 : 2 + k]).decode("utf-8", "replace"))
                w = writer_for(pid.id, pid.creation) if pid is not None else None
                payload = body[2 + k :]
            if w is not None:
                if w is not target:
                    if target is not None and pending:
                        target.put_many(cast(List[bytes], pending), REMOTE_SENDER)
                    target, pending = w, []
                pending.append(payload)
                continue
            if kind in (MSG, NAMED):
                continue  # no such process: dropped, as in Erlang
            if target is not None and pending:
                target.put_many(cast(List[bytes], pending), REMOTE_SENDER)
                target, pending = None, []
            if kind == CTRL:
                try:
                    msg = _codec.loads(bytes(body))
                except Exception as exc:  # noqa: BLE001
                    log.error("dropped a control message from %s that cannot be unpickled: %s", peer.name, exc)
                    continue
                self.owner.handle_ctrl(peer, msg)
            elif kind != TICK:
                log.error("unknown frame kind %d from %s: connection dropped", kind, peer.name)
                self.owner.connection_lost(peer, f"unknown frame kind {kind}")
                return None
        if target is not None and pending:
            target.put_many(cast(List[bytes], pending), REMOTE_SENDER)
        return pos if pos < end else None

