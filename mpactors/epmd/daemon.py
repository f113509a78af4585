"""The port mapper daemon: one thread, one ``selectors`` loop, non-blocking sockets.

Started by :func:`mpactors.epmd.client.ensure_running` (detached, as
``python -m mpactors.epmd``) or in the foreground by ``mpactors epmd``; both
call :func:`serve`. It speaks the protocol in :mod:`mpactors.epmd.protocol`
and behaves like Erlang's ``erts/epmd/src/epmd_srv.c``:

* A connection sends one framed request. The daemon replies and closes, except
  after a successful ALIVE2_REQ: that connection stays open, and the node stays
  registered exactly as long as it does. End-of-file, an error, or any further
  byte on it (Erlang's epmd does the same) unregisters the node at once, so a
  node killed with SIGKILL disappears as soon as its kernel closes the socket.
* Only loopback peers (127.0.0.0/8, ::1) may register or kill; others get an
  error result (ALIVE2) or ``NO`` (KILL), one logged line, and are closed.
* A name already registered is refused with result 1 (and creation 99, as
  epmd_srv.c answers).
* Creation numbers start at a random value and grow by one per registration,
  wrapping within 1..2**32-1 (never 0). A client announcing HighestVsn < 6 gets
  the old ALIVE2_RESP with a creation in 1..3, as old Erlang nodes expect.
* KILL_REQ: like Erlang's epmd, the daemon stops (``OK``) only while no node
  is registered and answers ``NO`` otherwise, because killing it would
  silently unregister live nodes; ``relaxed_command_check=True`` (Erlang's
  ``-relaxed_command_check``) makes it always stop.
* Bad input never stops the daemon: garbage, an unknown request code, an empty
  or oversized length (> :data:`~mpactors.epmd.protocol.MAX_REQUEST_SIZE`),
  bytes after the request, or a client that has not sent a whole request
  within :data:`IDLE_TIMEOUT` seconds each get one logged line naming the peer,
  and that connection is closed. Registered connections never time out.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import math
import os
import secrets
import selectors
import socket
import time
from typing import Dict, List, Optional, Tuple

from ..errors import EpmdError
from . import protocol as p

__all__ = ["EpmdDaemon", "serve", "is_loopback", "IDLE_TIMEOUT"]

_log = logging.getLogger(__name__)

#: Seconds a client has to send a whole request (epmd_srv.c: packet_timeout).
IDLE_TIMEOUT = 10.0
_RECV_SIZE = 4096
_FRAME_MAX = 2 + p.MAX_REQUEST_SIZE
_ERROR_CREATION = 99  # what epmd_srv.c puts in a refused ALIVE2 reply
_CREATION_MAX = 0xFFFFFFFF


class _Conn:
    """One accepted client. Owned by the loop thread, like everything here."""

    __slots__ = ("sock", "peer", "local", "deadline", "inbuf", "outbuf", "node", "closing")

    def __init__(self, sock: socket.socket, peer: str, local: bool, deadline: float) -> None:
        self.sock = sock
        self.peer = peer  # "host:port", for log lines
        self.local = local  # a loopback peer: may register and kill
        self.deadline = deadline  # monotonic; inf once registered
        self.inbuf = bytearray()  # the request being read, at most _FRAME_MAX (+ one recv)
        self.outbuf = bytearray()  # reply bytes not yet sent
        self.node: Optional[p.NodeInfo] = None  # set while this connection holds a registration
        self.closing = False  # close as soon as outbuf is flushed


class EpmdDaemon:
    """A port mapper bound to ``host:port``; :meth:`serve_forever` runs it.

    Args:
        port: TCP port to listen on (0 picks a free one, see :attr:`port`).
        host: address to bind; ``"0.0.0.0"`` (the default) serves other hosts'
            PORT_PLEASE2 and NAMES requests too, as Erlang's epmd does.
        idle_timeout: seconds an unregistered client may take to send a request.
        relaxed_command_check: let KILL_REQ stop the daemon while nodes are registered.
    """

    def __init__(
        self,
        port: int,
        host: str = "0.0.0.0",
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        relaxed_command_check: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.relaxed_command_check = relaxed_command_check
        self._sel = selectors.DefaultSelector()
        self._listener: Optional[socket.socket] = None
        self._accepting = False
        self._nodes: Dict[str, _Conn] = {}  # registered name -> its connection
        self._conns: Dict[int, _Conn] = {}  # fileno -> connection
        self._creation = secrets.randbelow(_CREATION_MAX) + 1
        self._stopping = False

    # ------------------------------------------------------------ lifecycle

    def bind(self) -> None:
        """Open the listening socket; raises ``OSError`` (EADDRINUSE) if the port is taken."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(socket.SOMAXCONN)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._listener = sock
        self.port = sock.getsockname()[1]
        self._sel.register(sock, selectors.EVENT_READ, None)
        self._accepting = True

    def serve_forever(self) -> None:
        """Run the loop until a KILL_REQ is accepted; binds first if needed."""
        if self._listener is None:
            self.bind()
        _log.info("port mapper listening on %s:%d", self.host, self.port)
        try:
            while not self._stopping:
                for key, events in self._sel.select(self._select_timeout()):
                    if key.data is None:
                        self._accept()
                    else:
                        self._on_event(key.data, events)
                self._expire_idle()
        finally:
            self.close()

    def close(self) -> None:
        """Close every connection (unregistering every node) and the listener."""
        for conn in list(self._conns.values()):
            self._close(conn)
        if self._listener is not None:
            if self._accepting:
                self._sel.unregister(self._listener)
            self._listener.close()
            self._listener = None
        self._sel.close()

    def names(self) -> List[Tuple[str, int]]:
        """The registered ``(name, port)`` pairs, newest first (as epmd lists them)."""
        return [(name, conn.node.port) for name, conn in reversed(self._nodes.items()) if conn.node]

    # ------------------------------------------------------------ events

    def _select_timeout(self) -> Optional[float]:
        deadline = min((c.deadline for c in self._conns.values()), default=math.inf)
        if deadline == math.inf:
            return None
        return max(0.0, deadline - time.monotonic())

    def _accept(self) -> None:
        listener = self._listener
        while listener is not None:
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                # Out of descriptors: stop accepting until a connection closes,
                # rather than spin on a listener that stays readable.
                _log.error("cannot accept connections (%s); pausing until one closes", exc.strerror)
                self._sel.unregister(listener)
                self._accepting = False
                return
            sock.setblocking(False)
            conn = _Conn(sock, _format_peer(address), is_loopback(address[0]), time.monotonic() + self.idle_timeout)
            self._conns[sock.fileno()] = conn
            self._sel.register(sock, selectors.EVENT_READ, conn)

    def _on_event(self, conn: _Conn, events: int) -> None:
        if conn.sock.fileno() < 0:
            return  # closed earlier in this round
        if events & selectors.EVENT_WRITE:
            self._flush(conn)
        elif events & selectors.EVENT_READ:
            if conn.node is not None:
                self._on_registered_readable(conn, conn.node)
            else:
                self._on_readable(conn)

    def _on_registered_readable(self, conn: _Conn, node: p.NodeInfo) -> None:
        try:
            data = conn.sock.recv(_RECV_SIZE)
        except OSError as exc:
            data = b""
            _log.info("connection of node %r from %s failed: %s", node.name, conn.peer, exc)
        if data:
            _log.warning(
                "node %r at %s sent %d unexpected bytes on its registration; unregistering it",
                node.name,
                conn.peer,
                len(data),
            )
        self._close(conn)

    def _on_readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(_RECV_SIZE)
        except OSError as exc:
            _log.warning("read from %s failed: %s; closing", conn.peer, exc)
            self._close(conn)
            return
        if not data:
            if conn.inbuf:
                _log.warning("%s closed after sending %d bytes of a request", conn.peer, len(conn.inbuf))
            self._close(conn)
            return
        conn.inbuf += data
        if len(conn.inbuf) < 2:
            return
        size = (conn.inbuf[0] << 8) | conn.inbuf[1]
        if not 0 < size <= p.MAX_REQUEST_SIZE:
            _log.warning("request of %d bytes from %s is outside 1..%d; closing", size, conn.peer, p.MAX_REQUEST_SIZE)
            self._close(conn)
        elif len(conn.inbuf) > 2 + size:
            _log.warning("%s sent %d bytes after its request; closing", conn.peer, len(conn.inbuf) - 2 - size)
            self._close(conn)
        elif len(conn.inbuf) == 2 + size:
            body = bytes(conn.inbuf[2:])
            conn.inbuf.clear()
            self._dispatch(conn, body)

    def _expire_idle(self) -> None:
        now = time.monotonic()
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            _log.warning("%s sent no whole request within %.0f s; closing", conn.peer, self.idle_timeout)
            self._close(conn)

    # ------------------------------------------------------------ requests

    def _dispatch(self, conn: _Conn, body: bytes) -> None:
        try:
            request = p.decode_request(body)
        except p.ProtocolError as exc:
            _log.warning("bad request from %s: %s; closing", conn.peer, exc)
            self._close(conn)
            return
        if isinstance(request, p.Alive2Req):
            self._register(conn, request.node)
        elif isinstance(request, p.PortPlease2Req):
            entry = self._nodes.get(request.name)
            self._reply(conn, p.encode_port2_resp(entry.node if entry else None))
        elif isinstance(request, p.NamesReq):
            self._reply(conn, p.encode_names_resp(self.port, self.names()))
        else:
            self._kill(conn)

    def _register(self, conn: _Conn, node: p.NodeInfo) -> None:
        extended = node.highest_version >= 6
        if not conn.local:
            _log.warning("refused to register node %r for non-loopback peer %s", node.name, conn.peer)
            self._reply(conn, p.encode_alive2_resp(1, _ERROR_CREATION, extended=extended))
            return
        if node.name in self._nodes:
            _log.warning("refused to register node %r for %s: name already registered", node.name, conn.peer)
            self._reply(conn, p.encode_alive2_resp(1, _ERROR_CREATION, extended=extended))
            return
        creation = self._next_creation()
        conn.node = node
        conn.deadline = math.inf
        self._nodes[node.name] = conn
        _log.info("registered node %r port %d creation %d for %s", node.name, node.port, creation, conn.peer)
        reply_creation = creation if extended else creation % 3 + 1
        self._reply(conn, p.encode_alive2_resp(0, reply_creation, extended=extended), close=False)

    def _kill(self, conn: _Conn) -> None:
        if not conn.local:
            _log.warning("refused KILL_REQ from non-loopback peer %s", conn.peer)
            self._reply(conn, p.encode_kill_resp(False))
        elif self._nodes and not self.relaxed_command_check:
            _log.warning("refused KILL_REQ from %s: %d nodes are registered", conn.peer, len(self._nodes))
            self._reply(conn, p.encode_kill_resp(False))
        else:
            _log.info("stopping on KILL_REQ from %s", conn.peer)
            self._reply(conn, p.encode_kill_resp(True))
            self._stopping = True

    def _next_creation(self) -> int:
        creation = self._creation
        self._creation = creation % _CREATION_MAX + 1
        return creation

    # ------------------------------------------------------------ output

    def _reply(self, conn: _Conn, data: bytes, *, close: bool = True) -> None:
        """Queue ``data`` for ``conn`` and try to send it now; close afterwards if ``close``."""
        conn.outbuf += data
        conn.closing = close
        if close:
            conn.deadline = time.monotonic() + self.idle_timeout  # a reader that never reads
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            _log.warning("write to %s failed: %s; closing", conn.peer, exc)
            self._close(conn)
            return
        del conn.outbuf[:sent]
        if conn.outbuf:
            self._sel.modify(conn.sock, selectors.EVENT_WRITE, conn)
        elif conn.closing:
            self._close(conn)
        else:
            self._sel.modify(conn.sock, selectors.EVENT_READ, conn)

    def _close(self, conn: _Conn) -> None:
        if conn.sock.fileno() < 0:
            return
        if conn.node is not None and self._nodes.get(conn.node.name) is conn:
            del self._nodes[conn.node.name]
            _log.info("unregistered node %r (connection from %s closed)", conn.node.name, conn.peer)
        conn.node = None
        del self._conns[conn.sock.fileno()]
        self._sel.unregister(conn.sock)
        conn.sock.close()
        if not self._accepting and self._listener is not None:
            self._sel.register(self._listener, selectors.EVENT_READ, None)
            self._accepting = True


def _format_peer(address: Tuple) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4-mapped loopback address."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def serve(
    port: int,
    host: str = "0.0.0.0",
    *,
    idle_timeout: float = IDLE_TIMEOUT,
    relaxed_command_check: bool = False,
) -> None:
    """Run a port mapper on ``host:port`` in this process until a KILL_REQ stops it.

    See :class:`EpmdDaemon` for the arguments.

    Sets the process title to ``mpactors epmd port N`` when setproctitle is
    installed.

    Raises:
        EpmdError: the port is in use (another port mapper is running there)
            or cannot be bound.
    """
    daemon = EpmdDaemon(port, host, idle_timeout=idle_timeout, relaxed_command_check=relaxed_command_check)
    try:
        daemon.bind()
    except OSError as exc:
        daemon.close()
        if exc.errno == errno.EADDRINUSE:
            raise EpmdError(f"port {host}:{port} is already in use; is a port mapper running there?") from None
        raise EpmdError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    _set_title(f"mpactors epmd port {daemon.port}")
    daemon.serve_forever()


def _set_title(title: str) -> None:
    # setproctitle would otherwise write over the environment to make room
    # for the title: /proc/PID/environ would read empty, and a test or a
    # benchmark could no longer tell by it (MPACTORS_TEST_TAG) that a port
    # mapper left running is its own. The title is shorter than our command
    # line, so it still fits.
    os.environ["SPT_NOENV"] = "1"
    try:
        import setproctitle
    except ImportError:  # optional: ps then shows the python command line
        return
    setproctitle.setproctitle(title)
