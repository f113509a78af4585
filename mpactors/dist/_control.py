"""Control frames: links, monitors, exit signals, spawn and info across nodes.

:class:`Control` sends the control messages the kernel asks for (it
implements that part of :class:`~mpactors._core._ports.DistPort`) and turns
each one received into a call of a public method of the core
(``kernel.links.link_remote``, ``signal_remote``...): the tables and
Erlang's exit-signal rules stay in ``mpactors._core._links``. All in the
kernel thread. The verbs (first item of a CTRL frame's tuple)::

    verb        arguments                                   receiver calls
    link        frm, to                                     links.link_remote
    unlink      frm, to                                     links.unlink_remote
    exit        frm, to, pickled reason, link               links.signal_remote
    monitor     watcher, pid or name, ref                   links.monitor_remote
    demonitor   ref, target                                 links.demonitor_remote
    down        ref, target, pickled reason, watcher        links.monitor_fired
    trace       pid, flag, tracer                           kernel.request('trace')
    spawn       tag, caller, payload, fn_name, link, monitor  kernel.spawn_for_remote
    info        tag, caller, pid                            kernel.request('process_info')
    reply       tag, ok, pickled value                      answers spawn / info
    peers       [node names]                                connect to each (the mesh)
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from .. import _codec
from .._core._kernel import Kernel
from .._core._ports import DEFER, Reply
from . import _compat
from ._peer import Peer
from ..errors import BadArg, NodeError
from ..pid import Pid, Ref

__all__ = ["Control", "ControlOwner"]

log = logging.getLogger("mpactors.dist")

#: A pending request to another node: (reply, node, transform of the answer).
Pending = Tuple[Reply, str, Optional[Callable[[Any], Any]]]

# A spawn request up to this size is loaded once in the kernel thread first, so
# that a callable this node cannot load (a module it lacks) fails at the caller.
_CHECK_LOADS_UP_TO = 1 << 20


class ControlOwner(Protocol):
    """What :class:`Control` needs of the distribution layer."""

    name: str
    hidden: bool
    peers: Dict[str, Peer]
    last_failure: Dict[str, str]  # node -> why the last attempt to connect failed

    def connect(self, name: str, done: Optional[Callable[[bool], None]] = None) -> Peer:
        """The peer for ``name``, connecting in the background if needed."""

    def drain_router(self) -> bool:
        """Forward the remote sends written so far."""


class Control:
    """Sends and receives control frames (kernel thread)."""

    def __init__(self, owner: ControlOwner, kernel: Kernel) -> None:
        self.owner = owner
        self.kernel = kernel
        self.name = owner.name
        self._tags = 0
        self._pending: Dict[int, Pending] = {}

    # -- receiving ---------------------------------------------------------------
    def handle(self, peer: Peer, msg: tuple) -> None:
        """A control message from ``peer``."""
        handler = getattr(self, "_ctrl_" + str(msg[0]), None)
        if handler is None:
            log.error("unknown control message %r from %s", msg[0], peer.name)
            return
        try:
            handler(peer, *msg[1:])
        except Exception:  # noqa: BLE001 - a bad request must not kill the kernel
            log.exception("control message %r from %s failed", msg[0], peer.name)

    def _ctrl_peers(self, peer: Peer, names: List[str]) -> None:
        if self.owner.hidden:
            return
        for name in names:
            if name != self.name and name not in self.owner.peers:
                self.owner.connect(name)

    def _ctrl_link(self, peer: Peer, frm: Pid, to: Pid) -> None:
        self.kernel.links.link_remote(frm, to)

    def _ctrl_unlink(self, peer: Peer, frm: Pid, to: Pid) -> None:
        self.kernel.links.unlink_remote(frm, to)

    def _ctrl_exit(self, peer: Peer, frm: Pid, to: Pid, reason: bytes, link: bool) -> None:
        self.kernel.links.signal_remote(frm, to, _codec.loads(reason), link)

    def _ctrl_monitor(self, peer: Peer, watcher: Pid, target: Any, ref: Ref) -> None:
        self.kernel.links.monitor_remote(watcher, target, ref)

    def _ctrl_demonitor(self, peer: Peer, ref: Ref, target: Any) -> None:
        self.kernel.links.demonitor_remote(ref, target)

    def _ctrl_down(self, peer: Peer, ref: Ref, target: Any, reason: bytes, watcher: Pid) -> None:
        self.kernel.links.monitor_fired(ref, target, _codec.loads(reason), watcher)

    def _ctrl_trace(self, peer: Peer, pid: Pid, flag: bool, tracer: Pid) -> None:
        self.kernel.request(tracer, "trace", (pid, flag, tracer), ("fn", lambda ok, v: None))

    def _ctrl_spawn(self, peer: Peer, tag: int, caller: Pid, payload: bytes, fn_name: str, link: bool, monitor: bool) -> None:
        try:
            if len(payload) <= _CHECK_LOADS_UP_TO:  # what cannot be loaded here fails at the caller,
                _codec.loads(payload)  # not in an actor that dies unseen (a big one: in the actor)
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            why = f"spawn on {self.name} failed: cannot load {fn_name} there: {type(exc).__name__}: {exc}"
            peer.ctrl("reply", tag, False, _codec.dumps(BadArg(why)))
            return
        try:
            pid, ref = self.kernel.spawn_for_remote(caller, payload, fn_name, link, monitor)
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            peer.ctrl("reply", tag, False, _codec.dumps(NodeError(f"spawn on {self.name} failed: {exc}")))
            return
        peer.ctrl("reply", tag, True, _codec.dumps((pid, ref)))

    def _ctrl_info(self, peer: Peer, tag: int, caller: Pid, pid: Pid) -> None:
        def answer(ok: bool, value: Any) -> None:
            peer.ctrl("reply", tag, ok, _codec.dumps(value))

        self.kernel.request(caller, "process_info", (pid,), ("fn", answer))

    def _ctrl_reply(self, peer: Peer, tag: int, ok: bool, value: bytes) -> None:
        pending = self._pending.pop(tag, None)
        if pending is None:
            return
        reply, _, then = pending
        try:
            result = _codec.loads(value)
        except Exception as exc:  # noqa: BLE001
            self.kernel.reply(reply, False, BadArg(f"unreadable reply from {peer.name}: {exc}"))
            return
        if ok and then is not None:
            result = then(result)
        self.kernel.reply(reply, ok, result)

    def fail_pending(self, node: str) -> None:
        """``node`` went down: its unanswered requests fail."""
        for tag, (reply, where, _) in list(self._pending.items()):
            if where == node:
                del self._pending[tag]
                self.kernel.reply(reply, False, NodeError(f"node {node} went down"))

    # -- requests from the kernel ------------------------------------------------
    def _request(self, node: str, reply: Reply, then: Optional[Callable[[Any], Any]], *msg: Any) -> Any:
        self._tags += 1
        tag = self._tags
        self._pending[tag] = (reply, node, then)

        def connected(ok: bool) -> None:
            if not ok:
                pending = self._pending.pop(tag, None)
                if pending is not None:
                    why = self.owner.last_failure.get(node, "no answer")
                    self.kernel.reply(reply, False, NodeError(f"node {node} is unreachable: {why}"))
                return
            compat = self.owner.peers[node].compat
            refused = _compat.by_value_refusal(compat, node, msg[2]) if msg[0] == "spawn" else None
            if refused is not None:
                del self._pending[tag]
                self.kernel.reply(reply, False, BadArg(refused))
                return
            self._ctrl_now(node, msg[0], tag, *msg[1:])

        self.owner.connect(node, connected)
        return DEFER

    def remote_spawn(
        self, caller: Pid, node: str, payload: bytes, fn_name: str, link: bool, monitor: bool, reply: Reply
    ) -> Any:
        def then(result: Tuple[Pid, Optional[Ref]]) -> Any:
            pid, ref = result
            self.kernel.links.remote_spawned(caller, pid, ref, link, monitor)
            return (pid, ref) if monitor else pid

        return self._request(node, reply, then, "spawn", caller, payload, fn_name, link, monitor)

    def process_info(self, caller: Pid, pid: Pid, reply: Reply) -> Any:
        return self._request(pid.node, reply, None, "info", caller, pid)

    def link(self, caller: Pid, pid: Pid) -> None:
        def failed() -> None:  # linking to an unreachable node: the link breaks at once
            self.kernel.links.link_failed(caller, pid)

        self._ctrl_to(pid.node, failed, "link", caller, pid)

    def unlink(self, caller: Pid, pid: Pid) -> None:
        self._ctrl_to(pid.node, None, "unlink", caller, pid)

    def exit_signal(self, frm: Pid, to: Pid, reason: Any, link: bool) -> None:
        self._ctrl_to(to.node, None, "exit", frm, to, _codec.dumps_reason(reason), link)

    def down(self, ref: Ref, target: Any, reason: Any, watcher: Pid) -> None:
        self._ctrl_to(watcher.node, None, "down", ref, target, _codec.dumps_reason(reason), watcher)

    def trace(self, pid: Pid, flag: bool, tracer: Pid) -> None:
        self._ctrl_to(pid.node, None, "trace", pid, flag, tracer)

    def monitor(self, watcher: Pid, target: Any, ref: Ref) -> None:
        node = target.node if isinstance(target, Pid) else target[1]
        name = target if isinstance(target, Pid) else target[0]

        def connected(ok: bool) -> None:
            if ok:
                self._ctrl_now(node, "monitor", watcher, name, ref)
            else:
                self.kernel.links.monitor_failed(watcher, ref, target)

        self.owner.connect(node, connected)

    def demonitor(self, ref: Ref, target: Any) -> None:
        node = target.node if isinstance(target, Pid) else target[1]
        peer = self.owner.peers.get(node)
        if peer is not None and peer.up:
            peer.ctrl("demonitor", ref, target)

    def _ctrl_now(self, node: str, *msg: Any) -> None:
        """Send a control message on an established connection, after pending sends."""
        self.owner.drain_router()
        self.owner.peers[node].ctrl(*msg)

    def _ctrl_to(self, node: str, failed: Optional[Callable[[], None]], *msg: Any) -> None:
        """Send a control message, connecting first if needed; ``failed()`` if that fails."""
        self.owner.drain_router()
        peer = self.owner.peers.get(node)
        if peer is not None and peer.up:
            peer.ctrl(*msg)
            return

        def connected(ok: bool) -> None:
            if ok:
                self._ctrl_now(node, *msg)
            elif failed is not None:
                failed()

        self.owner.connect(node, connected)
