"""Talking to a port mapper: the mpactors counterpart of Erlang's ``erl_epmd``.

Nodes call :func:`ensure_running` then :func:`register` and keep the returned
:class:`Registration` open for their whole life: the port mapper forgets the
node the moment that connection closes (SPEC, "Port mapper"). Nodes looking for
a peer call :func:`port_please`; the CLI uses :func:`names` and :func:`kill`.
Each call opens one TCP connection, sends one framed request and, except for
a registration, reads the reply to end-of-file.

Every call takes keyword-only ``host`` (default ``127.0.0.1``), ``port``
(default ``$MPACTORS_EPMD_PORT`` or 4369) and ``timeout`` (seconds for the
whole exchange, default :data:`mpactors.config.EPMD_TIMEOUT`; None waits
forever). Every failure to reach the port mapper, a timeout, or a reply that
is not EPMD raises :class:`~mpactors.errors.EpmdError` naming ``host:port``.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple, TypeVar

from .. import config
from ..errors import BadArg, EpmdError
from . import protocol as p

__all__ = [
    "Registration",
    "register",
    "port_please",
    "lookup",
    "names",
    "kill",
    "is_running",
    "ensure_running",
]

_T = TypeVar("_T")
_A = TypeVar("_A")

_log = logging.getLogger(__name__)

_DEFAULT_HOST = "127.0.0.1"
#: Largest reply read (NAMES grows with the registered nodes; "reject large message").
_MAX_REPLY = 1 << 20
#: How long one probe of ensure_running waits for an answer.
_PROBE_TIMEOUT = 1.0
_PROBE_INTERVAL = 0.05

# Daemons this process started; polled so that they do not linger as zombies.
_spawned: List[subprocess.Popen] = []


class Registration:
    """A node's live registration with the port mapper.

    The node stays registered exactly as long as this object's connection is
    open: :meth:`close` (or the process dying) unregisters it. The socket
    becomes readable (end-of-file) if the port mapper goes away, so a node may
    wait on :meth:`fileno` to notice and register again.
    """

    def __init__(self, sock: socket.socket, node: p.NodeInfo, creation: int, address: str) -> None:
        self._sock = sock
        self.node = node
        #: The creation number the port mapper gave this incarnation.
        self.creation = creation
        #: ``host:port`` of the port mapper.
        self.address = address

    @property
    def name(self) -> str:
        """The registered node name (without ``@host``)."""
        return self.node.name

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._sock.fileno() < 0

    def fileno(self) -> int:
        """The connection's descriptor (readable means the port mapper closed it)."""
        return self._sock.fileno()

    def close(self) -> None:
        """Unregister: close the connection. Idempotent."""
        self._sock.close()

    def __enter__(self) -> Registration:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Registration {self.node.name!r} port {self.node.port} creation {self.creation} at {self.address} {state}>"


# ---------------------------------------------------------------- public API


def register(
    name: str,
    listen_port: int,
    *,
    hidden: bool = False,
    extra: bytes = p.MPACTORS_EXTRA,
    host: str = _DEFAULT_HOST,
    port: Optional[int] = None,
    timeout: Optional[float] = config.EPMD_TIMEOUT,
) -> Registration:
    """Register node ``name`` (the part before ``@``) as listening on ``listen_port``.

    Args:
        name: node name; anything from ``@`` on is ignored.
        listen_port: the TCP port the node accepts connections on.
        hidden: register as a hidden node (NodeType 72).
        extra: the ALIVE2 ``Extra`` field.

    Returns:
        The open :class:`Registration`; keep it open while the node lives.

    Raises:
        EpmdError: the name is already in use on this host, or the port
            mapper cannot be reached or answers garbage.
        BadArg: ``name`` is empty, longer than 255 characters or contains NUL,
            or ``listen_port`` does not fit in 16 bits.
    """
    info = p.NodeInfo(
        p.node_name(name),
        listen_port,
        p.NODE_TYPE_HIDDEN if hidden else p.NODE_TYPE_NORMAL,
        extra=bytes(extra),
    )
    body = _encode(p.encode_alive2_req, info)
    port = _port(port)
    deadline = _deadline(timeout)
    sock = _connect(host, port, deadline)
    try:
        sock.sendall(p.frame(body))
        reply = _read_alive2_resp(sock, host, port, deadline, timeout)
    except BaseException:
        sock.close()
        raise
    if reply.result != 0:
        sock.close()
        raise EpmdError(
            f"node name {info.name!r} is already in use on this host "
            f"(port mapper at {_addr(host, port)} answered result {reply.result})"
        )
    sock.settimeout(None)
    return Registration(sock, info, reply.creation, _addr(host, port))


def lookup(
    name: str,
    *,
    host: str = _DEFAULT_HOST,
    port: Optional[int] = None,
    timeout: Optional[float] = config.EPMD_TIMEOUT,
) -> Optional[p.NodeInfo]:
    """Everything the port mapper at ``host`` knows about node ``name``, or None."""
    body = _encode(p.encode_port_please2_req, p.node_name(name))
    port = _port(port)
    data = _exchange(body, host, port, timeout)
    return _decode(p.decode_port2_resp, data, host, port)


def port_please(
    name: str,
    *,
    host: str = _DEFAULT_HOST,
    port: Optional[int] = None,
    timeout: Optional[float] = config.EPMD_TIMEOUT,
) -> Optional[int]:
    """The port node ``name`` listens on at ``host``, or None when it is not registered.

    Raises:
        EpmdError: the port mapper cannot be reached or answers garbage.
    """
    info = lookup(name, host=host, port=port, timeout=timeout)
    return None if info is None else info.port


def names(
    *,
    host: str = _DEFAULT_HOST,
    port: Optional[int] = None,
    timeout: Optional[float] = config.EPMD_TIMEOUT,
) -> List[Tuple[str, int]]:
    """The ``(name, port)`` pairs registered with the port mapper at ``host``.

    Raises:
        EpmdError: the port mapper cannot be reached or answers garbage.
    """
    port = _port(port)
    data = _exchange(p.encode_names_req(), host, port, timeout)
    _, nodes = _decode(p.decode_names_resp, data, host, port)
    return nodes


def kill(
    *,
    host: str = _DEFAULT_HOST,
    port: Optional[int] = None,
    timeout: Optional[float] = config.EPMD_TIMEOUT,
) -> bool:
    """Ask the port mapper to stop: True if it agreed, False if it refused.

    A port mapper (ours or Erlang's) refuses while nodes are registered,
    unless it was started with ``relaxed_command_check``.

    Raises:
        EpmdError: the port mapper cannot be reached or answers garbage.
    """
    port = _port(port)
    data = _exchange(p.encode_kill_req(), host, port, timeout)
    return _decode(p.decode_kill_resp, data, host, port)


def is_running(
    *,
    host: str = _DEFAULT_HOST,
    port: Optional[int] = None,
    timeout: Optional[float] = config.EPMD_TIMEOUT,
) -> bool:
    """True when a port mapper answers a NAMES request at ``host:port``."""
    try:
        names(host=host, port=port, timeout=timeout)
    except EpmdError:
        return False
    return True


def ensure_running(
    *,
    port: Optional[int] = None,
    timeout: Optional[float] = config.EPMD_TIMEOUT,
    bind_host: str = "0.0.0.0",
) -> Optional[int]:
    """Start a detached port mapper on this host unless one already answers.

    The daemon runs as ``python -m mpactors.epmd --port N`` in a new session,
    logging to ``$MPACTORS_HOME/logs/epmd.log``, and outlives this process.
    Two processes racing here start at most one daemon between them: the
    second daemon's bind fails (EADDRINUSE) and it exits, and both callers
    return once the first answers.

    Args:
        port: the port mapper's port (default ``$MPACTORS_EPMD_PORT`` or 4369).
        timeout: how long to wait for the port mapper to answer.
        bind_host: the address a newly started daemon listens on.

    Returns:
        The OS pid of the daemon started here, or None if one was already
        running (in a close race the daemon started here may still exit at
        once, having lost the port to another starter's).

    Raises:
        EpmdError: nothing answers within ``timeout``.
    """
    port = _port(port)
    _reap_spawned()
    if is_running(port=port, timeout=_PROBE_TIMEOUT):
        return None
    log_file = config.log_dir() / "epmd.log"
    proc = _spawn_daemon(port, bind_host, log_file)
    deadline = _deadline(timeout)
    while not is_running(port=port, timeout=_probe_timeout(deadline)):
        if deadline is not None and time.monotonic() >= deadline:
            raise EpmdError(
                f"no port mapper answers at {_addr(_DEFAULT_HOST, port)} {timeout} s after starting one; see {log_file}"
            )
        time.sleep(_PROBE_INTERVAL)  # polling a TCP port: nothing to wait on
    if proc.poll() is not None:
        return None
    # It outlives us by design (as Erlang's epmd): whoever wants it gone must
    # stop it (`mpactors epmd stop`, or this pid: tests and benchmarks do).
    _log.info("started a port mapper on port %d (OS pid %d); it outlives this process", port, proc.pid)
    return proc.pid


# ---------------------------------------------------------------- internals


def _spawn_daemon(port: int, bind_host: str, log_file: Path) -> subprocess.Popen:
    """Start ``python -m mpactors.epmd`` detached from this process's session."""
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_file, "ab")
    except OSError as exc:
        raise EpmdError(f"cannot open the port mapper log {log_file}: {exc.strerror}") from None
    # The daemon runs from "/" so it pins no directory; make sure it can
    # still import this very copy of mpactors.
    package_root = str(Path(__file__).resolve().parent.parent.parent)
    env = dict(os.environ)
    env.pop("MPACTORS_COOKIE", None)  # a port mapper has no use for it (and /proc/PID/environ shows it)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    with log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mpactors.epmd", "--port", str(port), "--host", bind_host],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd="/",
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    _spawned.append(proc)
    return proc


def _reap_spawned() -> None:
    """Collect daemons started here that have exited since."""
    _spawned[:] = [proc for proc in _spawned if proc.poll() is None]


def _port(port: Optional[int]) -> int:
    return config.epmd_port() if port is None else port


def _addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _deadline(timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: Optional[float]) -> Optional[float]:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _probe_timeout(deadline: Optional[float]) -> float:
    remaining = _remaining(deadline)
    return _PROBE_TIMEOUT if remaining is None else max(0.01, min(_PROBE_TIMEOUT, remaining))


def _encode(encoder: Callable[[_A], bytes], value: _A) -> bytes:
    """Run ``encoder(value)``, turning a bad argument into BadArg naming it."""
    try:
        return encoder(value)
    except p.ProtocolError as exc:
        raise BadArg(str(exc)) from None


def _decode(decoder: Callable[[bytes], _T], data: bytes, host: str, port: int) -> _T:
    """Run ``decoder(data)``, turning malformed bytes into EpmdError naming the peer."""
    try:
        return decoder(data)
    except p.ProtocolError as exc:
        raise EpmdError(f"garbage from the port mapper at {_addr(host, port)}: {exc}") from None


def _connect(host: str, port: int, deadline: Optional[float]) -> socket.socket:
    try:
        return socket.create_connection((host, port), timeout=_remaining(deadline))
    except socket.timeout:
        raise EpmdError(f"no answer from a port mapper at {_addr(host, port)} (connect timed out)") from None
    except OSError as exc:
        raise EpmdError(f"no port mapper at {_addr(host, port)}: {exc.strerror or exc}") from None


def _exchange(body: bytes, host: str, port: int, timeout: Optional[float]) -> bytes:
    """Send one framed request and read the reply until the port mapper closes."""
    deadline = _deadline(timeout)
    with _connect(host, port, deadline) as sock:
        try:
            sock.sendall(p.frame(body))
            chunks: List[bytes] = []
            size = 0
            while True:
                sock.settimeout(_remaining(deadline))
                chunk = sock.recv(65536)
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > _MAX_REPLY:
                    raise EpmdError(f"reply from the port mapper at {_addr(host, port)} exceeds {_MAX_REPLY} bytes")
                chunks.append(chunk)
        except socket.timeout:
            raise EpmdError(f"the port mapper at {_addr(host, port)} did not answer within {timeout} s") from None
        except OSError as exc:
            raise EpmdError(f"lost the port mapper at {_addr(host, port)}: {exc.strerror or exc}") from None


def _read_alive2_resp(
    sock: socket.socket, host: str, port: int, deadline: Optional[float], timeout: Optional[float]
) -> p.Alive2Resp:
    """Read the ALIVE2 reply; the connection stays open, so read only its bytes."""
    data = b""
    try:
        while True:
            reply = _decode(p.decode_alive2_resp, data, host, port)
            if reply is not None:
                return reply
            sock.settimeout(_remaining(deadline))
            need = 6 - len(data) if not data or data[0] == p.ALIVE2_X_RESP else 4 - len(data)
            chunk = sock.recv(need)
            if not chunk:
                raise EpmdError(
                    f"the port mapper at {_addr(host, port)} closed the connection without accepting the "
                    f"registration (is this host's address loopback, and the name valid?)"
                )
            data += chunk
    except socket.timeout:
        raise EpmdError(f"the port mapper at {_addr(host, port)} did not answer within {timeout} s") from None
    except OSError as exc:
        raise EpmdError(f"lost the port mapper at {_addr(host, port)}: {exc.strerror or exc}") from None
