"""``/metrics`` of ``mpactors observer``: the last sample, exposed through ``prometheus_client``.

The figures already exist (a :class:`~mpactors.cli._sample.Sampler` sample,
gathered from other processes), so nothing is counted in this process: a
custom collector (:class:`SampleCollector`) turns the observer's current
sample into gauge and counter families on each scrape, in a private
:class:`~prometheus_client.CollectorRegistry` (not the library's global one,
so nothing of this process's own is mixed in). ``prometheus_client``, kept by
the Prometheus project, writes the exposition format, escapes label values,
and answers a scraper that asks for OpenMetrics (``Accept:
application/openmetrics-text``); any other request gets
:func:`~prometheus_client.generate_latest` as ``CONTENT_TYPE_LATEST``.

``prometheus_client`` is the optional ``observer`` extra: without it
:data:`AVAILABLE` is false, ``/metrics`` answers 501 with :data:`MISSING`,
and the rest of the observer works.

Counters (``_total``) are sums since each process started; a process that
ends takes its share away, which Prometheus reads as a counter reset.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.registry import Collector
except ImportError:  # the `observer` extra is not installed: /metrics answers 501
    AVAILABLE = False
    Collector = object  # type: ignore[assignment,misc]
else:
    AVAILABLE = True

__all__ = [
    "AVAILABLE",
    "MISSING",
    "NODE_METRICS",
    "PROCESS_METRICS",
    "MetricsPage",
    "SampleCollector",
    "metrics_text",
]

#: The one line ``/metrics`` answers (501), and ``mpactors observer`` prints, without ``prometheus_client``.
MISSING = "/metrics is off: prometheus_client is not installed (pip install 'mpactors[observer]')"

#: (metric, type, help, node field); None: 1 if the node answered the last sample, else 0
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
_NODE_LABELS = ["node"]
_PROCESS_LABELS = ["node", "pid", "name", "callable"]

Sample = Optional[Dict[str, Any]]


class SampleCollector(Collector):
    """A ``prometheus_client`` collector of the sample ``get_sample()`` returns at each scrape.

    Before the first sample (None) every family is there with no samples.
    """

    def __init__(self, get_sample: Callable[[], Sample]) -> None:
        self._get_sample = get_sample

    def collect(self) -> Iterator[Metric]:
        sample = self._get_sample()
        nodes: List[Dict[str, Any]] = sample["nodes"] if sample else []
        actors: List[Dict[str, Any]] = sample["actors"] if sample else []
        for metric, kind, text, field in NODE_METRICS:
            family = _family(metric, kind, text, _NODE_LABELS)
            for n in nodes:
                value = (n["error"] is None) if field is None else n.get(field)
                if value is not None:
                    family.add_metric([str(n["node"])], float(value))
            yield family
        for metric, kind, text, field in PROCESS_METRICS:
            family = _family(metric, kind, text, _PROCESS_LABELS)
            for a in actors:
                value = a.get(field)
                if value is not None:
                    family.add_metric([str(a["node"]), str(a["pid"]), a["name"] or "", a["callable"] or ""],
                                      float(value))
            yield family


def _family(metric: str, kind: str, text: str, labels: List[str]) -> Any:
    if kind == "counter":
        return CounterMetricFamily(metric, text, labels=labels)  # it keeps the `_total` on the samples
    return GaugeMetricFamily(metric, text, labels=labels)


class MetricsPage:
    """``/metrics``: a private registry with one :class:`SampleCollector` (needs :data:`AVAILABLE`)."""

    def __init__(self, get_sample: Callable[[], Sample]) -> None:
        if not AVAILABLE:
            raise RuntimeError(MISSING)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SampleCollector(get_sample))

    def render(self, accept: str = "") -> Tuple[bytes, str]:
        """The page's body and content type for a request's ``Accept`` header."""
        if "application/openmetrics-text" in accept:
            encoder, content_type = choose_encoder(accept)
            return encoder(self.registry), content_type
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def metrics_text(sample: Sample) -> str:
    """The Prometheus text of one ``sample`` (None: before the first sample, only the metadata)."""
    return MetricsPage(lambda: sample).render()[0].decode()
