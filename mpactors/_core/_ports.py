"""What the core asks of the layers wired into it, as typed interfaces.

The core imports nothing from ``dist``: ``mpactors.node`` hands the kernel a
:class:`DistPort` (``mpactors.dist.Distribution`` implements it), and the
kernel's parts - the link table, the registry, introspection, the cluster
requests - reach the kernel itself through :class:`KernelServices`, so none
of them imports the kernel module.

Requests that answer later (a remote spawn, a ping) return :data:`DEFER` and
answer through ``KernelServices.reply`` with the :data:`Reply` they were
given.
"""
from __future__ import annotations

from multiprocessing.connection import Connection
from typing import Any, Callable, List, Optional, Protocol, Tuple

from ..cookie import Cookie
from ..pid import Pid, Ref

__all__ = ["DEFER", "Reply", "DistPort", "KernelServices"]

#: Returned by an ``op_*`` handler that answers later through ``reply``.
DEFER = object()

#: Where a request's answer goes: ``("local", Slot)`` (a thread of the node),
#: ``("actor", ProcRec, tag)`` (an actor's control connection) or
#: ``("fn", callable(ok, value))``.
Reply = Tuple[Any, ...]


class DistPort(Protocol):
    """The distribution layer, as the kernel sees it (kernel thread, unless said)."""

    route_conn: Connection  # write end of the router pipe, inherited by actors

    def private_fds(self) -> List[int]:
        """Descriptors an actor forked from the node must close."""

    def route(self, dest: Any, payload: bytes) -> None:
        """Any thread: send pickled ``payload`` to a remote pid or ``(name, node)``."""

    def drain_router(self) -> bool:
        """Forward the remote sends written so far (before a signal goes out)."""

    def link(self, caller: Pid, pid: Pid) -> None:
        """Ask ``pid``'s node to link it to ``caller``."""

    def unlink(self, caller: Pid, pid: Pid) -> None:
        """Ask ``pid``'s node to drop its link to ``caller``."""

    def exit_signal(self, frm: Pid, to: Pid, reason: Any, link: bool) -> None:
        """Send an exit signal to the remote ``to``."""

    def monitor(self, watcher: Pid, target: Any, ref: Ref) -> None:
        """Monitor a remote pid or ``(name, node)``; ``monitor_failed`` if unreachable."""

    def demonitor(self, ref: Ref, target: Any) -> None:
        """Drop the remote monitor ``ref``."""

    def down(self, ref: Ref, target: Any, reason: Any, watcher: Pid) -> None:
        """Tell the remote ``watcher`` that ``target`` ended."""

    def trace(self, pid: Pid, flag: bool, tracer: Pid) -> None:
        """Switch tracing of the remote ``pid``."""

    def remote_spawn(
        self, caller: Pid, node: str, payload: bytes, fn_name: str, link: bool, monitor: bool, reply: Reply
    ) -> Any:
        """Spawn on ``node``; answers through ``reply`` (returns :data:`DEFER`)."""

    def process_info(self, caller: Pid, pid: Pid, reply: Reply) -> Any:
        """``process_info`` of a remote pid; answers through ``reply``."""

    def ping(self, node: str, reply: Reply) -> Any:
        """``'pong'`` or ``'pang'``, now or through ``reply``."""

    def disconnect(self, node: str) -> bool:
        """Drop the connection to ``node``; False if there was none."""

    def connected_nodes(self, kind: str) -> List[str]:
        """``nodes(kind)``: ``'visible'``, ``'hidden'`` or ``'connected'``."""

    def is_connected(self, node: str) -> bool:
        """True while a connection to ``node`` is up."""

    def get_cookie(self, node: Optional[str]) -> Cookie:
        """The cookie used for ``node`` (the node's own without one)."""

    def set_cookie(self, cookie: Cookie, node: Optional[str]) -> None:
        """Use ``cookie`` for ``node`` (for every node without one)."""

    def close(self) -> None:
        """At node stop: drop every connection and the registration."""


class KernelServices(Protocol):
    """What the kernel's parts ask of the kernel (all in the kernel thread)."""

    node_name: str
    creation: int
    dist: Optional[DistPort]
    reply_to: Reply  # the reply of the request being served

    def reply(self, reply: Reply, ok: bool, value: Any) -> None:
        """Answer a request made through ``Kernel.request``."""

    def timer(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the kernel thread after ``delay`` seconds."""

    def deliver(self, to: Pid, msg: Any) -> None:
        """Put a runtime message in ``to``'s mailbox, on this node or another."""

    def make_ref(self) -> Ref:
        """A new unique reference."""
