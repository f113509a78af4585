"""The node-to-node transport: plain ``multiprocessing`` connections, or the same frames over TLS.

:class:`Transport` is the connection factory of :mod:`mpactors.dist`. Without
TLS it hands back exactly what the plain code always used (a
``multiprocessing.connection.Connection``; once established, a duplicate of
its socket goes to the node's event loop). With :class:`~mpactors.tls.TLS` settings, the accepting side runs the
TLS handshake in its per-connection handshake thread (with the handshake
deadline, so a peer that stops mid-handshake stalls nobody else) and the
connecting side checks the peer's certificate against the host part of its
node name, or ``server_name``. Either way the result is a
:class:`TLSConnection`: the same length-prefixed messages as
``Connection.send_bytes`` writes, over an ``ssl.SSLSocket``.

A plain node and a TLS node recognise each other's first bytes (a TLS record
starts ``0x16 0x03``; a plain node's introduction carries ``MPACTORS``) and
refuse with a reason on both sides.

Certificates and keys are read again on ``SIGHUP`` (:meth:`Transport.watch_sighup`):
connections opened afterwards use the new ones, open connections keep theirs.
The handler is installed only when the node starts in the main thread and
``SIGHUP`` still has its default action (the node owns the signal); it is
removed when the node stops.
"""
from __future__ import annotations

import logging
import os
import select
import signal
import socket
import ssl
import struct
import threading
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable, Optional, Tuple

from .. import config
from ..errors import NodeError
from ..tls import TLS
from ._auth import REFUSED, AuthFailed

__all__ = ["Transport", "TLSConnection", "describe_tls_error", "TLS_RECORD"]

log = logging.getLogger(__name__)

#: The first bytes of a TLS handshake record (content type 22, version 3.x).
TLS_RECORD = b"\x16\x03"
_LEN = struct.Struct("!i")  # multiprocessing.connection's length prefix
_LONG = struct.Struct("!Q")  # ... and its 64-bit form, after a length of -1
_SMALL = 16384  # below this, header and body go out in one write (as Connection does)

_REASONS = {
    "unable to get local issuer certificate": "unknown CA: the certificate is not signed by our CA",
    "self-signed certificate in certificate chain": "unknown CA: the certificate is not signed by our CA",
    "self signed certificate in certificate chain": "unknown CA: the certificate is not signed by our CA",
    "certificate has expired": "certificate expired",
    "certificate is not yet valid": "certificate not yet valid",
    "TLSV1_ALERT_UNKNOWN_CA": "the peer refused our certificate: unknown CA",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the peer refused our certificate: certificate expired",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the peer refused our certificate (wrong host?)",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the peer requires a certificate",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the peer presented no certificate",
    "WRONG_VERSION_NUMBER": "the peer does not speak TLS (a node without TLS?)",
    "HTTP_REQUEST": "the peer does not speak TLS (a node without TLS?)",
    "RECORD_LAYER_FAILURE": "the peer does not speak TLS (a node without TLS?)",
    "UNEXPECTED_EOF_WHILE_READING": "connection closed during the TLS handshake (a node without TLS?)",
    "EOF": "connection closed during the TLS handshake (a node without TLS?)",
    "UNSUPPORTED_PROTOCOL": "no TLS version in common (1.2 is the minimum)",
}


def describe_tls_error(exc: BaseException, handshake_done: bool = False) -> str:
    """A short, human reason for a failed TLS handshake, or a read just after one."""
    if handshake_done and isinstance(exc, (EOFError, ssl.SSLEOFError, ConnectionError)):
        # TLS 1.3: the acceptor checks our certificate after our side of the handshake is done.
        return "closed right after the TLS handshake (our certificate refused? the peer's log says why)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = exc.verify_message or str(exc)
        if message.startswith("Hostname mismatch") or message.startswith("IP address mismatch"):
            return f"wrong host: {message}"
        return _REASONS.get(message, message)
    if isinstance(exc, ssl.SSLEOFError):
        return _REASONS["EOF"]
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        return _REASONS.get(reason, reason.lower().replace("_", " ") or str(exc))
    if isinstance(exc, socket.timeout):
        return f"TLS handshake not finished within {config.HANDSHAKE_TIMEOUT:g} s"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return _REASONS["EOF"]
    return str(exc)


class TLSConnection:
    """A ``multiprocessing.connection.Connection`` look-alike over an ``ssl.SSLSocket``.

    ``send_bytes``/``recv_bytes`` use Connection's length prefix; ``send``/``recv``
    pickle like it. ``poll`` first asks the SSL object for decrypted bytes it
    already holds (``select`` cannot see those). Used by the handshake; once
    it is done, :meth:`detach` hands the socket to the node's event loop.
    """

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._refs = 1
        self._lock = threading.Lock()
        self.closed = False

    # -- Connection's interface ---------------------------------------------
    def fileno(self) -> int:
        if self.closed:
            raise OSError("handle is closed")
        return self._fd

    def send_bytes(self, buf: bytes, offset: int = 0, size: Optional[int] = None) -> None:
        view = memoryview(buf)[offset:] if size is None else memoryview(buf)[offset : offset + size]
        n = view.nbytes
        header = _LEN.pack(n) if n <= 0x7FFFFFFF else _LEN.pack(-1) + _LONG.pack(n)
        if n < _SMALL:
            self._sock.sendall(header + view.tobytes())
        else:
            self._sock.sendall(header)
            self._sock.sendall(view)

    def recv_bytes(self, maxlength: Optional[int] = None) -> bytes:
        (size,) = _LEN.unpack(self._exact(4))
        if size == -1:
            (size,) = _LONG.unpack(self._exact(8))
        if size < 0 or (maxlength is not None and size > maxlength):
            raise OSError("bad message length")
        return self._exact(size)

    def send(self, obj: Any) -> None:
        self.send_bytes(bytes(ForkingPickler.dumps(obj)))

    def recv(self) -> Any:
        return ForkingPickler.loads(self.recv_bytes())

    def poll(self, timeout: Optional[float] = 0.0) -> bool:
        if self._sock.pending():
            return True
        return bool(select.select([self._fd], [], [], timeout)[0])

    def close(self) -> None:
        with self._lock:
            self._refs -= 1
            if self._refs > 0 or self.closed:
                return
            self.closed = True
        self._sock.close()

    # -- beyond Connection ----------------------------------------------------
    def settimeout(self, seconds: Optional[float]) -> None:
        """Bound every blocking read and write (None or 0: no bound)."""
        self._sock.settimeout(seconds or None)

    def sendall(self, data: bytes) -> None:
        """Write raw bytes (already framed) into the TLS stream."""
        self._sock.sendall(data)

    def detach(self) -> ssl.SSLSocket:
        """The SSL socket, non-blocking, for the node's event loop (which closes it); this is closed."""
        with self._lock:
            self.closed = True
            self._refs = 0
        self._sock.setblocking(False)
        return self._sock

    @property
    def version(self) -> Optional[str]:
        """The negotiated TLS version, e.g. ``'TLSv1.3'``."""
        return self._sock.version()

    def _exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        pos = 0
        while pos < n:
            got = self._sock.recv_into(view[pos:])
            if not got:
                raise EOFError
            pos += got
        return bytes(buf)


def _peek(fd: int, n: int) -> bytes:
    """Up to ``n`` first bytes the peer sent, left in the socket (bounded by its receive timeout)."""
    with socket.socket(fileno=os.dup(fd)) as s:
        try:
            return s.recv(n, socket.MSG_PEEK)
        except (BlockingIOError, socket.timeout):
            raise AuthFailed(f"sent nothing within {config.HANDSHAKE_TIMEOUT:g} s") from None


class Transport:
    """Makes a node's connections: plain, or TLS when given :class:`~mpactors.tls.TLS` settings.

    Raises:
        NodeError: (at creation and :meth:`reload`) a certificate, key or CA
            file cannot be used.
    """

    def __init__(self, tls: Optional[TLS]) -> None:
        self.tls = tls
        self._server: Optional[ssl.SSLContext] = None
        self._client: Optional[ssl.SSLContext] = None
        if tls is not None:
            self.reload()

    def reload(self) -> None:
        """Read the certificate, key and CA files again; new connections use them."""
        assert self.tls is not None
        server, client = self.tls.server_context(), self.tls.client_context()
        self._server, self._client = server, client

    # -- accepting (in the per-connection handshake thread) ------------------------
    def accepted(self, conn: Connection) -> Any:
        """The connection to authenticate, from one just accepted (its timeouts already set).

        Raises:
            AuthFailed: the peer speaks the other protocol, stalls, or fails
                the TLS handshake (the message says why).
        """
        head = _peek(conn.fileno(), 12)
        if not head:
            raise EOFError
        if self.tls is None:
            if head.startswith(TLS_RECORD):
                raise AuthFailed("the peer speaks TLS and this node does not (start both with the same --tls-* settings)")
            return conn
        if head[4:12] == b"MPACTORS":
            conn.send_bytes(REFUSED + b"this node requires TLS (start with --tls-cert, --tls-key and --tls-ca)")
            raise AuthFailed("a node without TLS: this node requires TLS")
        assert self._server is not None
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        conn.close()
        sock.settimeout(config.HANDSHAKE_TIMEOUT)
        try:
            return TLSConnection(self._server.wrap_socket(sock, server_side=True))
        except OSError as exc:
            sock.close()
            raise AuthFailed(f"TLS handshake failed: {describe_tls_error(exc)}") from None

    # -- connecting ---------------------------------------------------------------------
    def connected(self, sock: socket.socket, host: str) -> Any:
        """The connection over ``sock``, just connected to a node on ``host``.

        Raises:
            NodeError: the TLS handshake failed (the message says why).
        """
        if self.tls is None:
            return Connection(sock.detach())
        assert self._client is not None
        sock.settimeout(config.HANDSHAKE_TIMEOUT)
        try:
            return TLSConnection(self._client.wrap_socket(sock, server_hostname=self.tls.server_name or host))
        except OSError as exc:
            sock.close()
            raise NodeError(f"TLS handshake failed: {describe_tls_error(exc)}") from None

    # -- established ----------------------------------------------------------------------
    @staticmethod
    def established(conn: Any) -> Tuple[socket.socket, bool]:
        """The non-blocking socket the node's event loop takes over, and whether it is TLS.

        A plain connection's socket is duplicated (the caller closes ``conn``);
        a TLS connection hands over its ``SSLSocket`` (decrypted bytes it
        already holds stay in it: the loop reads them first).
        """
        if isinstance(conn, TLSConnection):
            return conn.detach(), True
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        return sock, False

    def watch_sighup(self) -> Optional[Callable[[], None]]:
        """Reload on ``SIGHUP`` if this node may own that signal; returns the undo, or None."""
        if self.tls is None or threading.current_thread() is not threading.main_thread():
            return None
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL:
            log.info("SIGHUP has a handler already: TLS certificates are not reloaded on SIGHUP")
            return None
        owner = os.getpid()

        def on_sighup(signum: int, frame: Any) -> None:
            if os.getpid() != owner:  # an actor forked from the node
                return
            try:
                self.reload()
            except NodeError as exc:
                log.error("SIGHUP: TLS files not reloaded, the old ones stay in use: %s", exc)
            else:
                log.info("SIGHUP: TLS certificate, key and CA reloaded")

        signal.signal(signal.SIGHUP, on_sighup)

        def undo() -> None:
            if signal.getsignal(signal.SIGHUP) is on_sighup:
                signal.signal(signal.SIGHUP, signal.SIG_DFL)

        return undo
