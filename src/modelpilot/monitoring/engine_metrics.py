"""The engine's state as Prometheus metrics, read at scrape time: requests in flight, the
versions in memory and the pool's estimate of their size, stalled rollouts, the result
cache's errors. (What requests did, counted as they are answered, is ``service``'s.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from modelpilot.serving.engine import InferenceEngine


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
        stalled = GaugeMetricFamily(
            "modelpilot_rollout_stalled",
            "1 for a version a model's reference moved to that fails to load (its requests "
            "stay on the version before).",
            labels=["model", "version"],
        )
        # A copy: a scrape collects on a thread of its own while the loop may change it.
        for name, (version, _) in list(self.engine.served.stalled.items()):
            stalled.add_metric([name, str(version.version)], 1)
        yield stalled
        yield GaugeMetricFamily(
            "modelpilot_model_pool_memory_bytes",
            "Estimated memory of the loaded versions: their models' sizes as their runtimes "
            "tell them (what the pool's budget counts), not the process's memory.",
            value=self.engine.pool.memory_bytes,
        )
        cache = self.engine.result_cache
        if cache is not None:
            yield CounterMetricFamily(
                "modelpilot_result_cache_errors",
                "Result cache lookups or stores that failed, and entries that did not read "
                "back (each a miss, and deleted).",
                value=cache.errors,
            )
