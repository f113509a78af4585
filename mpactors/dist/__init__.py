"""Node to node: authenticated connections, the transitive mesh, failure detection.

Each named node listens with a ``multiprocessing.connection.Listener`` and
registers its port with the host's port mapper. There is one connection per
pair of nodes; either side may open it. Setting one up (the acceptor runs it
in a thread of its own with a deadline, so a silent client stalls nobody)::

    step  connecting node A                    accepting node B
    1     send  b"MPACTORS1 a@host"  ------->  read at most 256 bytes, not unpickled;
                                               pick the cookie for that node
    2     answer B's challenge       <-------  HMAC-SHA256 challenge (cookie as key)
    3     challenge B                ------->  answer   (both sides authenticated)
    4     send hello  ----------------------> hello    (first unpickled bytes)
          (name, creation, version, hidden, ticktime, compat)
    5     read verdict               <-------  ('ok', ..., compat) or ('refused', why)

``compat`` is :data:`._compat.LOCAL` (Python version, pickle protocol): the
acceptor refuses a peer it cannot exchange pickles with, saying why, and each
side keeps the other's to refuse code sent by value across Python versions.

A wrong cookie fails at step 2 or 3: the acceptor logs ``Connection attempt
from <address> rejected`` and goes on. Simultaneous connects between A and B
are resolved at step 5: the connection opened by the node with the greater
name wins, the other is refused as ``'duplicate'``.

On an established connection every ``send_bytes`` carries a batch of frames
(MSG, NAMED, CTRL, TICK); their byte table is in :mod:`mpactors.dist._wire`.

A writer thread per connection batches whatever is queued (so ``send`` never
waits for the network), sends a TICK after ``ticktime/4`` of silence, and a
reader thread declares the peer down after ``ticktime`` without a byte.

With TLS (``Node(tls=...)``) the connection comes from
:class:`~mpactors.dist._tls.Transport`: the TLS handshake runs first, in the
same per-connection thread, and everything above runs inside it unchanged.
"""
from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from multiprocessing.connection import Connection, Listener
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import _codec, config
from ._remote import RemoteOps
from . import _compat, _listen
from ._registration import NoRegistration, RegistrationKeeper
from ._seeds import SeedKeeper
from ._faults import is_blocked
from ._handshake import (
    MAGIC,
    MAX_PREAUTH,
    PROTOCOL_VERSION,
    REFUSED,
    AuthFailed,
    Refused,
    answer_challenge,
    deliver_challenge,
    host_address,
    set_timeouts,
)
from ._tls import Transport, describe_tls_error
from ..tls import TLS
from ._peer import Peer
from ._wire import CTRL, FRAME, MSG, MSG_HDR, NAME_HDR, NAMED, ROUTE, TICK
from .._core._route import route_frame
from ..cookie import Cookie, resolve_cookie
from ..errors import EpmdError, MpactorsError, NodeError
from .._core.mailbox import REMOTE_SENDER, MailboxWriter, RawReader, make_pipe
from ..messages import Down
from ..pid import Pid

__all__ = ["Distribution", "PROTOCOL_VERSION", "start"]

log = logging.getLogger(__name__)


class Distribution(RemoteOps):
    """A node's distribution layer: listener, port mapper registration, peers.

    ``peers`` is owned by the kernel thread; readers and writers hand events
    to it with ``kernel.cast``.
    """

    def __init__(self, node: Any) -> None:
        self.name: str = node.name
        self.hidden: bool = node.hidden
        self.ticktime: float = node.ticktime
        self.cookie: Cookie = resolve_cookie(node._cookie_arg)
        tls: Optional[TLS] = node.tls if node.tls is not None else TLS.from_env()
        self.transport = Transport(tls)  # reads the TLS files: fail before registering
        self.node_cookies: Dict[str, Cookie] = {}
        self.kernel: Any = None
        self.peers: Dict[str, Peer] = {}
        self._tags = 0
        self._pending: Dict[int, Tuple[Any, str, Any]] = {}
        self._closing = False
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
        self.seeds = SeedKeeper(self, node.seeds)

    def _listen_socket(self) -> socket.socket:
        # multiprocessing.connection.Listener has no public accessor for its
        # socket; actors must not inherit it, and only shutdown() wakes accept().
        return self.listener._listener._socket  # type: ignore[attr-defined,no-any-return]

    def private_fds(self) -> List[int]:
        """Descriptors an actor forked from the node must close."""
        return [self._listen_socket().fileno(), *self.registration.fds()]

    def start(self, kernel: Any) -> None:
        self.kernel = kernel
        kernel.dist = self
        kernel.private_fds.update(self.private_fds())
        r, w = make_pipe()
        self._router = RawReader(r, owner="router")
        self._router_lock = threading.Lock()
        # Every local process writes its remote sends here (the write end is
        # inherited or passed like a mailbox's); actors keep it, the read end
        # stays in the node.
        kernel.route_conn = self.route_conn = Connection(w, readable=False)
        self.route_writer = MailboxWriter(w)
        kernel.private_fds.add(r)
        threading.Thread(target=self._accept_loop, name="mpactors-dist-accept", daemon=True).start()
        threading.Thread(target=self._router_loop, name="mpactors-dist-router", daemon=True).start()
        self.registration.start(kernel)
        self.seeds.start()

    # -- the router: remote sends of local processes ------------------------------
    def _router_loop(self) -> None:
        poller = select.poll()
        poller.register(self._router.fd, select.POLLIN)
        while True:
            poller.poll()
            if not self.drain_router():
                return

    def drain_router(self) -> bool:
        """Forward every remote send written so far; False once the router is closed.

        The kernel calls it before it sends a signal to another node, so a
        process's messages always go out before its exit signal or ``Down``.
        """
        if not self._router_lock.acquire(timeout=config.CONNECT_TIMEOUT):
            return True
        try:
            bodies, alive = self._router.take()
            by_node: Dict[str, List[Tuple[int, bytes]]] = {}
            for body in bodies:  # one message on the wire per peer per drain
                kind, n = ROUTE.unpack_from(body)
                node = body[3 : 3 + n].decode("utf-8", "replace")
                by_node.setdefault(node, []).append((kind, body[3 + n :]))
            for node, items in by_node.items():
                self._send_to(node, items)
            return alive
        except OSError:
            return False
        finally:
            self._router_lock.release()

    def _send_to(self, node: str, items: List[Tuple[int, bytes]]) -> None:
        peer = self.peers.get(node)
        if peer is None or peer.closed:
            if node == self.name or self._closing:
                return
            try:
                peer = self.kernel.call(self.connect, node, timeout=config.CONNECT_TIMEOUT)
            except MpactorsError:
                return  # the node is stopping
        peer.put_many(items)

    # -- accepting -----------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                conn = self.listener.accept()  # no authkey here: see _accept_one
                addr = self.listener.last_accepted
            except OSError:
                if self._closing:
                    return
                continue
            threading.Thread(target=self._accept_one, args=(conn, addr), daemon=True).start()

    def _accept_one(self, conn: Connection, addr: Tuple[str, int]) -> None:
        # Authentication runs here, in a thread per connection and with a
        # deadline, so a client that connects and says nothing stalls no one.
        address = f"{addr[0]}:{addr[1]}"
        try:
            set_timeouts(conn, config.HANDSHAKE_TIMEOUT)
            conn = self.transport.accepted(conn)
            intro = conn.recv_bytes(MAX_PREAUTH)
            if not intro.startswith(b"MPACTORS"):
                raise AuthFailed(f"not an mpactors node (sent {intro[:16]!r})")
            if not intro.startswith(MAGIC):
                why = f"protocol version mismatch: peer speaks {intro.split(b' ')[0].decode(errors='replace')}, we speak {MAGIC.decode().strip()}"
                conn.send_bytes(REFUSED + why.encode())
                raise AuthFailed(why)
            claimed = intro[len(MAGIC):].decode("utf-8", "replace")
            if is_blocked(claimed):  # a cut link (dist._faults): as if nothing arrived
                conn.close()
                return
            cookie = self.node_cookies.get(claimed, self.cookie)
            deliver_challenge(conn, cookie)
            answer_challenge(conn, cookie)
            hello = conn.recv()
            peer_name = self._check_hello(hello, conn)
        except (AuthFailed, EOFError, OSError, ValueError) as exc:
            log.error("Connection attempt from %s rejected: %s", address, exc)
            conn.close()
            return
        except Exception as exc:  # noqa: BLE001 - hostile bytes must not kill the node
            log.error("Connection attempt from %s rejected: bad handshake: %s", address, exc)
            conn.close()
            return
        if peer_name is None:
            conn.close()
            return
        self.kernel.cast(self._accepted, conn, hello, address)

    def _check_hello(self, hello: Any, conn: Connection) -> Optional[str]:
        if not (isinstance(hello, tuple) and len(hello) == 7 and hello[0] == "hello"):
            raise AuthFailed(f"bad hello {hello!r:.60}")
        _, name, creation, version, hidden, ticktime, compat = hello
        if version != PROTOCOL_VERSION:
            conn.send(("refused", f"protocol version {version} != {PROTOCOL_VERSION}"))
            raise AuthFailed(f"protocol version mismatch: {version} != {PROTOCOL_VERSION}")
        why = _compat.refusal(compat)
        if why is not None:
            conn.send(("refused", why))
            raise AuthFailed(why)
        if name == self.name:
            conn.send(("refused", "same node name"))
            raise AuthFailed(f"peer claims our own name {name!r}")
        return str(name)

    def _accepted(self, conn: Connection, hello: tuple, address: str, replace: bool = False) -> None:
        """Kernel thread: decide on an accepted, authenticated connection."""
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
            # Simultaneous connect: our own outgoing attempt wins.
            self._refuse(conn, "duplicate: simultaneous connect")
            return
        try:
            conn.send(("ok", self.name, self.creation, self.hidden, self.ticktime, _compat.LOCAL))
        except OSError:
            conn.close()
            return
        if peer is None:
            peer = self.peers[name] = Peer(self, name)
        peer.compat = compat
        self._established(peer, conn, creation, hidden, ticktime)

    def _ask_alive(self, conn: Connection, hello: tuple, address: str) -> None:
        try:
            conn.send(("alive",))
            replace = conn.recv() is True
        except (EOFError, OSError, ValueError):
            conn.close()
            return
        if replace:
            self.kernel.cast(self._accepted, conn, hello, address, True)
        else:
            self.kernel.cast(self._refuse, conn, "duplicate: already connected")

    def _refuse(self, conn: Connection, why: str) -> None:
        try:
            conn.send(("refused", why))
        except OSError:
            pass
        conn.close()

    # -- connecting ----------------------------------------------------------
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
        peer = self.peers[name] = Peer(self, name)
        if done is not None:
            peer.waiters.append(done)
        threading.Thread(target=self._connect_thread, args=(peer,), name=f"mpactors-connect {name}", daemon=True).start()
        return peer

    def _connect_thread(self, peer: Peer) -> None:
        try:
            result = self._dial(peer)
        except Exception as exc:  # noqa: BLE001 - every failure is a 'pang'
            log.info("cannot connect to %s: %s", peer.name, exc)
            self.last_failure[peer.name] = str(exc)  # for the caller's error (RemoteOps._request)
            result = None
        self.kernel.cast(self._dialled, peer, result)

    def _dial(self, peer: Peer) -> Optional[Tuple[Connection, tuple]]:
        name = peer.name
        alive, _, host = name.partition("@")
        if not alive or not host:
            raise NodeError(f"not a node name: {name!r}")
        if is_blocked(name):  # a cut link (dist._faults)
            raise NodeError(f"connect to {name} timed out (network partition)")
        address = host_address(host)
        port = self.listening.peer_port(alive, address)
        sock = _listen.dial(address, port)
        conn = self.transport.connected(sock, host)
        try:
            set_timeouts(conn, config.HANDSHAKE_TIMEOUT)
            cookie = self.node_cookies.get(name, self.cookie)
            conn.send_bytes(MAGIC + self.name.encode())
            answer_challenge(conn, cookie)
            deliver_challenge(conn, cookie)
            conn.send(("hello", self.name, self.creation, PROTOCOL_VERSION, self.hidden, self.ticktime, _compat.LOCAL))
            verdict = conn.recv()
            if verdict == ("alive",):
                # The peer still holds a connection to us. If we got connected
                # meanwhile (its own dial won), it is live: keep it; if not,
                # it is a dead one the peer has not noticed yet: replace it.
                conn.send(not peer.up)
                verdict = conn.recv()
        except Refused as exc:
            conn.close()
            raise NodeError(f"{name} refused the connection: {exc}") from None
        except (socket.timeout, BlockingIOError):
            conn.close()
            raise NodeError(f"timeout: {name} did not complete the handshake within {config.HANDSHAKE_TIMEOUT} s") from None
        except (ssl.SSLError, EOFError, ConnectionError) as exc:
            conn.close()
            if isinstance(conn, Connection):
                raise NodeError(f"refused cookie: {name} closed the connection during the cookie challenge "
                                f"(its cookie for us differs from ours) [{type(exc).__name__}]") from None
            raise NodeError(f"{name} refused the connection over TLS: {describe_tls_error(exc, True)}") from None
        except (AuthFailed, EOFError, OSError) as exc:
            conn.close()
            raise NodeError(f"refused cookie: {name} failed the cookie challenge: {exc}") from None
        if not (isinstance(verdict, tuple) and verdict and verdict[0] == "ok"):
            conn.close()
            why = verdict[1] if isinstance(verdict, tuple) and len(verdict) > 1 else verdict
            if isinstance(why, str) and why.startswith("duplicate"):
                return "duplicate"  # type: ignore[return-value]
            raise NodeError(f"{name} refused the connection: {why}")
        return conn, verdict

    def _dialled(self, peer: Peer, result: Any) -> None:
        """Kernel thread: an outgoing attempt finished."""
        if self.peers.get(peer.name) is not peer or peer.up:
            if isinstance(result, tuple):
                result[0].close()
            return
        if result == "duplicate":
            # Lost a simultaneous connect: the peer's own connection is on its
            # way in; give up only if it does not arrive.
            self.kernel.timer(config.HANDSHAKE_TIMEOUT, lambda: self._dialled(peer, None))
            return
        if result is None:
            if peer.conn is None and not peer.up:
                self.peers.pop(peer.name, None)
                peer.closed = True
                self._fire_waiters(peer, False)
            return
        conn, (_, name, creation, hidden, ticktime, peer.compat) = result
        self._established(peer, conn, creation, hidden, ticktime)

    def _established(self, peer: Peer, conn: Connection, creation: int, hidden: bool, ticktime: float) -> None:
        set_timeouts(conn, 0)
        peer.sock, peer.direct = self.transport.sender(conn)
        self.kernel.private_fds.add(peer.sock.fileno())
        peer.conn = conn
        peer.creation = creation
        peer.hidden = bool(hidden)
        peer.tick_interval = min(self.ticktime, float(ticktime)) / 4
        peer.up = True
        self.kernel.private_fds.add(conn.fileno())
        peer.start()
        log.log(logging.DEBUG if peer.hidden else logging.INFO, "connected to %s%s", peer.name, " (hidden)" if peer.hidden else "")
        if not self.hidden and not peer.hidden:
            peer.ctrl("peers", self.visible_nodes())
            self.kernel.node_up(peer.name)
        self._fire_waiters(peer, True)

    def _fire_waiters(self, peer: Peer, ok: bool) -> None:
        waiters, peer.waiters = peer.waiters, []
        for fn in waiters:
            fn(ok)

    def connection_lost(self, peer: Peer, why: str) -> None:
        """Any thread: the connection to ``peer`` is gone."""
        if threading.current_thread() is not self.kernel.thread:
            self.kernel.cast(self.connection_lost, peer, why)
            return
        if peer.closed and self.peers.get(peer.name) is not peer:
            return
        was_up = peer.up
        peer.up = False
        peer.close()  # its threads close the descriptors (Kernel.close_private)
        if self.peers.get(peer.name) is peer:
            del self.peers[peer.name]
        self._fire_waiters(peer, False)
        if was_up:
            orderly = why in ("closed by peer", "disconnect_node") or why.startswith("replaced by")
            level = logging.DEBUG if peer.hidden else logging.INFO if orderly else logging.WARNING
            log.log(level, "node %s down: %s", peer.name, why)
            self._node_down(peer.name)

    def _node_down(self, name: str) -> None:
        kernel = self.kernel
        for rec in list(kernel.procs.values()):
            for other in [p for p in rec.links if p.node == name]:
                rec.links.discard(other)
                kernel._signal(other, rec.pid, "noconnection", link=True)
            for ref, target in list(rec.monitors.items()):
                tnode = target.node if isinstance(target, Pid) else target[1]
                if tnode == name:
                    del rec.monitors[ref]
                    kernel.deliver(rec.pid, Down(ref, target, "noconnection"))
            for ref, watcher in list(rec.monitored_by.items()):
                if watcher.node == name:
                    del rec.monitored_by[ref]
        for tag, (reply, node, _) in list(self._pending.items()):
            if node == name:
                del self._pending[tag]
                kernel.reply(reply, False, NodeError(f"node {name} went down"))
        kernel.node_down(name)

    # -- receiving (reader threads) --------------------------------------------
    def handle_batch(self, peer: Peer, data: bytes) -> None:
        """Reader thread: deliver a batch of frames from ``peer``.

        Messages go straight into local mailboxes; control messages (links,
        monitors, exit signals) are the kernel thread's. From the first
        control frame on, the rest of the batch - and every batch after it
        until the kernel has caught up - is handed to the kernel thread too,
        so a message never overtakes a signal sent before it.
        """
        with peer.cond:
            if peer.in_kernel:
                peer.in_kernel += 1
                self.kernel.cast(self._kernel_batch, peer, data, 0)
                return
        start = self._deliver_frames(peer, data, 0, stop_at_ctrl=True)
        if start is not None:
            with peer.cond:
                peer.in_kernel += 1
            self.kernel.cast(self._kernel_batch, peer, data, start)

    def _kernel_batch(self, peer: Peer, data: bytes, start: int) -> None:
        """Kernel thread: the rest of a batch, control messages included, in order."""
        try:
            self._deliver_frames(peer, data, start, stop_at_ctrl=False)
        finally:
            with peer.cond:
                peer.in_kernel -= 1

    def _deliver_frames(self, peer: Peer, data: bytes, pos: int, stop_at_ctrl: bool) -> Optional[int]:
        """Deliver frames from ``pos``; with ``stop_at_ctrl``, the offset of the first control frame.

        Consecutive messages for one mailbox go in as few pipe writes as
        possible; anything else flushes them first, so order holds.
        """
        end = len(data)
        unpack = FRAME.unpack_from
        kernel = self.kernel
        target: Any = None
        pending: List[bytes] = []
        while pos < end:
            kind, n = unpack(data, pos)
            if kind == CTRL and stop_at_ctrl:
                break
            body = data[pos + 5 : pos + 5 + n]
            pos += 5 + n
            w = None
            if kind == MSG:
                aid, creation = MSG_HDR.unpack_from(body)
                if creation == kernel.creation or creation == 0:
                    w = kernel.writers.get(aid)
                payload = body[8:]
            elif kind == NAMED:
                (k,) = NAME_HDR.unpack_from(body)
                pid = kernel.names.get(body[2 : 2 + k].decode("utf-8", "replace"))
                w = kernel.writers.get(pid.id) if pid is not None else None
                payload = body[2 + k :]
            if w is not None:
                if w is not target:
                    if pending:
                        target.put_many(pending, REMOTE_SENDER)
                    target, pending = w, []
                pending.append(payload)
                continue
            if kind in (MSG, NAMED):
                continue  # no such process: dropped, as in Erlang
            if pending:
                target.put_many(pending, REMOTE_SENDER)
                target, pending = None, []
            if kind == CTRL:
                try:
                    msg = _codec.loads(body)
                except Exception as exc:  # noqa: BLE001
                    log.error("dropped a control message from %s that cannot be unpickled: %s", peer.name, exc)
                    continue
                self._handle_ctrl(peer, msg)
            elif kind != TICK:
                log.error("unknown frame kind %d from %s: connection dropped", kind, peer.name)
                self.connection_lost(peer, f"unknown frame kind {kind}")
                return None
        if pending:
            target.put_many(pending, REMOTE_SENDER)
        return pos if pos < end else None

    # -- routing (any thread) ------------------------------------------------------
    def route(self, dest: Any, payload: bytes) -> None:
        """Send pickled message bytes to a remote pid or ``(name, node)``.

        Through the router pipe, like every local process's remote sends: the
        router connects when needed, and the kernel drains it before it sends
        a signal, so order holds.
        """
        self.route_writer.put(route_frame(dest, payload), 0)

    # -- node-level API --------------------------------------------------------
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

    def ping(self, node: str, reply: Any) -> Any:
        from .._core._kernel import DEFER

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
        self._closing = True
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
        self.route_writer.dead = True
        self.route_conn.close()


def start(node: Any) -> Distribution:
    """Bind the listener and register with the port mapper (before the kernel exists)."""
    return Distribution(node)


