"""A node's registration with its host's port mapper, kept alive across port mapper restarts.

A port mapper forgets a node the moment the node's registration connection
closes, and one that was killed and restarted knows nothing. Erlang leaves it
at that; here :class:`RegistrationKeeper` watches the connection in a thread
of its own, and when the port mapper closes it, registers the node again
(same name and port; the node keeps its creation) as soon as a port mapper
answers - tried every :data:`RETRY` seconds, so within 5 s of it coming back.
It does not start a port mapper itself: whoever restarts it (systemd, the
next node that starts) decides.

A ``dist_port`` node has no registration: :class:`NoRegistration` stands in.
"""
from __future__ import annotations

import logging
import os
import random
import select
import socket
import threading
import time
from typing import Any, List, Optional

from .. import epmd
from .._core._kernel import Kernel
from ..errors import EpmdError, NodeError
from ..epmd import Registration
from ..epmd import protocol as p

__all__ = ["RETRY", "NoRegistration", "RegistrationKeeper", "full_name_extra", "host_of_extra"]

log = logging.getLogger("mpactors.dist")

#: Seconds between two attempts to register again with a port mapper that went away.
RETRY = 1.0
# How often the watcher looks at the closing flag (a close does not wake select).
_POLL = 0.5


def full_name_extra(host: str) -> bytes:
    """ALIVE2's ``Extra`` for a node on ``host``: ``b"mpactors@HOST"`` (``b"mpactors"`` without a host)."""
    return p.MPACTORS_EXTRA + (b"@" + host.encode("utf-8") if host else b"")


def host_of_extra(extra: bytes) -> Optional[str]:
    """The host part an mpactors node registered in ``Extra``, or None."""
    prefix = p.MPACTORS_EXTRA + b"@"
    if not extra.startswith(prefix):
        return None
    return extra[len(prefix):].decode("utf-8", "replace") or None


class NoRegistration:
    """A ``dist_port`` node's stand-in: no port mapper, a random creation."""

    def __init__(self) -> None:
        self.creation = random.randint(1, 2**32 - 1)

    def fds(self) -> List[int]:
        return []

    def start(self, kernel: Kernel) -> None:
        pass

    def close(self) -> None:
        pass


class RegistrationKeeper:
    """Registers node ``alive`` on ``port`` and keeps it registered until :meth:`close`.

    Raises (from the constructor):
        NodeError: the name is already registered on this host.
        EpmdError: no port mapper answers (one is started first if none runs).
    """

    def __init__(self, alive: str, port: int, hidden: bool, host: str = "") -> None:
        self.alive, self.port, self.hidden = alive, port, hidden
        # The host part travels in ALIVE2's Extra field, so a command given a
        # bare name can complete it (cli._common.complete_name).
        self.extra = full_name_extra(host)
        epmd.ensure_running()
        self.current: Optional[Registration] = self._register()
        self.creation = self.current.creation or 1
        self.kernel: Optional[Kernel] = None
        self._closing = False
        #: How many times the node registered again (a port mapper came back).
        self.renewals = 0

    def _register(self, timeout: Optional[float] = None) -> Registration:
        try:
            if timeout is None:
                return epmd.register(self.alive, self.port, hidden=self.hidden, extra=self.extra)
            return epmd.register(self.alive, self.port, hidden=self.hidden, extra=self.extra, timeout=timeout)
        except EpmdError as exc:
            if "already in use" in str(exc):
                raise NodeError(f"node name {self.alive!r} is already in use on this host") from None
            raise

    def fds(self) -> List[int]:
        """Descriptors an actor forked from the node must close."""
        assert self.current is not None
        return [self.current.fileno()]

    def start(self, kernel: Kernel) -> None:
        """Begin watching the port mapper connection (the kernel is up)."""
        self.kernel = kernel
        threading.Thread(target=self._watch, args=(kernel,), name="mpactors-dist-epmd", daemon=True).start()

    def _watch(self, kernel: Kernel) -> None:
        while not self._closing:
            reg = self.current
            if reg is not None:
                try:
                    readable, _, _ = select.select([reg.fileno()], [], [], _POLL)
                except (OSError, ValueError):  # closed by close()
                    return
                if self._closing:
                    return
                if not readable:
                    continue
                # The port mapper closed our registration (it died or was killed).
                log.warning("lost the port mapper at %s: node %s will register again once one answers",
                            reg.address, self.alive)
                self.current = None
                kernel.close_private(reg)
            time.sleep(RETRY)  # waiting for a port mapper to come back: nothing to wait on
            if self._closing:
                return
            try:
                new = self._register(timeout=RETRY)
            except NodeError as exc:
                log.error("cannot register %s again: %s; retrying", self.alive, exc)
                continue
            except EpmdError:
                continue  # not back yet
            with kernel.fd_lock:
                if self._closing:
                    new.close()
                    return
                kernel.private_fds.add(new.fileno())
                self.current = new
            self.renewals += 1
            log.info("registered %s with the port mapper at %s again (port %d)", self.alive, new.address, self.port)

    def close(self) -> None:
        """Unregister and stop watching (idempotent)."""
        if self._closing:
            return
        self._closing = True
        reg, self.current = self.current, None
        if reg is not None:
            # The watcher may be in select() on it, which keeps the connection
            # open past close(): shut it down so the port mapper forgets us now.
            try:
                with socket.socket(fileno=os.dup(reg.fileno())) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if self.kernel is not None:
                self.kernel.close_private(reg)
            else:
                reg.close()
