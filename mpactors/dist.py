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
          (name, creation, version, hidden, ticktime, listen port)
    5     read verdict               <-------  'ok' or ('refused', why)

A wrong cookie fails at step 2 or 3: the acceptor logs ``Connection attempt
from <address> rejected`` and goes on. Simultaneous connects between A and B
are resolved at step 5: the connection opened by the node with the greater
name wins, the other is refused as ``'duplicate'``.

On an established connection every ``send_bytes`` carries a batch of frames,
each ``<B kind><I length>`` and a body:

    kind     body
    MSG      <I id><I creation> + pickled message     (to a pid)
    NAMED    <H n> name (utf-8) + pickled message     (to a registered name)
    CTRL     pickled tuple: link, unlink, exit, monitor, demonitor,
             spawn/spawn_reply, info/info_reply, peers
    TICK     empty                                    (keeps an idle link alive)

A writer thread per connection batches whatever is queued (so ``send`` never
waits for the network), sends a TICK after ``ticktime/4`` of silence, and a
reader thread declares the peer down after ``ticktime`` without a byte.
"""
from __future__ import annotations

import collections
import hashlib
import hmac
import logging
import os
import select
import socket
import struct
import threading
import time
from multiprocessing.connection import Connection, Listener
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from . import _codec, config, epmd
from .cookie import Cookie, resolve_cookie
from .errors import BadArg, EpmdError, MpactorsError, NodeError
from .mailbox import MailboxWriter, RawReader, make_pipe
from .messages import Down
from .pid import Pid, Ref

__all__ = ["Distribution", "PROTOCOL_VERSION", "route_frame"]

log = logging.getLogger(__name__)

#: Bumped whenever the frames above change; peers must agree exactly.
PROTOCOL_VERSION = 1
_MAGIC = b"MPACTORS%d " % PROTOCOL_VERSION
_CHALLENGE = b"#MPCHALLENGE#"
_WELCOME = b"#WELCOME#"
_FAILURE = b"#FAILURE#"
_REFUSED = b"#REFUSED#"  # sent instead of a challenge: the peer cannot be served
_NONCE = 32
_MAX_PREAUTH = 256  # bytes read from an unauthenticated peer, per message
_MAX_FRAME = _codec.MAX_MESSAGE + 64

MSG, NAMED, CTRL, TICK = 1, 2, 3, 4
_FRAME = struct.Struct("<BI")
_MSG_HDR = struct.Struct("<II")
_NAME_HDR = struct.Struct("<H")
_ROUTE = struct.Struct("<BH")
_LEN = struct.Struct("!i")  # multiprocessing.connection's own length prefix


def route_frame(dest: Any, payload: bytes) -> bytes:
    """What a local process writes into its node's router pipe to reach ``dest``.

    ``<B kind><H n> node`` then the frame body the connection carries (see
    the table above). The router thread reads these and hands each body to
    the peer's connection; the kernel is not involved.
    """
    if type(dest) is Pid:
        node = dest.node.encode()
        return _ROUTE.pack(MSG, len(node)) + node + _MSG_HDR.pack(dest.id, dest.creation) + payload
    name, where = dest
    node, key = where.encode(), name.encode()
    return _ROUTE.pack(NAMED, len(node)) + node + _NAME_HDR.pack(len(key)) + key + payload


# -- authentication (cookie as authkey, HMAC-SHA256, both directions) --------
def _deliver_challenge(conn: Connection, cookie: bytes) -> None:
    nonce = os.urandom(_NONCE)
    conn.send_bytes(_CHALLENGE + nonce)
    answer = conn.recv_bytes(_MAX_PREAUTH)
    expected = hmac.new(cookie, nonce, hashlib.sha256).digest()
    if not hmac.compare_digest(answer, expected):
        conn.send_bytes(_FAILURE)
        raise _AuthFailed("digest received was wrong")
    conn.send_bytes(_WELCOME)


def _answer_challenge(conn: Connection, cookie: bytes) -> None:
    message = conn.recv_bytes(_MAX_PREAUTH)
    if message.startswith(_REFUSED):
        raise _Refused(message[len(_REFUSED):].decode("utf-8", "replace"))
    if not message.startswith(_CHALLENGE):
        raise _AuthFailed(f"expected a challenge, got {message[:20]!r}")
    conn.send_bytes(hmac.new(cookie, message[len(_CHALLENGE):], hashlib.sha256).digest())
    if conn.recv_bytes(_MAX_PREAUTH) != _WELCOME:
        raise _AuthFailed("digest sent was rejected")


class _AuthFailed(Exception):
    pass


class _Refused(_AuthFailed):
    """The acceptor refused us before authentication, saying why."""


def _set_timeouts(conn: Connection, seconds: float) -> None:
    """Bound every blocking read/write on ``conn`` (0 = no bound)."""
    sec = int(seconds)
    usec = int((seconds - sec) * 1e6)
    tv = struct.pack("ll", sec, usec)
    with socket.socket(fileno=os.dup(conn.fileno())) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


def _shutdown(conn: Connection) -> None:
    """Wake the threads blocked on ``conn`` (closing the descriptor alone does not)."""
    try:
        with socket.socket(fileno=os.dup(conn.fileno())) as s:
            s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def host_address(host: str) -> str:
    """The address to reach ``host`` at: loopback for this host, else a forward lookup."""
    if host in ("localhost", socket.gethostname(), socket.gethostname().split(".")[0]):
        return "127.0.0.1"
    try:
        socket.inet_aton(host)
        return host
    except OSError:
        pass
    try:
        return str(socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
    except socket.gaierror as exc:
        raise NodeError(f"cannot resolve host {host!r}: {exc}") from None


class Peer:
    """One connection to another node (pending until the handshake is done).

    Frames queued while the connection is pending, or while a send is in
    progress, go out in one batch from the writer thread. When the link is
    idle, ``put`` sends straight from the calling thread (non-blocking; the
    writer finishes whatever the socket did not take), which saves a thread
    switch per message.
    """

    def __init__(self, dist: Distribution, name: str) -> None:
        self.dist = dist
        self.name = name
        self.conn: Optional[Connection] = None
        self.sock: Optional[socket.socket] = None  # a dup of conn's socket, for sends
        self.creation = 0
        self.hidden = False
        self.up = False
        self.closed = False
        self.outgoing: Deque[bytes] = collections.deque()
        self.partial = b""  # the rest of a direct send the socket did not take
        self.busy = False  # a thread is sending on the socket
        self.cond = threading.Condition()
        self.tick_interval = dist.ticktime / 4
        self.last_send = time.monotonic()
        self.waiters: List[Callable[[bool], None]] = []
        # Once its threads run, only the reader closes ``conn`` and only the
        # writer closes ``sock``; others shut the socket down to wake them.
        # Closing a descriptor under a thread that still uses it would let
        # that thread read or write whatever socket reuses the number next.
        self.threads = False
        self.io_lock = threading.Lock()

    # -- sending (any thread) ----------------------------------------------
    def put(self, kind: int, body: bytes) -> None:
        self._put(_FRAME.pack(kind, len(body)) + body)

    def put_many(self, items: List[Tuple[int, bytes]]) -> None:
        """Several frames in one message on the wire (the router's batches)."""
        pack = _FRAME.pack
        self._put(b"".join(pack(kind, len(body)) + body for kind, body in items))

    def _put(self, frame: bytes) -> None:
        with self.cond:
            if self.closed:
                return
            if not self.up or self.busy or self.outgoing or self.partial:
                self.outgoing.append(frame)
                self.cond.notify()
                return
            self.busy = True
        data = _LEN.pack(len(frame)) + frame
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
                data += _LEN.pack(len(batch)) + batch
            elif not data:
                data = _LEN.pack(_FRAME.size) + _FRAME.pack(TICK, 0)
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
                self.dist.kernel.close_private(sock)

    def _write_loop(self, sock: socket.socket) -> None:
        try:
            while True:
                data = self._next_batch()
                if data is None:
                    return
                try:
                    sock.sendall(data)
                finally:
                    with self.cond:
                        self.busy = False
                        self.last_send = time.monotonic()
                        self.cond.notify_all()
        except (OSError, ValueError) as exc:
            if not self.closed:
                self.dist.connection_lost(self, f"send failed: {exc}")

    def _reader(self) -> None:
        conn = self.conn
        assert conn is not None
        try:
            self._read_loop(conn)
        finally:
            with self.io_lock:
                self.dist.kernel.close_private(conn)

    def _read_loop(self, conn: Connection) -> None:
        timeout = self.dist.ticktime
        poller = select.poll()  # kept: Connection.poll() builds a selector per call
        poller.register(conn.fileno(), select.POLLIN)
        timeout_ms = int(timeout * 1000)
        try:
            while True:
                if not poller.poll(timeout_ms):
                    self.dist.connection_lost(self, f"silent for {timeout:g} s (net tick timeout)")
                    return
                data = conn.recv_bytes(_MAX_FRAME)
                self.dist.handle_batch(self, data)
        except (EOFError, OSError, ValueError, TypeError) as exc:
            # (TypeError: the connection was closed under us, its handle is None)
            if not self.closed:
                why = "closed by peer" if isinstance(exc, EOFError) else f"receive failed: {exc}"
                self.dist.connection_lost(self, why)

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
                _shutdown(self.conn)
                if not self.threads:
                    self.dist.kernel.close_private(self.conn)
            if self.sock is not None and not self.threads:
                self.dist.kernel.close_private(self.sock)


class Distribution:
    """A node's distribution layer: listener, port mapper registration, peers.

    ``peers`` is owned by the kernel thread; readers and writers hand events
    to it with ``kernel.cast``.
    """

    def __init__(self, node: Any) -> None:
        self.name: str = node.name
        self.hidden: bool = node.hidden
        self.ticktime: float = node.ticktime
        self.cookie: Cookie = resolve_cookie(node._cookie_arg)
        self.node_cookies: Dict[str, Cookie] = {}
        self.kernel: Any = None
        self.peers: Dict[str, Peer] = {}
        self._tags = 0
        self._pending: Dict[int, Tuple[Any, str, Any]] = {}
        self._closing = False
        alive, _, _host = self.name.partition("@")
        self.listener = Listener(("0.0.0.0", 0), family="AF_INET", backlog=128)
        self.port = self.listener.address[1]
        try:
            epmd.ensure_running()
            self.registration = epmd.register(alive, self.port, hidden=self.hidden)
        except EpmdError as exc:
            self.listener.close()
            if "already in use" in str(exc):
                raise NodeError(f"node name {self.name!r} is already in use on this host") from None
            raise
        self.creation = self.registration.creation or 1

    def _listen_socket(self) -> socket.socket:
        # multiprocessing.connection.Listener has no public accessor for its
        # socket; actors must not inherit it, and only shutdown() wakes accept().
        return self.listener._listener._socket  # type: ignore[attr-defined,no-any-return]

    def private_fds(self) -> List[int]:
        """Descriptors an actor forked from the node must close."""
        return [self._listen_socket().fileno(), self.registration.fileno()]

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
                kind, n = _ROUTE.unpack_from(body)
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
            _set_timeouts(conn, config.HANDSHAKE_TIMEOUT)
            intro = conn.recv_bytes(_MAX_PREAUTH)
            if not intro.startswith(b"MPACTORS"):
                raise _AuthFailed(f"not an mpactors node (sent {intro[:16]!r})")
            if not intro.startswith(_MAGIC):
                why = f"protocol version mismatch: peer speaks {intro.split(b' ')[0].decode(errors='replace')}, we speak {_MAGIC.decode().strip()}"
                conn.send_bytes(_REFUSED + why.encode())
                raise _AuthFailed(why)
            claimed = intro[len(_MAGIC):].decode("utf-8", "replace")
            cookie = self.node_cookies.get(claimed, self.cookie)
            _deliver_challenge(conn, cookie)
            _answer_challenge(conn, cookie)
            hello = conn.recv()
            peer_name = self._check_hello(hello, conn)
        except (_AuthFailed, EOFError, OSError, ValueError) as exc:
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
        if not (isinstance(hello, tuple) and len(hello) == 6 and hello[0] == "hello"):
            raise _AuthFailed(f"bad hello {hello!r:.60}")
        _, name, creation, version, hidden, ticktime = hello
        if version != PROTOCOL_VERSION:
            conn.send(("refused", f"protocol version {version} != {PROTOCOL_VERSION}"))
            raise _AuthFailed(f"protocol version mismatch: {version} != {PROTOCOL_VERSION}")
        if name == self.name:
            conn.send(("refused", "same node name"))
            raise _AuthFailed(f"peer claims our own name {name!r}")
        return str(name)

    def _accepted(self, conn: Connection, hello: tuple, address: str, replace: bool = False) -> None:
        """Kernel thread: decide on an accepted, authenticated connection."""
        _, name, creation, _, hidden, ticktime = hello
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
            conn.send(("ok", self.name, self.creation, self.hidden, self.ticktime))
        except OSError:
            conn.close()
            return
        if peer is None:
            peer = self.peers[name] = Peer(self, name)
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
            result = None
        self.kernel.cast(self._dialled, peer, result)

    def _dial(self, peer: Peer) -> Optional[Tuple[Connection, tuple]]:
        name = peer.name
        alive, _, host = name.partition("@")
        if not alive or not host:
            raise NodeError(f"not a node name: {name!r}")
        address = host_address(host)
        port = epmd.port_please(alive, host=address, timeout=config.CONNECT_TIMEOUT)
        if port is None:
            raise NodeError(f"no node {alive!r} registered at {host}")
        sock = socket.create_connection((address, port), timeout=config.CONNECT_TIMEOUT)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(sock.detach())
        try:
            _set_timeouts(conn, config.HANDSHAKE_TIMEOUT)
            cookie = self.node_cookies.get(name, self.cookie)
            conn.send_bytes(_MAGIC + self.name.encode())
            _answer_challenge(conn, cookie)
            _deliver_challenge(conn, cookie)
            conn.send(("hello", self.name, self.creation, PROTOCOL_VERSION, self.hidden, self.ticktime))
            verdict = conn.recv()
            if verdict == ("alive",):
                # The peer still holds a connection to us. If we got connected
                # meanwhile (its own dial won), it is live: keep it; if not,
                # it is a dead one the peer has not noticed yet: replace it.
                conn.send(not peer.up)
                verdict = conn.recv()
        except _Refused as exc:
            conn.close()
            raise NodeError(f"{name} refused the connection: {exc}") from None
        except (_AuthFailed, EOFError, OSError) as exc:
            conn.close()
            raise NodeError(f"{name} refused the connection (wrong cookie?): {exc}") from None
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
        conn, (_, name, creation, hidden, ticktime) = result
        self._established(peer, conn, creation, hidden, ticktime)

    def _established(self, peer: Peer, conn: Connection, creation: int, hidden: bool, ticktime: float) -> None:
        _set_timeouts(conn, 0)
        peer.sock = socket.socket(fileno=os.dup(conn.fileno()))
        peer.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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

        Consecutive messages for one mailbox go in as few pipe writes as
        possible; anything else flushes them first, so order holds.
        """
        pos, end = 0, len(data)
        unpack = _FRAME.unpack_from
        kernel = self.kernel
        target: Any = None
        pending: List[bytes] = []
        while pos < end:
            kind, n = unpack(data, pos)
            pos += 5
            body = data[pos : pos + n]
            pos += n
            w = None
            if kind == MSG:
                aid, creation = _MSG_HDR.unpack_from(body)
                if creation == kernel.creation or creation == 0:
                    w = kernel.writers.get(aid)
                payload = body[8:]
            elif kind == NAMED:
                (k,) = _NAME_HDR.unpack_from(body)
                pid = kernel.names.get(body[2 : 2 + k].decode("utf-8", "replace"))
                w = kernel.writers.get(pid.id) if pid is not None else None
                payload = body[2 + k :]
            if w is not None:
                if w is not target:
                    if pending:
                        target.put_many(pending)
                    target, pending = w, []
                pending.append(payload)
                continue
            if kind in (MSG, NAMED):
                continue  # no such process: dropped, as in Erlang
            if pending:
                target.put_many(pending)
                target, pending = None, []
            if kind == CTRL:
                try:
                    msg = _codec.loads(body)
                except Exception as exc:  # noqa: BLE001
                    log.error("dropped a control message from %s that cannot be unpickled: %s", peer.name, exc)
                    continue
                kernel.cast(self._handle_ctrl, peer, msg)
            elif kind != TICK:
                log.error("unknown frame kind %d from %s: connection dropped", kind, peer.name)
                self.connection_lost(peer, f"unknown frame kind {kind}")
                return
        if pending:
            target.put_many(pending)

    def _handle_ctrl(self, peer: Peer, msg: tuple) -> None:
        """Kernel thread: a control message from ``peer``."""
        handler = getattr(self, "_ctrl_" + str(msg[0]), None)
        if handler is None:
            log.error("unknown control message %r from %s", msg[0], peer.name)
            return
        try:
            handler(peer, *msg[1:])
        except Exception:  # noqa: BLE001 - a bad request must not kill the kernel
            log.exception("control message %r from %s failed", msg[0], peer.name)

    def _ctrl_peers(self, peer: Peer, names: List[str]) -> None:
        if self.hidden:
            return
        for name in names:
            if name != self.name and name not in self.peers:
                self.connect(name)

    def _ctrl_link(self, peer: Peer, frm: Pid, to: Pid) -> None:
        rec = self.kernel.local_rec(to)
        if rec is None:
            peer.ctrl("exit", to, frm, _codec.dumps("noproc"), True)
        else:
            rec.links.add(frm)

    def _ctrl_unlink(self, peer: Peer, frm: Pid, to: Pid) -> None:
        self.kernel.remove_link(frm, to)

    def _ctrl_exit(self, peer: Peer, frm: Pid, to: Pid, reason: bytes, link: bool) -> None:
        rec = self.kernel.local_rec(to)
        if rec is None:
            return
        if link:
            if frm not in rec.links:
                return  # unlinked meanwhile
            rec.links.discard(frm)
        self.kernel._signal(frm, to, _codec.loads(reason), link)

    def _ctrl_monitor(self, peer: Peer, watcher: Pid, target: Any, ref: Ref) -> None:
        kernel = self.kernel
        if isinstance(target, str):
            pid = kernel.names.get(target)
            if pid is None:
                peer.ctrl("down", ref, (target, self.name), _codec.dumps("noproc"), watcher)
                return
            target = pid
        rec = kernel.local_rec(target)
        if rec is None:
            peer.ctrl("down", ref, target, _codec.dumps("noproc"), watcher)
        else:
            rec.monitored_by[ref] = watcher

    def _ctrl_down(self, peer: Peer, ref: Ref, target: Any, reason: bytes, watcher: Pid) -> None:
        self.kernel.monitor_fired(ref, target, _codec.loads(reason), watcher)

    def down(self, ref: Ref, target: Pid, reason: Any, watcher: Pid) -> None:
        """Tell a remote watcher that ``target`` ended (kernel thread)."""
        try:
            data = _codec.dumps(reason)
        except BadArg:
            data = _codec.dumps(repr(reason))
        self._ctrl_to(watcher.node, "down", ref, target, data, watcher)

    def _ctrl_trace(self, peer: Peer, pid: Pid, flag: bool, tracer: Pid) -> None:
        self.kernel.request(tracer, "trace", (pid, flag, tracer), ("fn", lambda ok, v: None))

    def trace(self, pid: Pid, flag: bool, tracer: Pid) -> None:
        self._ctrl_to(pid.node, "trace", pid, flag, tracer)

    def _ctrl_demonitor(self, peer: Peer, ref: Ref, target: Any) -> None:
        rec = self.kernel.local_rec(target) if isinstance(target, Pid) else None
        if rec is not None:
            rec.monitored_by.pop(ref, None)

    def _ctrl_spawn(self, peer: Peer, tag: int, caller: Pid, payload: bytes, fn_name: str, link: bool, monitor: bool) -> None:
        kernel = self.kernel
        try:
            rec = kernel.spawn_local(payload, fn_name)
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            peer.ctrl("reply", tag, False, _codec.dumps(NodeError(f"spawn on {self.name} failed: {exc}")))
            return
        ref = None
        if link:
            rec.links.add(caller)
        if monitor:
            ref = kernel.make_ref()
            rec.monitored_by[ref] = caller
        peer.ctrl("reply", tag, True, _codec.dumps((rec.pid, ref)))

    def _ctrl_info(self, peer: Peer, tag: int, caller: Pid, pid: Pid) -> None:
        def answer(ok: bool, value: Any) -> None:
            peer.ctrl("reply", tag, ok, _codec.dumps(value))

        self.kernel.request(caller, "process_info", (pid,), ("fn", answer))

    def _ctrl_reply(self, peer: Peer, tag: int, ok: bool, value: bytes) -> None:
        pending = self._pending.pop(tag, None)
        if pending is None:
            return
        reply, _, then = pending
        try:
            result = _codec.loads(value)
        except Exception as exc:  # noqa: BLE001
            self.kernel.reply(reply, False, BadArg(f"unreadable reply from {peer.name}: {exc}"))
            return
        if ok and then is not None:
            result = then(result)
        self.kernel.reply(reply, ok, result)

    # -- requests from the kernel ------------------------------------------------
    def _request(self, node: str, reply: Any, then: Optional[Callable[[Any], Any]], *msg: Any) -> Any:
        from ._kernel import DEFER

        self._tags += 1
        tag = self._tags
        self._pending[tag] = (reply, node, then)

        def connected(ok: bool) -> None:
            if not ok:
                pending = self._pending.pop(tag, None)
                if pending is not None:
                    self.kernel.reply(reply, False, NodeError(f"node {node} is unreachable"))
                return
            self._ctrl_now(node, msg[0], tag, *msg[1:])

        self.connect(node, connected)
        return DEFER

    def remote_spawn(self, caller: Pid, node: str, payload: bytes, fn_name: str, link: bool, monitor: bool, reply: Any) -> Any:
        def then(result: Tuple[Pid, Optional[Ref]]) -> Any:
            pid, ref = result
            rec = self.kernel.local_rec(caller)
            if rec is not None:
                if link:
                    rec.links.add(pid)
                if monitor and ref is not None:
                    rec.monitors[ref] = pid
            return (pid, ref) if monitor else pid

        return self._request(node, reply, then, "spawn", caller, payload, fn_name, link, monitor)

    def process_info(self, caller: Pid, pid: Pid, reply: Any) -> Any:
        return self._request(pid.node, reply, None, "info", caller, pid)

    def link(self, caller: Pid, pid: Pid) -> None:
        rec = self.kernel.local_rec(caller)
        if rec is not None:
            rec.links.add(pid)
        self._ctrl_to(pid.node, "link", caller, pid)

    def unlink(self, caller: Pid, pid: Pid) -> None:
        self._ctrl_to(pid.node, "unlink", caller, pid)

    def exit_signal(self, frm: Pid, to: Pid, reason: Any, link: bool) -> None:
        try:
            data = _codec.dumps(reason)
        except BadArg:
            data = _codec.dumps(repr(reason))
        self._ctrl_to(to.node, "exit", frm, to, data, link)

    def monitor(self, watcher: Pid, target: Any, ref: Ref) -> None:
        node = target.node if isinstance(target, Pid) else target[1]
        name = target if isinstance(target, Pid) else target[0]

        def connected(ok: bool) -> None:
            if ok:
                self._ctrl_now(node, "monitor", watcher, name, ref)
            else:
                rec = self.kernel.local_rec(watcher)
                if rec is not None and rec.monitors.pop(ref, None) is not None:
                    self.kernel.deliver(watcher, Down(ref, target, "noconnection"))

        self.connect(node, connected)

    def demonitor(self, ref: Ref, target: Any) -> None:
        node = target.node if isinstance(target, Pid) else target[1]
        peer = self.peers.get(node)
        if peer is not None and peer.up:
            peer.ctrl("demonitor", ref, target)

    def _ctrl_now(self, node: str, *msg: Any) -> None:
        """Send a control message on an established connection, after pending sends."""
        self.drain_router()
        self.peers[node].ctrl(*msg)

    def _ctrl_to(self, node: str, *msg: Any) -> None:
        self.drain_router()
        peer = self.peers.get(node)
        if peer is not None and peer.up:
            peer.ctrl(*msg)
            return

        def connected(ok: bool) -> None:
            if ok:
                self._ctrl_now(node, *msg)
            elif msg[0] == "link":
                # Linking to an unreachable node: the link breaks at once.
                self.kernel._signal(msg[2], msg[1], "noconnection", link=True)
                rec = self.kernel.local_rec(msg[1])
                if rec is not None:
                    rec.links.discard(msg[2])

        self.connect(node, connected)

    def process_died(self, pid: Pid) -> None:
        """A local process ended (its remote links were signalled by the kernel)."""

    # -- routing (any thread) ------------------------------------------------------
    def route(self, sender: Optional[Pid], dest: Any, payload: bytes) -> None:
        """Send pickled message bytes to a remote pid or ``(name, node)``."""
        if type(dest) is Pid:
            node = dest.node
            frame = (MSG, _MSG_HDR.pack(dest.id, dest.creation) + payload)
        else:
            name, node = dest
            encoded = name.encode("utf-8")
            frame = (NAMED, _NAME_HDR.pack(len(encoded)) + encoded + payload)
        if threading.current_thread() is self.kernel.thread:
            self.drain_router()
        peer = self.peers.get(node)
        if peer is not None and peer.up:
            peer.put(*frame)
            return
        if threading.current_thread() is not self.kernel.thread:
            self.kernel.cast(self._route_connecting, node, frame)
        else:
            self._route_connecting(node, frame)

    def _route_connecting(self, node: str, frame: Tuple[int, bytes]) -> None:
        if node == self.name:
            return
        # Erlang sends trigger a connect; a pending peer queues the frame
        # until it is up (dropped if the connection fails).
        self.connect(node).put(*frame)

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
        from ._kernel import DEFER

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


