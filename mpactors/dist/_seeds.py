"""Seeds: nodes a node keeps connected to, so a cluster heals itself after a partition.

``Node(seeds=[...])`` (``--seed``, ``MPACTORS_SEEDS``): at start and whenever
a seed is not connected, the node connects to it, with a backoff from
:data:`FIRST_RETRY` doubling up to :data:`MAX_RETRY` (5 s) after each failed
attempt - no ping needed. Once connected, the mesh does the rest (each node
tells a new peer the nodes it knows).

A seed ``NAME@dns:HOST`` stands for ``NAME@ADDR`` for every IPv4 address
``HOST`` resolves to, resolved again every :data:`RESOLVE_EVERY` seconds (a
container platform's headless service, a compose service name). The node's
own name is left out.

:class:`SeedKeeper` runs a thread (name resolution blocks) that hands the
names to the kernel thread, which owns the peers and starts the attempts.
"""
from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence

from .._core._kernel import Kernel
from ..errors import BadArg

__all__ = ["FIRST_RETRY", "MAX_RETRY", "RESOLVE_EVERY", "SeedKeeper", "expand", "parse_seeds"]

log = logging.getLogger("mpactors.dist")

#: Seconds before the first retry of a seed that could not be reached.
FIRST_RETRY = 0.5
#: The longest wait between two attempts at one seed.
MAX_RETRY = 5.0
#: How often ``NAME@dns:HOST`` seeds are resolved again.
RESOLVE_EVERY = 5.0
_TICK = 0.25  # how often the keeper looks for seeds to connect (no event to wait on)
_DNS = "dns:"


def parse_seeds(value: Any) -> List[str]:
    """Seeds from ``Node(seeds=...)`` or ``MPACTORS_SEEDS``: a list of names, or one comma-separated string.

    Raises:
        BadArg: a seed is not ``name@host`` or ``name@dns:host``.
    """
    if value is None:
        return []
    if isinstance(value, str):
        value = [part for part in (p.strip() for p in value.split(",")) if part]
    if not isinstance(value, (list, tuple)):
        raise BadArg(f"`seeds` must be a list of node names, not {value!r}")
    seeds: List[str] = []
    for seed in value:
        if not isinstance(seed, str):
            raise BadArg(f"a seed must be a node name like 'a@host' or 'a@dns:service', not {seed!r}")
        alive, _, host = seed.strip().partition("@")
        if host.startswith(_DNS):
            host = host[len(_DNS):]
            if not host:
                raise BadArg(f"seed {seed!r}: 'name@dns:HOST' needs a host name to resolve")
        if not alive or not host or not all(c.isalnum() or c in "_-" for c in alive):
            raise BadArg(f"a seed must be a node name like 'a@host' or 'a@dns:service', not {seed!r}")
        seeds.append(seed.strip())
    return seeds


def expand(seed: str) -> List[str]:
    """``NAME@dns:HOST`` -> ``NAME@ADDR`` for every IPv4 address of HOST (none if it does not resolve)."""
    alive, _, host = seed.partition("@")
    if not host.startswith(_DNS):
        return [seed]
    host = host[len(_DNS):]
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        log.info("seed %s: cannot resolve %r: %s", seed, host, exc)
        return []
    return sorted({f"{alive}@{info[4][0]}" for info in infos})


class SeedOwner(Protocol):
    """What :class:`SeedKeeper` needs of the distribution layer."""

    name: str
    kernel: Kernel
    peers: Dict[str, Any]

    def connect(self, name: str, done: Optional[Callable[[bool], None]] = None) -> Any:
        """Connect to ``name`` in the background; ``done(ok)`` in the kernel thread."""


class SeedKeeper:
    """Keeps a node connected to its seeds (owned by the node's distribution)."""

    def __init__(self, dist: SeedOwner, seeds: Sequence[str]) -> None:
        self.dist = dist
        self.seeds = list(seeds)
        self._closing = threading.Event()
        self._names: List[str] = []
        # Kernel thread only: per name, when the next attempt may start and the current backoff.
        self._next: Dict[str, float] = {}
        self._backoff: Dict[str, float] = {}
        self._trying: Dict[str, bool] = {}

    def start(self) -> None:
        if self.seeds:
            threading.Thread(target=self._run, name="mpactors-dist-seeds", daemon=True).start()

    def close(self) -> None:
        self._closing.set()

    def names(self) -> List[str]:
        """The seeds' node names as last expanded."""
        return list(self._names)

    def _run(self) -> None:
        resolved_at: Optional[float] = None
        while not self._closing.is_set():
            now = time.monotonic()
            if resolved_at is None or now - resolved_at >= RESOLVE_EVERY:
                names: List[str] = []
                for seed in self.seeds:
                    names.extend(n for n in expand(seed) if n not in names)
                self._names = [n for n in names if n != self.dist.name]
                resolved_at = now
            try:
                self.dist.kernel.cast(self._visit, list(self._names))
            except Exception:  # noqa: BLE001 - the kernel is stopping
                return
            self._closing.wait(_TICK)

    def _visit(self, names: List[str]) -> None:
        """Kernel thread: start an attempt at every seed that is not connected and is due."""
        if self._closing.is_set():
            return
        now = time.monotonic()
        for name in names:
            # A known peer is connected or being connected: its outcome is what we wait for.
            if name in self.dist.peers or self._trying.get(name) or now < self._next.get(name, 0.0):
                continue
            self._trying[name] = True
            self.dist.connect(name, functools.partial(self._done, name))

    def _done(self, name: str, ok: bool) -> None:
        """Kernel thread: an attempt at ``name`` ended."""
        self._trying[name] = False
        if ok:
            self._backoff.pop(name, None)
            self._next.pop(name, None)
            return
        backoff = min(self._backoff.get(name, FIRST_RETRY / 2) * 2, MAX_RETRY)
        self._backoff[name] = backoff
        self._next[name] = time.monotonic() + backoff
