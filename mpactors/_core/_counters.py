"""Message counters of the calling OS process: what ``top`` and the observer turn into rates.

One :data:`COUNTERS` per OS process (an actor, or a node's main process),
plain ints bumped on paths that already run for every message:

=================  =============================================  ===================
counter            bumped by                                      where
=================  =============================================  ===================
``messages_in``    a message decoded into this process's mailbox  ``Mailbox._deliver``
``bytes_in``       its pickled size                               ``Mailbox._deliver``
``handled``        a message taken out by ``receive``             ``Mailbox.receive``
``messages_out``   a message this process sent (``send``)         ``primitives.send``
``bytes_out``      its pickled size                               ``primitives.send``
=================  =============================================  ===================

They are read on request, by the control thread that answers
``process_info`` (actors) or by the kernel (the node's main process), never
pushed. A forked child starts from zero.

``MPACTORS_COUNTERS=0`` turns the increments off; it exists only so the
benchmark (``scripts/bench-counters``) can measure what they cost.
"""
from __future__ import annotations

import os
from typing import Dict

__all__ = ["COUNTERS", "ENABLED", "Counters", "snapshot"]


class Counters:
    """Totals since this process started (``__slots__``: a counter bump is one attribute store)."""

    __slots__ = ("messages_in", "bytes_in", "handled", "messages_out", "bytes_out")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to zero (a forked child)."""
        self.messages_in = 0
        self.bytes_in = 0
        self.handled = 0
        self.messages_out = 0
        self.bytes_out = 0


#: This process's counters (changed in place, never rebound: modules import the object).
COUNTERS = Counters()

#: False only under ``MPACTORS_COUNTERS=0`` (the benchmark's "off" runs).
ENABLED: bool = os.environ.get("MPACTORS_COUNTERS", "1") != "0"


def snapshot() -> Dict[str, int]:
    """The counters as a dict (keys as in the module docstring)."""
    c = COUNTERS
    return {
        "messages_in": c.messages_in,
        "bytes_in": c.bytes_in,
        "messages_handled": c.handled,
        "messages_out": c.messages_out,
        "bytes_out": c.bytes_out,
    }


os.register_at_fork(after_in_child=COUNTERS.reset)
