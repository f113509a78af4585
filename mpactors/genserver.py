"""``GenServer``: Erlang's ``gen_server`` behaviour for actors.

Subclass it and override the callbacks; state lives on ``self``::

    User code                               Generic loop (in the actor)
    ---------                               ---------------------------
    Server.start(...)      ----->           spawn, register name
    init(*args)            <-----           .
                           ----->           ack the starter
                                            loop: receive
    handle_call(req, frm)  <-----           call(server, req)
                           ----->           reply (the return value)
    handle_cast(msg)       <-----           cast(server, msg)
    handle_info(msg)       <-----           any other message
    terminate(reason)      <-----           self.stop(reason) or a callback raised

``call`` waits for the reply through an alias (a late reply after a timeout
is dropped) and monitors the server, so a server that dies or is unreachable
gives an error at once instead of a hang.
"""
from __future__ import annotations

import traceback
from typing import Any, Optional, Tuple

from . import global_registry, primitives
from ._core._context import current
from .errors import BadArg, NodeError, ProcessExit, RemoteError, Timeout
from .messages import AliasReply, Crash, Down, ExitSignal
from .pid import Pid, Ref

__all__ = ["GenServer", "call", "cast", "reply", "NOREPLY", "From"]

#: Return it from ``handle_call`` to answer later with :func:`reply`.
NOREPLY: Any = type("NoReply", (), {"__repr__": lambda self: "NOREPLY"})()

From = Tuple[Pid, Ref]
_CALL, _CAST = "$gen_call", "$gen_cast"


class GenServer:
    """Base class of generic servers; override the callbacks you need."""

    _stop_reason: Any = None
    _parent: Optional[Pid] = None

    # -- callbacks -----------------------------------------------------------
    def init(self, *args: Any, **kwargs: Any) -> None:
        """Set up state on ``self``; runs in the new actor before ``start`` returns."""

    def handle_call(self, request: Any, frm: From) -> Any:
        """Answer ``call(server, request)``: the return value is the reply."""
        raise BadArg(f"{type(self).__name__} does not handle calls (got {request!r})")

    def handle_cast(self, msg: Any) -> None:
        """Handle ``cast(server, msg)``."""

    def handle_info(self, msg: Any) -> None:
        """Handle any other message (``Down``, ``ExitSignal``, plain sends)."""

    def terminate(self, reason: Any) -> None:
        """Clean up before the server exits with ``reason``."""

    # -- inside the server ---------------------------------------------------
    def stop(self, reason: Any = "normal") -> None:
        """End the server after the current callback (``terminate`` runs first)."""
        self._stop_reason = reason

    # -- starting ------------------------------------------------------------
    @classmethod
    def start(
        cls, *args: Any, name: Any = None, node: Optional[str] = None,
        link: bool = False, timeout: float = 5.0, **kwargs: Any,
    ) -> Pid:
        """Spawn a server running ``cls``, wait until its ``init`` returned; its pid.

        Args:
            name: register the server under this name on its node, or
                ``('global', N)``: under the cluster-wide name ``N``
                (:mod:`mpactors.global_registry`).
            node: start it on another node.
            link: link it to the caller (see :meth:`start_link`).
            timeout: how long ``init`` may take.

        Raises:
            RemoteError: ``init`` raised (or ``name`` is taken).
            Timeout: ``init`` did not finish within ``timeout``.
        """
        me = primitives.self()
        proc = current()
        ref = proc.make_ref()
        proc.mailbox.aliases.add(ref)
        try:
            pid = primitives.start_process(
                _loop, (cls, args, kwargs, name, me, ref, link), {}, node, link, False,
                label=f"{cls.__module__}.{cls.__qualname__}" if cls.__module__ != "__main__" else cls.__qualname__,
            )
            try:
                outcome = primitives.receive(lambda m: type(m) is AliasReply and m.ref == ref, timeout)
            except Timeout:
                primitives.exit(pid, "kill")
                raise Timeout(f"{cls.__name__}.init did not finish within timeout={timeout!r}s") from None
        finally:
            proc.mailbox.deactivate_alias(ref)
        ok, value = outcome.value
        if not ok:
            raise RemoteError(f"{cls.__name__} failed to start: {value[0]}: {value[1]}", value[0], value[2])
        return pid

    @classmethod
    def start_link(cls, *args: Any, **kwargs: Any) -> Pid:
        """:meth:`start`, linked to the caller (as supervisors start their children)."""
        kwargs["link"] = True
        return cls.start(*args, **kwargs)


def _loop(cls: type, args: tuple, kwargs: dict, name: Any, starter: Pid, ref: Ref, linked: bool) -> None:
    """The server actor's body."""
    server: GenServer = cls()
    if linked:
        server._parent = starter
    try:
        if name is not None:
            _register(name)
        server.init(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - reported to the starter
        primitives.send(starter, AliasReply(ref, (False, (type(exc).__name__, str(exc), traceback.format_exc()))))
        raise
    primitives.send(starter, AliasReply(ref, (True, None)))
    while server._stop_reason is None:
        msg = primitives.receive()
        try:
            _dispatch(server, msg)
        except BaseException as exc:
            if isinstance(exc, ProcessExit):
                server.terminate(exc.reason)
            elif isinstance(exc, Exception):
                server.terminate(Crash(type(exc).__name__, str(exc), traceback.format_exc()))
            raise
    server.terminate(server._stop_reason)
    if server._stop_reason != "normal":
        raise ProcessExit(server._stop_reason)


def _dispatch(server: GenServer, msg: Any) -> None:
    if type(msg) is tuple and len(msg) == 3 and msg[0] == _CALL:
        _, frm, request = msg
        result = server.handle_call(request, frm)
        if result is not NOREPLY:
            reply(frm, result)
    elif type(msg) is tuple and len(msg) == 2 and msg[0] == _CAST:
        server.handle_cast(msg[1])
    elif type(msg) is ExitSignal and msg.pid == server._parent:
        # Our parent (supervisor) ended and we trap exits: terminate with it.
        server.stop(msg.reason)
    else:
        server.handle_info(msg)


def reply(frm: From, value: Any) -> None:
    """Answer a call whose ``handle_call`` returned :data:`NOREPLY`."""
    caller, ref = frm
    primitives.send(caller, AliasReply(ref, value))


def call(server: Any, request: Any, timeout: Optional[float] = 5.0) -> Any:
    """Send ``request`` to a server and wait for its reply.

    Args:
        server: a Pid, a registered name, ``(name, node)`` or ``('global', N)``.
        timeout: seconds; None waits forever.

    Raises:
        Timeout: no reply within ``timeout`` (a late reply is dropped).
        RemoteError: the server died (or was not running) before replying.
        NodeError: the server's node went down.
    """
    proc = current()
    target = _resolve_global(server)
    if isinstance(server, tuple) and len(server) == 2 and server[1] == proc.node_name:
        target = server = server[0]
    if isinstance(server, str) or target is None:
        target = primitives.whereis(server) if isinstance(server, str) else None
        if target is None:
            raise RemoteError(f"call to {server!r}: no process is registered under that name", "noproc")
    ref = proc.make_ref()
    proc.mailbox.aliases.add(ref)
    try:
        mref = primitives.monitor(target)
        primitives.send(target, (_CALL, (proc.pid, ref), request))
        try:
            msg = primitives.receive(
                lambda m: (type(m) is AliasReply and m.ref == ref) or (type(m) is Down and m.ref == mref), timeout
            )
        except Timeout:
            primitives.demonitor(mref, flush=True)
            raise Timeout(f"call to {server!r} got no reply within timeout={timeout!r}s (request {request!r:.60})") from None
        if type(msg) is Down:
            if msg.reason == "noconnection":
                raise NodeError(f"call to {server!r}: its node is down")
            crash = isinstance(msg.reason, Crash)
            text = str(msg.reason) if crash else repr(msg.reason)
            raise RemoteError(
                f"call to {server!r}: the server exited with {text}",
                msg.reason.type if crash else "exit",
                msg.reason.traceback if crash else "",
            )
        primitives.demonitor(mref, flush=True)
        return msg.value
    finally:
        proc.mailbox.deactivate_alias(ref)


def cast(server: Any, msg: Any) -> None:
    """Send ``msg`` to a server's ``handle_cast`` without waiting.

    A cast to a name nobody registered is dropped, as in Erlang; a message
    that cannot be pickled still raises :class:`BadArg`.
    """
    server = _resolve_global(server)
    if server is None or (isinstance(server, str) and primitives.whereis(server) is None):
        return
    primitives.send(server, (_CAST, msg))


# -- global names: ('global', N) is a global_registry name (Erlang's {global, N}) --
def _global_name(name: Any) -> Any:
    """``N`` for ``('global', N)``, else None."""
    if type(name) is tuple and len(name) == 2 and name[0] == "global":
        return name[1]
    return None


def _register(name: Any) -> None:
    """Register the calling server under a local or a ``('global', N)`` name."""
    global_name = _global_name(name)
    if global_name is None:
        primitives.register(name)
    elif not global_registry.register_name(global_name, primitives.self()):
        holder = global_registry.whereis_name(global_name)
        raise BadArg(f"the global name {global_name!r} is taken by {holder}")


def _resolve_global(server: Any) -> Any:
    """The pid holding ``('global', N)`` (None if nobody does); other servers unchanged."""
    global_name = _global_name(server)
    return server if global_name is None else global_registry.whereis_name(global_name)


GenServer.call = staticmethod(call)  # type: ignore[attr-defined]
GenServer.cast = staticmethod(cast)  # type: ignore[attr-defined]
GenServer.reply = staticmethod(reply)  # type: ignore[attr-defined]
