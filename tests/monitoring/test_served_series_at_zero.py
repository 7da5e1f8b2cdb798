"""``serve``'s /metrics holds each served version's request series at 0 from its first
scrape, alone and with ``--workers`` (where the workers' counters are summed)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored
from tests.monitoring.test_series_at_zero import FLAKY, TRANSPORTS
from tests.processes import start, stop

STATUSES = ("ok", "500", "503", "504")


def requests_by_status(text: str, model: str) -> dict[tuple[str, str], float]:
    """``modelpilot_requests_total`` of ``model`` in a scrape, by (transport, status)."""
    return {
        (s.labels["transport"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "modelpilot_requests_total" and s.labels["model"] == model
    }


@pytest.fixture
def flaky(registry: Registry, tmp_path: Path) -> Registry:
    path = tmp_path / "flaky.py"
    path.write_text(FLAKY)
    register_model(registry, "flaky", path, flavor="python")
    return registry


async def test_the_first_scrape_of_a_server_holds_its_versions_at_zero(flaky: Registry) -> None:
    async with monitored(flaky) as served:
        first = (await served.client.get("/metrics")).text
        answer = await served.client.post("/predict/flaky", json={"data": [[-1.0, 2.0]]})
        assert answer.status_code == 500
        second = (await served.client.get("/metrics")).text
    assert requests_by_status(first, "flaky") == {(t, s): 0 for t in TRANSPORTS for s in STATUSES}
    assert requests_by_status(second, "flaky")[("rest", "500")] == 1
    assert "_created" not in first + second


@pytest.mark.slow
def test_with_workers_the_first_scrape_holds_the_versions_at_zero(flaky: Registry) -> None:
    server = start(flaky, "--workers", "2")
    try:
        first = httpx.get(f"{server.url}/metrics", timeout=10).text
        for _ in range(20):  # a new connection each, so that both workers answer some
            with httpx.Client(timeout=10) as client:
                reply = client.post(f"{server.url}/predict/flaky", json={"data": [[-1.0, 2.0]]})
            assert reply.status_code == 500
        deadline, failed = time.monotonic() + 20, 0.0
        while failed < 20 and time.monotonic() < deadline:  # each worker's counts, flushed
            text = httpx.get(f"{server.url}/metrics", timeout=10).text
            failed = requests_by_status(text, "flaky").get(("rest", "500"), 0.0)
            time.sleep(0.2)
    finally:
        assert stop(server) == 0
    assert requests_by_status(first, "flaky") == {(t, s): 0 for t in TRANSPORTS for s in STATUSES}
    assert failed == 20
    assert "_created" not in first + text
