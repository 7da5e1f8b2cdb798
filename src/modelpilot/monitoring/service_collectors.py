"""The collectors the service metrics register besides their metrics: a flush of the counts
gathered on the request path before a read, the metrics without their ``_created`` series,
and the process's uptime read at scrape time."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram, Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from modelpilot.monitoring.service import ServiceMetrics


class Flush(Collector):
    """Collects nothing: flushes the service metrics' pending counts before they are read."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        self.metrics.flush_on_loop()  # a scrape renders on a thread of its own
        return iter(())


class Exported(Collector):
    """Service metrics as a registry shows them, without their ``_created`` series.

    prometheus_client gives each counter and histogram series a ``_created`` gauge, which
    the text format exports as a series of its own: nearly twice the series of the busiest
    families, which no rule or panel reads, and which the multiprocess collector of
    ``serve --workers`` leaves out, so that one server's exposition differed by its mode.
    Left out here, rather than for the whole process (``disable_created_metrics``), so that
    the metrics of an application that embeds ModelPilot keep theirs.
    """

    def __init__(self, metrics: Sequence[Counter | Gauge | Histogram]) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Metric]:
        for metric in self.metrics:
            yield from metric.describe()

    def collect(self) -> Iterator[Metric]:
        for metric in self.metrics:
            for family in metric.collect():
                created = f"{family.name}_created"
                family.samples = [s for s in family.samples if s.name != created]
                yield family


class Uptime(Collector):
    """``modelpilot_uptime_seconds``: this process's, at scrape time."""

    def __init__(self, started: float) -> None:
        self.started = started

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily(
            "modelpilot_uptime_seconds",
            "Seconds since this process started serving.",
            value=time.time() - self.started,
        )
