"""Remote operations of a node: links, monitors, exit signals, spawn and info across nodes.

:class:`RemoteOps` is a part of :class:`mpactors.dist.Distribution`: the
control messages it sends and the ``_ctrl_<name>`` handlers that receive them
(all in the kernel thread).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from .. import _codec
from . import _compat
from ..errors import BadArg, NodeError
from ..messages import Down
from ..pid import Pid, Ref

if TYPE_CHECKING:
    from ._peer import Peer

__all__ = ["RemoteOps"]

log = logging.getLogger("mpactors.dist")

# A spawn request up to this size is loaded once in the kernel thread first, so
# that a callable this node cannot load (a module it lacks) fails at the caller.
_CHECK_LOADS_UP_TO = 1 << 20


class RemoteOps:
    """Remote links, monitors, exit signals, spawns and ``process_info`` (a Distribution mixin)."""

    # Provided by Distribution.
    name: str
    hidden: bool
    kernel: Any
    peers: Dict[str, "Peer"]
    _tags: int
    _pending: Dict[int, Tuple[Any, str, Any]]
    last_failure: Dict[str, str]

    def connect(self, name: str, done: Optional[Callable[[bool], None]] = None) -> "Peer":
        raise NotImplementedError

    def drain_router(self) -> bool:
        raise NotImplementedError

    def _handle_ctrl(self, peer: Peer, msg: tuple) -> None:
        """Kernel thread: a control message from ``peer``."""
        handler = getattr(self, "_ctrl_" + str(msg[0]), None)
        if handler is None:
            log.error("unknown control message %r from %s", msg[0], peer.name)
            return
        try:
            handler(peer, *msg[1:])
        except Exception:  # noqa: BLE001 - a bad request must not kill the kernel
            log.exception("control message %r from %s failed", msg[0], peer.name)

    def _ctrl_peers(self, peer: Peer, names: List[str]) -> None:
        if self.hidden:
            return
        for name in names:
            if name != self.name and name not in self.peers:
                self.connect(name)

    def _ctrl_link(self, peer: Peer, frm: Pid, to: Pid) -> None:
        rec = self.kernel.local_rec(to)
        if rec is None:
            peer.ctrl("exit", to, frm, _codec.dumps("noproc"), True)
        else:
            rec.links.add(frm)

    def _ctrl_unlink(self, peer: Peer, frm: Pid, to: Pid) -> None:
        self.kernel.remove_link(frm, to)

    def _ctrl_exit(self, peer: Peer, frm: Pid, to: Pid, reason: bytes, link: bool) -> None:
        rec = self.kernel.local_rec(to)
        if rec is None:
            return
        if link:
            if frm not in rec.links:
                return  # unlinked meanwhile
            rec.links.discard(frm)
        self.kernel._signal(frm, to, _codec.loads(reason), link)

    def _ctrl_monitor(self, peer: Peer, watcher: Pid, target: Any, ref: Ref) -> None:
        kernel = self.kernel
        if isinstance(target, str):
            pid = kernel.names.get(target)
            if pid is None:
                peer.ctrl("down", ref, (target, self.name), _codec.dumps("noproc"), watcher)
                return
            target = pid
        rec = kernel.local_rec(target)
        if rec is None:
            peer.ctrl("down", ref, target, _codec.dumps("noproc"), watcher)
        else:
            rec.monitored_by[ref] = watcher

    def _ctrl_down(self, peer: Peer, ref: Ref, target: Any, reason: bytes, watcher: Pid) -> None:
        self.kernel.monitor_fired(ref, target, _codec.loads(reason), watcher)

    def down(self, ref: Ref, target: Pid, reason: Any, watcher: Pid) -> None:
        """Tell a remote watcher that ``target`` ended (kernel thread)."""
        self._ctrl_to(watcher.node, "down", ref, target, _codec.dumps_reason(reason), watcher)

    def _ctrl_trace(self, peer: Peer, pid: Pid, flag: bool, tracer: Pid) -> None:
        self.kernel.request(tracer, "trace", (pid, flag, tracer), ("fn", lambda ok, v: None))

    def trace(self, pid: Pid, flag: bool, tracer: Pid) -> None:
        self._ctrl_to(pid.node, "trace", pid, flag, tracer)

    def _ctrl_demonitor(self, peer: Peer, ref: Ref, target: Any) -> None:
        if isinstance(target, tuple):  # a monitor taken on (name, node): the process now under the name
            target = self.kernel.names.get(target[0])
        rec = self.kernel.local_rec(target) if isinstance(target, Pid) else None
        if rec is not None:
            rec.monitored_by.pop(ref, None)

    def _ctrl_spawn(self, peer: Peer, tag: int, caller: Pid, payload: bytes, fn_name: str, link: bool, monitor: bool) -> None:
        kernel = self.kernel
        try:
            if len(payload) <= _CHECK_LOADS_UP_TO:  # what cannot be loaded here fails at the caller,
                _codec.loads(payload)  # not in an actor that dies unseen (a big one: in the actor)
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            why = f"spawn on {self.name} failed: cannot load {fn_name} there: {type(exc).__name__}: {exc}"
            peer.ctrl("reply", tag, False, _codec.dumps(BadArg(why)))
            return
        try:
            rec = kernel.spawn_local(payload, fn_name)
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            peer.ctrl("reply", tag, False, _codec.dumps(NodeError(f"spawn on {self.name} failed: {exc}")))
            return
        ref = None
        if link:
            rec.links.add(caller)
        if monitor:
            ref = kernel.make_ref()
            rec.monitored_by[ref] = caller
        peer.ctrl("reply", tag, True, _codec.dumps((rec.pid, ref)))

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

    # -- requests from the kernel ------------------------------------------------
    def _request(self, node: str, reply: Any, then: Optional[Callable[[Any], Any]], *msg: Any) -> Any:
        from .._core._kernel import DEFER

        self._tags += 1
        tag = self._tags
        self._pending[tag] = (reply, node, then)

        def connected(ok: bool) -> None:
            if not ok:
                pending = self._pending.pop(tag, None)
                if pending is not None:
                    why = self.last_failure.get(node, "no answer")
                    self.kernel.reply(reply, False, NodeError(f"node {node} is unreachable: {why}"))
                return
            refused = _compat.by_value_refusal(self.peers[node].compat, node, msg[2]) if msg[0] == "spawn" else None
            if refused is not None:
                del self._pending[tag]
                self.kernel.reply(reply, False, BadArg(refused))
                return
            self._ctrl_now(node, msg[0], tag, *msg[1:])

        self.connect(node, connected)
        return DEFER

    def remote_spawn(self, caller: Pid, node: str, payload: bytes, fn_name: str, link: bool, monitor: bool, reply: Any) -> Any:
        def then(result: Tuple[Pid, Optional[Ref]]) -> Any:
            pid, ref = result
            rec = self.kernel.local_rec(caller)
            if rec is not None:
                if link:
                    rec.links.add(pid)
                if monitor and ref is not None:
                    rec.monitors[ref] = pid
            return (pid, ref) if monitor else pid

        return self._request(node, reply, then, "spawn", caller, payload, fn_name, link, monitor)

    def process_info(self, caller: Pid, pid: Pid, reply: Any) -> Any:
        return self._request(pid.node, reply, None, "info", caller, pid)

    def link(self, caller: Pid, pid: Pid) -> None:
        rec = self.kernel.local_rec(caller)
        if rec is not None:
            rec.links.add(pid)
        self._ctrl_to(pid.node, "link", caller, pid)

    def unlink(self, caller: Pid, pid: Pid) -> None:
        self._ctrl_to(pid.node, "unlink", caller, pid)

    def exit_signal(self, frm: Pid, to: Pid, reason: Any, link: bool) -> None:
        self._ctrl_to(to.node, "exit", frm, to, _codec.dumps_reason(reason), link)

    def monitor(self, watcher: Pid, target: Any, ref: Ref) -> None:
        node = target.node if isinstance(target, Pid) else target[1]
        name = target if isinstance(target, Pid) else target[0]

        def connected(ok: bool) -> None:
            if ok:
                self._ctrl_now(node, "monitor", watcher, name, ref)
            else:
                rec = self.kernel.local_rec(watcher)
                if rec is not None and rec.monitors.pop(ref, None) is not None:
                    self.kernel.deliver(watcher, Down(ref, target, "noconnection"))

        self.connect(node, connected)

    def demonitor(self, ref: Ref, target: Any) -> None:
        node = target.node if isinstance(target, Pid) else target[1]
        peer = self.peers.get(node)
        if peer is not None and peer.up:
            peer.ctrl("demonitor", ref, target)

    def _ctrl_now(self, node: str, *msg: Any) -> None:
        """Send a control message on an established connection, after pending sends."""
        self.drain_router()
        self.peers[node].ctrl(*msg)

    def _ctrl_to(self, node: str, *msg: Any) -> None:
        self.drain_router()
        peer = self.peers.get(node)
        if peer is not None and peer.up:
            peer.ctrl(*msg)
            return

        def connected(ok: bool) -> None:
            if ok:
                self._ctrl_now(node, *msg)
            elif msg[0] == "link":
                # Linking to an unreachable node: the link breaks at once.
                self.kernel._signal(msg[2], msg[1], "noconnection", link=True)
                rec = self.kernel.local_rec(msg[1])
                if rec is not None:
                    rec.links.discard(msg[2])

        self.connect(node, connected)
