"""The cookie challenge (OTP's ``auth``): HMAC-SHA256, both ways, before any unpickling.

Steps 2 and 3 of the handshake (:mod:`mpactors.dist._handshake`). The
challenge has the shape of ``multiprocessing.connection``'s (a nonce, an HMAC
answer, WELCOME or FAILURE, bounded reads) but uses HMAC-SHA256 directly: the
standard functions changed their digest in Python 3.12, and nodes on
different Python versions must still connect.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from multiprocessing.connection import Connection

__all__ = ["REFUSED", "MAX_PREAUTH", "AuthFailed", "Refused", "deliver_challenge", "answer_challenge"]

CHALLENGE = b"#MPCHALLENGE#"
WELCOME = b"#WELCOME#"
FAILURE = b"#FAILURE#"
REFUSED = b"#REFUSED#"  # sent instead of a challenge: the peer cannot be served
NONCE = 32
MAX_PREAUTH = 256  # bytes read from an unauthenticated peer, per message


def deliver_challenge(conn: Connection, cookie: bytes) -> None:
    """Challenge the peer; raise :class:`AuthFailed` unless it knows ``cookie``."""
    nonce = os.urandom(NONCE)
    conn.send_bytes(CHALLENGE + nonce)
    answer = conn.recv_bytes(MAX_PREAUTH)
    expected = hmac.new(cookie, nonce, hashlib.sha256).digest()
    if not hmac.compare_digest(answer, expected):
        conn.send_bytes(FAILURE)
        raise AuthFailed("digest received was wrong")
    conn.send_bytes(WELCOME)


def answer_challenge(conn: Connection, cookie: bytes) -> None:
    """Answer the peer's challenge; raise :class:`Refused` or :class:`AuthFailed`."""
    message = conn.recv_bytes(MAX_PREAUTH)
    if message.startswith(REFUSED):
        raise Refused(message[len(REFUSED):].decode("utf-8", "replace"))
    if not message.startswith(CHALLENGE):
        raise AuthFailed(f"expected a challenge, got {message[:20]!r}")
    conn.send_bytes(hmac.new(cookie, message[len(CHALLENGE):], hashlib.sha256).digest())
    if conn.recv_bytes(MAX_PREAUTH) != WELCOME:
        raise AuthFailed("digest sent was rejected")


class AuthFailed(Exception):
    """The handshake failed: wrong cookie, bad bytes, or a refused peer."""


class Refused(AuthFailed):
    """The acceptor refused us before authentication, saying why."""
