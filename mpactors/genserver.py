"""``GenServer``: Erlang's ``gen_server`` behaviour for actors.

Subclass it and override the callbacks; state lives on ``self``::

    User code                               Generic loop (in the actor)
    ---------                               ---------------------------
    Server.start(...)      ----->           spawn, register name
    init(*args)            <-----           .
                           ----->           ack the starter
    handle_continue(arg)   <-----           if a callback returned Continue(arg)
                                            loop: receive
    handle_call(req, frm)  <-----           call / send_request(server, req)
                           ----->           reply (the return value)
    handle_cast(msg)       <-----           cast / abcast(server, msg)
    handle_info(msg)       <-----           any other message
    terminate(reason)      <-----           self.stop(reason), stop(server) from
                                            outside, or a callback raised

Callback return values:

* ``init``, ``handle_cast``, ``handle_info``, ``handle_continue``: ``None``,
  or ``Continue(arg)`` to run ``handle_continue(arg)`` before the next message,
  or ``IdleTimeout(seconds)``: if no message arrives within ``seconds``,
  ``handle_info(IdleTimeout(seconds))`` runs (Erlang's ``{noreply, S, T}``
  and its ``timeout`` message; any message cancels it);
* ``handle_call``: the reply, :data:`NOREPLY` (answer later with
  :func:`reply`), or ``(reply_or_NOREPLY, Continue(arg))``, or
  ``(reply_or_NOREPLY, IdleTimeout(seconds))`` (Erlang's ``{reply, R, S, T}``).

One request mechanism: ``call(server, req)`` is
``wait_response(send_request(server, req))``. A request carries an *alias*
(a reference the caller's mailbox accepts only while the request is
pending) and a monitor of the server, so a late reply after a timeout never
reaches the mailbox, and a server that dies or whose node is lost gives an
error at once instead of a hang.

Server messages (the wire contract between callers and the loop):

=================================  =========================================
message                            sent by
=================================  =========================================
``('$gen_call', (pid, alias), r)``  :func:`send_request` (and so :func:`call`)
``('$gen_cast', msg)``              :func:`cast`, :func:`abcast`
``('$gen_stop', reason)``           :func:`stop`
=================================  =========================================
"""
from __future__ import annotations

import inspect
import time
import traceback
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple

from . import global_registry, primitives
from ._core._context import check_timeout, current
from ._core._introspect import register_server
from .errors import AlreadyStarted, BadArg, NodeError, NoProc, ProcessExit, RemoteError, Timeout
from .messages import AliasReply, Crash, Down, ExitSignal
from .pid import Pid, Ref

__all__ = [
    "GenServer", "call", "cast", "reply", "stop", "request_stop", "send_request", "wait_response", "check_response",
    "multi_call", "abcast", "Continue", "IdleTimeout", "RequestId", "NOREPLY", "From",
]

#: Return it from ``handle_call`` to answer later with :func:`reply`.
NOREPLY: Any = type("NoReply", (), {"__repr__": lambda self: "NOREPLY"})()

From = Tuple[Pid, Ref]
_CALL, _CAST, _STOP = "$gen_call", "$gen_cast", "$gen_stop"


class Continue(NamedTuple):
    """Return ``Continue(arg)`` from a callback to run ``handle_continue(arg)`` next.

    It runs right after the callback, before the server takes any new
    message (Erlang's ``{continue, Arg}``): split a slow ``init`` so that
    ``start`` returns early, or finish work after a reply was sent.
    """

    arg: Any


class IdleTimeout(NamedTuple):
    """Return ``IdleTimeout(seconds)`` from a callback: ``handle_info(IdleTimeout(seconds))`` runs
    if no message arrives within ``seconds`` (Erlang's gen_server timeout).

    Any message that arrives first cancels it (the callback that handles
    that message may return a new one). ``handle_call`` returns
    ``(reply, IdleTimeout(seconds))``.
    """

    seconds: float


def _after(result: Any) -> Any:
    """Check a callback's ``Continue``/``IdleTimeout`` result; other values mean neither."""
    if type(result) is IdleTimeout:
        check_timeout(result.seconds)
        if result.seconds is None:
            raise BadArg("IdleTimeout needs a number of seconds, not None")
    return result


class RequestId(NamedTuple):
    """A call in flight, from :func:`send_request`; give it to :func:`wait_response`.

    ``alias`` tags the reply (the caller's mailbox accepts it only while the
    request is pending), ``monitor`` is the monitor of the server (its
    ``Down`` ends the request with an error), ``server`` is the server as
    given (for error messages).
    """

    alias: Ref
    monitor: Ref
    server: Any

    def is_response(self, msg: Any) -> bool:
        """True if ``msg`` ends this request: its reply, or the server's ``Down``.

        With :func:`check_response`, this lets a process wait for a request
        in its own receive loop (``aio.call`` does).
        """
        return (type(msg) is AliasReply and msg.ref == self.alias) or (type(msg) is Down and msg.ref == self.monitor)


class GenServer:
    """Base class of generic servers; override the callbacks you need."""

    _stop_reason: Any = None
    _parent: Optional[Pid] = None

    # -- callbacks -----------------------------------------------------------
    def init(self, *args: Any, **kwargs: Any) -> Any:
        """Set up state on ``self``; runs in the new actor before ``start`` returns.

        Return ``Continue(arg)`` to run ``handle_continue(arg)`` right after
        ``start`` returned, before any message.
        """

    def handle_call(self, request: Any, frm: From) -> Any:
        """Answer ``call(server, request)``: the return value is the reply.

        Return :data:`NOREPLY` to answer later with :func:`reply`, or
        ``(reply, Continue(arg))`` to reply and then run ``handle_continue``.
        """
        raise BadArg(f"{type(self).__name__} does not handle calls (got {request!r})")

    def handle_cast(self, msg: Any) -> Any:
        """Handle ``cast(server, msg)``; may return ``Continue(arg)``."""

    def handle_info(self, msg: Any) -> Any:
        """Handle any other message (``Down``, ``ExitSignal``, plain sends); may return ``Continue(arg)``."""

    def handle_continue(self, arg: Any) -> Any:
        """Run after a callback returned ``Continue(arg)``; may return another ``Continue``."""
        raise BadArg(f"{type(self).__name__} returned Continue({arg!r}) but does not define handle_continue")

    def terminate(self, reason: Any) -> None:
        """Clean up before the server exits with ``reason``."""

    # -- inside the server ---------------------------------------------------
    def stop(self, reason: Any = "normal") -> None:
        """End the server after the current callback (``terminate`` runs first).

        To stop a server from outside, use :func:`mpactors.genserver.stop`.
        """
        self._stop_reason = reason

    # -- starting ------------------------------------------------------------
    @classmethod
    def start(
        cls, *args: Any, name: Optional[str] = None, node: Optional[str] = None,
        link: bool = False, timeout: float = 5.0, **kwargs: Any,
    ) -> Pid:
        """Spawn a server running ``cls``, wait until its ``init`` returned; its pid.

        Args:
            name: register the server under this name on its node.
            node: start it on another node.
            link: link it to the caller (see :meth:`start_link`).
            timeout: how long ``init`` may take.

        Raises:
            AlreadyStarted: ``name`` is taken; ``.pid`` is the process holding it.
            RemoteError: ``init`` raised.
            Timeout: ``init`` did not finish within ``timeout``.
        """
        me = primitives.self()
        ref = _open_alias()
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
            _close_alias(ref)
        status, value = outcome.value
        if status == "taken":
            raise AlreadyStarted(f"{cls.__name__}: the name {name!r} is already held by {value}", value)
        if status == "error":
            raise RemoteError(f"{cls.__name__} failed to start: {value[0]}: {value[1]}", value[0], value[2])
        return pid

    @classmethod
    def start_link(cls, *args: Any, **kwargs: Any) -> Pid:
        """:meth:`start`, linked to the caller (as supervisors start their children)."""
        kwargs["link"] = True
        return cls.start(*args, **kwargs)


# -- global names: ('global', N) is a global_registry name (Erlang's {global, N}) --
def _global_name(name: Any) -> Any:
    """``N`` for ``('global', N)``, else None."""
    if type(name) is tuple and len(name) == 2 and name[0] == "global":
        return name[1]
    return None


# -- the server's side ----------------------------------------------------------
def _register_name(name: Any) -> Optional[Pid]:
    """Register the calling server under ``name`` (local, or ``('global', N)``); the holder's pid if taken."""
    global_name = _global_name(name)
    if global_name is not None:
        if global_registry.register_name(global_name, primitives.self()):
            return None
        holder = global_registry.whereis_name(global_name)
        if holder is None:
            raise BadArg(f"the global name {global_name!r} could not be registered")
        return holder
    if not isinstance(name, str):
        raise BadArg(f"`name` must be a string, not {name!r}")
    try:
        primitives.register(name)
    except BadArg:
        holder = primitives.whereis(name)
        if holder is None:
            raise
        return holder
    return None


def _loop(cls: type, args: tuple, kwargs: dict, name: Optional[str], starter: Pid, ref: Ref, linked: bool) -> Any:
    """The server actor's body (a coroutine for a server with ``async def`` callbacks)."""
    if _is_async(cls):
        return _aloop(cls, args, kwargs, name, starter, ref, linked)
    server: GenServer = cls()
    register_server(server, hidden=("_stop_reason", "_parent"))  # for introspect.get_state
    try:
        result = _create(server, args, kwargs, name, starter, ref, linked)
    except BaseException as exc:  # noqa: BLE001 - reported to the starter
        _ack(starter, ref, exc)
        raise
    if result is _TAKEN:
        return None
    _ack(starter, ref, None)
    _serve(server, result)
    return None


_TAKEN: Any = object()  # _create: the name is held by another process (already told the starter)


def _create(server: GenServer, args: tuple, kwargs: dict, name: Optional[str], starter: Pid, ref: Ref,
            linked: bool) -> Any:
    """Register the name and run ``init`` (its result, maybe awaitable); ``_TAKEN`` if the name is held."""
    if linked:
        server._parent = starter
    holder = _register_name(name) if name is not None else None
    if holder is not None:
        # Erlang's {error, {already_started, Pid}}: this process ends normally.
        primitives.send(starter, AliasReply(ref, ("taken", holder)))
        return _TAKEN
    return server.init(*args, **kwargs)


def _ack(starter: Pid, ref: Ref, exc: Optional[BaseException]) -> None:
    """Tell the starter that ``init`` returned, or raised ``exc``."""
    if exc is None:
        primitives.send(starter, AliasReply(ref, ("ok", None)))
    else:
        primitives.send(starter, AliasReply(ref, ("error", (type(exc).__name__, str(exc), traceback.format_exc()))))


def _serve(server: GenServer, result: Any) -> None:
    """Run ``handle_continue`` chains and the receive loop until the server stops."""
    try:
        idle = _continue(server, result)
        while server._stop_reason is None:
            try:
                msg = primitives.receive(timeout=None if idle is None else idle.seconds)
            except Timeout:
                idle = _continue(server, server.handle_info(idle))
                continue
            idle = _continue(server, _dispatch(server, msg))
    except BaseException as exc:
        _terminate_on(server, exc)
        raise
    server.terminate(server._stop_reason)
    _stopped(server)


def _terminate_on(server: GenServer, exc: BaseException) -> Any:
    """Run ``terminate`` for a server ended by ``exc`` (not for SIGTERM or cancellation); its result."""
    if isinstance(exc, ProcessExit):
        return server.terminate(exc.reason)
    if isinstance(exc, Exception):
        return server.terminate(Crash(type(exc).__name__, str(exc), traceback.format_exc()))
    return None


def _stopped(server: GenServer) -> None:
    if server._stop_reason != "normal":
        raise ProcessExit(server._stop_reason)


def _continue(server: GenServer, result: Any) -> Optional[IdleTimeout]:
    """Run ``handle_continue`` while callbacks return ``Continue``; the ``IdleTimeout`` to wait with, if any."""
    while type(result) is Continue and server._stop_reason is None:
        result = server.handle_continue(result.arg)
    return _after(result) if type(result) is IdleTimeout else None


def _dispatch(server: GenServer, msg: Any) -> Any:
    """Hand one message to its callback; the callback's result (maybe a Continue)."""
    callback, args, frm = _plan(server, msg)
    return _answer(frm, callback(*args))


def _plan(server: GenServer, msg: Any) -> Tuple[Any, tuple, Optional[From]]:
    """The callback for ``msg``, its arguments, and the caller to answer (for calls)."""
    if type(msg) is tuple and len(msg) == 3 and msg[0] == _CALL:
        _, frm, request = msg
        return server.handle_call, (request, frm), frm
    if type(msg) is tuple and len(msg) == 2:
        if msg[0] == _CAST:
            return server.handle_cast, (msg[1],), None
        if msg[0] == _STOP:
            return server.stop, (msg[1],), None
    if type(msg) is ExitSignal and (msg.pid == server._parent or _node_stopping(msg)):
        # Our parent (supervisor) ended, or the node stops, and we trap exits: terminate with it.
        return server.stop, (msg.reason,), None
    return server.handle_info, (msg,), None


def _node_stopping(msg: ExitSignal) -> bool:
    """``'shutdown'`` from this node's main process: the node's graceful stop (:mod:`mpactors._core._shutdown`)."""
    return msg.reason == "shutdown" and msg.pid.id == 0 and msg.pid.node == primitives.node()


def _answer(frm: Optional[From], result: Any) -> Any:
    """Send a call's reply (unless NOREPLY); what should run next (a Continue, an IdleTimeout or None)."""
    if frm is None:
        return result
    then = None
    if type(result) is tuple and len(result) == 2 and type(result[1]) in (Continue, IdleTimeout):
        result, then = result
    if result is not NOREPLY:
        reply(frm, result)
    return then


# -- servers with async callbacks: the same steps, awaited, in the actor's event loop --
_CALLBACKS = ("init", "handle_call", "handle_cast", "handle_info", "handle_continue", "terminate")


def _is_async(cls: type) -> bool:
    return any(inspect.iscoroutinefunction(getattr(cls, name, None)) for name in _CALLBACKS)


async def _settle(value: Any) -> Any:
    return (await value) if inspect.isawaitable(value) else value


async def _aloop(cls: type, args: tuple, kwargs: dict, name: Optional[str], starter: Pid, ref: Ref,
                 linked: bool) -> None:
    """The body of a server with ``async def`` callbacks: one callback at a time, in message order."""
    from ._core import _aioloop  # asyncio only for servers that use it

    server: GenServer = cls()
    register_server(server, hidden=("_stop_reason", "_parent"))  # for introspect.get_state
    try:
        result = await _settle(_create(server, args, kwargs, name, starter, ref, linked))
    except BaseException as exc:  # noqa: BLE001 - reported to the starter
        _ack(starter, ref, exc)
        raise
    if result is _TAKEN:
        return
    _ack(starter, ref, None)
    try:
        idle = await _acontinue(server, result)
        while server._stop_reason is None:
            try:
                msg = await _aioloop.receive(None, None if idle is None else idle.seconds)
            except Timeout:
                idle = await _acontinue(server, await _settle(server.handle_info(idle)))
                continue
            callback, cargs, frm = _plan(server, msg)
            idle = await _acontinue(server, _answer(frm, await _settle(callback(*cargs))))
    except BaseException as exc:
        await _settle(_terminate_on(server, exc))
        raise
    terminate: Any = server.terminate  # async def in a subclass: its result is awaited
    await _settle(terminate(server._stop_reason))
    _stopped(server)


async def _acontinue(server: GenServer, result: Any) -> Optional[IdleTimeout]:
    while type(result) is Continue and server._stop_reason is None:
        result = await _settle(server.handle_continue(result.arg))
    return _after(result) if type(result) is IdleTimeout else None


def reply(frm: From, value: Any) -> None:
    """Answer a call whose ``handle_call`` returned :data:`NOREPLY`."""
    caller, ref = frm
    primitives.send(caller, AliasReply(ref, value))


# -- the caller's side ----------------------------------------------------------
def _open_alias() -> Ref:
    """A new reference the calling process's mailbox accepts ``AliasReply``s for."""
    proc = current()
    ref: Ref = proc.make_ref()
    proc.mailbox.aliases.add(ref)
    return ref


def _close_alias(ref: Ref) -> None:
    """Stop accepting replies for ``ref`` and drop any already queued."""
    current().mailbox.deactivate_alias(ref)


def _resolve(server: Any) -> Any:
    """What ``send`` and ``monitor`` take for ``server``, or None if no process holds its name.

    A Pid stays a Pid, a local name (or ``(name, this node)``) becomes its
    pid, ``(name, other_node)`` stays as it is (that node resolves it). The
    one place that knows the server forms: extend it for new name kinds.

    Raises:
        BadArg: ``server`` is none of these forms.
    """
    if type(server) is Pid:
        return server
    global_name = _global_name(server)
    if global_name is not None:
        return global_registry.whereis_name(global_name)
    if isinstance(server, tuple) and len(server) == 2 and all(isinstance(part, str) for part in server):
        name, where = server
        if where != primitives.node():
            return server
        server = name
    if isinstance(server, str):
        return primitives.whereis(server)
    raise BadArg(f"a server is a Pid, a registered name or (name, node), not {server!r}")


def send_request(server: Any, request: Any) -> RequestId:
    """Send ``request`` to a server's ``handle_call`` without waiting; the request's id.

    A process may have any number of requests in flight; each is answered
    through :func:`wait_response` (or :func:`check_response`). A server that
    is not running makes the request fail there, not here.

    Args:
        server: a Pid, a registered name, or ``(name, node)``.

    Raises:
        BadArg: ``server`` is not a server form, or ``request`` cannot be pickled.
    """
    dest = _resolve(server)
    alias = _open_alias()
    try:
        if dest is None:
            mref = primitives.make_ref()
            primitives.send(primitives.self(), Down(mref, server, "noproc"))
        else:
            mref = primitives.monitor(dest)
            try:
                primitives.send(dest, (_CALL, (primitives.self(), alias), request))
            except BaseException:
                primitives.demonitor(mref, flush=True)
                raise
    except BaseException:
        _close_alias(alias)
        raise
    return RequestId(alias, mref, server)


def wait_response(request_id: RequestId, timeout: Optional[float] = 5.0) -> Any:
    """Wait for the reply to a :func:`send_request`; the reply.

    Args:
        request_id: what :func:`send_request` returned (each is answered once).
        timeout: seconds; None waits forever.

    Raises:
        Timeout: no reply within ``timeout``; the request is abandoned and a
            late reply never reaches the mailbox.
        RemoteError: the server died (or was not running) before replying.
        NodeError: the server's node went down.
    """
    try:
        msg = primitives.receive(request_id.is_response, timeout)
    except BaseException as exc:
        _abandon(request_id)
        if isinstance(exc, Timeout):
            raise Timeout(f"call to {request_id.server!r} got no reply within timeout={timeout!r}s") from None
        raise
    return check_response(msg, request_id)


def check_response(msg: Any, request_id: RequestId) -> Any:
    """End ``request_id`` with ``msg``, a message for which ``request_id.is_response(msg)``.

    Returns the reply, or raises as :func:`wait_response` does. For callers
    that take the message with their own receive (``aio.call``).

    Raises:
        BadArg: ``msg`` does not answer ``request_id``.
    """
    if not request_id.is_response(msg):
        raise BadArg(f"{msg!r:.80} does not answer {request_id!r}")
    if type(msg) is Down:
        _close_alias(request_id.alias)
        raise _down_error(f"call to {request_id.server!r}", msg.reason)
    _abandon(request_id)
    return msg.value


def _abandon(request_id: RequestId) -> None:
    """Drop the request's monitor and alias (and any of their queued messages)."""
    primitives.demonitor(request_id.monitor, flush=True)
    _close_alias(request_id.alias)


def _down_error(what: str, reason: Any) -> Exception:
    """The error a caller raises when the server went down with ``reason``."""
    if reason == "noconnection":
        return NodeError(f"{what}: its node is down")
    if reason == "noproc":
        return RemoteError(f"{what}: no such process (not running, or no process holds the name)", "noproc")
    if isinstance(reason, Crash):
        return RemoteError(f"{what}: the server exited with {reason}", reason.type, reason.traceback)
    return RemoteError(f"{what}: the server exited with {reason!r}", "exit")


def call(server: Any, request: Any, timeout: Optional[float] = 5.0) -> Any:
    """Send ``request`` to a server and wait for its reply.

    Args:
        server: a Pid, a registered name, or ``(name, node)``.
        timeout: seconds; None waits forever.

    Raises:
        Timeout: no reply within ``timeout`` (a late reply is dropped).
        RemoteError: the server died (or was not running) before replying.
        NodeError: the server's node went down.
    """
    check_timeout(timeout)
    return wait_response(send_request(server, request), timeout)


def cast(server: Any, msg: Any) -> None:
    """Send ``msg`` to a server's ``handle_cast`` without waiting.

    A cast to a name nobody registered is dropped, as in Erlang; a message
    that cannot be pickled still raises :class:`BadArg`.
    """
    dest = _resolve(server)
    if dest is not None:
        primitives.send(dest, (_CAST, msg))


def stop(server: Any, reason: Any = "normal", timeout: Optional[float] = 5.0) -> None:
    """Stop a server from outside: its ``terminate(reason)`` runs, then it exits with ``reason``.

    Returns once the server is gone. Inside a server, ``self.stop(reason)``
    ends that server after the current callback instead.

    Args:
        server: a Pid, a registered name, or ``(name, node)``.
        reason: the exit reason (``'normal'`` does not kill linked processes).
        timeout: seconds to wait for the server to be gone; None waits forever.

    Raises:
        NoProc: the server was not running.
        Timeout: it was still running after ``timeout`` (the stop request
            stays queued: the server may still stop later, as in Erlang).
        NodeError: its node is down.
        RemoteError: it exited with another reason (``terminate`` raised).
    """
    check_timeout(timeout)
    dest = _resolve(server)
    if dest is None:
        raise NoProc(f"stop {server!r}: no process is registered under that name")
    if dest == primitives.self():
        raise BadArg("a server cannot stop itself with genserver.stop: use self.stop(reason) inside it")
    mref = primitives.monitor(dest)
    request_stop(dest, reason)
    try:
        down = primitives.receive(lambda m: type(m) is Down and m.ref == mref, timeout)
    except Timeout:
        primitives.demonitor(mref, flush=True)
        raise Timeout(f"stop {server!r}: still running after timeout={timeout!r}s") from None
    if down.reason == "noproc":
        raise NoProc(f"stop {server!r}: no such process")
    if down.reason != reason:
        raise _down_error(f"stop {server!r}", down.reason)


def request_stop(server: Any, reason: Any = "normal") -> None:
    """Ask a server to stop with ``reason`` without waiting (what :func:`stop` and supervisors send).

    The server handles the request after the messages already queued: its
    ``terminate(reason)`` runs, then it exits with ``reason``. A request to a
    name nobody holds is dropped.
    """
    dest = _resolve(server)
    if dest is not None:
        primitives.send(dest, (_STOP, reason))


def multi_call(
    nodes: Iterable[str], name: str, request: Any, timeout: Optional[float] = 5.0,
) -> Tuple[Dict[str, Any], List[str]]:
    """Call the server registered as ``name`` on each of ``nodes``, in parallel.

    Returns:
        ``(replies, bad_nodes)``: ``replies`` maps each node that answered to
        its reply; ``bad_nodes`` lists (in the order given) the nodes where no
        server answered within ``timeout``: not running, crashed, or node down.

    Raises:
        BadArg: ``name`` is not a string.
    """
    if not isinstance(name, str):
        raise BadArg(f"multi_call needs a registered name (a string), not {name!r}")
    check_timeout(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = [(node, send_request((name, node), request)) for node in nodes]
    replies: Dict[str, Any] = {}
    bad: List[str] = []
    for node, request_id in pending:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            replies[node] = wait_response(request_id, left)
        except (Timeout, RemoteError, NodeError):
            bad.append(node)
    return replies, bad


def abcast(nodes: Iterable[str], name: str, msg: Any) -> None:
    """Cast ``msg`` to the server registered as ``name`` on each of ``nodes`` (no waiting)."""
    if not isinstance(name, str):
        raise BadArg(f"abcast needs a registered name (a string), not {name!r}")
    for node in nodes:
        cast((name, node), msg)


GenServer.call = staticmethod(call)  # type: ignore[attr-defined]
GenServer.cast = staticmethod(cast)  # type: ignore[attr-defined]
GenServer.reply = staticmethod(reply)  # type: ignore[attr-defined]
GenServer.send_request = staticmethod(send_request)  # type: ignore[attr-defined]
GenServer.wait_response = staticmethod(wait_response)  # type: ignore[attr-defined]
GenServer.check_response = staticmethod(check_response)  # type: ignore[attr-defined]
GenServer.multi_call = staticmethod(multi_call)  # type: ignore[attr-defined]
GenServer.abcast = staticmethod(abcast)  # type: ignore[attr-defined]
GenServer.Continue = Continue  # type: ignore[attr-defined]
GenServer.IdleTimeout = IdleTimeout  # type: ignore[attr-defined]
