"""Requests about other nodes, and the watchers of node events.

``nodes``, ``ping``, ``disconnect_node`` and the cookies are answered by the
distribution layer through :class:`~mpactors._core._ports.DistPort` (a node
that is not distributed answers alone); ``monitor_node``/``monitor_nodes``
watchers are kept here and told when the kernel hears of a node up or down.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..cookie import resolve_cookie
from ..errors import BadArg, NodeError
from ..messages import NodeDown, NodeUp
from ..pid import Pid
from ._ports import KernelServices

__all__ = ["Cluster"]


class Cluster:
    """Node-level requests and node-event watchers (kernel thread)."""

    def __init__(self, kernel: KernelServices) -> None:
        self.kernel = kernel
        self.node_watchers: Dict[str, Dict[Pid, int]] = {}  # monitor_node: node -> watcher -> count
        self.nodes_watchers: "set[Pid]" = set()  # monitor_nodes(True)

    def op_nodes(self, caller: Pid, kind: str = "visible") -> List[str]:
        if kind not in ("visible", "hidden", "connected"):
            raise BadArg(f"nodes() takes 'visible', 'hidden' or 'connected', not {kind!r}")
        dist = self.kernel.dist
        return dist.connected_nodes(kind) if dist is not None else []

    def op_ping(self, caller: Pid, node: str) -> Any:
        if not isinstance(node, str) or "@" not in node:
            raise BadArg(f"not a node name: {node!r} (expected 'name@host')")
        dist = self.kernel.dist
        if dist is None:
            return "pong" if node == self.kernel.node_name else "pang"
        return dist.ping(node, self.kernel.reply_to)

    def op_disconnect_node(self, caller: Pid, node: str) -> bool:
        dist = self.kernel.dist
        return dist.disconnect(node) if dist is not None else False

    def op_get_cookie(self, caller: Pid, node: Optional[str] = None) -> Optional[bytes]:
        dist = self.kernel.dist
        return None if dist is None else bytes(dist.get_cookie(node))

    def op_set_cookie(self, caller: Pid, cookie: Any, node: Optional[str] = None) -> bool:
        dist = self.kernel.dist
        if dist is None:
            raise NodeError(f"node {self.kernel.node_name} is not distributed: it has no cookie")
        value = resolve_cookie(bytes(cookie) if isinstance(cookie, (bytes, bytearray)) else str(cookie))
        dist.set_cookie(value, node or None)
        return True

    # -- node monitoring -------------------------------------------------------
    def op_monitor_node(self, caller: Pid, node: str, flag: bool) -> bool:
        if not flag:
            watchers = self.node_watchers.get(node, {})
            if watchers.get(caller, 0) > 0:
                watchers[caller] -= 1
                if not watchers[caller]:
                    del watchers[caller]
            return True
        dist = self.kernel.dist
        if dist is None or not dist.is_connected(node):
            if node != self.kernel.node_name:
                self.kernel.deliver(caller, NodeDown(node))
                return True
        watchers = self.node_watchers.setdefault(node, {})
        watchers[caller] = watchers.get(caller, 0) + 1
        return True

    def op_monitor_nodes(self, caller: Pid, flag: bool) -> bool:
        if flag:
            self.nodes_watchers.add(caller)
        else:
            self.nodes_watchers.discard(caller)
        return True

    def forget(self, pid: Pid) -> None:
        """``pid`` ended: it watches nothing any more."""
        for watchers_of_node in self.node_watchers.values():
            watchers_of_node.pop(pid, None)
        self.nodes_watchers.discard(pid)

    def node_up(self, node: str) -> None:
        for watcher in list(self.nodes_watchers):
            self.kernel.deliver(watcher, NodeUp(node))

    def node_down(self, node: str) -> None:
        for watcher, count in self.node_watchers.pop(node, {}).items():
            for _ in range(count):
                self.kernel.deliver(watcher, NodeDown(node))
        for watcher in list(self.nodes_watchers):
            self.kernel.deliver(watcher, NodeDown(node))
