"""The live dashboard in headless Chromium, against a real server with real drift and labels."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from modelpilot.registry.store import Registry
from tests.processes import Server, start, stop
from tests.services import unavailable

pytestmark = pytest.mark.slow


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    unavailable("Chromium (apt-get install chromium)", "not on PATH")
    raise AssertionError("unreachable")


class Elements(HTMLParser):
    """Attributes of every element with an id, and of every alert item."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str]] = {}
        self.body: dict[str, str] = {}
        self.alerts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = values
        if "id" in values:
            self.by_id[values["id"]] = values
        if tag == "li" and "data-rule" in values:
            self.alerts.append(values["data-rule"])


@pytest.fixture
def server(labelled_iris: Registry) -> Iterator[Server]:
    env = {
        "MODELPILOT_DRIFT_WINDOW_ROWS": "400",
        "MODELPILOT_MONITOR_INTERVAL_SECONDS": "0.5",
        "MODELPILOT_PERFORMANCE_MIN_LABELS": "20",
    }
    running = start(labelled_iris, env=env)
    yield running
    assert stop(running) == 0


def traffic(client: httpx.Client, rows: np.ndarray) -> list[dict[str, object]]:
    answers = []
    for start_row in range(0, len(rows), 10):
        chunk = rows[start_row : start_row + 10].tolist()
        response = client.post("/predict/iris", json={"data": chunk})
        response.raise_for_status()
        answers.append(response.json())
    return answers


def tick_value(label: str) -> float:
    """An axis label's number: "0.25", "12 ms", "10.0k", "1.2M", "30%"."""
    found = re.match(r"\s*(-?[0-9.]+(?:e[+-]?[0-9]+)?)\s*([kM]?)(?![A-Za-z])", label)
    assert found, label
    return float(found[1]) * {"": 1.0, "k": 1e3, "M": 1e6}[found[2]]


def wait_for_alerts(client: httpx.Client, rules: set[str], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        active = {a["rule"] for a in client.get("/api/alerts").json()["active"]}
        if rules <= active:
            return
        time.sleep(0.2)
    raise AssertionError(f"alerts {rules} not active after {seconds} s")


def text_of(dom: str, element: str) -> str:
    found = re.search(rf'id="{element}"[^>]*>([^<]*)<', dom)
    assert found, f"no element {element!r} with text in the page"
    return found[1]


def test_dashboard_draws_drift_accuracy_and_alerts(
    server: Server, iris_frame: pd.DataFrame, tmp_path: Path
) -> None:
    browser = chromium()
    url = f"{server.url}/dashboard"
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1800"]

    # Before any traffic: the model served, waiting for requests (not "No models loaded").
    idle = subprocess.run(
        [*common, "--virtual-time-budget=2000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert idle.returncode == 0, idle.stderr[-2000:]
    assert "No models loaded" not in idle.stdout
    assert text_of(idle.stdout, "model-title") == "iris v1 · no traffic yet"
    assert text_of(idle.stdout, "drift-badge") == "no traffic yet"
    # The CPU card is this process's; the machine's is beside it, labelled.
    assert text_of(idle.stdout, "stat-cpu-label") == "Process CPU"
    assert re.fullmatch(r"machine [0-9.]+ %", text_of(idle.stdout, "stat-cpu-sub"))

    rng = np.random.default_rng(0)
    rows = iris_frame.to_numpy()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        traffic(client, rows[rng.integers(0, len(rows), 300)])
        shifted = rows[rng.integers(0, len(rows), 500)].copy()
        shifted[:, 0] += 1.5
        shifted[:, 1] += 1.0
        answers = traffic(client, shifted)
        labels = []
        for answer in answers[:10]:
            predicted = answer["predictions"]
            assert isinstance(predicted, list)
            labels.append({"request_id": answer["id"], "label": [(p + 1) % 3 for p in predicted]})
        client.post("/api/feedback/iris", json={"labels": labels}).raise_for_status()
        wait_for_alerts(client, {"data_drift", "concept_drift"})

    budget = "--virtual-time-budget=5000"
    dom = subprocess.run(
        [*common, budget, "--dump-dom", url], capture_output=True, text=True, timeout=90
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = Elements()
    page.feed(dom.stdout)

    assert float(page.body["data-updated"]) > 0, "the page never drew a payload"
    charts = ("throughput", "latency", "errors", "drift", "predictions", "accuracy", "system")
    points = {name: int(page.by_id[f"chart-{name}"]["data-points"]) for name in charts}
    assert points["drift"] == 4  # one bar per feature
    assert points["predictions"] == 3  # one bar per iris class
    for name in ("throughput", "latency", "errors", "accuracy", "system"):
        assert points[name] >= 1, f"chart {name} drew nothing"
    for name in charts:  # axis labels as many decimals as their step needs: 0.25, not 0.3
        labels = page.by_id[f"chart-{name}"]["data-ticks"].split("|")
        steps = np.diff([tick_value(label) for label in labels])
        assert len(labels) >= 2 and np.allclose(steps, steps[0], rtol=0.01), (name, labels)
    assert float(page.by_id["stat-drifted"]["data-value"]) == 2
    assert float(page.by_id["stat-accuracy"]["data-value"]) == 0.0
    assert float(page.by_id["stat-memory"]["data-value"]) > 10_000_000
    assert {"data_drift", "concept_drift"} <= set(page.alerts)
    assert re.search(r"sepal_length, sepal_width", dom.stdout)

    screenshot = tmp_path / "dashboard.png"
    shot = subprocess.run(
        [*common, budget, f"--screenshot={screenshot}", url],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000  # a drawn page, not a blank one
