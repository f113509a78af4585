"""The cluster as ``mpactors top`` and ``mpactors observer`` see it: samples and rates.

A :class:`Sampler` runs in a process that is a node (the CLI's hidden node).
Each :meth:`Sampler.sample` finds the nodes to show (NODE and its peers, or
every node this host's port mapper knows and their peers), fetches each
node's :func:`mpactors.introspect.snapshot` with one ``rpc.call``, and turns
the message counters into rates against the previous sample. The result is
plain JSON-able data: it *is* the ``--json`` output and what the observer's
page receives.
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

from .. import introspect
from ..errors import EpmdError, MpactorsError
from ..pid import Pid
from ._common import CLI_NODE_PREFIX, jsonable, local_names, short_host

__all__ = ["ACTOR_FIELDS", "NODE_FIELDS", "Sampler", "SORT_KEYS"]

#: Keys of each node in a sample (``--json``), in the order the page shows them.
NODE_FIELDS = (
    "node", "os_pid", "actors", "cpu_percent", "cpu_total", "memory", "memory_total",
    "in_per_s", "out_per_s", "handled_per_s", "peers", "error",
)
#: Keys of each actor in a sample.
ACTOR_FIELDS = (
    "pid", "node", "os_pid", "name", "callable", "status", "message_queue_len", "messages_handled",
    "messages_in", "messages_out", "bytes_in", "bytes_out", "in_per_s", "out_per_s", "handled_per_s",
    "memory", "cpu_percent", "behaviour", "links", "monitors", "children",
)
#: ``--sort`` keys -> actor field (numbers sort largest first).
SORT_KEYS = {
    "pid": "pid", "name": "name", "callable": "callable", "status": "status", "msgq": "message_queue_len",
    "handled": "messages_handled", "in": "in_per_s", "out": "out_per_s", "memory": "memory", "cpu": "cpu_percent",
}


class Sampler:
    """Samples of one cluster view (see the module docstring); keeps the last one for rates."""

    def __init__(self, node: Optional[str] = None, timeout: float = 10.0) -> None:
        self.node = node
        self.timeout = timeout
        self._last: Dict[str, Dict[str, Any]] = {}  # node -> its previous snapshot
        #: Text -> Pid of every actor of the last sample (a pid's text lacks its node's creation).
        self.pids: Dict[str, Pid] = {}

    def seeds(self) -> List[str]:
        """The nodes to start from: NODE, or every node registered on this host."""
        if self.node is not None:
            return [self.node]
        try:
            return [f"{name}@{short_host()}" for name in local_names()]
        except EpmdError:
            return []

    def sample(self) -> Dict[str, Any]:
        """One sample: ``{"time", "nodes": [...], "actors": [...]}`` (see NODE_FIELDS, ACTOR_FIELDS)."""
        queue, seen = self.seeds(), set()
        nodes: List[Dict[str, Any]] = []
        actors: List[Dict[str, Any]] = []
        snaps: Dict[str, Dict[str, Any]] = {}
        while queue:
            name = queue.pop(0)
            if name in seen or name.startswith(CLI_NODE_PREFIX):
                continue
            seen.add(name)
            try:
                snap = introspect.node_snapshot(name, timeout=self.timeout)
            except MpactorsError as exc:
                nodes.append({**dict.fromkeys(NODE_FIELDS), "node": name, "peers": [], "error": str(exc)})
                continue
            snaps[name] = snap
            queue.extend(p for p in snap["nodes"] if p not in seen)
            node_row, actor_rows = _rows(snap, self._last.get(name))
            nodes.append(node_row)
            actors.extend(actor_rows)
        self._last = snaps
        self.pids = {str(p["pid"]): p["pid"] for snap in snaps.values() for p in snap["actors"]}
        nodes.sort(key=lambda n: n["node"])
        actors.sort(key=lambda a: (a["node"], _pid_id(a["pid"])))
        return {"time": time.time(), "nodes": nodes, "actors": actors}


def _pid_id(pid: str) -> int:
    try:
        return int(pid.rsplit(".", 2)[-2])
    except (ValueError, IndexError):
        return 0


def _rate(now: Dict[str, Any], before: Optional[Dict[str, Any]], key: str, dt: float) -> Optional[float]:
    if before is None or dt <= 0:
        return None
    return round(max(0, int(now.get(key) or 0) - int(before.get(key) or 0)) / dt, 1)


def _rows(snap: Dict[str, Any], last: Optional[Dict[str, Any]]) -> Any:
    dt = snap["time"] - last["time"] if last is not None else 0.0
    before = {} if last is None else {p["pid"]: p for p in [last["main"]] + last["actors"]}
    procs = [snap["main"]] + snap["actors"]
    rates = {"in_per_s": "messages_in", "out_per_s": "messages_out", "handled_per_s": "messages_handled"}
    node_rates: Dict[str, Optional[float]] = {}
    for field, key in rates.items():
        if last is None:
            node_rates[field] = None
            continue
        total = 0.0
        for p in procs:  # per process: one that ended takes its counts away, a new one starts at zero
            total += max(0, int(p.get(key) or 0) - int((before.get(p["pid"]) or {}).get(key) or 0))
        node_rates[field] = round(total / dt, 1) if dt > 0 else None
    cpus = [p.get("cpu_percent") for p in procs if p.get("cpu_percent") is not None]
    node_row = {
        "node": snap["node"], "os_pid": snap["os_pid"], "actors": len(snap["actors"]),
        "cpu_percent": snap["cpu_percent"], "cpu_total": round(sum(cpus), 1),
        "memory": snap["memory"], "memory_total": snap["memory_total"],
        **node_rates, "peers": sorted(snap["nodes"]), "error": None,
    }
    actor_rows = []
    for p in snap["actors"]:
        prev = before.get(p["pid"], {}) if last is not None else None  # {}: new since the last sample
        row = {
            "pid": str(p["pid"]), "node": snap["node"], "os_pid": p.get("os_pid"), "name": p.get("registered_name"),
            "callable": p.get("current"), "status": p.get("status"),
            "message_queue_len": p.get("message_queue_len"), "messages_handled": p.get("messages_handled"),
            "messages_in": p.get("messages_in"), "messages_out": p.get("messages_out"),
            "bytes_in": p.get("bytes_in"), "bytes_out": p.get("bytes_out"),
            "in_per_s": _rate(p, prev, "messages_in", dt),
            "out_per_s": _rate(p, prev, "messages_out", dt),
            "handled_per_s": _rate(p, prev, "messages_handled", dt),
            "memory": p.get("memory"), "cpu_percent": p.get("cpu_percent"), "behaviour": p.get("behaviour"),
            "links": [str(x) for x in p.get("links") or []], "monitors": [str(x) for x in p.get("monitors") or []],
            "children": jsonable(p.get("children")),
        }
        actor_rows.append(row)
    return node_row, actor_rows
