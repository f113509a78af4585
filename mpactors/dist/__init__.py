"""Node to node: authenticated connections, the transitive mesh, failure detection.

:class:`Distribution` is a node's distribution layer (OTP's ``net_kernel``):
it listens with a ``multiprocessing.connection.Listener``, registers its port
with the host's port mapper and owns the table of connections to other nodes
(``peers``, kernel thread). The node wires it into the kernel as a
:class:`~mpactors._core._ports.DistPort`; it is composed of one part per
concept:

* :mod:`._handshake` - the handshake, both sides (step table there), and
  :mod:`._auth` its cookie challenge; :mod:`._tls` the optional TLS carrier;
* :mod:`._peer` - one connection: send and receive buffers, ticks;
* :mod:`._loop` - the node's one event loop thread: the router pipe and every
  established connection (reads, writes, ticks, the net tick timeout);
* :mod:`._router` - local processes' remote sends out, incoming frames in;
* :mod:`._control` - control frames (links, monitors, exit signals, spawn,
  info) <-> calls of the core's public methods;
* :mod:`._nodedown` - a lost connection (ticks stopped, end of file) becomes
  ``kernel.node_down``;
* :mod:`._wire` - the frames on an established connection (byte table).

The kernel never waits on the network: handshakes run in short-lived threads
of their own and hand their result to the kernel thread with ``kernel.cast``;
the established connection's socket then belongs to the event loop.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple, Union

from .. import config
from .._core._kernel import Kernel
from .._core._ports import DEFER, Reply
from ..cookie import Cookie, resolve_cookie
from ..errors import EpmdError, NodeError
from ..pid import Pid, Ref
from . import _listen
from ._registration import NoRegistration, RegistrationKeeper
from ._seeds import SeedKeeper
from ..tls import TLS
from ._auth import AuthFailed
from ._control import Control
from ._handshake import DUPLICATE, PROTOCOL_VERSION, Identity, accept, ask_alive, dial, refuse, send_ok, set_timeouts
from ._loop import EventLoop
from ._nodedown import NodeDownDetector, tick_interval
from ._peer import Buffer, Peer
from ._router import Router
from ._tls import Transport

__all__ = ["Distribution", "NodeOptions", "PROTOCOL_VERSION", "start"]

log = logging.getLogger(__name__)


class NodeOptions(Protocol):
    """The settings of a ``mpactors.Node`` that the distribution layer reads."""

    name: str
    hidden: bool
    ticktime: float
    tls: Optional[TLS]
    cookie_setting: Any  # the ``cookie`` argument as given (resolved here)
    listening: _listen.Listening  # where to listen and how to find peers' ports
    seeds: List[str]  # nodes to keep connected to (dist._seeds)


class Distribution:
    """A node's distribution layer: listener, port mapper registration, peers.

    ``peers`` is owned by the kernel thread; the event loop hands events to
    it with ``kernel.cast``.
    """

    kernel: Kernel  # set by ``start``

    def __init__(self, node: NodeOptions) -> None:
        self.name: str = node.name
        self.hidden: bool = node.hidden
        self.ticktime: float = node.ticktime
        self.cookie: Cookie = resolve_cookie(node.cookie_setting)
        tls: Optional[TLS] = node.tls if node.tls is not None else TLS.from_env()
        self.transport = Transport(tls)  # reads the TLS files: fail before registering
        self.node_cookies: Dict[str, Cookie] = {}
        self.peers: Dict[str, Peer] = {}
        self.closing = False
        self.last_failure: Dict[str, str] = {}  # node -> why the last attempt to connect failed
        alive, _, _host = self.name.partition("@")
        self.listening: _listen.Listening = node.listening
        self.listener = self.listening.listen()  # port_range, interface, dist_port (dist._listen)
        self.port = self.listener.address[1]
        try:
            self.registration: Any = (
                RegistrationKeeper(alive, self.port, self.hidden, _host) if self.listening.uses_port_mapper else NoRegistration()
            )
        except (EpmdError, NodeError) as exc:
            self.listener.close()
            if "already in use" in str(exc):
                raise NodeError(f"node name {self.name!r} is already in use on this host") from None
            raise
        self.creation = self.registration.creation
        self.identity = Identity(self.name, self.creation, self.hidden, self.ticktime)
        self.seeds = SeedKeeper(self, node.seeds)

    def _listen_socket(self) -> socket.socket:
        # multiprocessing.connection.Listener has no public accessor for its
        # socket; actors must not inherit it, and only shutdown() wakes accept().
        return self.listener._listener._socket  # type: ignore[attr-defined,no-any-return]

    def private_fds(self) -> List[int]:
        """Descriptors an actor forked from the node must close."""
        return [self._listen_socket().fileno(), *self.registration.fds(), self.router.private_fd, *self.loop.fds()]

    def start(self, kernel: Kernel) -> None:
        """Build the parts that need the kernel and start the accept and event loop threads."""
        self.kernel = kernel
        self.router = Router(self, kernel)
        self.route_conn: Connection = self.router.conn
        self.control = Control(self, kernel)
        self.detector = NodeDownDetector(kernel, self.peers, self.control, self._fire_waiters)
        self.loop = EventLoop(self.router.private_fd, self.router.drain, self.connection_lost, kernel.private_fds,
                              kernel.close_private)
        threading.Thread(target=self._accept_loop, name="mpactors-dist-accept", daemon=True).start()
        self.loop.start()
        self.registration.start(kernel)
        self.seeds.start()

    # -- accepting ---------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self.closing:
            try:
                conn = self.listener.accept()  # no authkey here: see _handshake.accept
                addr = self.listener.last_accepted
            except OSError:
                if self.closing:
                    return
                continue
            threading.Thread(target=self._accept_one, args=(conn, addr), daemon=True).start()

    def _accept_one(self, conn: Connection, addr: Tuple[str, int]) -> None:
        # Authentication runs here, in a thread per connection and with a
        # deadline, so a client that connects and says nothing stalls no one.
        address = f"{addr[0]}:{addr[1]}"
        try:
            accepted = accept(conn, self.transport, self.identity, self._cookie_for)
        except (AuthFailed, EOFError, OSError, ValueError) as exc:
            log.error("Connection attempt from %s rejected: %s", address, exc)
            return
        except Exception as exc:  # noqa: BLE001 - hostile bytes must not kill the node
            log.error("Connection attempt from %s rejected: bad handshake: %s", address, exc)
            return
        if accepted is not None:
            self.kernel.cast(self._accepted, accepted[0], accepted[1], address)

    def _cookie_for(self, node: str) -> Cookie:
        return self.node_cookies.get(node, self.cookie)

    def _accepted(self, conn: Connection, hello: tuple, address: str, replace: bool = False) -> None:
        """Kernel thread: step 5 on an accepted, authenticated connection."""
        _, name, creation, _, hidden, ticktime, compat = hello
        peer = self.peers.get(name)
        if peer is not None and peer.up:
            if peer.creation != creation or replace:
                # An earlier incarnation, or a connection the dialer says is
                # dead on its side (its end of file has not reached us yet).
                why = "replaced by a new incarnation" if peer.creation != creation else "replaced by a new connection"
                self.connection_lost(peer, why)
                peer = None
            else:
                # Erlang's 'alive' status: ask the dialer (in a thread: the
                # kernel never waits on a peer).
                threading.Thread(target=self._ask_alive, args=(conn, hello, address), daemon=True).start()
                return
        if peer is not None and not peer.up and peer.conn is None and self.name > name:
            refuse(conn, "duplicate: simultaneous connect")  # our own outgoing attempt wins
            return
        if not send_ok(conn, self.identity):
            return
        if peer is None:
            peer = self.peers[name] = Peer(self, name, self.ticktime)
        peer.compat = compat
        self._established(peer, conn, creation, hidden, ticktime)

    def _ask_alive(self, conn: Connection, hello: tuple, address: str) -> None:
        replace = ask_alive(conn)
        if replace:
            self.kernel.cast(self._accepted, conn, hello, address, True)
        elif replace is not None:
            self.kernel.cast(refuse, conn, "duplicate: already connected")

    # -- connecting --------------------------------------------------------------
    def connect(self, name: str, done: Optional[Callable[[bool], None]] = None) -> Peer:
        """Kernel thread: the peer for ``name``, connecting in the background if needed."""
        peer = self.peers.get(name)
        if peer is not None:
            if done is not None:
                if peer.up:
                    done(True)
                else:
                    peer.waiters.append(done)
            return peer
        peer = self.peers[name] = Peer(self, name, self.ticktime)
        if done is not None:
            peer.waiters.append(done)
        threading.Thread(target=self._connect_thread, args=(peer,), name=f"mpactors-connect {name}", daemon=True).start()
        return peer

    def _connect_thread(self, peer: Peer) -> None:
        result: Union[Tuple[Connection, tuple], str, None]
        try:
            result = dial(peer.name, self.identity, self.transport, self._cookie_for(peer.name), lambda: peer.up,
                          self.listening)
        except Exception as exc:  # noqa: BLE001 - every failure is a 'pang'
            log.info("cannot connect to %s: %s", peer.name, exc)
            self.last_failure[peer.name] = str(exc)  # for the caller's error (Control.request)
            result = None
        self.kernel.cast(self._dialled, peer, result)

    def _dialled(self, peer: Peer, result: Union[Tuple[Connection, tuple], str, None]) -> None:
        """Kernel thread: an outgoing attempt finished."""
        if self.peers.get(peer.name) is not peer or peer.up:
            if isinstance(result, tuple):
                result[0].close()
            return
        if result == DUPLICATE:
            # Lost a simultaneous connect: the peer's own connection is on its
            # way in; give up only if it does not arrive.
            self.kernel.timer(config.HANDSHAKE_TIMEOUT, lambda: self._dialled(peer, None))
            return
        if not isinstance(result, tuple):
            if peer.conn is None and not peer.up:
                self.peers.pop(peer.name, None)
                peer.closed = True
                self._fire_waiters(peer, False)
            return
        conn, (_, name, creation, hidden, ticktime, peer.compat) = result
        self._established(peer, conn, creation, hidden, ticktime)

    def _established(self, peer: Peer, conn: Connection, creation: int, hidden: bool, ticktime: float) -> None:
        set_timeouts(conn, 0)
        sock, tls = self.transport.established(conn)
        self.kernel.private_fds.add(sock.fileno())
        if not tls:
            self.kernel.close_private(conn)  # the loop has a duplicate
        peer.conn = conn
        peer.creation = creation
        peer.hidden = bool(hidden)
        peer.tick_interval = tick_interval(self.ticktime, ticktime)
        with peer.cond:
            peer.sock, peer.tls = sock, tls
            peer.loop = self.loop
            peer.up = True
        self.loop.add(peer)
        log.log(logging.DEBUG if peer.hidden else logging.INFO, "connected to %s%s", peer.name, " (hidden)" if peer.hidden else "")
        if not self.hidden and not peer.hidden:
            peer.ctrl("peers", self.visible_nodes())
            self.kernel.node_up(peer.name)
        self._fire_waiters(peer, True)

    def _fire_waiters(self, peer: Peer, ok: bool) -> None:
        waiters, peer.waiters = peer.waiters, []
        for fn in waiters:
            fn(ok)

    # -- events of peers and the router (PeerEvents, RouterOwner) ------------------
    def handle_batch(self, peer: Peer, data: Buffer) -> None:
        """Event loop: a batch of frames from ``peer``."""
        self.router.deliver(peer, data)

    def handle_ctrl(self, peer: Peer, msg: tuple) -> None:
        """Kernel thread: a control message from ``peer``."""
        self.control.handle(peer, msg)

    def connection_lost(self, peer: Peer, why: str) -> None:
        """Any thread: the connection to ``peer`` is gone."""
        self.detector.connection_lost(peer, why)

    def close_private(self, closable: Any) -> None:
        self.kernel.close_private(closable)

    # -- DistPort: what the kernel asks ------------------------------------------------
    def route(self, dest: Any, payload: bytes) -> None:
        self.router.route(dest, payload)

    def drain_router(self) -> bool:
        return self.router.drain()

    def link(self, caller: Pid, pid: Pid) -> None:
        self.control.link(caller, pid)

    def unlink(self, caller: Pid, pid: Pid) -> None:
        self.control.unlink(caller, pid)

    def exit_signal(self, frm: Pid, to: Pid, reason: Any, link: bool) -> None:
        self.control.exit_signal(frm, to, reason, link)

    def monitor(self, watcher: Pid, target: Any, ref: Ref) -> None:
        self.control.monitor(watcher, target, ref)

    def demonitor(self, ref: Ref, target: Any) -> None:
        self.control.demonitor(ref, target)

    def down(self, ref: Ref, target: Any, reason: Any, watcher: Pid) -> None:
        self.control.down(ref, target, reason, watcher)

    def trace(self, pid: Pid, flag: bool, tracer: Pid) -> None:
        self.control.trace(pid, flag, tracer)

    def remote_spawn(
        self, caller: Pid, node: str, payload: bytes, fn_name: str, link: bool, monitor: bool, reply: Reply
    ) -> Any:
        return self.control.remote_spawn(caller, node, payload, fn_name, link, monitor, reply)

    def process_info(self, caller: Pid, pid: Pid, reply: Reply) -> Any:
        return self.control.process_info(caller, pid, reply)

    def visible_nodes(self) -> List[str]:
        """Nodes connected visibly: a hidden node's own connections are all hidden (Erlang)."""
        if self.hidden:
            return []
        return sorted(n for n, p in self.peers.items() if p.up and not p.hidden)

    def connected_nodes(self, kind: str) -> List[str]:
        """``nodes(kind)``: ``'visible'``, ``'hidden'`` or ``'connected'`` (both)."""
        up = sorted(n for n, p in self.peers.items() if p.up)
        visible = self.visible_nodes()
        if kind == "visible":
            return visible
        if kind == "hidden":
            return [n for n in up if n not in visible]
        return up

    def is_connected(self, node: str) -> bool:
        peer = self.peers.get(node)
        return peer is not None and peer.up

    def get_cookie(self, node: Optional[str]) -> Cookie:
        return self._cookie_for(node) if node else self.cookie

    def set_cookie(self, cookie: Cookie, node: Optional[str]) -> None:
        if node:
            self.node_cookies[node] = cookie
        else:
            self.cookie = cookie

    def ping(self, node: str, reply: Reply) -> Any:
        if node == self.name:
            return "pong"

        def done(ok: bool) -> None:
            self.kernel.reply(reply, True, "pong" if ok else "pang")

        self.connect(node, done)
        return DEFER

    def disconnect(self, node: str) -> bool:
        peer = self.peers.get(node)
        if peer is None:
            return False
        self.connection_lost(peer, "disconnect_node")
        return True

    def close(self) -> None:
        """Kernel thread, at node stop: drop every connection and the registration."""
        self.closing = True
        self.seeds.close()
        self.drain_router()
        deadline = time.monotonic() + config.STOP_TIMEOUT
        for peer in list(self.peers.values()):
            peer.flush(deadline)  # what the node sent before stopping still goes out
        for peer in list(self.peers.values()):
            peer.up = False
            peer.close()
        self.peers.clear()
        try:
            self._listen_socket().shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.registration.close()
        self.router.close()
        self.loop.stop(config.STOP_TIMEOUT)


def start(node: NodeOptions) -> Distribution:
    """Bind the listener and register with the port mapper (before the kernel exists)."""
    return Distribution(node)
