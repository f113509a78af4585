"""Host and node-name rules, in one place: short host names, completing and checking node names.

A node name is ``alive@host``. Short names (the default) use this host's
short name (``socket.gethostname()`` up to the first dot); long names
(``longnames=True``) need a fully qualified host or an IP address, as with
Erlang's ``-sname`` and ``-name``.
"""
from __future__ import annotations

import socket
from typing import Tuple

from .errors import BadArg, NodeError

__all__ = ["short_host", "local_host_names", "is_local_host", "node_name", "target_node"]


def short_host() -> str:
    """This host's short name, as short node names use it."""
    return socket.gethostname().split(".")[0] or "localhost"


def local_host_names() -> Tuple[str, ...]:
    """Names that reach this host over loopback: ``localhost``, the host name and its short form."""
    hostname = socket.gethostname()
    return ("localhost", hostname, hostname.split(".")[0])


def is_local_host(host: str) -> bool:
    """True when ``host`` names this host (its names, its FQDN or a loopback address)."""
    return host in local_host_names() or host.startswith("127.") or host == socket.getfqdn()


def node_name(name: str, longnames: bool = False) -> str:
    """A node's own name: ``'a'`` -> ``'a@<short hostname>'``; ``'a@host'`` is checked and kept.

    Raises:
        NodeError: an empty name, a character other than letters, digits,
            ``_`` and ``-`` before ``@``, a long name without ``longnames`` or
            a short one with it.
    """
    if not isinstance(name, str) or not name:
        raise NodeError(f"a node name must be a non-empty string, not {name!r}")
    alive, _, host = name.partition("@")
    if not alive or not all(c.isalnum() or c in "_-" for c in alive):
        raise NodeError(f"invalid node name {name!r}: use letters, digits, '_' and '-' before '@'")
    if not host:
        if longnames:
            raise NodeError(f"long node names need a host: {name!r} should be like 'a@host.example.com' or 'a@127.0.0.1'")
        host = short_host()
    if longnames is False and "." in host and not host.replace(".", "").isdigit():
        raise NodeError(f"{name!r} is a long name: pass longnames=True (--longnames)")
    return f"{alive}@{host}"


def target_node(node: str) -> str:
    """Another node, as a user types it: ``'a'`` -> ``'a@<short hostname>'``; ``'a@host'`` is kept.

    Raises:
        BadArg: an empty name, or an empty part around ``@``.
    """
    node = node.strip()
    if not node or node.startswith("@") or node.endswith("@"):
        raise BadArg(f"not a node name: {node!r} (expected 'name' or 'name@host')")
    return node if "@" in node else f"{node}@{short_host()}"
