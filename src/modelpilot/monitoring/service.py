"""Service metrics in Prometheus form: requests, latency, queueing, batches, errors, uptime."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.observers import InferenceObserver

# Sub-millisecond to tens of seconds: a cache hit, an ONNX forest, a slow pipeline.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServiceMetrics(InferenceObserver):
    """The engine's observer that keeps Prometheus metrics, on a registry of its own.

    Nothing is registered globally: whoever builds the server makes one of these (tests make
    fresh ones) and exposes ``registry`` on ``/metrics``.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        process_registry: CollectorRegistry | None = None,
    ) -> None:
        """``process_registry`` takes what only makes sense per process (uptime); with
        ``serve --workers`` it is the worker's own registry, exported with a worker label,
        while ``registry`` is backed by prometheus_client's multiprocess files."""
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "modelpilot_requests",
            "Inference requests answered, by outcome: status is ok, or the HTTP status of the "
            "error (499: the client gave up first).",
            ["model", "version", "transport", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "modelpilot_request_duration_seconds",
            "Time from a request reaching the engine to its answer.",
            ["model", "transport"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue = Histogram(
            "modelpilot_queue_duration_seconds",
            "Time a request waited for its batch to start.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "modelpilot_batch_size_rows",
            "Rows per model call.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "modelpilot_errors",
            "Failed requests by kind of error.",
            ["model", "kind"],
            registry=r,
        )
        self.timeouts = Counter(
            "modelpilot_timeouts",
            "Requests that ran past their deadline.",
            ["model"],
            registry=r,
        )
        started = time.time()
        self.start_time = Gauge(
            "modelpilot_start_time_seconds",
            "When the server started serving (Unix time; the first worker's start).",
            registry=r,
            multiprocess_mode="min",
        )
        self.start_time.set(started)
        self.uptime = Gauge(
            "modelpilot_uptime_seconds",
            "Seconds since this process started serving.",
            registry=process_registry or r,
        )
        self.uptime.set_function(lambda: time.time() - started)
        # labels() costs a dict lookup and a lock; the hot path reuses the children.
        self._children: dict[tuple[str, ...], tuple[Counter, Histogram]] = {}

    def request_finished(
        self,
        model: str,
        version: str,
        transport: str,
        status: str,
        seconds: float,
        error: str | None,
    ) -> None:
        key = (model, version, transport, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(model, version, transport, status),
                self.latency.labels(model, transport),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if error is not None:
            self.errors.labels(model, error).inc()
            if error == "InferenceTimeout":
                self.timeouts.labels(model).inc()

    def batch_finished(
        self, model: str, version: str, rows: int, queue_seconds: Sequence[float]
    ) -> None:
        self.batch_rows.labels(model).observe(rows)
        queue = self.queue.labels(model)
        for seconds in queue_seconds:
            queue.observe(seconds)


class EngineCollector(Collector):
    """State the engine holds, read at scrape time: loaded versions, pool memory, cache."""

    def __init__(self, engine: InferenceEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        inflight = GaugeMetricFamily(
            "modelpilot_inflight_requests",
            "Requests being answered right now.",
            labels=["model"],
        )
        counts = self.engine.inflight
        for name in sorted({*self.engine.served_models, *counts}):
            inflight.add_metric([name], counts.get(name, 0))
        yield inflight
        loaded = GaugeMetricFamily(
            "modelpilot_model_loaded",
            "1 for each model version in memory.",
            labels=["model", "version"],
        )
        for model in self.engine.pool.loaded():
            loaded.add_metric([model.version.model, str(model.version.version)], 1)
        yield loaded
        yield GaugeMetricFamily(
            "modelpilot_model_pool_memory_bytes",
            "Estimated memory of the loaded versions.",
            value=self.engine.pool.memory_bytes,
        )
        cache = self.engine.result_cache
        if cache is not None:
            yield CounterMetricFamily(
                "modelpilot_result_cache_hits",
                "Answers served from the result cache.",
                value=cache.hits,
            )
            yield CounterMetricFamily(
                "modelpilot_result_cache_misses",
                "Lookups the result cache could not answer.",
                value=cache.misses,
            )
            yield CounterMetricFamily(
                "modelpilot_result_cache_errors",
                "Result cache lookups or stores that failed.",
                value=cache.errors,
            )
