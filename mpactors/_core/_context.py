"""The calling process: what ``primitives`` and the behaviours may ask of it.

Every OS process of a node acts as one Erlang process: an actor (context
:class:`mpactors._core._worker.ActorProc`, installed by the actor bootstrap)
or the node's main process (``mpactors.node.NodeMain``, installed by
``Node.start``). Both satisfy :class:`Process`; ``primitives``, ``genserver``,
``rpc`` and ``introspect`` use only this Protocol and :func:`current`.
"""
from __future__ import annotations

from typing import Any, Optional, Protocol

from ..errors import BadArg, NotAlive
from ..pid import Pid, Ref
from .mailbox import Mailbox

__all__ = ["Process", "current", "current_or_none", "set_current", "check_timeout"]


class Process(Protocol):
    """The calling process's runtime (an actor, or the node's main process)."""

    pid: Pid
    node_name: str
    creation: int
    mailbox: Mailbox
    trapping: bool  # mirrors the kernel's trap_exit flag, for the actor's own exit handling
    tracer: Optional[Pid]

    def call(self, op: str, *args: Any) -> Any:
        """Run kernel request ``op`` for this process and return its answer (or raise its error)."""

    def send_local(self, dest: Pid, payload: bytes) -> None:
        """Put pickled ``payload`` in the mailbox of the local ``dest`` (dropped if it is dead)."""

    def send_remote(self, dest: Any, payload: bytes) -> None:
        """Send pickled ``payload`` to a pid or ``(name, node)`` on another node."""

    def whereis(self, name: str) -> Optional[Pid]:
        """The local pid registered as ``name``, or None."""

    def make_ref(self) -> Ref:
        """A reference unique in the cluster."""

    def trace(self, event: str, msg: Any, peer: Any) -> None:
        """Report a traced ``send``/``receive`` to this process's tracer."""


_current: Optional[Process] = None  # one per OS process: set once by the node or the actor bootstrap


def set_current(proc: Optional[Process]) -> None:
    """Install (or, with None, remove) the calling process's context."""
    global _current
    _current = proc


def current_or_none() -> Optional[Process]:
    """The calling process, or None when this OS process is no node or actor."""
    return _current


def current() -> Process:
    """The calling process.

    Raises:
        NotAlive: this OS process is neither a node nor an actor.
    """
    proc = _current
    if proc is None:
        raise NotAlive(
            "this process is not an mpactors node or actor: start one with "
            "`with mpactors.Node('name'):` first"
        )
    return proc


def check_timeout(timeout: Any) -> None:
    """Raise :class:`BadArg` unless ``timeout`` is None or a non-negative number of seconds."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise BadArg(f"`timeout` must be a non-negative number of seconds or None, not {timeout!r}")
