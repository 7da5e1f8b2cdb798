"""A scrape does not wait out a monitoring round that is held up.

With ``--workers``, a scrape reports again when a sibling published since this worker's last
round (``catch_up``). That waits on the monitor's round, which a restart's restore of a large
label history held for 10-18 s, past Prometheus' scrape timeout: the scrape now answers with
the figures at hand after ``CATCH_UP_WAIT_SECONDS``, and the reports go on for the next.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter

from modelpilot.server.rest import metrics


class HeldMonitor:
    """A monitor whose round is held until the test lets it go."""

    def __init__(self) -> None:
        self.let_go = threading.Event()
        self.refreshes = 0

    def refresh(self) -> None:
        self.refreshes += 1
        self.let_go.wait(30)


class Siblings:
    """Two workers' snapshots, the sibling's newer than this worker's."""

    pid = 1

    def workers(self) -> list[SimpleNamespace]:
        now = time.time()
        return [
            SimpleNamespace(index=0, pid=1, at=now - 5),
            SimpleNamespace(index=1, pid=2, at=now),
        ]


async def test_a_scrape_answers_while_the_round_it_asked_for_is_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "CATCH_UP_WAIT_SECONDS", 0.2)
    registry = CollectorRegistry()
    Counter("modelpilot_example", "an example", registry=registry).inc()
    monitor = HeldMonitor()
    app = FastAPI()
    app.include_router(metrics.router)
    app.state.monitoring = SimpleNamespace(registry=registry, exchange=Siblings(), monitor=monitor)
    app.state.settings = SimpleNamespace(workers=2)
    app.state.first_snapshots_seen = True
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            first = await client.get("/metrics")
            second = await client.get("/metrics")
        # Both answered while the one round they asked for is still held, and the second
        # scrape did not start another beside it.
        assert not monitor.let_go.is_set()
        assert first.status_code == second.status_code == 200
        assert "modelpilot_example_total 1.0" in first.text
        assert monitor.refreshes == 1
    finally:
        monitor.let_go.set()
