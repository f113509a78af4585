"""Answers a running process gives about itself: its threads' stacks, its server's state.

An actor's *control thread* (see :mod:`mpactors._core._worker`) answers these
while the actor's own code runs, so nothing stops the actor: the control
thread takes the GIL at the next switch interval (5 ms) whether the main
thread is blocked in ``receive`` (a ``poll`` that released the GIL) or spins
in pure Python, and reads every thread's current frame with
:func:`sys._current_frames`, as ``ray stack`` and ``py-spy dump`` show them.
Why not a signal: a Python-level signal handler runs only in the main thread
and only between bytecodes, and it would have to hand its text back through
some channel; :mod:`faulthandler` (what ``MPACTORS_STACK_DUMP_SIGNAL`` uses
for hung tests, :mod:`mpactors._core._stackdump`) runs in C at any moment but
writes only to a file descriptor. The control thread already has the channel
to the node. What none of these see is a thread stuck in C code that holds
the GIL: then the request times out (``Timeout``), and a ``py-spy dump``
(ptrace) or the stack dump signal is the tool.

The node's main process answers in its kernel thread, the same way.
"""
from __future__ import annotations

import reprlib
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["WHAT", "answer", "behaviour", "format_stacks", "register_server", "state_repr", "STATE_LIMIT"]

#: What a process can be asked (``("info", tag, what)`` on its control connection).
WHAT = ("stack", "state")

#: Characters at most in a state's text (the rest is cut and marked).
STATE_LIMIT = 8000

_server: Optional[Any] = None  # the GenServer instance this process runs, if any
_hidden: Tuple[str, ...] = ()  # its base class's bookkeeping attributes, left out of the state


def register_server(server: Any, hidden: Tuple[str, ...] = ()) -> None:
    """Called by the GenServer loop of this process: ``state`` reports this instance's attributes.

    Args:
        server: the running instance.
        hidden: attribute names that are the behaviour's bookkeeping, not the user's state.
    """
    global _server, _hidden
    _server, _hidden = server, hidden


def behaviour() -> Optional[str]:
    """``'supervisor'``, ``'gen_server'``, or None when this process runs no server."""
    server = _server
    if server is None:
        return None
    # By name: the core imports no behaviour module.
    for cls in type(server).__mro__:
        if cls.__name__ == "Supervisor" and cls.__module__ == "mpactors.supervisor":
            return "supervisor"
    return "gen_server"


def format_stacks() -> str:
    """Every thread's Python stack in this process, main thread first, most recent call last."""
    frames = sys._current_frames()
    names = {t.ident: t.name for t in threading.enumerate()}
    main = threading.main_thread().ident
    me = threading.get_ident()
    order = sorted(frames, key=lambda ident: (ident != main, ident == me, ident))
    parts = []
    for ident in order:
        if ident == me:  # its stack is always this function: name it, leave it out
            parts.append(f"Thread {ident:#x} (the thread answering this request)\n")
            continue
        label = "main thread" if ident == main else names.get(ident, "thread")
        stack = "".join(traceback.format_list(_from_bootstrap(traceback.extract_stack(frames[ident]))))
        parts.append(f"Thread {ident:#x} ({label}), most recent call last:\n{stack}")
    return "\n".join(parts)


_WORKER = str(Path(__file__).with_name("_worker.py"))


def _from_bootstrap(entries: traceback.StackSummary) -> List[traceback.FrameSummary]:
    """An actor forked by the node's kernel thread inherits that thread's frames: start at the actor's own."""
    for i, entry in enumerate(entries):
        if entry.name == "bootstrap" and entry.filename == _WORKER:
            return list(entries[i:])
    return list(entries)


_repr = reprlib.Repr()
_repr.maxlevel = 4
_repr.maxdict = 40
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxfrozenset = _repr.maxdeque = 40
_repr.maxstring = 400
_repr.maxother = 400


def state_repr(obj: Any, limit: int = STATE_LIMIT) -> str:
    """``repr`` of ``obj`` with every container and string capped, then at most ``limit`` characters."""
    text = _repr.repr(obj)
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text) - limit} more characters)"
    return text


def _server_state() -> Dict[str, Any]:
    server = _server
    if server is None:
        return {"state": None, "error": "this process runs no GenServer"}
    for _ in range(5):  # the server runs on while we read: a dict may change size under us
        try:
            attrs = {k: v for k, v in list(vars(server).items()) if k not in _hidden}
            return {"state": state_repr(attrs), "server": type(server).__qualname__}
        except RuntimeError:  # "dictionary changed size during iteration"
            continue
        except Exception as exc:  # noqa: BLE001 - a user's __repr__ may raise anything
            return {"state": None, "error": f"repr of the state failed: {type(exc).__name__}: {exc}"}
    return {"state": None, "error": "the state kept changing while it was read"}


def answer(what: str) -> Dict[str, Any]:
    """The answer to ``what`` (one of :data:`WHAT`) about this process, as a dict."""
    if what == "stack":
        return {"stack": format_stacks()}
    if what == "state":
        return _server_state()
    return {"error": f"unknown question {what!r} (expected one of {', '.join(WHAT)})"}
