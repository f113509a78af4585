"""Timers kept by the node's kernel: ``send_after``, ``send_interval``, ``cancel_timer``, ``read_timer``.

There is no process and no thread per timer (as in ERTS): every pending timer
of a node is one entry in a heap owned by the kernel thread, and the kernel's
loop waits in ``select`` at most until the first one is due, so a thousand
timers cost one wake-up per instant that has something to deliver.

* :class:`TimerTable` is the data: a heap ordered by due time, a dict
  ``ref number -> Timer`` (what may still fire), and the timers of each owner,
  so the death of an owner cancels all of its timers at once. A cancelled
  timer leaves its heap entry behind (dropped when popped, or in one sweep
  when more than half the heap is dead), so cancelling costs O(1).
* :class:`Timers` is the kernel's part (composed into the kernel): the
  ``op_send_after``/``op_cancel_timer``/``op_read_timer`` requests, and
  delivering a due message.

Only the kernel thread touches the table, so firing and cancelling are
serialized: ``cancel_timer`` either removes a timer before it fires (returns
the seconds that were left, and its message never arrives) or finds it gone
(returns ``None``: it fired once, or was cancelled already). There is no third
case, so a message arrives at most once.

A name (``'logger'``) is looked up when the timer fires, as Erlang does; if
nothing is registered then the message is dropped without error. A pid or
``(name, node)`` on another node is routed like any remote send.
"""
from __future__ import annotations

import heapq
import time
from typing import Any, Dict, List, Optional, Tuple

from ..errors import BadArg
from ..pid import Pid, TimerRef
from ._ports import KernelServices
from ._registry import Registry
from ._tables import ProcTable

__all__ = ["Timer", "TimerTable", "Timers", "timer_wait"]


class Timer:
    """One pending timer (kernel thread only)."""

    __slots__ = ("n", "owner", "due", "interval", "dest", "payload", "live")

    def __init__(self, n: int, owner: Pid, due: float, interval: Optional[float], dest: Any, payload: bytes) -> None:
        self.n = n
        self.owner = owner
        self.due = due
        self.interval = interval
        self.dest = dest
        self.payload = payload
        self.live = True


class TimerTable:
    """Pending timers of one node, ordered by due time (``time.monotonic`` seconds)."""

    def __init__(self) -> None:
        self._heap: List[Tuple[float, int, Timer]] = []  # (due, n, timer): n is unique, timers never compared
        self._live: Dict[int, Timer] = {}
        self._dests: Dict[Any, List[Any]] = {}  # dest -> [one shared copy, timers using it]
        self._by_owner: Dict[Pid, Dict[int, Timer]] = {}
        self._dead_in_heap = 0

    def __len__(self) -> int:
        return len(self._live)

    def add(self, n: int, owner: Pid, delay: float, interval: Optional[float], dest: Any, payload: bytes) -> None:
        if n in self._live:
            raise BadArg(f"timer {n} is already pending")
        shared = self._dests.get(dest)
        if shared is None:
            shared = self._dests[dest] = [dest, 0]
        shared[1] += 1  # each message's dest is a fresh unpickled copy: keep one per destination
        timer = Timer(n, owner, time.monotonic() + delay, interval, shared[0], payload)
        self._live[n] = timer
        self._by_owner.setdefault(owner, {})[n] = timer
        heapq.heappush(self._heap, (timer.due, n, timer))

    def read(self, n: int) -> Optional[float]:
        """Seconds until timer ``n`` fires next, or None if it is not pending."""
        timer = self._live.get(n)
        if timer is None:
            return None
        return max(0.0, timer.due - time.monotonic())

    def cancel(self, n: int) -> Optional[float]:
        """Cancel timer ``n``: the seconds that were left, or None if it was not pending."""
        timer = self._live.get(n)
        if timer is None:
            return None
        left = max(0.0, timer.due - time.monotonic())
        self._drop(timer)
        return left

    def owner_died(self, owner: Pid) -> int:
        """Cancel every timer of ``owner``; returns how many there were."""
        timers = self._by_owner.pop(owner, None)
        if not timers:
            return 0
        for timer in list(timers.values()):
            self._drop(timer)
        return len(timers)

    def next_due(self) -> Optional[float]:
        """When the first live timer is due (monotonic seconds), or None."""
        heap = self._heap
        while heap and not heap[0][2].live:
            heapq.heappop(heap)
            self._dead_in_heap -= 1
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> List[Timer]:
        """Take the timers due at ``now``, in due order; interval timers are put back for their next tick.

        A one-shot timer is no longer pending once returned (cancelling it now
        returns None), so the caller must deliver each one exactly once.
        """
        due: List[Timer] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, timer = heapq.heappop(heap)
            if not timer.live:
                self._dead_in_heap -= 1
                continue
            due.append(timer)
            if timer.interval is None:
                self._forget(timer)
            else:
                nxt = timer.due + timer.interval
                timer.due = nxt if nxt > now else now + timer.interval  # late: skip, never burst
                heapq.heappush(heap, (timer.due, timer.n, timer))
        return due

    def _drop(self, timer: Timer) -> None:
        self._forget(timer)
        self._dead_in_heap += 1
        if self._dead_in_heap > 1024 and self._dead_in_heap * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if entry[2].live]
            heapq.heapify(self._heap)
            self._dead_in_heap = 0

    def _forget(self, timer: Timer) -> None:
        timer.live = False
        self._live.pop(timer.n, None)
        shared = self._dests.get(timer.dest)
        if shared is not None:
            shared[1] -= 1
            if not shared[1]:
                del self._dests[timer.dest]
        mine = self._by_owner.get(timer.owner)
        if mine is not None:
            mine.pop(timer.n, None)
            if not mine:
                del self._by_owner[timer.owner]


class Timers:
    """The kernel's timer part: its requests and delivering due messages (kernel thread only)."""

    def __init__(self, table: ProcTable, registry: Registry, kernel: KernelServices) -> None:
        self.table = table
        self.registry = registry
        self.kernel = kernel
        self.pending = TimerTable()

    def _ours(self, ref: TimerRef) -> bool:
        return ref.node == self.kernel.node_name and ref.creation == self.kernel.creation

    def op_send_after(self, caller: Pid, ref: TimerRef, delay: float, interval: Optional[float], dest: Any,
                      payload: bytes) -> TimerRef:
        if not self._ours(ref):
            raise BadArg(f"{ref!r} was not made on {self.kernel.node_name}")
        self.pending.add(ref.n, caller, delay, interval, dest, payload)
        return ref

    def op_cancel_timer(self, caller: Pid, ref: TimerRef) -> Optional[float]:
        if not self._ours(ref):
            return None  # not a timer of this node (Erlang answers false)
        return self.pending.cancel(ref.n)

    def op_read_timer(self, caller: Pid, ref: TimerRef) -> Optional[float]:
        if not self._ours(ref):
            return None
        return self.pending.read(ref.n)

    def owner_died(self, pid: Pid) -> None:
        """Cancel every timer ``pid`` set."""
        self.pending.owner_died(pid)

    def wait(self, timeout: Optional[float], now: float) -> Optional[float]:
        """``timeout`` shortened so that the kernel's ``select`` returns when the first timer is due."""
        return timer_wait(self.pending, timeout, now)

    def fire(self, now: float) -> None:
        """Deliver every timer due at ``now`` (called by the kernel's loop)."""
        for timer in self.pending.pop_due(now):
            self._deliver(timer.dest, timer.payload)

    def _deliver(self, dest: Any, payload: bytes) -> None:
        dist = self.kernel.dist
        if isinstance(dest, str):
            dest = self.registry.lookup(dest)
            if dest is None:
                return  # looked up at delivery, as Erlang: no name, no message, no error
        elif type(dest) is not Pid:  # (name, node)
            name, where = dest
            if where == self.kernel.node_name:
                self._deliver(name, payload)
            elif dist is not None:
                dist.route(dest, payload)
            return
        if dest.node != self.kernel.node_name:
            if dist is not None:
                dist.route(dest, payload)
            return
        rec = self.table.local_rec(dest)
        if rec is not None:
            rec.writer.put(payload, 0)


def timer_wait(table: TimerTable, timeout: Optional[float], now: float) -> Optional[float]:
    """``timeout`` shortened so that a ``select`` returns when the first timer is due."""
    due = table.next_due()
    if due is None:
        return timeout
    left = max(0.0, due - now)
    return left if timeout is None else min(timeout, left)

