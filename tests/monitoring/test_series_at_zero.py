"""A served version's request series exist at 0 before its first request, and the service
metrics export no ``_created`` series: what Prometheus reads of a server's first requests."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelpilot.errors import ModelFailure
from modelpilot.monitoring.service import ServiceMetrics
from modelpilot.protocol.rows import request_from_rows
from modelpilot.registry.store import Registry
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings

FLAKY = (
    "import numpy as np\n"
    "class Model:\n"
    "    def predict(self, x):\n"
    "        x = np.asarray(x, dtype=float)\n"
    "        if (x[:, 0] < 0).any():\n"
    "            raise RuntimeError('a negative first feature')\n"
    "        return x[:, 0]\n"
)
"""A `.py` model that fails (500) on a negative first feature."""

TRANSPORTS = ("rest", "grpc")
"""The transports of ``serve``, known before any request comes."""

Series = tuple[str, tuple[tuple[str, str], ...]]


def scrape(registry: CollectorRegistry) -> dict[Series, float]:
    """Every sample of ``registry`` as Prometheus scrapes it (the text format, parsed)."""
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def increase(before: dict[Series, float], after: dict[Series, float], name: str) -> float:
    """What ``increase()`` sees between two scrapes: the rise of the series in both (a
    series' first sample is its start, not a rise)."""
    return sum(after[s] - before[s] for s in after if s[0] == name and s in before)


async def test_a_versions_first_failures_rise_from_zero_between_two_scrapes(
    registry: Registry, tmp_path: Path
) -> None:
    """t3's case: 30 failures of a model, all before Prometheus scraped its series, were
    counted in series that the same scrape showed first; ``rate()`` and ``increase()`` saw
    none of them and the error-rate rule stayed silent while the server's own alert fired."""
    path = tmp_path / "flaky.py"
    path.write_text(FLAKY)
    register_model(registry, "flaky", path, flavor="python")
    engine = InferenceEngine(registry, make_settings(registry))
    service = ServiceMetrics()
    service.watch(engine)
    await engine.start()
    try:
        first = scrape(service.registry)  # loaded and ready, no request yet
        for _ in range(3):
            with pytest.raises(ModelFailure):
                await engine.infer("flaky", request_from_rows([-1.0, 2.0]), transport="rest")
        await engine.infer("flaky", request_from_rows([1.0, 2.0]), transport="grpc")
        second = scrape(service.registry)
    finally:
        await engine.stop()
    version = {"model": "flaky", "version": "1"}
    for transport, status in itertools.product(TRANSPORTS, ("ok", "500", "503", "504")):
        labels = {**version, "transport": transport, "status": status}
        assert first[("modelpilot_requests_total", tuple(sorted(labels.items())))] == 0
    for transport in TRANSPORTS:
        labels = {**version, "transport": transport}
        count = ("modelpilot_request_duration_seconds_count", tuple(sorted(labels.items())))
        assert first[count] == 0
    assert first[("modelpilot_timeouts_total", tuple(sorted(version.items())))] == 0
    assert increase(first, second, "modelpilot_requests_total") == 4
    failed = {s: v for s, v in second.items() if ("status", "500") in s[1]}
    assert increase(first, failed, "modelpilot_requests_total") == 3
    assert increase(first, second, "modelpilot_request_duration_seconds_count") == 4


async def test_no_version_is_at_zero_before_it_is_loaded(served_registry: Registry) -> None:
    """Only what the engine holds: a registered version never served makes no series."""
    engine = InferenceEngine(served_registry, make_settings(served_registry))
    service = ServiceMetrics()
    service.watch(engine)
    assert not [s for s in scrape(service.registry) if s[0] == "modelpilot_requests_total"]
    await engine.start()
    try:
        served = {
            dict(labels)["model"]
            for name, labels in scrape(service.registry)
            if name == "modelpilot_requests_total"
        }
    finally:
        await engine.stop()
    assert served == {"iris", "forest"}


def test_the_service_metrics_export_no_created_series() -> None:
    """The single-process server exported a ``_created`` gauge beside every counter and
    histogram series (prometheus_client's default: 30 series after a little traffic), the
    ``--workers`` server none; Prometheus stores each as a series of its own."""
    service = ServiceMetrics()
    service.request_finished("m", "1", "rest", "ok", 0.01, None)
    service.request_finished("m", "1", "rest", "500", 0.01, "ModelFailure")
    service.queue_left("m", "1", [0.001])
    service.batch_finished("m", "1", 1, 1, 0.002)
    service.cache_looked_up("m", "1", True, 0.001)
    text = generate_latest(service.registry).decode()
    assert "modelpilot_requests_total{" in text
    assert "modelpilot_request_duration_seconds_bucket{" in text
    assert "_created" not in text
    assert not [
        f for f in service.families() if any(s.name.endswith("_created") for s in f.samples)
    ]
