"""A window of many small chunks keeps them merged: each chunk is a copy of every feature's
bins, and a 500-feature version taking one request a monitoring round held 390 MB in its
monitoring process once its window of 5,000 rows was full (a tester's soak)."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from modelpilot.monitoring.model_monitor import ModelMonitor, MonitorConfig
from modelpilot.monitoring.window import MERGED_ROWS, MERGED_SPAN, SlidingWindow
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model


def test_small_chunks_close_together_are_kept_as_one_with_the_same_totals() -> None:
    window = SlidingWindow(3, 1, max_rows=5000, max_seconds=3600)
    rng = np.random.default_rng(0)
    added = np.zeros(3, dtype=np.int64)
    for i in range(5000):  # one row a round, four rounds a second
        counts = np.eye(3, dtype=np.int64)[rng.integers(3)]
        added += counts
        window.add(1, counts, np.array([float(i)]), at=i / 4)
    assert window.rows == 5000 and window.counts.tolist() == added.tolist()
    assert window.sums.tolist() == [sum(range(5000))]
    assert len(window) == 5000 // (5000 // MERGED_ROWS)  # chunks of 100 rows, not 5,000
    for i in range(5000, 5100):  # a chunk's worth more: the oldest 100 leave, whole
        window.add(1, np.array([1, 0, 0]), np.array([0.0]), at=i / 4)
        assert 5000 <= window.rows <= 5000 + 5000 // MERGED_ROWS
    assert window.rows == 5000 and len(window) == 50


def test_merged_rows_leave_early_never_late() -> None:
    """A merged chunk leaves when its oldest rows are too old: no row older than the window's
    age stays; its newer rows go with them, at most a ``MERGED_SPAN``th early."""
    window = SlidingWindow(1, 1, max_rows=1000, max_seconds=600)  # merges 10 s
    for at in range(0, 10):
        window.add(1, np.array([1]), np.array([1.0]), at=float(at))
    window.add(1, np.array([1]), np.array([1.0]), at=10.5)  # past the span: a chunk of its own
    assert len(window) == 2 and window.rows == 11
    window.expire(now=600.0)
    assert window.rows == 11  # the oldest row is exactly 600 s old
    window.expire(now=600.5)
    assert window.rows == 1 and window.sums.tolist() == [1.0]
    assert 600 / MERGED_SPAN == 10


def test_chunks_of_the_caller_are_never_changed() -> None:
    window = SlidingWindow(2, 1, max_rows=1000, max_seconds=60)
    first, second = np.array([1, 0]), np.array([0, 1])
    window.add(1, first, np.array([1.0]), at=0.0)
    window.add(1, second, np.array([2.0]), at=0.1)
    assert len(window) == 1 and first.tolist() == [1, 0] and second.tolist() == [0, 1]


def test_a_wide_version_s_monitor_keeps_few_chunks_at_one_request_a_round(
    registry: Registry, tmp_path: Path
) -> None:
    features = 200
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        rng.normal(size=(500, features)), columns=[f"f{i}" for i in range(features)]
    )
    path = tmp_path / "wide.joblib"
    target = (frame["f0"] > 0).astype(int)
    joblib.dump(LogisticRegression(max_iter=200).fit(frame, target), path)
    version = register_model(registry, "wide", path, reference=frame)
    profile = registry.reference_profile("wide", 1)
    monitor = ModelMonitor(version, profile, MonitorConfig())
    rows = rng.normal(size=(3000, features))
    for i in range(3000):
        monitor.observe(1, rows[i : i + 1], {"predict": np.array([i % 2])}, 1000.0 + i / 4)
    window = monitor.window
    assert window.rows == 3000
    assert len(window) <= 3000 // (MonitorConfig().window_rows // MERGED_ROWS) + 1
    binned = monitor.binning
    assert binned is not None
    expected, _ = binned.count(rows)
    assert window.counts[: binned.size].tolist() == expected.tolist()
