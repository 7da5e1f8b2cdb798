"""The live dashboard in headless Chromium, against a real server with real drift and labels."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.dashboard.browser import Elements, dump_dom, screenshot, text_of, tick_value
from tests.processes import Server, start, stop

pytestmark = pytest.mark.slow

DIABETES_FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
DASH = "\u2013"  # an en dash, between a histogram bin's edges


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


def wait_for_alerts(client: httpx.Client, rules: set[str], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        active = {a["rule"] for a in client.get("/api/alerts").json()["active"]}
        if rules <= active:
            return
        time.sleep(0.2)
    raise AssertionError(f"alerts {rules} not active after {seconds} s")


def wait_for_model(
    client: httpx.Client, ready: Callable[[dict[str, Any]], bool], seconds: float = 20
) -> None:
    """Until the first model of ``/api/dashboard`` has what ``ready`` looks for."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        models = client.get("/api/dashboard").json()["models"]
        if models and models[0]["predictions"] and ready(models[0]):
            return
        time.sleep(0.2)
    raise AssertionError(f"the model's report not ready after {seconds} s")


def test_dashboard_draws_drift_accuracy_and_alerts(
    server: Server, iris_frame: pd.DataFrame, tmp_path: Path
) -> None:
    url = f"{server.url}/dashboard"

    # Before any traffic: the model served, waiting for requests (not "No models loaded").
    idle = dump_dom(url, budget_ms=2000)
    assert "No models loaded" not in idle
    assert text_of(idle, "model-title") == "iris v1 · no traffic yet"
    assert text_of(idle, "drift-badge") == "no traffic yet"
    assert text_of(idle, "stat-p99") == "—"  # no requests: no latency, not 0 ms
    # The CPU and memory cards are the server's (its serving and monitoring processes); the
    # machine's figures are beside them, labelled.
    assert text_of(idle, "stat-cpu-label") == "Server CPU"
    assert text_of(idle, "stat-memory-label") == "Server memory"
    assert re.fullmatch(r"machine [0-9.]+ %", text_of(idle, "stat-cpu-sub"))

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

    dom = dump_dom(url)
    page = Elements(dom)

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
    # The drift bars are evidence, 1 at the line a feature drifts at, capped at 3: the two
    # shifted features far past it, at the cap, where the axis ends. Accuracy, a score, stays
    # within [0, 1].
    assert max(page.ticks("drift")) == 3
    evidence = [float(v) for v in page.by_id["chart-drift"]["data-values"].split("|")]
    assert evidence[:2] == [3, 3] and all(0 <= e < 1 for e in evidence[2:]), evidence
    assert min(page.ticks("accuracy")) >= 0 and max(page.ticks("accuracy")) <= 1
    assert float(page.by_id["stat-drifted"]["data-value"]) == 2
    assert float(page.by_id["stat-accuracy"]["data-value"]) == 0.0
    assert "bad" in page.classes("stat-accuracy")  # degraded, as the concept-drift badge says
    assert text_of(dom, "concept-badge") == "concept drift"
    assert float(page.by_id["stat-memory"]["data-value"]) > 10_000_000
    memory = text_of(dom, "stat-memory-sub")  # and of it, the monitoring process's
    assert re.fullmatch(r"RSS, monitoring [0-9.]+ MiB · machine [0-9.]+ %", memory), memory
    assert {"data_drift", "concept_drift"} <= set(page.alerts)
    assert re.search(r"sepal_length, sepal_width", dom)

    screenshot(url, tmp_path / "dashboard.png")


@pytest.fixture
def diabetes_registry(
    registry: Registry, tmp_path: Path, diabetes_data: tuple[np.ndarray, np.ndarray]
) -> Registry:
    """A linear regression on the diabetes data, registered with it and its target: unlike a
    forest, it predicts past the reference's range for inputs past theirs."""
    x, y = diabetes_data
    frame = pd.DataFrame(x, columns=DIABETES_FEATURES)
    path = tmp_path / "diabetes.joblib"
    joblib.dump(LinearRegression().fit(frame, y), path)
    register_model(
        registry, "diabetes", path, reference=frame.assign(progression=y), target="progression"
    )
    return registry


def test_a_regression_with_outliers_in_a_window_too_small_for_a_verdict(
    diabetes_registry: Registry, diabetes_data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x, y = diabetes_data
    rows = x[:18].copy()
    bmi = DIABETES_FEATURES.index("bmi")
    rows[0, bmi] += 0.5  # predictions past the reference's range: two above, one below
    rows[1, bmi] += 0.6
    rows[2, bmi] -= 0.5
    server = start(diabetes_registry, env={"MODELPILOT_MONITOR_INTERVAL_SECONDS": "0.5"})
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            ids = []
            for row in rows:
                answer = client.post("/predict/diabetes", json={"data": [row.tolist()]})
                ids.append(answer.raise_for_status().json()["id"])
            labels = [
                {"request_id": i, "label": [float(t)]} for i, t in zip(ids, y[:18], strict=True)
            ]
            client.post("/api/feedback/diabetes", json={"labels": labels}).raise_for_status()
            wait_for_model(
                client,
                lambda m: (
                    m["predictions"]["count"] == 18
                    and bool(m["performance"] and m["performance"]["history"])
                ),
            )
        url = f"{server.url}/dashboard"
        dom = dump_dom(url)
        page = Elements(dom)
        screenshot(url, tmp_path / "regression.png")
    finally:
        assert stop(server) == 0

    # Every prediction in a bar: those past the reference's range in an edge bar each; bins
    # labelled as ranges.
    assert text_of(dom, "pred-summary").startswith(
        "18 predictions in the window (1 below, 2 above "
    )
    chart = page.by_id["chart-predictions"]
    values = [float(v) for v in chart["data-values"].split("|")]
    labels = chart["data-labels"].split("|")
    assert sum(values) == 18 and values[0] == 1 and values[-1] == 2
    assert labels[0].startswith("< ") and labels[-1].startswith("> ")
    assert all(re.fullmatch(rf"-?[0-9.]+k?{DASH}-?[0-9.]+k?", label) for label in labels[1:-1]), (
        labels
    )
    assert [label.split(DASH)[1] for label in labels[1:-2]] == [
        label.split(DASH)[0] for label in labels[2:-1]
    ]

    # 18 rows of the 30 a verdict needs: said so, in grey, not "no dataset drift" in green.
    verdict = "too few rows for a verdict: 18 of the 30 needed"
    assert text_of(dom, "drift-badge") == "no verdict yet"
    assert "badge-muted" in page.classes("drift-badge")
    assert verdict in text_of(dom, "drift-foot")
    assert page.by_id["chart-drift"]["data-message"] == verdict.capitalize()
    assert text_of(dom, "stat-drifted") == "—" and "ok" not in page.classes("stat-drifted")
    assert page.pills == [("muted", "no verdict")] * len(DIABETES_FEATURES)

    # MAE from 0 up; 18 labels are too few to judge it (30 are needed), so the tile is not red,
    # however far it is from the reference's, nor the badge a green "no concept drift".
    assert text_of(dom, "stat-accuracy-label") == "MAE"
    assert min(page.ticks("accuracy")) == 0
    assert "bad" not in page.classes("stat-accuracy")
    assert text_of(dom, "concept-badge") == "no verdict yet"
    assert "badge-muted" in page.classes("concept-badge")
    assert (
        page.by_id["concept-badge"]["title"]
        == "18 labels in the window, fewer than the 30 judged from"
    )

    # Idle since: no latency, not 0 ms.
    assert text_of(dom, "stat-p99") == "—"


def serving(client: httpx.Client) -> set[str]:
    """The versions ``/api/dashboard`` says serve."""
    return {m["version"] for m in client.get("/api/dashboard").json()["models"] if m["serving"]}


def option_values(dom: str) -> list[str]:
    return re.findall(r'<option value="([^"]*)">', dom)


def test_the_page_follows_an_alias_move_and_shows_either_version(
    registry: Registry, iris_model_path: Path, iris_csv: Path, iris_frame: pd.DataFrame
) -> None:
    # The tester's sequence: traffic to v1, `modelpilot alias iris production 2`, traffic to
    # v2. Both versions have reports; the page shows the one that serves, and either on demand.
    register_model(registry, "iris", iris_model_path, reference=iris_csv, aliases=["production"])
    register_model(registry, "iris", iris_model_path, reference=iris_csv)
    env = {"MODELPILOT_MONITOR_INTERVAL_SECONDS": "0.5", "MODELPILOT_ALIAS_REFRESH_SECONDS": "0.2"}
    server = start(registry, env=env)
    url = f"{server.url}/dashboard"
    rows = iris_frame.to_numpy()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            traffic(client, rows[:40])
            wait_for_model(client, lambda m: m["version"] == "1")
            before = dump_dom(url, budget_ms=2000)

            registry.set_alias("iris", "production", 2)
            deadline = time.monotonic() + 20
            while serving(client) != {"2"}:
                assert time.monotonic() < deadline, "the alias move never reached the server"
                time.sleep(0.2)
            traffic(client, rows[40:70])
            models = client.get("/api/dashboard").json()["models"]
            assert {(m["version"], m["serving"]) for m in models} == {("1", False), ("2", True)}
        after = dump_dom(url)
        picked = dump_dom(f"{url}#model=iris:1")
    finally:
        assert stop(server) == 0

    assert Elements(before).by_id["model-select"]["data-value"] == "iris:1"
    assert text_of(before, "model-title").startswith("iris v1 · ")
    # The alias moved mid-run: the picker followed it to v2, and lists both versions apart.
    assert sorted(option_values(after)) == ["iris:1", "iris:2"]
    assert Elements(after).by_id["model-select"]["data-value"] == "iris:2"
    assert text_of(after, "model-title").startswith("iris v2 · ")
    # v1, picked, stays shown through the page's refreshes.
    assert Elements(picked).by_id["model-select"]["data-value"] == "iris:1"
    assert text_of(picked, "model-title").startswith("iris v1 · ")
