"""``serve --workers 2``: scrapes after ready hold every worker's figures, and keep them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

from modelpilot.registry.store import Registry
from tests.processes import Server, start, stop

pytestmark = pytest.mark.slow


@pytest.fixture
def server(labelled_iris: Registry) -> Iterator[Server]:
    running = start(labelled_iris, "--workers", "2")
    yield running
    assert stop(running) == 0


def scraped(url: str) -> set[str]:
    """The series of one scrape (a new connection, so that either worker may answer)."""
    with httpx.Client(timeout=30) as client:
        text = client.get(f"{url}/metrics").text
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and line[0] != "#"}


def test_scrapes_after_ready_hold_every_worker_and_never_lose_a_series(
    server: Server, iris_frame: pd.DataFrame
) -> None:
    """For a second after ready a scrape held 1 series, then 29, then 204; and after new
    traffic, a scrape answered by the worker whose last round was older lacked the drift
    window's series that the scrape before had (185, 139, 185)."""
    first = scraped(server.url)
    workers = {m for s in first for m in re.findall(r'worker="(\d+)"', s)}
    assert workers == {"0", "1"}
    assert any(s.startswith("modelpilot_model_loaded{") for s in first)
    rows = iris_frame.to_numpy()
    before = first
    with httpx.Client(timeout=10) as client:
        for i in range(40):
            reply = client.post(f"{server.url}/predict/iris", json={"data": rows[i].tolist()})
            assert reply.status_code == 200
    for _ in range(30):
        now = scraped(server.url)
        lost = {s for s in before - now if "model=" in s}
        assert not lost, sorted(lost)[:10]
        before = now
    assert any(s.startswith("modelpilot_drift_window_rows{") for s in before)
