"""asyncio: ``await`` messages, calls and rpc without blocking the event loop.

Two sides, one mailbox mechanism (``mpactors._core._aioloop``):

* **async actors**: ``spawn(async_fn)`` runs the coroutine function in an
  event loop in the actor's process; that loop reads the mailbox (the pipe
  is a loop reader), so other tasks run while one awaits :func:`receive`.
  An exit signal cancels the main task (``finally`` and ``async with`` run).
  A ``GenServer`` whose callbacks are ``async def`` runs them in its loop,
  one at a time, in message order.
* **the node's main process** (a web application's loop): the same
  awaitables work there; many concurrent :func:`call`\\ s from one loop each
  get their own reply (they are correlated by the request's alias).

Blocking ``receive`` (and everything built on it) inside an async actor's
loop raises :class:`~mpactors.errors.WouldBlock`; in another thread
(``await asyncio.to_thread(genserver.call, ...)``) it works: the thread
hands its wait to the loop.

Example::

    async def counter():
        n = 0
        while True:
            msg = await aio.receive()
            if msg == "stop":
                return
            n += 1
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Optional, Union

from . import genserver, primitives, rpc
from ._core import _aioloop
from ._core._context import check_timeout
from .errors import Timeout

__all__ = ["receive", "send", "call", "rpc_call"]

#: Same as :func:`mpactors.send`: it never waits for the receiver.
send = primitives.send


def receive(match: Any = None, timeout: Optional[float] = None) -> Awaitable[Any]:
    """Await the oldest message in the mailbox that matches ``match``: ``msg = await aio.receive(...)``.

    The same selective receive as :func:`mpactors.receive`: messages that
    do not match stay in the mailbox, in order. Concurrent receives in one
    loop each get a different message (the oldest waiting receive whose
    pattern matches gets it).

    Args:
        match: ``None`` (any message), ``ANY``, a type, a value, a tuple of
            patterns, or a predicate.
        timeout: seconds to wait; ``None`` waits forever.

    Raises:
        Timeout: no matching message arrived within ``timeout``.
        BadArg: ``timeout`` is not a non-negative number (raised at once, before awaiting).
    """
    return _aioloop.receive(match, timeout)


async def call(server: Any, request: Any, timeout: Optional[float] = 5.0) -> Any:
    """Await the reply of a GenServer to ``request`` (``genserver.call`` without blocking).

    Built on :func:`mpactors.genserver.send_request`: the reply is tagged
    with the request's alias, so concurrent calls from one loop each get
    their own reply, and a reply that comes after a timeout (or after the
    awaiting task was cancelled) never reaches the mailbox.

    Args:
        server: a Pid, a registered name, ``(name, node)`` or ``('global', name)``.
        timeout: seconds; None waits forever.

    Raises:
        Timeout: no reply within ``timeout``.
        RemoteError: the server died (or was not running) before replying.
        NodeError: the server's node went down.
    """
    check_timeout(timeout)
    request_id = genserver.send_request(server, request)
    try:
        msg = await _aioloop.receive_keyed((request_id.alias, request_id.monitor), timeout)
    except Timeout:
        try:  # a reply that arrived just now still counts; otherwise this abandons the request
            return genserver.wait_response(request_id, 0)
        except Timeout:
            raise Timeout(f"call to {server!r} got no reply within timeout={timeout!r}s") from None
    except BaseException:  # cancelled: abandon the request (a late reply is dropped)
        try:
            genserver.wait_response(request_id, 0)
        except Exception:  # noqa: BLE001 - Timeout (abandoned) or the server's error: nobody waits
            pass
        raise
    return genserver.check_response(msg, request_id)


async def rpc_call(node: str, fn: Union[Callable[..., Any], str], *args: Any, timeout: Optional[float] = None,
                   **kwargs: Any) -> Any:
    """Await ``fn(*args, **kwargs)`` run on ``node`` (``rpc.call`` without blocking).

    Args:
        node: the node's full name; the caller's own node works too.
        fn: a callable, or ``'module:function'`` imported on ``node``.
        timeout: seconds to wait for the result; None waits as long as it takes.

    Raises:
        RemoteError: ``fn`` raised on ``node``, or the process running it died.
        NodeError: ``node`` cannot be reached, or went down during the call.
        Timeout: no result within ``timeout`` (the worker is killed, a late result dropped).
    """
    check_timeout(timeout)
    loop = asyncio.get_running_loop()
    # Spawning on another node waits for that node's answer: in a thread, not in the loop.
    starting = loop.run_in_executor(None, rpc.start_call, node, fn, args, kwargs)
    try:
        pending = await asyncio.shield(starting)
    except asyncio.CancelledError:
        starting.add_done_callback(_abandon_started)
        raise
    try:
        try:
            msg = await _aioloop.receive_keyed((pending.alias, pending.monitor), timeout)
        except Timeout:
            raise rpc.give_up(pending, timeout) from None
        except BaseException:
            rpc.give_up(pending, timeout)
            raise
        return rpc.finish_call(pending, msg)
    finally:
        rpc.close_call(pending)


def _abandon_started(fut: "asyncio.Future[Any]") -> None:
    """The rpc's worker started after its caller was cancelled: end it."""
    if fut.cancelled() or fut.exception() is not None:
        return
    pending = fut.result()
    rpc.give_up(pending, None)
    rpc.close_call(pending)
