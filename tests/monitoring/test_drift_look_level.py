"""The live monitor spends data drift's level over the looks a window gets, so that a version
whose traffic is drawn as its reference was rarely raises data drift at all; ``modelpilot
drift``, which judges once, keeps the level of one look.

Judged every round at the level of one look, a low-traffic model (50 rows an hour, so a
window of the last hour's 50 rows judged anew at every row) raised one to five false
``data_drift`` alerts a day, and a window filling from 30 to 1,000 rows had some feature
flagged in 3% of fills (``bench/drift_false_alarms.py``)."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelpilot.monitoring.model_monitor import ModelMonitor
from modelpilot.monitoring.offline import compare
from modelpilot.monitoring.process import drift_thresholds, monitor_config
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings

FEATURES = [f"x{i}" for i in range(8)]
SECONDS_A_ROW = 72.0
"""50 rows an hour: the default window (the last hour, up to 5,000 rows) holds some 50."""
QUIET_SEED = 9
"""Traffic drawn as the reference was whose window of the last hour, judged at every row,
reads a KS p-value past the level of one look (0.01 over 8 features, 2 tests each:
0.000625) with a PSI past 0.2 from its 54th row: a false alarm the level split over the
window's looks (0.000026) holds back."""


def monitor(registry: Registry, tmp_path: Path, rng: np.random.Generator) -> ModelMonitor:
    """A monitor, as the server makes one, of a model registered with 3,000 reference rows of
    eight N(0, 1) features."""
    reference = pd.DataFrame(rng.normal(size=(3000, len(FEATURES))), columns=FEATURES)
    target = (reference.sum(axis=1) > 0).astype(int)
    path = tmp_path / "model.joblib"
    joblib.dump(LogisticRegression().fit(reference, target), path)
    version = register_model(registry, "quiet", path, reference=reference)
    profile = registry.reference_profile("quiet", version.version)
    return ModelMonitor(version, profile, monitor_config(make_settings(registry)))


def flagged_looks(watched: ModelMonitor, rows: np.ndarray, start: float = 0.0) -> list[int]:
    """The rows (counted from 1) at which the window, judged after each, had a feature
    drifted."""
    found = []
    for i, row in enumerate(rows):
        at = start + i * SECONDS_A_ROW
        watched.observe(1, row[None, :], {}, at)
        report = watched.report(at)
        if report.drift is not None and report.drift.drifted_features:
            found.append(i + 1)
    return found


def test_a_low_traffic_window_judged_at_every_row_raises_no_false_alarm(
    registry: Registry, tmp_path: Path
) -> None:
    rng = np.random.default_rng(QUIET_SEED)
    watched = monitor(registry, tmp_path, rng)
    assert flagged_looks(watched, rng.normal(size=(60, len(FEATURES)))) == []


def test_a_shift_in_low_traffic_is_still_caught_within_the_hour(
    registry: Registry, tmp_path: Path
) -> None:
    """One feature moved by 1.5 of its standard deviations (PSI about 2): flagged once a few
    dozen of the window's rows are shifted, as before, and on every look after."""
    rng = np.random.default_rng(QUIET_SEED)
    watched = monitor(registry, tmp_path, rng)
    healthy = rng.normal(size=(50, len(FEATURES)))
    assert flagged_looks(watched, healthy) == []
    shifted = rng.normal(size=(50, len(FEATURES)))
    shifted[:, 0] += 1.5
    found = flagged_looks(watched, shifted, start=50 * SECONDS_A_ROW)
    assert found and found[0] <= 40
    assert found == list(range(found[0], 51))


def test_the_live_level_is_split_over_the_looks_and_modelpilot_drift_keeps_one_looks(
    registry: Registry, tmp_path: Path
) -> None:
    settings = make_settings(registry)
    live = monitor_config(settings).drift
    assert live.looks == 24  # sizes 30, 60, ... 3,840 up to 5,000: eight, three looks each
    once = drift_thresholds(settings)
    assert once.looks == 1
    rng = np.random.default_rng(QUIET_SEED)
    watched = monitor(registry, tmp_path, rng)
    watched.observe(40, rng.normal(size=(40, len(FEATURES))), {}, 0.0)
    report = watched.report(0.0).drift
    assert report is not None
    assert report.features[0].threshold == pytest.approx(1 - 0.01 / (2 * 8 * 24))
    assert "(0.01 over 8 features, 2 tests each, and 24 looks)" in report.features[0].reason
    profile = registry.reference_profile("quiet", 1)
    offline = compare(profile, [rng.normal(size=(40, len(FEATURES)))], once).report
    assert offline.features[0].threshold == pytest.approx(1 - 0.01 / (2 * 8))
    assert "(0.01 over 8 features, 2 tests each)" in offline.features[0].reason
