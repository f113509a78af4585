"""The mailbox as an asyncio reader: ``await receive(...)`` without blocking the loop.

One :class:`LoopReader` at a time reads a process's mailbox from an event
loop. It watches the mailbox pipe with ``loop.add_reader`` and, when bytes
arrive, runs the mailbox's own selective-receive step (:meth:`Mailbox.poll`)
with a predicate that offers each message to the waiting receives::

    mailbox pipe --readable--> LoopReader.run_pass (in the loop's thread)
                                 Mailbox.poll(offer, cursor)   drain + scan, under the mailbox lock
                                 offer(msg): the oldest-registered waiter that
                                             matches gets it (keyed waiters - a
                                             call's alias and monitor - by dict)
                                 then resumes the tasks it served (Wake), in
                                 the same loop iteration

Who reads the mailbox (one consumer at a time):

* an **async actor**: its loop owns the mailbox for the actor's life
  (``run_actor``). A blocking ``receive`` in the loop's thread would stop the
  loop the message may depend on: it raises :class:`WouldBlock` (a
  ``timeout=0`` look is allowed, it never waits);
* the **node's main process** (a web app's loop): the loop reads the mailbox
  while at least one ``await`` is pending, and lets go when none is (at the
  next iteration; a loop that stopped running is replaced by the next one). A
  blocking ``receive`` in the loop's own thread reads the pipe itself (the
  loop is stopped meanwhile, so the two never overlap; it blocks the loop as
  any blocking call does);
* a blocking ``receive`` in **another thread** (``asyncio.to_thread``, a web
  framework's thread pool) while a loop reads the mailbox hands its wait to
  that loop (``Mailbox.reader``) and blocks on a ``concurrent.futures``
  future; an ``await`` from another loop does the same without blocking.
  Any other thread that drains the pipe (``process_info``'s queue length,
  dropping an alias) calls ``Mailbox.notify``, which schedules a pass.

The reader's waiters and cursor belong to the loop's thread; other threads
reach them only through ``loop.call_soon_threadsafe``.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import signal
import threading
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from ..errors import ProcessExit, Timeout, WouldBlock
from ..messages import AliasReply, Down
from ..pattern import compile_pattern
from ._context import check_timeout, current
from ._wake import Wake
from .mailbox import READ_HERE, Mailbox

__all__ = ["LoopReader", "receive", "receive_keyed", "run_actor"]

#: Receives answered from the queue without suspending before one yields to the loop (responsiveness
#: while a backlog of messages is worked off: other tasks run at least every this many messages).
_YIELD_EVERY = 32
_FOREIGN_SLICE = 0.5  # seconds: a thread waiting through a loop checks this often that the loop still runs

_seq = itertools.count()
_lock = threading.Lock()  # guards _active
_active: Optional["LoopReader"] = None  # the reader of this process's mailbox, if a loop reads it


def _after_fork() -> None:
    global _active, _lock
    _active = None  # a forked actor starts with its own mailbox and no loop
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


class _Waiter:
    """One pending receive: ``pred`` (or ``keys``: refs of AliasReply/Down) and where the message goes."""

    __slots__ = ("seq", "pred", "keys", "fut", "foreign")

    def __init__(self, pred: Optional[Callable[[Any], bool]], keys: Tuple[Any, ...], fut: Any, foreign: bool) -> None:
        self.seq = next(_seq)
        self.pred = pred
        self.keys = keys
        self.fut = fut  # asyncio.Future of the loop, or a concurrent.futures.Future (foreign)
        self.foreign = foreign

    def claim(self) -> bool:
        """True if the waiter still wants a message (then it must get one or an error)."""
        if self.foreign:
            return bool(self.fut.set_running_or_notify_cancel())
        return not self.fut.done()


class LoopReader:
    """Reads one mailbox from one event loop and hands messages to its waiting receives."""

    def __init__(self, loop: asyncio.AbstractEventLoop, mailbox: Mailbox, owned: bool) -> None:
        self.loop = loop
        self.mailbox = mailbox
        self.owned = owned  # an async actor's loop: reads for the actor's life, forbids blocking receive
        self.thread = threading.get_ident()
        self.generic: List[_Waiter] = []  # waiters with a predicate, oldest first
        self.keyed: Dict[Any, _Waiter] = {}  # ref -> waiter (aio.call's alias and monitor)
        self.cursor = [0, mailbox.removed]
        self.attached = False
        self.scheduled = False
        self.passing = False
        self.ready_in_a_row = 0  # receives answered at once since the last suspension
        self.detaching = False  # a check whether to stop reading is scheduled
        self.woken: List[Wake] = []  # resolved during this pass, resumed at its end

    # -- attach / detach (loop thread) -----------------------------------------
    def attach(self) -> bool:
        """Start reading the mailbox; False if another loop's reader took over meanwhile."""
        if self.attached:
            return True
        with _lock:
            if _active is not self:
                return False
            self.attached = True
        mb = self.mailbox
        self.cursor = [0, mb.removed]
        mb.reader = self._blocking_receive
        mb.wake_readers()  # blocking receives in other threads now hand their waits over
        mb.notify = self._notify
        self.loop.add_reader(mb.fd, self.run_pass)
        return True

    def detach(self) -> None:
        if not self.attached:
            return
        self.attached = False
        mb = self.mailbox
        if mb.reader == self._blocking_receive:  # not yet taken over by another loop's reader
            mb.notify = None
            mb.reader = None
            mb.waiting = False
        try:
            self.loop.remove_reader(mb.fd)
        except (RuntimeError, ValueError, OSError):  # the loop is closed already
            pass
        # Waiters left: foreign ones (the loop is ending) or all (another loop took over):
        # READ_HERE sends each back to look for the mailbox's reader again.
        for w in dict.fromkeys([*self.generic, *self.keyed.values()]):  # a keyed waiter is there twice
            if w.claim():
                w.fut.set_result(READ_HERE)
        self.generic.clear()
        self.keyed.clear()

    def _idle(self) -> None:
        if not self.generic and not self.keyed:
            self.mailbox.waiting = False
            if not self.owned and not self.detaching:
                # Not at once: a task that just got its message usually waits again next.
                self.detaching = True
                self.loop.call_soon(self._detach_if_idle)

    def _detach_if_idle(self) -> None:
        self.detaching = False
        if not self.generic and not self.keyed:
            self.detach()

    # -- waiters (loop thread) -------------------------------------------------
    def add(self, w: _Waiter) -> None:
        """Register ``w``: it takes the oldest queued match now, or waits for the next pass."""
        if not self.attach():  # another loop reads the mailbox now: go through it
            if w.claim():
                w.fut.set_result(READ_HERE)
            return
        try:
            # Only what is queued: bytes still in the pipe make it readable, and
            # the next pass hands them out (a drain here would cost a read per
            # receive). An empty queue needs no look (a thread that queues
            # messages later calls notify).
            found, msg = False, None
            if self.mailbox.queue:
                found, msg = self.mailbox.poll(w.pred or _keys_pred(w.keys), [0, self.mailbox.removed], drain=False)
        except Exception as exc:  # noqa: BLE001 - an exit signal (ProcessExit) or the predicate failed
            if w.claim():
                w.fut.set_exception(exc)
            self._idle()
            return
        if found:
            if w.claim():
                w.fut.set_result(msg)
            else:
                self.mailbox.requeue(msg)  # pragma: no cover - cancelled in between
            self._idle()
            return
        if w.keys:
            for key in w.keys:
                self.keyed[key] = w
        else:
            self.generic.append(w)
        self.mailbox.waiting = True

    def remove(self, w: _Waiter) -> None:
        if w.keys:
            for key in w.keys:
                if self.keyed.get(key) is w:
                    del self.keyed[key]
        elif w in self.generic:
            self.generic.remove(w)
        self._idle()

    def _offer(self, msg: Any) -> bool:
        """Give ``msg`` to the oldest waiter that matches it; True if one took it."""
        k = None
        t = type(msg)
        if self.keyed and (t is AliasReply or t is Down):
            k = self.keyed.get(msg.ref)
        for w in self.generic:
            if k is not None and w.seq > k.seq:
                break
            try:
                matched = w.pred(msg)  # type: ignore[misc]
            except Exception as exc:  # noqa: BLE001 - a user's predicate failed: that receive raises it
                self.generic.remove(w)
                if w.claim():
                    w.fut.set_exception(exc)
                return self._offer(msg)
            if matched:
                self.generic.remove(w)
                if w.claim():
                    self._deliver(w, msg)
                    return True
                return self._offer(msg)  # a foreign waiter that gave up: the next one
        if k is not None:
            for key in k.keys:
                self.keyed.pop(key, None)
            if k.claim():
                self._deliver(k, msg)
                return True
            return self._offer(msg)
        return False

    def _deliver(self, w: _Waiter, msg: Any) -> None:
        if w.foreign:
            w.fut.set_result(msg)
        else:  # resumed at the end of the pass, outside the mailbox lock
            w.fut.set_result(msg, self.woken)

    def run_pass(self) -> None:
        """Drain the pipe and hand out every message some waiter matches (the fd callback)."""
        self.scheduled = False
        if not self.attached:
            return
        if _active is not self:  # this loop stopped running for a while and another one took over
            self.detach()
            return
        self.passing = True
        try:
            if not self.generic and not self.keyed:
                # Nobody waits: still empty the pipe (a readable fd would wake
                # the loop again and again); the messages wait in the queue.
                if not self.mailbox.pull() and self.owned:
                    self.detach()
                return
            while self.generic or self.keyed:
                found, _ = self.mailbox.poll(self._offer, self.cursor)
                if not found:
                    break
        except ProcessExit as exc:
            self._fail_all(exc)
        finally:
            self.passing = False
        self._idle()
        woken, self.woken = self.woken, []
        for fut in woken:
            fut.wake_now()

    def _fail_all(self, exc: ProcessExit) -> None:
        waiters = sorted(set(self.generic) | set(self.keyed.values()), key=lambda w: w.seq)
        self.generic.clear()
        self.keyed.clear()
        for w in waiters:
            if w.claim():
                w.fut.set_exception(ProcessExit(exc.reason))
        if self.owned:
            self.detach()  # the pipe is gone (end of file): stop watching it

    # -- calls from any thread ---------------------------------------------------
    def _notify(self) -> None:
        """Another reader drained messages into the queue: look at them soon."""
        if self.passing or self.scheduled:
            return
        self.scheduled = True
        try:
            self.loop.call_soon_threadsafe(self.run_pass)
        except RuntimeError:  # the loop is closed
            self.scheduled = False

    def _blocking_receive(self, match: Any, timeout: Optional[float]) -> Any:
        """``Mailbox.reader``: a blocking receive while this loop reads the mailbox."""
        if timeout == 0:
            return READ_HERE  # a look never waits: any thread may take it under the mailbox lock
        if not self.loop.is_running():
            return READ_HERE  # nobody to hand the wait to: read directly (the wake-ups keep both right)
        if threading.get_ident() == self.thread:
            if self.owned:
                raise WouldBlock(
                    "blocking receive inside an async actor would stop its event loop: "
                    "use `await mpactors.aio.receive(...)` (or aio.call), or run blocking "
                    "code in a thread with `await asyncio.to_thread(...)`"
                )
            return READ_HERE  # the loop is not running while we block here: read directly
        return self.wait_foreign(compile_pattern(match), (), match, timeout)

    def wait_foreign(self, pred: Optional[Callable[[Any], bool]], keys: Tuple[Any, ...], match: Any,
                     timeout: Optional[float]) -> Any:
        """Wait in another thread for a message this loop hands out; READ_HERE if the loop went away."""
        cfut: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
        w = _Waiter(pred, keys, cfut, True)
        try:
            self.loop.call_soon_threadsafe(self.add, w)
        except RuntimeError:  # closed
            return READ_HERE
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _FOREIGN_SLICE if deadline is None else min(_FOREIGN_SLICE, deadline - time.monotonic())
            try:
                return cfut.result(max(0.0, left))
            except concurrent.futures.TimeoutError:
                pass
            gone = not self.loop.is_running()
            if gone or (deadline is not None and time.monotonic() >= deadline):
                if cfut.cancel():  # the loop drops a cancelled waiter when it next looks
                    if gone:
                        return READ_HERE
                    raise Timeout(f"no matching message within timeout={timeout!r}s (pattern {match!r})") from None
                return cfut.result()


def _keys_pred(keys: Tuple[Any, ...]) -> Callable[[Any], bool]:
    def pred(msg: Any) -> bool:
        t = type(msg)
        return (t is AliasReply or t is Down) and msg.ref in keys

    return pred


def _reader_for(loop: asyncio.AbstractEventLoop, mailbox: Mailbox) -> "LoopReader":
    """The reader of ``mailbox`` for ``loop``, made active if no other loop reads it."""
    global _active
    with _lock:
        r = _active
        if r is not None and r.mailbox is mailbox:
            if r.loop is loop or (r.attached and r.loop.is_running()):
                return r
        r = _active = LoopReader(loop, mailbox, owned=False)
        return r


def _wait(pred: Optional[Callable[[Any], bool]], keys: Tuple[Any, ...], match: Any,
          timeout: Optional[float]) -> Awaitable[Any]:
    """The awaitable of a receive: straight to this thread's reader when it has one (one coroutine frame)."""
    reader = _active
    if (reader is not None and reader.thread == threading.get_ident() and reader.loop.is_running()
            and reader.mailbox is current().mailbox):
        # One running loop per thread: this is it (asyncio.get_running_loop costs a getpid).
        return _wait_here(reader, pred, keys, match, timeout)
    return _wait_any(pred, keys, match, timeout)


async def _wait_any(pred: Optional[Callable[[Any], bool]], keys: Tuple[Any, ...], match: Any,
                    timeout: Optional[float]) -> Any:
    """A receive that first finds (or makes) the mailbox's reader, and looks again if it changes."""
    loop = asyncio.get_running_loop()
    mailbox = current().mailbox
    deadline = None if timeout is None else time.monotonic() + timeout
    again = False
    while True:
        if again and deadline is not None:  # after a change of reader: what is left of the timeout
            timeout = max(0.0, deadline - time.monotonic())
        again = True
        reader = _reader_for(loop, mailbox)
        if reader.loop is not loop:  # another thread's loop reads this mailbox: wait through it
            msg = await loop.run_in_executor(None, reader.wait_foreign, pred, keys, match, timeout)
        else:
            msg = await _wait_here(reader, pred, keys, match, timeout, retry=False)
        if msg is not READ_HERE:  # else the reader changed: look again
            return msg


async def _wait_here(reader: LoopReader, pred: Optional[Callable[[Any], bool]], keys: Tuple[Any, ...],
                     match: Any, timeout: Optional[float], retry: bool = True) -> Any:
    """Wait in ``reader``'s loop (the running one); READ_HERE if the reader went away, unless ``retry``."""
    fut = Wake(reader.loop)
    w = _Waiter(pred, keys, fut, False)
    reader.add(w)
    if fut.done():  # it was queued already: no suspension, unless that went on for too long
        msg = fut.result()
        if msg is READ_HERE and retry:
            return await _wait_any(pred, keys, match, timeout)
        reader.ready_in_a_row += 1
        if reader.ready_in_a_row < _YIELD_EVERY:
            return msg
        reader.ready_in_a_row = 0
        try:
            await asyncio.sleep(0)  # let the loop's other tasks run while a backlog is worked off
        except asyncio.CancelledError:
            reader.mailbox.requeue(msg)
            raise
        return msg
    reader.ready_in_a_row = 0
    timer = None
    if timeout is not None:
        timer = reader.loop.call_later(timeout, _expire, fut, timeout, match)
    try:
        msg = await fut
    except asyncio.CancelledError:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            reader.mailbox.requeue(fut.result())  # delivered, but the task was cancelled first
        raise
    finally:
        if timer is not None:
            timer.cancel()
        if not fut.done() or fut.cancelled() or fut.exception() is not None:
            reader.remove(w)
    if msg is READ_HERE and retry:  # the reader went away meanwhile (another loop took over)
        return await _wait_any(pred, keys, match, timeout)
    return msg


def _expire(fut: Wake, timeout: Optional[float], match: Any) -> None:
    if not fut.done():
        fut.set_exception(Timeout(f"no matching message within timeout={timeout!r}s (pattern {match!r})"))


def receive(match: Any = None, timeout: Optional[float] = None) -> Awaitable[Any]:
    """An awaitable of the oldest message matching ``match`` (see ``mpactors.receive``)."""
    check_timeout(timeout)
    return _wait(compile_pattern(match), (), match, timeout)


def receive_keyed(keys: Tuple[Any, ...], timeout: Optional[float]) -> Awaitable[Any]:
    """An awaitable of the first ``AliasReply`` or ``Down`` whose ``ref`` is in ``keys`` (a dict lookup, not a scan)."""
    check_timeout(timeout)
    return _wait(None, keys, keys, timeout)


def run_actor(coro: Any, mailbox: Mailbox) -> bool:
    """Run an async actor's coroutine in a new event loop that owns ``mailbox``.

    SIGTERM (the node ending the actor with an exit signal) cancels the main
    task, so its ``finally`` blocks and ``async with`` exits run; then the
    other tasks are cancelled as ``asyncio.run`` does. Returns True if an
    exit signal ended it (the node knows the reason), False if it returned.
    Exceptions of the coroutine propagate.
    """
    terminated = []
    old = signal.getsignal(signal.SIGTERM)

    async def main() -> Any:
        global _active
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_sigterm() -> None:
            terminated.append(True)
            task.cancel()

        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        reader = LoopReader(loop, mailbox, owned=True)
        with _lock:
            _active = reader
        if not reader.attach():  # pragma: no cover - nothing else can take it in a new actor
            raise RuntimeError("the actor's mailbox is already read by another event loop")
        try:
            return await coro
        finally:
            reader.detach()
            # Before the loop closes its wakeup pipe (a SIGTERM in between would
            # write to a closed pipe), and without raising inside asyncio.run's
            # clean-up: a SIGTERM from now on is only noted.
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, lambda signum, frame: terminated.append(True))

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        if not terminated:
            raise
    finally:
        signal.signal(signal.SIGTERM, old)
    return bool(terminated)
