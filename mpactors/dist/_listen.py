"""Where a node listens and how it finds other nodes' ports (SPEC, "Deployment across machines").

:class:`Listening` holds a node's ``port_range``, ``interface`` and
``dist_port`` (from ``Node(...)``, else ``MPACTORS_PORT_RANGE``,
``MPACTORS_INTERFACE``, ``MPACTORS_DIST_PORT``), checked when the node is
made. :meth:`Listening.listen` opens the listener:

* ``dist_port=P``: on ``P``, and the node does not use a port mapper at all
  (it neither starts, registers with, nor asks one): every node of such a
  cluster listens on the same ``P``, so a peer is at ``host:P``
  (Erlang's ``-erl_epmd_port``). A hidden node (the CLI's) only dials, so it
  listens on any free port: it can run on a host whose node holds ``P``.
* ``port_range=(lo, hi)``: on the first free port of the range, else
  :class:`~mpactors.errors.NodeError` naming the range;
* otherwise on any free port; in every case on ``interface`` only when given
  (default: all addresses).
"""
from __future__ import annotations

import errno
import socket
from multiprocessing.connection import Listener
from typing import Any, Optional, Tuple

from .. import config, epmd
from ..errors import BadArg, EpmdError, NodeError

__all__ = ["Listening", "dial", "parse_port_range"]


def _port(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise BadArg(f"`{what}` must be a port number in 1..65535, not {value!r}")
    return value


def parse_port_range(value: Any, what: str = "port_range") -> Optional[Tuple[int, int]]:
    """``(lo, hi)``, ``[lo, hi]`` or ``'LO-HI'`` -> ``(lo, hi)``; None stays None.

    Raises:
        BadArg: not two ports with ``lo <= hi``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        lo_text, sep, hi_text = value.strip().partition("-")
        try:
            if not sep:
                raise ValueError
            value = (int(lo_text), int(hi_text))
        except ValueError:
            raise BadArg(f"`{what}` must be LO-HI (like 9100-9199), not {value!r}") from None
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise BadArg(f"`{what}` must be (lo, hi), not {value!r}")
    lo, hi = _port(value[0], what), _port(value[1], what)
    if lo > hi:
        raise BadArg(f"`{what}` must have lo <= hi, not {lo}-{hi}")
    return lo, hi


def _interface(value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadArg(f"`interface` must be an IPv4 address like '10.0.0.2', not {value!r}")
    try:
        socket.inet_aton(value)
    except OSError:
        raise BadArg(f"`interface` must be an IPv4 address like '10.0.0.2', not {value!r}") from None
    return value


def _dist_port(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise BadArg(f"`dist_port` must be a port number, not {value!r}") from None
    return _port(value, "dist_port")


class Listening:
    """A node's listening options, checked; owned by the node's distribution."""

    def __init__(self, port_range: Any = None, interface: Any = None, dist_port: Any = None, hidden: bool = False) -> None:
        env = config.env_deploy()
        self.port_range = parse_port_range(port_range if port_range is not None else env["port_range"])
        self.interface = _interface(interface if interface is not None else env["interface"])
        self.dist_port = _dist_port(dist_port if dist_port is not None else env["dist_port"])
        if self.dist_port is not None and port_range is not None:
            raise BadArg("`dist_port` and `port_range` exclude each other: a dist_port node listens on dist_port")
        self.hidden = hidden

    @property
    def uses_port_mapper(self) -> bool:
        """False for a ``dist_port`` node: it never contacts a port mapper."""
        return self.dist_port is None

    def listen(self) -> Listener:
        """The node's listener, bound as the options say.

        Raises:
            NodeError: the port (or every port of the range) is taken.
        """
        host = self.interface or "0.0.0.0"
        if self.dist_port is not None and not self.hidden:
            ports: Tuple[int, ...] = (self.dist_port,)
        elif self.port_range is not None and self.dist_port is None:
            ports = tuple(range(self.port_range[0], self.port_range[1] + 1))
        else:
            ports = (0,)
        last: Optional[OSError] = None
        for port in ports:
            try:
                return Listener((host, port), family="AF_INET", backlog=128)
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    raise NodeError(f"cannot listen on {host}: no interface has that address") from None
                if exc.errno != errno.EADDRINUSE:
                    raise NodeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
                last = exc
        if self.dist_port is not None:
            raise NodeError(f"cannot listen on {host}:{self.dist_port} (dist_port): the port is in use") from None
        assert self.port_range is not None and last is not None
        lo, hi = self.port_range
        raise NodeError(f"no free port in port_range {lo}-{hi} on {host}: every one is in use") from None

    def peer_port(self, alive: str, address: str) -> int:
        """The port node ``alive`` listens on at ``address``: ``dist_port``, or the port mapper's answer.

        Raises:
            NodeError: the port mapper there does not know ``alive`` (``unknown
                name: ...``), does not answer in time (``timeout: ...``) or
                cannot be reached (``unreachable host: ...``).
        """
        if self.dist_port is not None:
            return self.dist_port
        try:
            port = epmd.port_please(alive, host=address, timeout=config.CONNECT_TIMEOUT)
        except EpmdError as exc:
            timed_out = "timed out" in str(exc) or "did not answer" in str(exc)
            raise NodeError(f"{'timeout' if timed_out else 'unreachable host'}: {exc}") from None
        if port is None:
            raise NodeError(f"unknown name: no node {alive!r} is registered with the port mapper at {address}")
        return port


def dial(address: str, port: int) -> socket.socket:
    """A TCP connection to a node at ``address:port`` (``TCP_NODELAY``, blocking).

    Raises:
        NodeError: saying why - a timeout, or nothing listening there.
    """
    try:
        sock = socket.create_connection((address, port), timeout=config.CONNECT_TIMEOUT)
    except socket.timeout:
        raise NodeError(f"timeout: no answer from {address}:{port} within {config.CONNECT_TIMEOUT} s") from None
    except ConnectionRefusedError:
        raise NodeError(f"connection refused at {address}:{port}: no node listens there") from None
    except OSError as exc:
        raise NodeError(f"cannot reach {address}:{port}: {exc.strerror or exc}") from None
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
