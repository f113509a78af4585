"""``/metrics`` of ``mpactors observer``: a sample in the Prometheus text exposition format (0.0.4).

A small writer rather than ``prometheus_client``: the figures already exist
(a :class:`~mpactors.cli._sample.Sampler` sample, gathered from other
processes), so there is no registry of in-process metrics to keep; what is
left is the format - ``# HELP``/``# TYPE`` lines and ``name{label="value"}
number`` samples with escaped label values - which the tests check with
``prometheus_client``'s own parser.

Counters (``_total``) are sums since each process started; a process that
ends takes its share away, which Prometheus reads as a counter reset.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

__all__ = ["NODE_METRICS", "PROCESS_METRICS", "metrics_text"]

#: (metric, type, help, node field)
NODE_METRICS = (
    ("mpactors_node_up", "gauge", "1 if the node answered the last sample, else 0", None),
    ("mpactors_node_actors", "gauge", "Actors running on the node", "actors"),
    ("mpactors_node_cpu_percent", "gauge", "CPU percent of the node process", "cpu_percent"),
    ("mpactors_node_cpu_total_percent", "gauge", "CPU percent of the node process and its actors", "cpu_total"),
    ("mpactors_node_memory_bytes", "gauge", "RSS of the node process", "memory"),
    ("mpactors_node_memory_total_bytes", "gauge", "RSS of the node process and its actors", "memory_total"),
    ("mpactors_node_messages_in_per_second", "gauge", "Messages into the node's mailboxes per second", "in_per_s"),
    ("mpactors_node_messages_out_per_second", "gauge", "Messages sent by the node's processes per second",
     "out_per_s"),
)
#: (metric, type, help, actor field)
PROCESS_METRICS = (
    ("mpactors_process_messages_in_total", "counter", "Messages that arrived in the mailbox", "messages_in"),
    ("mpactors_process_messages_out_total", "counter", "Messages the process sent", "messages_out"),
    ("mpactors_process_messages_handled_total", "counter", "Messages taken out by receive", "messages_handled"),
    ("mpactors_process_bytes_in_total", "counter", "Pickled bytes that arrived in the mailbox", "bytes_in"),
    ("mpactors_process_bytes_out_total", "counter", "Pickled bytes the process sent", "bytes_out"),
    ("mpactors_process_message_queue_len", "gauge", "Messages waiting in the mailbox", "message_queue_len"),
    ("mpactors_process_memory_bytes", "gauge", "RSS of the actor's OS process", "memory"),
    ("mpactors_process_cpu_percent", "gauge", "CPU percent of the actor's OS process", "cpu_percent"),
)


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[Tuple[str, Any]]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def metrics_text(sample: Optional[Dict[str, Any]]) -> str:
    """The Prometheus text for ``sample`` (None: before the first sample, only the metadata)."""
    nodes: List[Dict[str, Any]] = sample["nodes"] if sample else []
    actors: List[Dict[str, Any]] = sample["actors"] if sample else []
    out: List[str] = []
    for metric, kind, text, field in NODE_METRICS:
        out += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}"]
        for n in nodes:
            value = (n["error"] is None) if field is None else n.get(field)
            if value is not None:
                out.append(f"{metric}{_labels([('node', n['node'])])} {_number(value)}")
    for metric, kind, text, field in PROCESS_METRICS:
        out += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}"]
        for a in actors:
            value = a.get(field)
            if value is not None:
                labels = [("node", a["node"]), ("pid", a["pid"]), ("name", a["name"] or ""),
                          ("callable", a["callable"] or "")]
                out.append(f"{metric}{_labels(labels)} {_number(value)}")
    return "\n".join(out) + "\n"
