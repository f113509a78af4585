"""Node-down detection: how a lost connection becomes ``node_down`` in the core.

A connection is lost when (all seen by the node's event loop,
:mod:`mpactors.dist._loop`, on a :class:`~mpactors.dist._peer.Peer`):

* **ticks stop**: the loop sends a TICK on a connection after ``ticktime/4``
  of silence, so a peer it hears nothing from for ``ticktime`` is declared
  down (``net tick timeout``, as in Erlang; checked when its select times out);
* the peer closes it (end of file), or a send or receive fails;
* the node asks (``disconnect_node``), or a new connection replaces it.

:meth:`NodeDownDetector.connection_lost` then runs once per connection, in
the kernel thread: it drops the peer, fails requests waiting on it, logs the
loss (a warning unless it was orderly) and calls ``kernel.node_down``, where
the consequences - links broken and monitors fired with ``'noconnection'``,
``NodeDown`` to watchers - are the core's (:mod:`mpactors._core._links`).
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Dict

from .._core._kernel import Kernel
from ._control import Control
from ._peer import Peer

__all__ = ["NodeDownDetector", "tick_interval"]

log = logging.getLogger("mpactors.dist")


def tick_interval(ours: float, theirs: float) -> float:
    """Seconds of silence after which the event loop sends a TICK: a quarter of the smaller ticktime."""
    return min(ours, float(theirs)) / 4


class NodeDownDetector:
    """Turns a lost connection into a node down, once (kernel thread)."""

    def __init__(
        self, kernel: Kernel, peers: Dict[str, Peer], control: Control, fire_waiters: Callable[[Peer, bool], None]
    ) -> None:
        self.kernel = kernel
        self.peers = peers  # the distribution layer's table (kernel thread)
        self.control = control
        self.fire_waiters = fire_waiters

    def connection_lost(self, peer: Peer, why: str) -> None:
        """Any thread: the connection to ``peer`` is gone."""
        if threading.current_thread() is not self.kernel.thread:
            self.kernel.cast(self.connection_lost, peer, why)
            return
        if peer.closed and self.peers.get(peer.name) is not peer:
            return
        was_up = peer.up
        peer.up = False
        peer.close()  # the event loop closes the socket (Kernel.close_private)
        if self.peers.get(peer.name) is peer:
            del self.peers[peer.name]
        self.fire_waiters(peer, False)
        if was_up:
            orderly = why in ("closed by peer", "disconnect_node") or why.startswith("replaced by")
            level = logging.DEBUG if peer.hidden else logging.INFO if orderly else logging.WARNING
            log.log(level, "node %s down: %s", peer.name, why)
            self.control.fail_pending(peer.name)
            self.kernel.node_down(peer.name)
