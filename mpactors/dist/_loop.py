"""The node's event loop: one thread owns the router pipe and every established connection.

One ``epoll`` (``poll`` where there is none) loop per node, whatever the number of peers:

* the router pipe readable -> :meth:`Router.drain <mpactors.dist._router.Router.drain>`
  (local processes' remote sends, queued on their peers and written at once);
* a peer's socket readable -> :meth:`Peer.read_in <mpactors.dist._peer.Peer.read_in>`
  (whole batches into local mailboxes, control frames to the kernel thread);
* a peer's socket writable (only while it has frames the socket did not
  take) -> :meth:`Peer.write_out`;
* the select timeout -> a TICK on each connection silent for its tick
  interval, and a lost connection for each peer silent past its ticktime.

Other threads hand work over with :meth:`EventLoop.dirty` (a peer has frames to
write), :meth:`EventLoop.add` (a handshake finished: the loop takes the
socket) and :meth:`EventLoop.drop` (close a connection); each writes one byte
into the loop's wake pipe unless a wake is already pending. Only the loop
closes an established connection's socket, so no thread can use a descriptor
number after it was reused.
"""
from __future__ import annotations

import logging
import os
import select
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set

from ._peer import Peer

__all__ = ["EventLoop"]

log = logging.getLogger("mpactors.dist")

_READ, _WRITE = select.POLLIN, select.POLLOUT
_GONE = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)


class _Fd:
    """A bare descriptor, closable like a socket (for ``Kernel.close_private``)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        os.close(self.fd)


class _Poller:
    """``select.epoll`` (or ``select.poll``) with a timeout in seconds."""

    def __init__(self) -> None:
        epoll = getattr(select, "epoll", None)
        self.epoll = epoll is not None
        self.p: Any = epoll() if epoll is not None else select.poll()
        self.register, self.modify, self.unregister = self.p.register, self.p.modify, self.p.unregister

    def fileno(self) -> int:
        return int(self.p.fileno()) if self.epoll else -1

    def poll(self, timeout: float) -> List[Any]:
        if self.epoll:
            return self.p.poll(timeout)  # type: ignore[no-any-return]
        return self.p.poll(int(timeout * 1000 + 0.999))  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.epoll:
            self.p.close()


class EventLoop:
    """The event loop thread of a node's distribution layer."""

    def __init__(self, router_fd: int, drain: Callable[[], bool], lost: Callable[[Peer, str], None],
                 private_fds: Set[int], close_private: Callable[[Any], None]) -> None:
        self.sel = _Poller()
        self.router_fd = router_fd
        self.drain = drain
        self.lost = lost
        self.close_private = close_private
        self.ident: Optional[int] = None
        self.lock = threading.Lock()
        self._dirty: Set[Peer] = set()  # under ``lock``
        self._added: List[Peer] = []
        self._dropped: List[Peer] = []
        self._woken = False
        self._stopping = False
        self._closed = False
        self.peers: Dict[int, Peer] = {}  # fd -> peer (loop only)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        private_fds.update(self.fds())
        self.sel.register(self._wake_r, _READ)
        self.sel.register(router_fd, _READ)
        self.next_check = 0.0
        #: A large batch's receive buffer, kept for the next one (``Peer.read_in``; loop only).
        self.spare: Optional[bytearray] = None
        self.thread = threading.Thread(target=self._run, name="mpactors-dist-loop", daemon=True)

    def fds(self) -> List[int]:
        """The loop's own descriptors (node-private)."""
        return [fd for fd in (self._wake_r, self._wake_w, self.sel.fileno()) if fd >= 0]

    def start(self) -> None:
        self.thread.start()

    # -- any thread ------------------------------------------------------------
    def _wake(self) -> None:
        # (``lock`` held)
        if not self._woken and not self._closed:
            self._woken = True
            try:
                os.write(self._wake_w, b"!")
            except OSError:
                pass

    def dirty(self, peer: Peer) -> None:
        """``peer`` has frames to write."""
        if threading.get_ident() == self.ident:
            self._dirty.add(peer)  # written before the loop selects again
            return
        with self.lock:
            self._dirty.add(peer)
            self._wake()

    def add(self, peer: Peer) -> None:
        """Take ``peer``'s socket (a finished handshake)."""
        self._hand(self._added, peer)

    def drop(self, peer: Peer) -> None:
        """Close ``peer``'s socket."""
        self._hand(self._dropped, peer)

    def _hand(self, queue: List[Peer], peer: Peer) -> None:
        with self.lock:
            if not self._closed:
                queue.append(peer)
                self._wake()
                return
        peer.close_io()  # the loop has ended: nobody else uses the socket

    def stop(self, timeout: float) -> None:
        """Close every connection still open and end the thread."""
        with self.lock:
            self._stopping = True
            self._wake()
        if self.thread.is_alive() and threading.get_ident() != self.ident:
            self.thread.join(timeout)

    # -- the loop -------------------------------------------------------------------
    def _run(self) -> None:
        self.ident = threading.get_ident()
        try:
            while True:
                try:
                    if not self._step():
                        break
                except Exception:  # noqa: BLE001 - a bug must not end the node's distribution
                    log.exception("event loop step failed")
                    time.sleep(0.01)
        finally:
            with self.lock:
                self._closed = True
                left = [*self.peers.values(), *self._added, *self._dropped]
                self._added, self._dropped = [], []
            for peer in left:
                peer.close_io()
            self.peers.clear()
            for closable in (_Fd(self._wake_r), _Fd(self._wake_w), self.sel):
                self.close_private(closable)

    def _step(self) -> bool:
        if self._dirty:
            timeout = 0.0
        elif self.peers:
            timeout = max(0.0, self.next_check - time.monotonic())
        else:
            timeout = 3600.0
        events = self.sel.poll(timeout)
        for fd, mask in events:
            try:
                self._event(fd, mask)
            except Exception:  # noqa: BLE001 - the loop must outlive any one connection's failure
                if not self._stopping:
                    log.exception("event loop: failure handling descriptor %d", fd)
        if self._stopping:
            return False
        if self._dirty:
            self._write_dirty()
        now = time.monotonic()
        if now >= self.next_check:
            self._check(now)
        return True

    def _event(self, fd: int, mask: int) -> None:
        if fd == self._wake_r:
            self._handover()
        elif fd == self.router_fd:
            if not self.drain():
                self.sel.unregister(fd)
        else:
            peer = self.peers.get(fd)
            if peer is None:
                return
            if mask & (_READ | _GONE):
                why = peer.read_in()
                if why is not None:
                    self._lose(peer, why)
                    return
            if mask & _WRITE:
                self._dirty.add(peer)

    def _handover(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except OSError:
            pass
        with self.lock:
            self._woken = False
            added, self._added = self._added, []
            dropped, self._dropped = self._dropped, []
        for peer in added:
            self._register(peer)
        for peer in dropped:
            self._unregister(peer)

    def _register(self, peer: Peer) -> None:
        sock = peer.sock
        if peer.closed or sock is None:
            peer.close_io()
            return
        fd = sock.fileno()
        self.peers[fd] = peer
        self.sel.register(fd, _READ)
        peer.last_recv = peer.last_send = time.monotonic()
        self.next_check = 0.0
        why = peer.read_in()  # bytes that came with the handshake (TLS: already decrypted)
        if why is not None:
            self._lose(peer, why)
            return
        self._dirty.add(peer)

    def _unregister(self, peer: Peer) -> None:
        if peer.io_done:
            return
        if peer.sock is not None:
            fd = peer.sock.fileno()
            if self.peers.get(fd) is peer:
                del self.peers[fd]
                self.sel.unregister(fd)
        self._dirty.discard(peer)
        peer.close_io()

    def _lose(self, peer: Peer, why: str) -> None:
        self._unregister(peer)
        if not peer.closed:
            self.lost(peer, why)

    def _write_dirty(self) -> None:
        with self.lock:
            dirty, self._dirty = self._dirty, set()
        for peer in dirty:
            if peer.io_done or peer.sock is None or self.peers.get(peer.sock.fileno()) is not peer:
                continue
            left = peer.write_out()
            if left is None:
                self._lose(peer, "send failed")
                continue
            if left != peer.want_write:
                peer.want_write = left
                self.sel.modify(peer.sock.fileno(), _READ | _WRITE if left else _READ)

    def _check(self, now: float) -> None:
        """Ticks and the net tick timeout (every peer's deadlines; the next check at the earliest)."""
        nxt = now + 3600.0
        for peer in list(self.peers.values()):
            silent_since = peer.last_recv
            if now - silent_since >= peer.ticktime:
                self._lose(peer, f"silent for {peer.ticktime:g} s (net tick timeout)")
                continue
            if now - peer.last_send >= peer.tick_interval:
                peer.tick(now)
                self._dirty.add(peer)
            nxt = min(nxt, silent_since + peer.ticktime, peer.last_send + peer.tick_interval)
        self.next_check = nxt
        if self._dirty:
            self._write_dirty()
