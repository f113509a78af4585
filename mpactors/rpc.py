"""Remote procedure calls: run a function on a node and get its result.

``rpc.call`` spawns a short-lived actor on the target node that runs the
function and sends the outcome back to an *alias* of the caller (a reference
the caller's mailbox accepts only while it waits), and monitors it, so that:

* a remote exception raises :class:`~mpactors.RemoteError` with the remote
  traceback text;
* an unreachable node raises :class:`~mpactors.NodeError`, a timeout raises
  :class:`~mpactors.Timeout`, and the worker dying raises ``RemoteError``;
* a reply that arrives after the caller gave up never lands in its mailbox.

``fn`` may be a callable (pickled, dill for lambdas and closures) or a
``'module:function'`` string resolved on the target node.
"""
from __future__ import annotations

import importlib
import traceback
from typing import Any, Callable, NamedTuple, Union

from . import primitives
from ._core._context import check_timeout, current
from .errors import BadArg, NodeError, RemoteError, Timeout
from .messages import AliasReply, Down
from .pid import Pid, Ref

__all__ = ["call", "cast"]

Target = Union[Callable[..., Any], str]


def _resolve(fn: Target) -> Callable[..., Any]:
    if callable(fn):
        return fn
    if isinstance(fn, str) and ":" in fn:
        module, _, name = fn.partition(":")
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
        if not callable(obj):
            raise BadArg(f"{fn!r} is not callable")
        return obj  # type: ignore[no-any-return]
    raise BadArg(f"expected a callable or 'module:function', not {fn!r}")


def _run(caller: Pid, ref: Ref, fn: Target, args: tuple, kwargs: dict) -> None:
    """Actor body on the target node: run ``fn`` and reply to the caller's alias."""
    try:
        outcome: Any = (True, _resolve(fn)(*args, **kwargs))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
        outcome = (False, (type(exc).__name__, str(exc), traceback.format_exc()))
    try:
        primitives.send(caller, AliasReply(ref, outcome))
    except BadArg as exc:
        primitives.send(caller, AliasReply(ref, (False, ("BadArg", f"the result cannot be pickled: {exc}", ""))))


def _run_cast(fn: Target, args: tuple, kwargs: dict) -> None:
    _resolve(fn)(*args, **kwargs)


def _name(fn: Target) -> str:
    return fn if isinstance(fn, str) else getattr(fn, "__qualname__", repr(fn))


def call(node: str, fn: Target, *args: Any, timeout: Union[float, None] = None, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` on ``node`` and return its result.

    Args:
        node: the node's full name (``'a@host'``); the caller's own node works too.
        fn: a callable, or ``'module:function'`` imported on ``node``.
        timeout: seconds to wait for the result; None waits as long as it takes.

    Raises:
        RemoteError: ``fn`` raised on ``node`` (``type_name`` and
            ``remote_traceback`` say what), or the process running it died.
        NodeError: ``node`` cannot be reached, or went down during the call.
        Timeout: no result within ``timeout`` seconds (a late result is dropped).
    """
    check_timeout(timeout)
    pending = start_call(node, fn, args, kwargs)
    try:
        try:
            msg = primitives.receive(pending.is_response, timeout)
        except Timeout:
            raise give_up(pending, timeout) from None
        return finish_call(pending, msg)
    finally:
        close_call(pending)


class PendingCall(NamedTuple):
    """An ``rpc.call`` in flight (the pieces ``call`` and ``aio.rpc_call`` share)."""

    pid: Pid  # the worker running fn
    monitor: Ref  # its monitor: a Down ends the call
    alias: Ref  # the reply's tag, accepted by the caller's mailbox until close_call
    node: str
    fn: Target

    def is_response(self, msg: Any) -> bool:
        """True for the call's result or the worker's ``Down``."""
        return (type(msg) is AliasReply and msg.ref == self.alias) or (type(msg) is Down and msg.ref == self.monitor)


def start_call(node: str, fn: Target, args: tuple, kwargs: dict) -> PendingCall:
    """Spawn the worker that runs ``fn`` on ``node`` (monitored; it replies to a new alias)."""
    proc = current()
    ref = proc.make_ref()
    proc.mailbox.aliases.add(ref)
    try:
        pid, mref = primitives.start_process(
            _run, (proc.pid, ref, fn, args, kwargs), {}, node, False, True, label=f"rpc {_name(fn)}"
        )
    except BaseException as exc:
        proc.mailbox.deactivate_alias(ref)
        if isinstance(exc, NodeError):
            raise NodeError(f"rpc.call of {_name(fn)} on {node}: {exc}") from None
        raise
    return PendingCall(pid, mref, ref, node, fn)


def finish_call(pending: PendingCall, msg: Any) -> Any:
    """The result ``msg`` (a message ``pending.is_response`` accepts) stands for, or its error."""
    fn, node = pending.fn, pending.node
    if type(msg) is Down:
        if msg.reason == "noconnection":
            raise NodeError(f"rpc.call of {_name(fn)} on {node}: the node went down")
        raise RemoteError(f"rpc.call of {_name(fn)} on {node}: the worker exited with {msg.reason}")
    primitives.demonitor(pending.monitor, flush=True)
    ok, value = msg.value
    if ok:
        return value
    type_name, text, tb = value
    raise RemoteError(f"{type_name}: {text} (in {_name(fn)} on {node})", type_name, tb)


def give_up(pending: PendingCall, timeout: Any) -> Timeout:
    """Abandon the call (its worker is killed); the :class:`Timeout` to raise."""
    primitives.demonitor(pending.monitor, flush=True)
    primitives.exit(pending.pid, "kill")
    return Timeout(f"rpc.call of {_name(pending.fn)} on {pending.node}: no result within timeout={timeout!r}s")


def close_call(pending: PendingCall) -> None:
    """Stop accepting the call's reply (a late one never reaches the mailbox)."""
    current().mailbox.deactivate_alias(pending.alias)


def cast(node: str, fn: Target, *args: Any, **kwargs: Any) -> None:
    """Run ``fn(*args, **kwargs)`` on ``node`` without waiting for it.

    Raises:
        NodeError: ``node`` cannot be reached.
    """
    primitives.start_process(_run_cast, (fn, args, kwargs), {}, node, False, False, label=f"rpc {_name(fn)}")
