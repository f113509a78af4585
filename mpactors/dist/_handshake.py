"""The node-to-node handshake: cookie authentication, both ways, before any unpickling.

Used by :mod:`mpactors.dist` (the step table is in its docstring). The
challenge has the shape of ``multiprocessing.connection``'s (a nonce, an HMAC
answer, WELCOME or FAILURE, bounded reads) but uses HMAC-SHA256 directly: the
standard functions changed their digest in Python 3.12, and nodes on
different Python versions must still connect.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
from multiprocessing.connection import Connection

from ..errors import NodeError

__all__ = [
    "PROTOCOL_VERSION", "MAGIC", "REFUSED", "MAX_PREAUTH", "AuthFailed", "Refused",
    "deliver_challenge", "answer_challenge", "set_timeouts", "shutdown_conn", "host_address",
]

#: Bumped whenever the frames above change; peers must agree exactly.
PROTOCOL_VERSION = 2  # 2: the hello and the verdict carry dist._compat.LOCAL
MAGIC = b"MPACTORS%d " % PROTOCOL_VERSION
CHALLENGE = b"#MPCHALLENGE#"
WELCOME = b"#WELCOME#"
FAILURE = b"#FAILURE#"
REFUSED = b"#REFUSED#"  # sent instead of a challenge: the peer cannot be served
NONCE = 32
MAX_PREAUTH = 256  # bytes read from an unauthenticated peer, per message


def deliver_challenge(conn: Connection, cookie: bytes) -> None:
    nonce = os.urandom(NONCE)
    conn.send_bytes(CHALLENGE + nonce)
    answer = conn.recv_bytes(MAX_PREAUTH)
    expected = hmac.new(cookie, nonce, hashlib.sha256).digest()
    if not hmac.compare_digest(answer, expected):
        conn.send_bytes(FAILURE)
        raise AuthFailed("digest received was wrong")
    conn.send_bytes(WELCOME)


def answer_challenge(conn: Connection, cookie: bytes) -> None:
    message = conn.recv_bytes(MAX_PREAUTH)
    if message.startswith(REFUSED):
        raise Refused(message[len(REFUSED):].decode("utf-8", "replace"))
    if not message.startswith(CHALLENGE):
        raise AuthFailed(f"expected a challenge, got {message[:20]!r}")
    conn.send_bytes(hmac.new(cookie, message[len(CHALLENGE):], hashlib.sha256).digest())
    if conn.recv_bytes(MAX_PREAUTH) != WELCOME:
        raise AuthFailed("digest sent was rejected")


class AuthFailed(Exception):
    pass


class Refused(AuthFailed):
    """The acceptor refused us before authentication, saying why."""


def set_timeouts(conn: Connection, seconds: float) -> None:
    """Bound every blocking read/write on ``conn`` (0 = no bound)."""
    settimeout = getattr(conn, "settimeout", None)
    if settimeout is not None:  # a TLS connection: the SSL object must know the bound
        settimeout(seconds)
        return
    sec = int(seconds)
    usec = int((seconds - sec) * 1e6)
    tv = struct.pack("ll", sec, usec)
    with socket.socket(fileno=os.dup(conn.fileno())) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


def shutdown_conn(conn: Connection) -> None:
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


