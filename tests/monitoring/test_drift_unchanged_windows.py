"""A window that did not change since it was last judged keeps its verdict, not judged again;
one whose rows came, went or aged out, or that is judged at other thresholds, is judged anew.

The server judges every watched version's window every monitoring round: idle, a server of 41
models and 880 features spent a fifth of a core of its serving process judging windows that
no row had entered or left since the round before (a tester's profile)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelpilot.monitoring import binning
from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import DriftThresholds
from modelpilot.monitoring.drift_results import DriftReport, HeldDrift
from modelpilot.monitoring.looks import window_looks
from modelpilot.monitoring.model_monitor import ModelMonitor, MonitorConfig
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import Served, reference_traffic, send

FEATURES = ["x0", "x1", "x2", "city"]
WINDOW_SECONDS = 600.0


def reference(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=FEATURES[:3])
    frame["city"] = rng.choice(["oslo", "rome", "lima"], rows)
    return frame


@pytest.fixture
def watched(registry: Registry, tmp_path: Path) -> tuple[ModelMonitor, ReferenceProfile]:
    """A monitor of a model of three numbers and a city, its window the last 10 minutes."""
    frame = reference(2000, 0)
    path = tmp_path / "model.joblib"
    encode = ColumnTransformer(
        [("city", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression())
    joblib.dump(model.fit(frame, frame["x0"] > 0), path)
    version = register_model(registry, "towns", path, reference=frame)
    profile = registry.reference_profile("towns", version.version)
    assert profile is not None
    config = MonitorConfig(window_seconds=WINDOW_SECONDS)
    return ModelMonitor(version, profile, config), profile


def rows(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    frame = reference(n, seed)
    frame["x0"] += shift
    return frame.to_numpy(dtype=object)


def same_verdict(a: DriftReport, b: DriftReport) -> bool:
    return repr(a.to_dict()) == repr(b.to_dict())  # NaN reads alike in repr, not in ==


def fresh(profile: ReferenceProfile, monitor: ModelMonitor, at: float) -> DriftReport:
    """The verdict a binning that never judged before gives the monitor's window at ``at``."""
    state = monitor.state(at)
    size, sums = monitor.binning.size, monitor.binning.sums_size  # type: ignore[union-attr]
    thresholds = monitor.config.drift
    return ProfileBinning(profile).report(
        state.counts[:size], state.sums[:sums], state.recent, thresholds
    )


def test_an_unchanged_window_keeps_its_verdict_and_a_changed_one_is_judged(
    watched: tuple[ModelMonitor, ReferenceProfile],
) -> None:
    monitor, profile = watched
    monitor.observe(1, rows(200, 1), {}, at=1000.0)
    first = monitor.report(1000.0).drift
    assert first is not None and first.rows == 200
    for at in (1002.0, 1004.0, 1300.0):  # idle rounds: no row in, none out
        again = monitor.report(at).drift
        assert again is first  # given again, not judged again
    # A row comes: judged anew, as a binning that never judged would.
    monitor.observe(1, rows(1, 2, shift=5.0), {}, at=1301.0)
    grown = monitor.report(1302.0).drift
    assert grown is not None and grown is not first and grown.rows == 201
    assert same_verdict(grown, fresh(profile, monitor, 1302.0))
    # The first 200 rows age out: only the last one is left, too few to judge.
    aged = monitor.report(1000.0 + WINDOW_SECONDS + 1.0).drift
    assert aged is not None and aged.rows == 1 and not aged.judged
    assert same_verdict(aged, fresh(profile, monitor, 1000.0 + WINDOW_SECONDS + 1.0))
    # Then it too: no rows at all.
    empty = monitor.report(1301.0 + WINDOW_SECONDS + 1.0).drift
    assert empty is not None and empty.rows == 0 and empty.verdict == "no rows in the window"


def test_a_drifted_window_stays_drifted_while_idle(
    watched: tuple[ModelMonitor, ReferenceProfile],
) -> None:
    monitor, _ = watched
    monitor.observe(1, rows(400, 3, shift=2.0), {}, at=1000.0)
    first = monitor.report(1001.0).drift
    assert first is not None and first.drifted_features == ["x0"]
    again = monitor.report(1003.0).drift
    assert again is first and again.drifted_features == ["x0"]
    # A drift held by an alert is laid on the verdict, never kept in it: an empty window
    # holds what it is given, and the verdict under it is the window's own.
    later = 1000.0 + WINDOW_SECONDS + 1.0
    held = monitor.report(later, held_drift=HeldDrift(("x1",), 0.25)).drift
    assert held is not None and held.drifted_features == ["x1"] and held.held
    bare = monitor.report(later + 2.0).drift
    assert bare is not None and bare.drifted_features == [] and not bare.held


def test_the_same_counts_of_other_rows_are_judged_again(
    watched: tuple[ModelMonitor, ReferenceProfile],
) -> None:
    """Rows that bin alike may still move a KS test: a small window is judged on its rows,
    which a verdict kept by its counts alone would not see."""
    monitor, profile = watched
    assert monitor.binning is not None
    binned = monitor.binning
    thresholds = monitor.config.drift
    before = rows(100, 4)
    counts, sums = binned.count(before)
    first = binned.report(counts, sums, before, thresholds)
    after = before.copy()  # the same rows, as the monitoring process sends them anew
    assert binned.report(counts, sums, after, thresholds) is first
    after[:, 0] = after[:, 0] + 1e-9  # x0's values move within their bins
    moved = binned.report(counts, sums, after, thresholds)
    assert moved is not first
    assert same_verdict(moved, ProfileBinning(profile).report(counts, sums, after, thresholds))


def test_other_thresholds_or_looks_are_judged_again(
    watched: tuple[ModelMonitor, ReferenceProfile],
) -> None:
    monitor, profile = watched
    assert monitor.binning is not None
    binned = monitor.binning
    current = rows(300, 5, shift=0.35)
    counts, sums = binned.count(current)
    one_look = DriftThresholds()
    looks = replace(one_look, looks=window_looks(one_look.min_rows, 5000))
    first = binned.report(counts, sums, current, one_look)
    spread = binned.report(counts, sums, current, looks)
    assert spread is not first
    assert same_verdict(spread, ProfileBinning(profile).report(counts, sums, current, looks))
    assert "24 looks" in " ".join(f.reason for f in spread.features)
    assert binned.report(counts, sums, current, looks) is spread


def test_a_feature_whose_tests_fail_is_judged_and_logged_again(
    watched: tuple[ModelMonitor, ReferenceProfile],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A verdict with a failed feature is not kept: its error is logged while it lasts (once
    a minute), and the verdict comes back once the tests pass."""
    judge = binning.judge_categorical

    def failing(name: str, *args: object, **kwargs: object) -> object:
        if name == "city":  # no known input makes the real one raise; the next bug may
            raise ZeroDivisionError("float division by zero")
        return judge(name, *args, **kwargs)  # type: ignore[arg-type]

    monitor, _ = watched
    monitor.observe(1, rows(200, 6), {}, at=1000.0)
    monkeypatch.setattr(binning, "judge_categorical", failing)
    monitor.binning._errors.seconds = 0.0  # type: ignore[union-attr]  # log every time
    with caplog.at_level(logging.ERROR, logger=binning.logger.name):
        first = monitor.report(1001.0).drift
        second = monitor.report(1003.0).drift
    assert first is not None and second is not None and second is not first
    assert [f.name for f in second.features if f.error] == ["city"]
    assert sum("the drift tests of feature 'city' failed" in r.message for r in caplog.records) == 2
    monkeypatch.setattr(binning, "judge_categorical", judge)
    mended = monitor.report(1005.0).drift
    assert mended is not None and not any(f.error for f in mended.features)
    assert monitor.report(1007.0).drift is mended


async def test_a_served_version_s_idle_rounds_keep_its_verdict(
    served: Served, iris_frame: pd.DataFrame
) -> None:
    """Through the monitoring process, whose windows come over the wire anew every round."""
    client, monitor = served.client, served.monitor
    await send(client, reference_traffic(iris_frame, 200, seed=1))
    monitor.flush()
    first = monitor.report("iris").drift
    assert first is not None and first.rows == 200
    for _ in range(3):
        monitor.refresh()
        assert monitor.report("iris").drift is first
    await send(client, reference_traffic(iris_frame, 10, seed=2))
    monitor.flush()
    grown = monitor.report("iris").drift
    assert grown is not None and grown is not first and grown.rows == 210
