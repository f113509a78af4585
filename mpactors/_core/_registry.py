"""Registered names of a node's local processes (Erlang's ``register/2``).

:class:`Registry` is the one owner of the name table (kernel thread); the
node's main thread reads ``names`` for ``whereis`` without a hop.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from ..errors import BadArg
from ..pid import Pid
from ._tables import ProcRec, ProcTable
from ._util import check_pid

__all__ = ["Registry"]


class Registry:
    """Names -> local pids, kept in step with each record's ``name``."""

    def __init__(self, table: ProcTable) -> None:
        self.table = table
        self.names: Dict[str, Pid] = {}

    def lookup(self, name: str) -> Optional[Pid]:
        """Any thread: the pid registered as ``name``, or None."""
        return self.names.get(name)

    def forget(self, rec: ProcRec) -> None:
        """``rec`` ended: its name is free again."""
        if rec.name is not None:
            self.names.pop(rec.name, None)
            rec.name = None

    def op_register(self, caller: Pid, name: str, pid: Optional[Pid] = None) -> bool:
        pid = caller if pid is None else pid
        if not isinstance(name, str) or not name or name == "undefined":
            raise BadArg(f"a registered name must be a non-empty string, not {name!r}")
        check_pid(pid)
        if name in self.names:
            raise BadArg(f"name {name!r} is already registered to {self.names[name]}")
        rec = self.table.local_rec(pid)
        if rec is None:
            raise BadArg(f"cannot register {name!r}: {pid} is not a live local process")
        if rec.name is not None:
            raise BadArg(f"{pid} is already registered as {rec.name!r}")
        self.names[name] = pid
        rec.name = name
        _retitle(rec)
        return True

    def op_unregister(self, caller: Pid, name: str) -> bool:
        pid = self.names.pop(name, None)
        if pid is None:
            raise BadArg(f"name {name!r} is not registered")
        rec = self.table.local_rec(pid)
        if rec is not None:
            rec.name = None
            _retitle(rec)
        return True

    def op_whereis(self, caller: Pid, name: str) -> Optional[Pid]:
        return self.names.get(name)

    def op_registered(self, caller: Pid) -> List[str]:
        return sorted(self.names)


def _retitle(rec: ProcRec) -> None:
    """Show the registered name in the actor's process title."""
    if rec.ctl is None:
        return
    name = f" {rec.name}" if rec.name else ""
    try:
        rec.ctl.send(("title", f"mpactors actor {rec.pid}{name} ({rec.fn_name})"))
    except OSError:
        pass
