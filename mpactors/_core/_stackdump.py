"""Stack dumps on a signal, for diagnosing hangs (``MPACTORS_STACK_DUMP_SIGNAL``).

When the variable names a signal (``USR1``), nodes and actors register
:func:`faulthandler.register` for it at start: the process then writes the
Python stack of every thread to its stderr when it gets that signal, even
while its main thread is stuck in a blocking call. The pytest plugin
:mod:`mpactors.testing` sets the variable and signals every node and actor a
timed-out test started.
"""
from __future__ import annotations

import faulthandler
import logging
import signal
import sys

from .. import config

__all__ = ["install"]

log = logging.getLogger(__name__)


def install() -> None:
    """Register the stack dump for this process if ``MPACTORS_STACK_DUMP_SIGNAL`` asks for one."""
    name = config.stack_dump_signal()
    if not name:
        return
    signame = name.upper() if name.upper().startswith("SIG") else "SIG" + name.upper()
    signum = getattr(signal, signame, None)
    if not isinstance(signum, int) or signum in (signal.SIGKILL, signal.SIGSTOP):
        log.warning("MPACTORS_STACK_DUMP_SIGNAL=%r is not a signal this process can catch", name)
        return
    try:
        faulthandler.register(signum, file=sys.stderr, all_threads=True, chain=False)
    except (ValueError, RuntimeError, OSError) as exc:  # no usable stderr (a daemon)
        log.warning("cannot register the stack dump on %s: %s", signame, exc)
