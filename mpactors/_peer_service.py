"""What ``global_registry`` and ``pg`` share: one server actor per node, started lazily.

Both are peer services (Erlang's ``global_name_server`` and ``pg`` scope
server): every node runs one server actor, registered under a reserved local
name, and the servers talk to each other by that name. Nothing runs until a
node first uses the service; from then on its server makes sure every node it
sees (``nodes()`` at start, every later ``NodeUp``) runs one too, by an
``rpc.call`` of :func:`ensure_started` there. So a node that never used the
service still answers its peers.

Requests between processes and servers are plain messages
``(REQUEST, from_pid, ref, request)`` answered with ``(REPLY, ref, value)``;
:func:`multi_request` sends one to the server on each of several nodes and
monitors each server, so a lost node or a server that does not run gives an
answer (``bad_nodes``) instead of a hang. Only the public API is used.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, Iterable, List, Tuple

from . import primitives, rpc
from .errors import BadArg, MpactorsError, Timeout
from .messages import Down, NodeUp
from .pid import Pid, Ref

__all__ = [
    "REQUEST", "REPLY", "claim_name", "ensure_started", "ensure_peers", "is_request", "multi_request",
    "reply", "request", "run_server", "send_to_peers", "service",
]

log = logging.getLogger(__name__)

REQUEST, REPLY = "$peer_request", "$peer_reply"
#: How long a starter waits for a new server to say it runs (seconds).
START_TIMEOUT = 10.0


def ensure_started(name: str, body: Callable[..., None]) -> Pid:
    """The pid of this node's server ``name``, spawning ``body(starter, ref)`` if none runs.

    ``body`` must register itself as ``name`` and then send ``(ref, pid)`` to
    ``starter`` (the pid of whoever holds ``name`` when that register fails,
    because another starter won the race).
    """
    pid = primitives.whereis(name)
    if pid is not None:
        return pid
    ref = primitives.make_ref()
    primitives.spawn(body, primitives.self(), ref)
    msg = primitives.receive(lambda m: type(m) is tuple and len(m) == 2 and m[0] == ref, START_TIMEOUT)
    return msg[1]  # type: ignore[no-any-return]


def claim_name(name: str, starter: Pid, ref: Ref) -> bool:
    """In a new server: register as ``name`` and tell the starter; False if another server runs."""
    try:
        primitives.register(name)
    except BadArg:
        primitives.send(starter, (ref, primitives.whereis(name)))
        return False
    primitives.send(starter, (ref, primitives.self()))
    return True


def _ensure_remote(nodes: List[str], name: str, body: Callable[..., None]) -> None:
    for node in nodes:
        if node not in primitives.nodes():  # lost meanwhile: reconnecting would undo a partition
            continue
        try:
            rpc.call(node, ensure_started, name, body, timeout=START_TIMEOUT)
        except MpactorsError as exc:  # the node went away meanwhile: its NodeUp will come again
            log.info("could not start %s on %s: %s", name, node, exc)


def ensure_peers(nodes: List[str], name: str, body: Callable[..., None]) -> None:
    """Make sure server ``name`` runs on each of ``nodes``, from a helper actor (never blocks)."""
    if nodes:
        primitives.spawn(_ensure_remote, list(nodes), name, body)


def run_server(
    name: str, body: Callable[..., None], starter: Pid, ref: Ref,
    state: Callable[[], Any], handle: Callable[[Any, Any], None],
) -> None:
    """The common body of a peer server: claim ``name``, greet the peers, then serve forever.

    ``state()`` makes the server's state object, which has ``sync_to(nodes,
    answer=False)``; ``handle(state, msg)`` handles every message but
    ``NodeUp`` (a sync to the new node, and its server started).
    """
    if not claim_name(name, starter, ref):
        return
    primitives.trap_exit(True)
    server = state()
    primitives.monitor_nodes(True)
    peers = primitives.nodes()
    server.sync_to(peers, answer=True)
    ensure_peers(peers, name, body)
    while True:
        msg = primitives.receive()
        try:
            if type(msg) is NodeUp:
                server.sync_to([msg.node])
                ensure_peers([msg.node], name, body)
            else:
                handle(server, msg)
        except MpactorsError:
            log.exception("%s server: could not handle %r", name, msg)


def send_to_peers(nodes: Iterable[str], name: Any, msg: Any) -> None:
    """Send ``msg`` to server ``name`` (or a Pid) on each of ``nodes`` that is connected now.

    A server never reconnects a node by itself: a message read late (a
    ``NodeUp`` or a sync handled after the node went down again) would
    otherwise undo a partition or a ``disconnect_node``.
    """
    connected = set(primitives.nodes())
    for node in nodes:
        if node in connected:
            primitives.send(name if type(name) is Pid else (name, node), msg)


def is_request(msg: Any) -> bool:
    """True for a request message ``(REQUEST, from, ref, request)``."""
    return type(msg) is tuple and len(msg) == 4 and msg[0] == REQUEST


def reply(msg: Tuple[str, Pid, Ref, Any], value: Any) -> None:
    """Answer the request ``msg`` (unless its sender's node is no longer connected)."""
    sender = msg[1]
    if sender.node == primitives.node():
        primitives.send(sender, (REPLY, msg[2], value))
    else:
        send_to_peers([sender.node], sender, (REPLY, msg[2], value))


def request(name: str, body: Callable[..., None], req: Any, timeout: float = START_TIMEOUT) -> Any:
    """Ask this node's server ``name`` (started if needed) and return its answer."""
    server = ensure_started(name, body)
    replies, _ = _gather({primitives.node(): server}, req, timeout)
    if primitives.node() not in replies:
        raise Timeout(f"the {name} server of this node did not answer {req!r:.60} within {timeout}s")
    return replies[primitives.node()]


def multi_request(
    nodes: Iterable[str], name: str, req: Any, timeout: float = START_TIMEOUT
) -> Tuple[Dict[str, Any], List[str]]:
    """Send ``req`` to server ``name`` on each node; ``(replies by node, nodes that did not answer)``.

    A node whose server does not run yet gets it started (once) and the
    request again; a node that is lost, or does not answer within
    ``timeout``, is in the second list.
    """
    return _gather({node: (name, node) for node in nodes}, req, timeout)


def _gather(targets: Dict[str, Any], req: Any, timeout: float) -> Tuple[Dict[str, Any], List[str]]:
    me = primitives.self()
    pending: Dict[Ref, Tuple[str, Ref]] = {}  # request ref -> (node, monitor ref)
    for node, dest in targets.items():
        ref = primitives.make_ref()
        pending[ref] = (node, primitives.monitor(dest))
        primitives.send(dest, (REQUEST, me, ref, req))
    by_mref = {mref: ref for ref, (_, mref) in pending.items()}
    replies: Dict[str, Any] = {}
    bad: List[str] = []
    retried: Dict[str, Ref] = {}
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        try:
            msg = primitives.receive(
                lambda m: (type(m) is tuple and len(m) == 3 and m[0] == REPLY and m[1] in pending)
                or (type(m) is Down and m.ref in by_mref),
                max(left, 0),
            )
        except Timeout:
            break
        if type(msg) is Down:
            ref = by_mref.pop(msg.ref)
            node, _ = pending.pop(ref)
            if msg.reason == "noproc" and node not in retried and node != primitives.node():
                retried[node] = _retry_after_start(node, targets[node], req, pending, by_mref)
            else:
                bad.append(node)
            continue
        node, mref = pending.pop(msg[1])
        by_mref.pop(mref, None)
        primitives.demonitor(mref, flush=True)
        replies[node] = msg[2]
    for _ref, (node, mref) in pending.items():
        primitives.demonitor(mref, flush=True)
        bad.append(node)
    return replies, bad


def _retry_after_start(node: str, dest: Any, req: Any, pending: Dict[Ref, Tuple[str, Ref]], by_mref: Dict[Ref, Ref]) -> Ref:
    """The server on ``node`` does not run: start it there, then ask again."""
    name = dest[0]
    if name in _BODIES:
        _ensure_remote([node], name, _BODIES[name])
    ref = primitives.make_ref()
    mref = primitives.monitor(dest)
    pending[ref] = (node, mref)
    by_mref[mref] = ref
    primitives.send(dest, (REQUEST, primitives.self(), ref, req))
    return ref


#: Server bodies by service name, so a request can start a missing server.
_BODIES: Dict[str, Callable[..., None]] = {}


def service(name: str, body: Callable[..., None]) -> None:
    """Declare ``body`` as the server of service ``name`` (used to start it on demand)."""
    _BODIES[name] = body
