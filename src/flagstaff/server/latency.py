"""Request latency by route: a Prometheus histogram that costs one addition per observation.

``flagstaff_http_request_duration_seconds`` is observed once per HTTP request, evaluations
included, which the fast path answers in tens of microseconds; ``prometheus_client``'s
``Histogram`` took about a microsecond per observation there (a lock per counter, a loop over
the buckets).  Every observation happens on the event loop's thread (the latency middleware and
the evaluation fast path are both ASGI layers), so a series here is plain counters with no
lock: one ``bisect`` and two additions.  :meth:`LatencyHistogram.collect` reads them from
whichever thread serves ``/metrics``; a scrape may so see a count and a sum one observation
apart, as Prometheus's own clients allow.  The exposition is the standard one: ``_bucket``
(``le`` as Prometheus spells it), ``_count``, ``_sum`` and ``_created``.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.samples import Sample

# prometheus_client's default buckets, so dashboards built on them keep working.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_LE = [*(repr(bound) for bound in BUCKETS), "+Inf"]  # as Prometheus spells them: 0.005, 1.0
LABELS = ("method", "route", "status")


class LatencySeries:
    """One label set's counts (one per bucket, the last for +Inf) and sum."""

    __slots__ = ("counts", "created", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        """Count one request (on the event loop's thread: see the module docstring)."""
        self.counts[bisect_left(BUCKETS, seconds)] += 1  # le is inclusive, as bisect_left
        self.sum += seconds


class LatencyHistogram:
    """A collector of :class:`LatencySeries` by (method, route, status)."""

    def __init__(self, name: str, documentation: str, *, registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self._series: dict[tuple[str, str, str], LatencySeries] = {}
        registry.register(self)

    def labels(self, *, method: str, route: str, status: str) -> LatencySeries:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series.setdefault(key, LatencySeries())
        return series

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=LABELS)
        for labels, series in list(self._series.items()):
            counts, total = list(series.counts), series.sum
            cumulative, running = [], 0
            for le, count in zip(_LE, counts, strict=True):
                running += count
                cumulative.append((le, float(running)))
            family.add_metric(list(labels), cumulative, total)
            family.samples.append(Sample(
                self.name + "_created", dict(zip(LABELS, labels, strict=True)), series.created))
        yield family
