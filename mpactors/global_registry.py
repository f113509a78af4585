"""Cluster-wide names: Erlang's ``global``, without a leader.

Every node keeps a full replica of the name table in its own server actor
(registered locally as ``'mpactors.global'``, started on first use and then
on every node the cluster has, see :mod:`mpactors._peer_service`). There is no
leader and no central service: a registration is agreed with every server the
registering process can reach, by a lock-then-commit protocol like
``global:set_lock/2`` followed by ``global``'s multicall of ``register``.

Registering ``name`` for ``pid`` (run by the calling process, like ``global:trans``):

======  ================================  ==============================================
step    the caller                        each node's server
======  ================================  ==============================================
1       ``nodes = [node()] + nodes()``;   -
        a fresh lock id (a Ref)
2       ``('lock', name, id, caller)``    grants the per-name lock if it is free (or
        to every server, in parallel      already this id's), monitors the caller,
                                          answers ``('ok', holder of name or None)``;
                                          else ``('busy', None)``
3       any ``busy``: release what it     ``('unlock', name, id)`` frees the lock
        got, back off a random 10-200 ms
        (longer each attempt), go to 1
4       name held anywhere: release,      -
        return ``False``
5       ``('commit', name, pid, id)`` to  stores ``name -> pid``, monitors ``pid``,
        every server that granted         frees the lock, answers ``'ok'``
6       return ``True``                   -
======  ================================  ==============================================

A lock is granted by each server to one id at a time, and step 5 runs only
with every reachable server's lock, so two concurrent registrations of one
name on a connected cluster cannot both commit: at least one server refuses
the second, which backs off. A server that is lost during the protocol (its
monitor fires) is left out; a caller that dies holding locks has them freed
by the servers' monitors. ``unregister_name`` runs the same steps with
``pid = None``.

Release: each server monitors every registered pid and drops the name on
``Down`` (the process died: ``noproc``/any reason; its node was lost:
``noconnection``), and on ``NodeDown(n)`` drops every name of a pid on ``n``.

Partitions: each side of a partition keeps serving and may register a name
the other side also registers - as Erlang's ``global`` does. When the sides
meet again (``NodeUp``), each server sends every other the names of *its own
node's* processes (the owner is authoritative, so a name released meanwhile
is not resurrected). A server that receives ``name -> p2`` while it holds
``name -> p1`` keeps ``min(p1, p2)`` (pid order: node name, then serial
numbers) - the same choice on every node, since every node compares the same
two pids - and the server on the loser's node, the one place that sees its
own loser replaced, sends it the exit signal ``('global_name_conflict',
name)`` (``exit(pid, reason)``: it dies unless it traps exits). So after a
heal exactly one process keeps the name, and every node agrees once the
syncs have arrived (eventual: lookups during the exchange may see either).

Guarantees in short: on a connected cluster a name maps to at most one pid,
agreed by all nodes when ``register_name`` returns ``True``; during a
partition each side is consistent on its own; after the heal, one winner,
decided the same way everywhere, and the loser signalled.
"""
from __future__ import annotations

import logging
import random
import time
from typing import Any, Dict, List, Optional, Tuple

from . import _peer_service as svc
from . import primitives
from .errors import BadArg, Timeout
from .messages import Down, NodeDown
from .pid import Pid, Ref

__all__ = ["SERVER_NAME", "register_name", "unregister_name", "whereis_name", "registered_names", "send"]

log = logging.getLogger(__name__)

#: The local name of each node's global name server.
SERVER_NAME = "mpactors.global"
#: How long ``register_name`` keeps retrying a busy lock (seconds).
LOCK_TIMEOUT = 30.0
_SYNC = "$global_sync"


def register_name(name: Any, pid: Pid) -> bool:
    """Register ``pid`` under ``name`` on every connected node.

    Args:
        name: any hashable, picklable value (usually a string).
        pid: the process to name; it may live on any node.

    Returns:
        ``True`` if the name was registered on every node that could be
        reached, ``False`` if it is taken anywhere.

    Raises:
        BadArg: ``pid`` is not a Pid or ``name`` is not hashable.
        Timeout: the name's lock stayed busy for ``LOCK_TIMEOUT`` seconds.
    """
    if type(pid) is not Pid:
        raise BadArg(f"register_name needs a Pid, not {pid!r}")
    return _transaction(_check_name(name), pid)


def unregister_name(name: Any) -> None:
    """Remove the cluster-wide name ``name`` (nothing happens if it is not registered)."""
    _transaction(_check_name(name), None)


def whereis_name(name: Any) -> Optional[Pid]:
    """The pid registered as ``name`` anywhere in the cluster, or None."""
    return svc.request(SERVER_NAME, _serve, ("whereis", _check_name(name)))  # type: ignore[no-any-return]


def registered_names() -> List[Any]:
    """Every cluster-wide name this node knows."""
    return svc.request(SERVER_NAME, _serve, ("registered",))  # type: ignore[no-any-return]


def send(name: Any, msg: Any) -> Any:
    """Send ``msg`` to the process registered as ``name`` anywhere; returns ``msg``.

    Raises:
        BadArg: no process is registered as ``name``.
    """
    pid = whereis_name(name)
    if pid is None:
        raise BadArg(f"send to global name {name!r}: no process is registered under that name")
    return primitives.send(pid, msg)


def _check_name(name: Any) -> Any:
    try:
        hash(name)
    except TypeError:
        raise BadArg(f"a global name must be hashable, not {name!r}") from None
    return name


# -- the caller's side of the protocol (step table above) ----------------------
def _transaction(name: Any, pid: Optional[Pid]) -> bool:
    svc.ensure_started(SERVER_NAME, _serve)
    deadline = time.monotonic() + LOCK_TIMEOUT
    attempt = 0
    while True:
        lock_id = primitives.make_ref()
        targets = [primitives.node()] + primitives.nodes()
        replies, _ = svc.multi_request(targets, SERVER_NAME, ("lock", name, lock_id, primitives.self()))
        granted = [node for node, (status, _) in replies.items() if status == "ok"]
        if len(granted) == len(replies):
            break
        _unlock(granted, name, lock_id)
        attempt += 1
        if time.monotonic() > deadline:
            raise Timeout(f"the lock of global name {name!r} stayed busy for {LOCK_TIMEOUT}s")
        time.sleep(random.uniform(0.01, 0.05) * min(attempt, 4))
    holders = {holder for _, holder in replies.values() if holder is not None}
    if pid is not None and holders:
        _unlock(granted, name, lock_id)
        return False
    svc.multi_request(granted, SERVER_NAME, ("commit", name, pid, lock_id))
    return True


def _unlock(nodes: List[str], name: Any, lock_id: Ref) -> None:
    for node in nodes:
        primitives.send((SERVER_NAME, node), ("unlock", name, lock_id))


# -- the server ---------------------------------------------------------------
class _Server:
    """One node's replica of the name table, its per-name locks and monitors."""

    def __init__(self) -> None:
        self.me = primitives.node()
        self.names: Dict[Any, Pid] = {}
        self.watch: Dict[Ref, Any] = {}  # monitor ref -> name it guards
        self.locks: Dict[Any, Tuple[Ref, Pid, Ref]] = {}  # name -> (lock id, holder, monitor ref)

    # names
    def store(self, name: Any, pid: Pid) -> None:
        self.drop(name)
        self.names[name] = pid
        self.watch[primitives.monitor(pid)] = name

    def drop(self, name: Any) -> Optional[Pid]:
        pid = self.names.pop(name, None)
        for ref, watched in list(self.watch.items()):
            if watched == name:
                del self.watch[ref]
                primitives.demonitor(ref, flush=True)
        return pid

    # locks
    def lock(self, name: Any, lock_id: Ref, holder: Pid) -> str:
        held = self.locks.get(name)
        if held is not None and held[0] != lock_id:
            return "busy"
        if held is None:
            self.locks[name] = (lock_id, holder, primitives.monitor(holder))
        return "ok"

    def unlock(self, name: Any, lock_id: Ref) -> None:
        held = self.locks.get(name)
        if held is not None and held[0] == lock_id:
            del self.locks[name]
            primitives.demonitor(held[2], flush=True)

    # events
    def on_request(self, msg: Any) -> None:
        req = msg[3]
        kind = req[0]
        if kind == "whereis":
            svc.reply(msg, self.names.get(req[1]))
        elif kind == "registered":
            svc.reply(msg, list(self.names))
        elif kind == "lock":
            _, name, lock_id, holder = req
            svc.reply(msg, (self.lock(name, lock_id, holder), self.names.get(name)))
        elif kind == "commit":
            _, name, pid, lock_id = req
            if pid is None:
                self.drop(name)
            else:
                self.store(name, pid)
            self.unlock(name, lock_id)
            svc.reply(msg, "ok")

    def on_down(self, msg: Down) -> None:
        name = self.watch.pop(msg.ref, None)
        if name is not None and self.names.get(name) == msg.pid:
            del self.names[name]
        for lname, (_, _, mref) in list(self.locks.items()):
            if mref == msg.ref:
                del self.locks[lname]

    def on_node_down(self, node: str) -> None:
        for name, pid in list(self.names.items()):
            if pid.node == node:
                self.drop(name)

    def own_names(self) -> Dict[Any, Pid]:
        return {name: pid for name, pid in self.names.items() if pid.node == self.me}

    def sync_to(self, nodes: List[str], answer: bool = False) -> None:
        """Send our own names to ``nodes``; with ``answer`` they send theirs back."""
        svc.send_to_peers(nodes, SERVER_NAME, (_SYNC, self.me, self.own_names(), answer))

    def on_sync(self, theirs: Dict[Any, Pid]) -> None:
        """Merge a peer's own names; on a clash keep the smaller pid everywhere."""
        for name, pid in theirs.items():
            mine = self.names.get(name)
            if mine == pid:
                continue
            if mine is None:
                self.store(name, pid)
                continue
            winner, loser = min(mine, pid), max(mine, pid)
            log.warning("global name %r held by %s and %s after a partition: %s keeps it", name, mine, pid, winner)
            if winner != mine:
                self.store(name, winner)
            if loser.node == self.me and loser == mine:
                primitives.exit(loser, ("global_name_conflict", name))


def _serve(starter: Pid, ref: Ref) -> None:
    """The server actor's body."""
    svc.run_server(SERVER_NAME, _serve, starter, ref, _Server, _handle)


def _handle(server: _Server, msg: Any) -> None:
    if svc.is_request(msg):
        server.on_request(msg)
    elif type(msg) is tuple and len(msg) == 3 and msg[0] == "unlock":
        server.unlock(msg[1], msg[2])
    elif type(msg) is tuple and len(msg) == 4 and msg[0] == _SYNC:
        server.on_sync(msg[2])
        if msg[3]:  # a new server asks for our names
            server.sync_to([msg[1]])
    elif type(msg) is Down:
        server.on_down(msg)
    elif type(msg) is NodeDown:
        server.on_node_down(msg.node)


svc.service(SERVER_NAME, _serve)
