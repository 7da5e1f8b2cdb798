"""The drift window the workers of ``serve --workers N`` share holds the newest configured rows
over them all, however the traffic splits between them: a fixed share a worker held 2,913
rows of a 5,000-row window with two workers, one of which took most of the traffic (one
keep-alive client), and merged the idle worker's old rows with the busy one's new."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from modelpilot.config import Settings
from modelpilot.monitoring.model_monitor import ModelMonitor, ModelReport, MonitorConfig
from modelpilot.monitoring.process import monitor_config
from modelpilot.registry.store import Registry
from tests.processes import start, stop

WINDOW = 1000


def _monitor(registry: Registry, config: MonitorConfig) -> ModelMonitor:
    return ModelMonitor(
        registry.get_version("iris", 1), registry.reference_profile("iris", 1), config
    )


def _feed(monitor: ModelMonitor, rows: np.ndarray, start: float, size: int = 50) -> None:
    """``rows`` in rounds of ``size`` rows, one a second from ``start``."""
    for i in range(0, rows.shape[0], size):
        part = rows[i : i + size]
        predicted = {"predict": (part[:, 2] > 2.5).astype(np.int64)}
        monitor.observe(1, part, predicted, start + i / size)


def _figures(report: ModelReport) -> object:
    """The report's drift and prediction figures, to 9 digits (the merge adds the running
    sums in another order: the last digits of a Wasserstein distance differ)."""
    assert report.drift is not None and report.predictions is not None
    return _rounded((report.drift.to_dict(), report.predictions.to_dict()))


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(item) for item in value]
    return value


def test_the_merged_window_holds_the_newest_rows_of_the_busy_worker(
    labelled_iris: Registry, iris_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """One worker took 1,500 rows, the other 150 older ones: the merged window holds the busy
    worker's newest 1,000, as one process that took them all does (it held 500 + 150)."""
    rng = np.random.default_rng(3)
    rows = iris_frame.to_numpy()[rng.integers(0, 150, 1650)] + rng.normal(0, 0.1, (1650, 4))
    shared = monitor_config(
        Settings(drift_window_rows=WINDOW, workers=2, worker_dir=tmp_path / "workers")
    )
    busy, idle = _monitor(labelled_iris, shared), _monitor(labelled_iris, shared)
    _feed(idle, rows[:150], 1000.0)
    _feed(busy, rows[150:], 2000.0)
    now = 2100.0
    merged = busy.report(now, [idle.state(now)])

    alone = _monitor(labelled_iris, monitor_config(Settings(drift_window_rows=WINDOW)))
    _feed(alone, rows[:150], 1000.0)
    _feed(alone, rows[150:], 2000.0)
    single = alone.report(now)
    assert single.drift is not None and single.drift.rows == WINDOW
    assert _figures(merged) == _figures(single)
    # The figures the other worker gives are the same.
    assert _figures(idle.report(now, [busy.state(now)])) == _figures(single)


def test_the_merged_window_takes_the_idle_workers_newer_rows_first(
    labelled_iris: Registry, iris_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """The worker that took few rows took them last: they are in the window, and the busy
    worker's newest rows make it up to the configured rows (not its share of them)."""
    rows = iris_frame.to_numpy()
    many = np.concatenate([rows] * 10)  # 1,500
    shared = monitor_config(
        Settings(drift_window_rows=WINDOW, workers=2, worker_dir=tmp_path / "workers")
    )
    busy, idle = _monitor(labelled_iris, shared), _monitor(labelled_iris, shared)
    _feed(busy, many, 1000.0)
    _feed(idle, rows, 2000.0)  # 150 rows, after
    now = 2100.0
    report = busy.report(now, [idle.state(now)])
    assert report.drift is not None
    # At least the window, and less than a part (a tenth of it) more, as rows come in whole
    # rounds of 50.
    assert WINDOW <= report.drift.rows < WINDOW + WINDOW // 10
    assert report.predictions is not None
    assert report.predictions.count == report.drift.rows


@pytest.mark.slow
def test_one_keep_alive_client_fills_the_whole_window_of_two_workers(
    labelled_iris: Registry, iris_frame: pd.DataFrame
) -> None:
    """One client on one connection reaches one worker (as a proxy's persistent connections
    do): the window still holds the configured rows, not that worker's half of them."""
    env = {"MODELPILOT_MONITOR_INTERVAL_SECONDS": "0.3", "MODELPILOT_DRIFT_WINDOW_ROWS": "1000"}
    server = start(labelled_iris, "--workers", "2", env=env)
    try:
        rows = iris_frame.to_numpy()
        sent = 0
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(100):  # 2,000 rows
                batch = rows[(i * 20) % 140 : (i * 20) % 140 + 20]
                reply = client.post("/predict/iris", json={"data": batch.tolist()})
                assert reply.status_code == 200, reply.text
                sent += batch.shape[0]
        report: dict[str, object] = {}
        for _ in range(600):  # until both workers' rounds are in (any worker answers)
            with httpx.Client(base_url=server.url, timeout=30) as fresh:
                report = fresh.get("/api/monitoring/iris").json()
            if report.get("rows") == sent:
                break
            time.sleep(0.1)
        assert report.get("rows") == sent, report
        drift = report["drift"]
        assert isinstance(drift, dict)
        assert 1000 <= drift["window_rows"] < sent, drift["window_rows"]
    finally:
        assert stop(server) == 0
