"""The node-to-node handshake, both sides (OTP's ``dist_util``).

There is one connection per pair of nodes; either side may open it. Setting
one up (the acceptor runs :func:`accept` in a thread of its own with a
deadline, so a silent client stalls nobody)::

    step  connecting node A (dial)             accepting node B (accept)
    1     send  b"MPACTORS2 a@host"  ------->  read at most 256 bytes, not unpickled;
                                               pick the cookie for that node
    2     answer B's challenge       <-------  HMAC-SHA256 challenge (cookie as key)
    3     challenge B                ------->  answer   (both sides authenticated)
    4     send hello  ----------------------> hello    (first unpickled bytes)
          (name, creation, version, hidden, ticktime, compat)
    5     read verdict               <-------  ('ok', ..., compat) or ('refused', why)
                                               or ('alive',): "I still hold a
          answer True (replace it)             connection to you": the dialer
          or False (keep it)         ------->  says whether that one is dead

Steps 2 and 3 are :mod:`mpactors.dist._auth`. ``compat`` is
:data:`._compat.LOCAL` (Python version, pickle protocol): the acceptor refuses
a peer it cannot exchange pickles with, saying why, and each side keeps the
other's to refuse code sent by value across Python versions.

A wrong cookie fails at step 2 or 3: the acceptor logs ``Connection attempt
from <address> rejected`` and goes on. Simultaneous connects between A and B
are resolved at step 5 by the acceptor's kernel thread (it knows its own
attempt): the connection opened by the node with the greater name wins, the
other is refused as ``'duplicate'``.

With TLS (``Node(tls=...)``) the connection comes from
:class:`~mpactors.dist._tls.Transport`: the TLS handshake runs first, in the
same per-connection thread, and everything above runs inside it unchanged.
"""
from __future__ import annotations

import os
import socket
import ssl
import struct
from multiprocessing.connection import Connection
from typing import Any, Callable, NamedTuple, Optional, Tuple, Union

from .. import config
from .._names import local_host_names
from ..cookie import Cookie
from ..errors import NodeError
from . import _compat, _listen
from ._auth import MAX_PREAUTH, REFUSED, AuthFailed, Refused, answer_challenge, deliver_challenge
from ._faults import is_blocked
from ._listen import Listening
from ._tls import Transport, describe_tls_error

__all__ = [
    "PROTOCOL_VERSION", "MAGIC", "Identity", "DUPLICATE", "accept", "dial", "send_ok", "ask_alive", "refuse",
    "set_timeouts", "shutdown_conn", "host_address",
]

#: Bumped whenever the frames above change; peers must agree exactly.
PROTOCOL_VERSION = 2  # 2: the hello and the verdict carry dist._compat.LOCAL
MAGIC = b"MPACTORS%d " % PROTOCOL_VERSION
#: :func:`dial`'s answer when it lost a simultaneous connect.
DUPLICATE = "duplicate"


class Identity(NamedTuple):
    """What a node says of itself in the hello and the verdict."""

    name: str
    creation: int
    hidden: bool
    ticktime: float


# -- accepting side -----------------------------------------------------------
def accept(
    conn: Connection, transport: Transport, us: Identity, cookie_for: Callable[[str], Cookie]
) -> Optional[Tuple[Connection, tuple]]:
    """Steps 1-4 on an accepted connection: ``(conn, hello)``, or None for a cut link.

    ``conn`` comes back wrapped in TLS when the node uses it. Raises
    :class:`AuthFailed` (and ``OSError``/``EOFError``...) when the peer must
    be rejected; the connection is closed by then.
    """
    try:
        set_timeouts(conn, config.HANDSHAKE_TIMEOUT)
        conn = transport.accepted(conn)
        hello = _accept_steps(conn, us, cookie_for)
    except BaseException:
        conn.close()
        raise
    if hello is None:
        conn.close()
        return None
    return conn, hello


def _accept_steps(conn: Connection, us: Identity, cookie_for: Callable[[str], Cookie]) -> Optional[tuple]:
    intro = conn.recv_bytes(MAX_PREAUTH)
    if not intro.startswith(b"MPACTORS"):
        raise AuthFailed(f"not an mpactors node (sent {intro[:16]!r})")
    if not intro.startswith(MAGIC):
        theirs = intro.split(b" ")[0].decode(errors="replace")
        why = f"protocol version mismatch: peer speaks {theirs}, we speak {MAGIC.decode().strip()}"
        conn.send_bytes(REFUSED + why.encode())
        raise AuthFailed(why)
    claimed = intro[len(MAGIC):].decode("utf-8", "replace")
    if is_blocked(claimed):  # a cut link (dist._faults): as if nothing arrived
        return None
    cookie = cookie_for(claimed)
    deliver_challenge(conn, cookie)
    answer_challenge(conn, cookie)
    hello = conn.recv()
    _check_hello(hello, conn, us.name)
    return tuple(hello)


def _check_hello(hello: Any, conn: Connection, our_name: str) -> None:
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
    if name == our_name:
        conn.send(("refused", "same node name"))
        raise AuthFailed(f"peer claims our own name {name!r}")


def send_ok(conn: Connection, us: Identity) -> bool:
    """Step 5, accepted: False if the connection broke meanwhile."""
    try:
        conn.send(("ok", us.name, us.creation, us.hidden, us.ticktime, _compat.LOCAL))
        return True
    except OSError:
        conn.close()
        return False


def ask_alive(conn: Connection) -> Optional[bool]:
    """Step 5, already connected: does the dialer want its old connection replaced? None if gone."""
    try:
        conn.send(("alive",))
        return conn.recv() is True
    except (EOFError, OSError, ValueError):
        conn.close()
        return None


def refuse(conn: Connection, why: str) -> None:
    """Step 5, refused: say why and close."""
    try:
        conn.send(("refused", why))
    except OSError:
        pass
    conn.close()


# -- connecting side --------------------------------------------------------------
def dial(
    name: str, us: Identity, transport: Transport, cookie: Cookie, still_up: Callable[[], bool], listening: Listening
) -> Union[Tuple[Connection, tuple], str]:
    """All five steps towards node ``name``: ``(conn, verdict)`` or :data:`DUPLICATE`.

    ``still_up()`` answers the acceptor's ``'alive'`` question: True if we
    hold a live connection to it already. ``listening`` finds the peer's port
    (its port mapper, or ``dist_port``). Raises :class:`NodeError` saying why
    the connection failed.
    """
    alive, _, host = name.partition("@")
    if not alive or not host:
        raise NodeError(f"not a node name: {name!r}")
    if is_blocked(name):  # a cut link (dist._faults)
        raise NodeError(f"connect to {name} timed out (network partition)")
    address = host_address(host)
    port = listening.peer_port(alive, address)
    sock = _listen.dial(address, port)
    conn = transport.connected(sock, host)
    try:
        set_timeouts(conn, config.HANDSHAKE_TIMEOUT)
        conn.send_bytes(MAGIC + us.name.encode())
        answer_challenge(conn, cookie)
        deliver_challenge(conn, cookie)
        conn.send(("hello", us.name, us.creation, PROTOCOL_VERSION, us.hidden, us.ticktime, _compat.LOCAL))
        verdict = conn.recv()
        if verdict == ("alive",):
            # The peer still holds a connection to us. If we got connected
            # meanwhile (its own dial won), it is live: keep it; if not,
            # it is a dead one the peer has not noticed yet: replace it.
            conn.send(not still_up())
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
            return DUPLICATE
        raise NodeError(f"{name} refused the connection: {why}")
    return conn, verdict


# -- socket helpers ------------------------------------------------------------------
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
    if host in local_host_names():
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
