"""An actor's logging under forkserver and spawn: its node's handlers, rebuilt.

A forked actor inherits its node's logging configuration. A process started by
``forkserver`` or ``spawn`` starts with none but mpactors' ``NullHandler``, so
what the actor itself logs (a message it cannot unpickle, for one) was lost
without a trace. The node describes its root and ``mpactors`` loggers (levels,
and the handlers that write to its stderr, stdout or a file, with their
formatters) in the actor's boot record; the actor rebuilds them, unless its
own start already configured logging (``spawn`` runs the main module again,
which may call ``logging.basicConfig``).

Other handlers (sockets, queues, custom classes) are not rebuilt: their state
cannot cross a process boundary.
"""
from __future__ import annotations

import logging
import pickle
import sys
from typing import Any, List, Optional, Tuple

__all__ = ["describe", "apply"]

_LOGGERS = ("", "mpactors")


def _handler_desc(h: logging.Handler) -> Optional[Tuple[Any, ...]]:
    if isinstance(h, logging.FileHandler):
        target: Tuple[Any, ...] = ("file", h.baseFilename, h.encoding)
    elif type(h) is logging.StreamHandler:
        stream = getattr(h, "stream", None)
        if stream is sys.stderr or stream is sys.__stderr__:
            target = ("stderr",)
        elif stream is sys.stdout or stream is sys.__stdout__:
            target = ("stdout",)
        else:
            return None
    else:
        return None
    formatter = h.formatter
    try:
        pickle.dumps(formatter)
    except Exception:  # noqa: BLE001 - an unpicklable custom formatter: the default one
        formatter = None
    return (target, h.level, formatter)


def describe() -> List[Tuple[str, int, List[Tuple[Any, ...]]]]:
    """``[(logger name, level, [handler description, ...]), ...]`` of this process."""
    out = []
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        handlers = [d for d in (_handler_desc(h) for h in logger.handlers) if d is not None]
        out.append((name, logger.level, handlers))
    return out


def _configured() -> bool:
    return bool(logging.getLogger().handlers) or any(
        not isinstance(h, logging.NullHandler) for h in logging.getLogger("mpactors").handlers)


def _make(target: Tuple[Any, ...]) -> logging.Handler:
    if target[0] == "file":
        return logging.FileHandler(target[1], mode="a", encoding=target[2], delay=True)
    return logging.StreamHandler(sys.stderr if target[0] == "stderr" else sys.stdout)


def apply(desc: List[Tuple[str, int, List[Tuple[Any, ...]]]]) -> None:
    """Rebuild what :func:`describe` gave, in a new process not started by fork."""
    if _configured():
        return
    for name, level, handlers in desc:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        for target, hlevel, formatter in handlers:
            try:
                h = _make(target)
            except (OSError, ValueError):  # a log file we cannot open: the others still work
                continue
            h.setLevel(hlevel)
            if formatter is not None:
                h.setFormatter(formatter)
            logger.addHandler(h)
