"""``Wake``: a future that the mailbox's loop reader resumes at once (``_aioloop``).

An ``asyncio.Future`` resumes the task awaiting it one loop iteration after
it is resolved (its callbacks go through ``call_soon``). The reader's pass
resolves the receives it serves with ``set_result(msg, woken)`` and calls
``wake_now`` on each at the end of the pass, from the reader callback (never
from inside a task): the task continues in the same iteration, one
``epoll_wait`` per message instead of two.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, List, Optional, Tuple

__all__ = ["Wake"]

_PENDING, _DONE, _CANCELLED = 0, 1, 2


class Wake:
    """The future of one waiting receive; a Future to the Task that awaits it.

    Cancel, result, exception and done-callbacks behave as ``asyncio.Future``'s
    (all a Task asks of what it awaits); ``set_result(value, woken)`` and
    ``wake_now`` let the reader resume the task without a loop iteration.
    """

    __slots__ = ("_loop", "_callbacks", "_state", "_result", "_exc", "_asyncio_future_blocking")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._callbacks: List[Tuple[Callable[[Any], None], Any]] = []
        self._state = _PENDING
        self._result: Any = None
        self._exc: Optional[BaseException] = None
        self._asyncio_future_blocking = False

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def result(self) -> Any:
        if self._state == _CANCELLED:
            raise asyncio.CancelledError()
        if self._state == _PENDING:
            raise asyncio.InvalidStateError("the receive is still waiting")
        if self._exc is not None:
            raise self._exc
        return self._result

    def exception(self) -> Optional[BaseException]:
        if self._state == _CANCELLED:
            raise asyncio.CancelledError()
        return self._exc

    def add_done_callback(self, fn: Callable[[Any], None], *, context: Any = None) -> None:
        if self._state == _PENDING:
            self._callbacks.append((fn, context))
        else:
            self._loop.call_soon(fn, self, context=context)

    def remove_done_callback(self, fn: Callable[[Any], None]) -> int:
        before = len(self._callbacks)
        self._callbacks = [(f, c) for f, c in self._callbacks if f != fn]
        return before - len(self._callbacks)

    def cancel(self, msg: Any = None) -> bool:
        if self._state != _PENDING:
            return False
        self._state = _CANCELLED
        self._schedule()
        return True

    def set_result(self, value: Any, woken: Optional[List["Wake"]] = None) -> None:
        """Resolve; with ``woken``, the caller resumes the task later by :meth:`wake_now`."""
        self._result, self._state = value, _DONE
        if woken is None:
            self._schedule()
        else:
            woken.append(self)

    def set_exception(self, exc: BaseException) -> None:
        self._exc, self._state = exc, _DONE
        self._schedule()

    def _schedule(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for fn, context in callbacks:
            self._loop.call_soon(fn, self, context=context)

    def wake_now(self) -> None:
        """Run the callbacks (the awaiting Task's wake-up) here, from a loop callback, not from a task."""
        callbacks, self._callbacks = self._callbacks, []
        for fn, context in callbacks:
            if context is None:
                fn(self)
            else:
                context.run(fn, self)

    def __await__(self) -> Any:
        if self._state == _PENDING:
            self._asyncio_future_blocking = True
            yield self
        return self.result()

    __iter__ = __await__
