"""Injected network faults, for tests: cut this node off from named peers.

:func:`block` makes the link to a node behave like a cut cable, silently and
in both directions as seen from this node: nothing more is written to that
peer (ticks included, so the peer's reader sees silence and declares this node
down after its ticktime), and no connection to or from it is set up. A
partition between two nodes is a :func:`block` on each side
(:func:`mpactors.testing.partition` does that). :func:`unblock` restores
traffic; nodes reconnect on the next send, as after a real outage.

The set is per OS process and consulted by the distribution layer in three
places: before a frame is written, when dialling, and when accepting.
"""
from __future__ import annotations

import threading
from typing import FrozenSet

__all__ = ["block", "unblock", "blocked", "is_blocked"]

_lock = threading.Lock()
_blocked: FrozenSet[str] = frozenset()


def block(node: str) -> None:
    """Silently drop all traffic between this node and ``node`` until :func:`unblock`."""
    global _blocked
    if not isinstance(node, str) or "@" not in node:
        raise ValueError(f"not a node name: {node!r}")
    with _lock:
        _blocked = _blocked | {node}


def unblock(node: str) -> None:
    """Let traffic between this node and ``node`` flow again (no-op if not blocked)."""
    global _blocked
    with _lock:
        _blocked = _blocked - {node}


def blocked() -> FrozenSet[str]:
    """The nodes this node is cut off from."""
    return _blocked


def is_blocked(node: str) -> bool:
    """True while traffic to and from ``node`` is dropped (a lock-free read)."""
    return node in _blocked
