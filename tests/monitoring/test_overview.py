"""``/api/dashboard``: the served models, the server's resources and the machine's."""

from __future__ import annotations

import asyncio

import pandas as pd
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored, reference_traffic, send
from tests.monitoring.test_system import FakeCpu


async def test_served_models_are_listed_before_their_first_request(
    served_registry: Registry,
) -> None:
    async with monitored(served_registry) as served:
        models = (await served.client.get("/api/dashboard")).json()["models"]
    assert [(m["name"], m["version"], m["requests"]) for m in models] == [
        ("forest", "1", 0),
        ("iris", "1", 0),
    ]
    assert all(m["drift"] is None and m["predictions"] is None for m in models)


async def test_a_model_with_traffic_is_listed_once_beside_those_without(
    served_registry: Registry, iris_frame: pd.DataFrame
) -> None:
    async with monitored(served_registry) as served:
        await send(served.client, reference_traffic(iris_frame, 30, seed=1))
        await asyncio.to_thread(served.monitor.flush)
        models = (await served.client.get("/api/dashboard")).json()["models"]
    assert [(m["name"], m["requests"]) for m in models] == [("iris", 3), ("forest", 0)]


async def test_the_cards_show_the_figures_the_chart_draws(labelled_iris: Registry) -> None:
    async with monitored(labelled_iris) as served:
        await asyncio.to_thread(served.monitor.flush)  # closes a service interval
        payload = (await served.client.get("/api/dashboard")).json()
    system, last = payload["system"], payload["series"][-1]
    assert system["workers"] == 1
    assert system["cpu_percent"] == last["cpu_percent"]
    assert system["memory_bytes"] == last["memory_bytes"]
    assert system["process_memory_bytes"] > 10_000_000
    assert 0 <= system["machine_cpu_percent"] <= 100


async def test_the_dashboard_and_metrics_each_measure_the_cpu_from_their_own_reading(
    labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tester's sequence: the dashboard polled, /metrics scraped right after. Sharing
    # psutil's "since the last call", the scrape measured milliseconds: 0 here, 0 or 1 live.
    cpu = FakeCpu(busy=1, idle=3)  # a quarter busy since boot, and from now on
    monkeypatch.setattr(psutil, "cpu_times", cpu)
    async with monitored(labelled_iris) as served:
        for _ in range(3):
            cpu.advance(busy=1, idle=3)
            dashboard = (await served.client.get("/api/dashboard")).json()
            metrics = (await served.client.get("/metrics")).text
            ratio = next(
                sample.value
                for family in text_string_to_metric_families(metrics)
                for sample in family.samples
                if sample.name == "modelpilot_system_cpu_utilization_ratio"
            )
            assert dashboard["system"]["machine_cpu_percent"] == pytest.approx(25)
            assert ratio == pytest.approx(0.25)


async def test_an_interval_without_requests_has_no_latency(
    labelled_iris: Registry, iris_frame: pd.DataFrame
) -> None:
    # Idle is no latency (a gap in the chart, "-" on the card), not a latency of 0 ms.
    async with monitored(labelled_iris) as served:
        await asyncio.to_thread(served.monitor.flush)  # an interval without requests
        await send(served.client, reference_traffic(iris_frame, 30, seed=1))
        await asyncio.to_thread(served.monitor.flush)
        series = (await served.client.get("/api/dashboard")).json()["series"]
    idle = [p for p in series if p["rps"] == 0]
    busy = [p for p in series if p["rps"] > 0]
    assert idle and busy
    for point in idle:
        assert point["errors_per_s"] == 0 and point["server_errors_per_s"] == 0
        assert (point["p50_ms"], point["p95_ms"], point["p99_ms"]) == (None, None, None)
    for point in busy:
        assert 0 < point["p50_ms"] <= point["p95_ms"] <= point["p99_ms"]
