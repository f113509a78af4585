"""Process groups across the cluster: Erlang's ``pg``, eventually consistent, no leader.

Every node runs one pg server actor (registered locally as ``'mpactors.pg'``,
started on first use and then on every node of the cluster, see
:mod:`mpactors._peer_service`). Each server *owns* its node's members - only
local processes join through it - and keeps a copy of every other node's:

======================  ==========================================================
event at node X         what X's server does
======================  ==========================================================
``join``/``leave``      updates its own members, monitors a new member, sends
(a local request)       ``('join'|'leave', X, group, pids)`` to every peer server,
                        and ``PgEvent`` to local watchers of the group
peer join/leave         updates its copy of that peer's members, tells its watchers
local member ``Down``   the member leaves every group it was in (one ``leave`` per
                        group, sent to peers as above)
``NodeUp(Y)``           sends Y its own members (``sync``) - Y does the same, so
                        each side replaces its copy of the other's, whatever
                        happened during a partition - and makes sure Y runs a server
``NodeDown(Y)``         drops its copy of Y's members (watchers get ``leave``)
======================  ==========================================================

Guarantees: a node's own view of its members is exact; other nodes see a
change after one message (well under a second on a connected cluster), and
messages from one server to another arrive in order, so the copies converge.
During a partition each side sees only its own members; at the heal the
``sync`` exchange restores the full view on both sides. There is no global
order between changes made on different nodes (as in Erlang's ``pg``).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, NamedTuple, Tuple

from . import _peer_service as svc
from . import primitives
from .errors import BadArg
from .messages import Down, NodeDown
from .pid import Pid, Ref

__all__ = [
    "SERVER_NAME", "PgEvent", "join", "leave", "get_members", "get_local_members",
    "which_groups", "monitor", "demonitor",
]

log = logging.getLogger(__name__)

#: The local name of each node's pg server.
SERVER_NAME = "mpactors.pg"
_PEER = "$pg_peer"


class PgEvent(NamedTuple):
    """``PgEvent(ref, group, kind, pids)``: ``pids`` joined (``kind='join'``) or left ``group``.

    Sent to the process that called :func:`monitor`; ``ref`` is the one it returned.
    """

    ref: Ref
    group: Any
    kind: str
    pids: List[Pid]


def join(group: Any, pids: Any = None) -> None:
    """Add ``pids`` (a Pid or a list; default the caller) to ``group``.

    A process may join a group several times; it is then listed that many
    times and must leave as often.

    Raises:
        BadArg: a pid is not a process of this node (join on the member's node).
    """
    _request("join", group, _local_pids(pids))


def leave(group: Any, pids: Any = None) -> None:
    """Remove one membership of each of ``pids`` (default the caller) from ``group``."""
    _request("leave", group, _local_pids(pids))


def get_members(group: Any) -> List[Pid]:
    """Every member of ``group`` in the cluster (as this node sees it)."""
    return _request("members", group, None)  # type: ignore[no-any-return]


def get_local_members(group: Any) -> List[Pid]:
    """The members of ``group`` that run on this node."""
    return _request("local_members", group, None)  # type: ignore[no-any-return]


def which_groups() -> List[Any]:
    """Every group with at least one member anywhere (as this node sees it)."""
    return _request("groups", None, None)  # type: ignore[no-any-return]


def monitor(group: Any) -> Tuple[Ref, List[Pid]]:
    """Watch ``group``: returns ``(ref, current members)``; then :class:`PgEvent` messages arrive."""
    return _request("monitor", group, primitives.self())  # type: ignore[no-any-return]


def demonitor(ref: Ref) -> bool:
    """Stop a :func:`monitor`; True if it was active."""
    return _request("demonitor", ref, None)  # type: ignore[no-any-return]


def _request(kind: str, group: Any, arg: Any) -> Any:
    if kind != "demonitor":
        try:
            hash(group)
        except TypeError:
            raise BadArg(f"a group must be hashable, not {group!r}") from None
    answer = svc.request(SERVER_NAME, _serve, (kind, group, arg))
    if isinstance(answer, BadArg):
        raise answer
    return answer


def _local_pids(pids: Any) -> List[Pid]:
    if pids is None:
        return [primitives.self()]
    if type(pids) is Pid:
        pids = [pids]
    if not isinstance(pids, (list, tuple)) or not all(type(p) is Pid for p in pids):
        raise BadArg(f"`pids` must be a Pid or a list of Pids, not {pids!r}")
    here = primitives.node()
    for pid in pids:
        if pid.node != here:
            raise BadArg(f"{pid} is not a process of {here}: join and leave on the member's own node")
    return list(pids)


# -- the server ---------------------------------------------------------------
class _Server:
    """Members by node and group (this node's exact, the others' copied), and watchers."""

    def __init__(self) -> None:
        self.me = primitives.node()
        self.members: Dict[str, Dict[Any, List[Pid]]] = {self.me: {}}  # node -> group -> pids
        self.member_mons: Dict[Pid, Ref] = {}
        self.watchers: Dict[Ref, Tuple[Any, Pid, Ref]] = {}  # ref -> (group, watcher, its monitor)

    def all_members(self, group: Any) -> List[Pid]:
        return [pid for by_group in self.members.values() for pid in by_group.get(group, ())]

    def notify(self, group: Any, kind: str, pids: List[Pid]) -> None:
        if not pids:
            return
        for ref, (watched, watcher, _) in self.watchers.items():
            if watched == group:
                primitives.send(watcher, PgEvent(ref, group, kind, list(pids)))

    def apply(self, node: str, kind: str, group: Any, pids: List[Pid]) -> List[Pid]:
        """Apply a join or leave of ``node``'s members; the pids that really changed."""
        groups = self.members.setdefault(node, {})
        current = groups.setdefault(group, [])
        if kind == "join":
            current.extend(pids)
            changed = list(pids)
        else:
            changed = []
            for pid in pids:
                if pid in current:
                    current.remove(pid)
                    changed.append(pid)
        if not current:
            del groups[group]
        self.notify(group, kind, changed)
        return changed

    def local_change(self, kind: str, group: Any, pids: List[Pid]) -> None:
        changed = self.apply(self.me, kind, group, pids)
        for pid in changed:
            if kind == "join" and pid not in self.member_mons:
                self.member_mons[pid] = primitives.monitor(pid)
        if kind == "leave":
            self._forget_unlisted(changed)
        if changed:
            svc.send_to_peers(primitives.nodes(), SERVER_NAME, (_PEER, kind, self.me, group, changed))

    def _forget_unlisted(self, pids: List[Pid]) -> None:
        listed = {pid for members in self.members[self.me].values() for pid in members}
        for pid in set(pids) - listed:
            ref = self.member_mons.pop(pid, None)
            if ref is not None:
                primitives.demonitor(ref, flush=True)

    def replace(self, node: str, groups: Dict[Any, List[Pid]]) -> None:
        """A peer's full list of its members (``sync``, or ``{}`` when it is lost)."""
        old = self.members.pop(node, {})
        new = {group: list(pids) for group, pids in groups.items() if pids}
        if new:
            self.members[node] = new
        for group in set(old) | set(new):
            self.notify(group, "leave", _minus(old.get(group, []), new.get(group, [])))
            self.notify(group, "join", _minus(new.get(group, []), old.get(group, [])))

    def on_down(self, msg: Down) -> None:
        watcher_refs = [ref for ref, (_, _, mref) in self.watchers.items() if mref == msg.ref]
        for ref in watcher_refs:
            del self.watchers[ref]
        if self.member_mons.get(msg.pid) != msg.ref:
            return
        del self.member_mons[msg.pid]
        for group, pids in list(self.members[self.me].items()):
            gone = [pid for pid in pids if pid == msg.pid]
            if gone:
                self.local_change("leave", group, gone)

    def on_request(self, msg: Any) -> None:
        kind, group, arg = msg[3]
        if kind in ("join", "leave"):
            self.local_change(kind, group, arg)
            answer: Any = None
        elif kind == "members":
            answer = self.all_members(group)
        elif kind == "local_members":
            answer = list(self.members[self.me].get(group, ()))
        elif kind == "groups":
            answer = sorted({g for by_group in self.members.values() for g in by_group}, key=repr)
        elif kind == "monitor":
            ref = primitives.make_ref()
            self.watchers[ref] = (group, arg, primitives.monitor(arg))
            answer = (ref, self.all_members(group))
        else:  # demonitor
            entry = self.watchers.pop(group, None)
            if entry is not None:
                primitives.demonitor(entry[2], flush=True)
            answer = entry is not None
        svc.reply(msg, answer)

    def sync_to(self, nodes: List[str], answer: bool = False) -> None:
        """Send our members to ``nodes``; with ``answer`` they send theirs back."""
        svc.send_to_peers(nodes, SERVER_NAME, (_PEER, "sync", self.me, answer, self.members[self.me]))


def _minus(pids: List[Pid], taken: List[Pid]) -> List[Pid]:
    """``pids`` without one occurrence of each of ``taken`` (multiset difference)."""
    rest = list(pids)
    for pid in taken:
        if pid in rest:
            rest.remove(pid)
    return rest


def _serve(starter: Pid, ref: Ref) -> None:
    """The server actor's body."""
    svc.run_server(SERVER_NAME, _serve, starter, ref, _Server, _handle)


def _handle(server: _Server, msg: Any) -> None:
    if svc.is_request(msg):
        server.on_request(msg)
    elif type(msg) is tuple and len(msg) == 5 and msg[0] == _PEER:
        _, kind, node, group, data = msg
        if kind == "sync":
            server.replace(node, data)
            if group:  # a new server asks for our members
                server.sync_to([node])
        else:
            server.apply(node, kind, group, data)
    elif type(msg) is Down:
        server.on_down(msg)
    elif type(msg) is NodeDown and msg.node in server.members:
        server.replace(msg.node, {})


svc.service(SERVER_NAME, _serve)
