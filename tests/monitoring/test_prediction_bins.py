"""What a regression predicts, as the monitor reports it: the mean and variance of large
numbers, and predictions that are no number."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from modelpilot.monitoring.model_monitor import ModelMonitor, MonitorConfig
from modelpilot.monitoring.monitor_state import MonitorState
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.conftest import SOMETIMES_NAN

LARGE = (
    "import numpy as np\n"
    "class Model:\n"
    "    def predict(self, x):\n"
    "        return 1e8 + np.asarray(x, dtype=float)[:, 0]\n"
)
"""Predictions near 1e8 that differ by about 1: their squares' mean less the squared mean
is all rounding."""


def watched(
    registry: Registry,
    tmp_path: Path,
    source: str,
    reference: pd.DataFrame | None,
    window_rows: int = 5000,
) -> ModelMonitor:
    """The monitor of a ``.py`` model of ``source``, registered with ``reference``."""
    path = tmp_path / "model.py"
    path.write_text(source)
    version = register_model(registry, "m", path, flavor="python", reference=reference)
    profile = registry.reference_profile("m", 1) if reference is not None else None
    return ModelMonitor(version, profile, MonitorConfig(window_rows, window_seconds=1e12))


def features(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})


def observe(monitor: ModelMonitor, rows: np.ndarray, predictions: np.ndarray, at: float) -> None:
    assert monitor.predictions is not None
    monitor.observe(1, rows, {monitor.predictions.output: predictions}, at)


def test_the_variance_of_large_close_predictions_is_numpys(
    registry: Registry, tmp_path: Path
) -> None:
    """1e8 plus N(0, 1): the server said 0.0 where numpy says 0.92; the window's sums, which
    chunks leave by subtraction, must keep it too."""
    monitor = watched(registry, tmp_path, LARGE, features(500, 0), window_rows=100)
    live = features(300, 1).to_numpy()
    predicted = 1e8 + live[:, 0]
    for start in range(0, 300, 50):
        chunk = slice(start, start + 50)
        observe(monitor, live[chunk], predicted[chunk], at=1000.0 + start)
    report = monitor.report(2000.0).predictions
    assert report is not None and report.count == 100  # the last two batches
    window = predicted[200:]
    assert report.mean == pytest.approx(window.mean(), rel=1e-15)
    assert report.variance == pytest.approx(window.var(), rel=1e-6)
    assert report.variance == pytest.approx((window - 1e8).var(), rel=1e-6)


def test_workers_without_a_reference_merge_their_variances(
    registry: Registry, tmp_path: Path
) -> None:
    """Without reference predictions each worker takes its sums about its own first
    prediction; merged, they are moved to one pivot before they add up."""
    first = watched(registry, tmp_path, LARGE, None)
    second = ModelMonitor(first.version, None, first.config)
    rng = np.random.default_rng(2)
    one, other = 1e8 + rng.normal(size=40), 1e8 + 5 + rng.normal(size=60)
    observe(first, np.c_[one - 1e8, one], one, at=1000.0)
    observe(second, np.c_[other - 1e8, other], other, at=1000.0)
    merged = first.report(2000.0, peers=[second.state(2000.0)]).predictions
    both = np.concatenate([one, other])
    assert merged is not None and merged.count == 100
    assert merged.mean == pytest.approx(both.mean(), rel=1e-15)
    assert merged.variance == pytest.approx(both.var(), rel=1e-6)
    assert first.predictions is not None and second.predictions is not None
    assert first.predictions.pivot != second.predictions.pivot


def test_a_state_written_before_pivots_counts_as_sums_of_the_values(
    registry: Registry, tmp_path: Path
) -> None:
    """A peer's state pickled by a version without ``prediction_pivot`` (unpickled, the slot
    is unset) holds sums of the values themselves: they are read as taken about 0."""
    monitor = watched(registry, tmp_path, LARGE, features(500, 0))
    old = ModelMonitor(monitor.version, registry.reference_profile("m", 1), monitor.config)
    rng = np.random.default_rng(3)
    mine, theirs = 1e8 + rng.normal(size=30), 1e8 + rng.normal(size=30)
    observe(monitor, np.c_[mine - 1e8, mine], mine, at=1000.0)
    observe(old, np.c_[theirs - 1e8, theirs], theirs, at=1000.0)
    state: MonitorState = old.state(2000.0)
    assert old.predictions is not None
    raw = state.sums.copy()
    raw[-3:] = (theirs.size, theirs.sum(), np.square(theirs).sum())
    object.__setattr__(state, "sums", raw)
    object.__delattr__(state, "prediction_pivot")
    merged = monitor.report(2000.0, peers=[state]).predictions
    both = np.concatenate([mine, theirs])
    assert merged is not None and merged.count == 60
    assert merged.mean == pytest.approx(both.mean(), rel=1e-15)
    # The old sums carry their own rounding (of squares near 1e16), not a variance of 0.
    assert merged.variance == pytest.approx(both.var(), abs=2.0)


def test_predictions_that_are_no_number_count_as_missing_on_both_sides(
    registry: Registry, tmp_path: Path
) -> None:
    """NaN predictions counted in the bin above the reference's range, while the reference's
    own NaN predictions were dropped: drift compared unlike with unlike, and the histogram's
    bars added up to more than the predictions counted."""
    reference = features(1000, 4)
    monitor = watched(registry, tmp_path, SOMETIMES_NAN, reference)
    assert monitor.predictions is not None
    profile = registry.reference_profile("m", 1)
    assert profile is not None and profile.predictions is not None
    assert profile.predictions.missing == int((reference["a"] > 1.5).sum()) > 0
    live = features(400, 5).to_numpy()
    predicted = 2 * live[:, 0] + live[:, 1]
    predicted[live[:, 0] > 1.5] = np.nan
    predicted[:3] = [np.inf, -np.inf, 1e9]
    observe(monitor, live, predicted, at=1000.0)
    summary = monitor.report(2000.0).predictions
    assert summary is not None and summary.histogram is not None
    histogram = summary.histogram
    finite = predicted[np.isfinite(predicted)]
    edges = np.asarray(profile.predictions.bin_edges)
    inner, _ = np.histogram(finite, bins=edges)
    assert histogram["counts"] == inner.tolist()
    assert histogram["below"] == [float((finite < edges[0]).sum())]
    assert histogram["above"] == [1.0 + (finite[1:] > edges[-1]).sum()]  # 1e9, not NaN
    assert histogram["missing"] == [float((~np.isfinite(predicted)).sum())]
    shown = sum(histogram["counts"]) + histogram["below"][0] + histogram["above"][0]
    assert shown == summary.count == finite.size
    assert summary.mean == pytest.approx(finite.mean(), rel=1e-12)
    reference_counts = [0, *profile.predictions.bin_counts, 0, profile.predictions.missing]
    current = [*histogram["below"], *inner, *histogram["above"], *histogram["missing"]]
    expected = jensenshannon(reference_counts, current, base=2)
    assert summary.drift == pytest.approx(expected, rel=1e-9)
