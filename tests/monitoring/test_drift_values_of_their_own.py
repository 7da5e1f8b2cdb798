"""A categorical feature whose every reference row held a value of its own: an id, a time or
free text read as text, a reference of one row.

The unseen test divided by zero there (Good-Turing's unseen share of 1, Esty's variance 0):
``modelpilot drift`` died with a traceback, and a served model's whole report failed every
evaluation, frozen at the last one that worked, with no verdict or alert while its traffic
came in.
"""

from __future__ import annotations

import logging
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
from modelpilot.monitoring.divergence import compare_categories, unseen_test
from modelpilot.monitoring.drift import DriftThresholds
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored

EXPECTED = "100.0% of rows hold values the reference never had, as expected where every"


def ids(prefix: str, rows: int, seed: int) -> pd.DataFrame:
    """Rows of an id of their own each and a number drawn from one law."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": [f"{prefix}{i}" for i in range(rows)], "v": rng.normal(size=rows)})


def bins(named: list[int], unseen: int = 0, missing: int = 0) -> np.ndarray:
    return np.array([*named, unseen, missing], dtype=np.int64)


def test_a_window_of_new_values_against_singletons_is_no_evidence_of_drift() -> None:
    """Every reference row's value held once: every fresh row is expected new, and no window
    can hold more new values than all its rows (p = 1); it raised ZeroDivisionError."""
    reference = bins([1] * 300)
    assert unseen_test(reference, bins([0] * 300, unseen=999), 300) == 1.0
    assert unseen_test(reference, bins([1] * 10 + [0] * 290, unseen=20), 300) == 1.0
    assert unseen_test(bins([1]), bins([0], unseen=50), 1) == 1.0  # a reference of one row
    tests = compare_categories(reference, bins([0] * 300, unseen=999), unseen=300)
    assert tests.unseen_p == 1.0 and tests.rare_p == 1.0 and not tests.unseen_decides


@pytest.mark.parametrize("rows", [200, 1500])
def test_a_column_of_ids_reads_no_drift_and_says_why(rows: int) -> None:
    """New ids in every row, on a window small enough for the tests and one large enough for
    Jensen-Shannon (1.0 there: the tests hold it back)."""
    report = compare(ReferenceProfile.from_data(ids("r", 300, 0)), [ids("w", rows, 1)]).report
    by_name = {f.name: f for f in report.features}
    assert not by_name["id"].drifted and by_name["id"].unseen_share == 1.0
    assert by_name["v"].method in ("ks", "psi") and not by_name["v"].drifted
    if rows < DriftThresholds().large_sample_rows:
        assert by_name["id"].method == "rare" and by_name["id"].reason.startswith(EXPECTED)
    else:
        assert by_name["id"].method == "js" and "within chance" in by_name["id"].reason
    assert report.verdict == "no dataset drift: 0 of 2 features drifted"


def test_ids_of_the_reference_recurring_still_drift() -> None:
    """What the rule leaves to see: one reference id in every row of the window."""
    current = pd.DataFrame({"id": ["r7"] * 200, "v": np.random.default_rng(1).normal(size=200)})
    report = compare(ReferenceProfile.from_data(ids("r", 300, 0)), [current]).report
    assert report.drifted_features == ["id"]


def test_a_one_row_reference_gives_a_report() -> None:
    reference = pd.DataFrame({"x": [0.3], "cat": ["a"]})
    current = pd.DataFrame({"x": np.linspace(0, 1, 100), "cat": ["a", "b", "c", "d"] * 25})
    report = compare(ReferenceProfile.from_data(reference), [current]).report
    assert report.rows == 100 and {f.method for f in report.features} != {"none"}


def test_a_feature_whose_tests_fail_leaves_the_others_judged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever else may raise in one feature's tests (the ZeroDivisionError above is
    fixed; this stands in for the next), the window's other features keep their verdicts,
    that feature says why it has none, and the error is logged once, not every evaluation."""
    reference = ids("r", 300, 0).assign(v2=lambda f: f["v"] * 2)
    current = ids("w", 200, 1).assign(v2=lambda f: f["v"] * 2 + 5)  # v2 drifted
    judge = binning.judge_categorical

    def failing(name: str, *args: object, **kwargs: object) -> object:
        if name == "id":
            raise ZeroDivisionError("float division by zero")
        return judge(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(binning, "judge_categorical", failing)
    profile = ReferenceProfile.from_data(reference)
    watched = ProfileBinning(profile)
    rows = current.to_numpy(dtype=object)
    counts, sums = watched.count(rows)
    with caplog.at_level(logging.ERROR, logger=binning.__name__):
        reports = [watched.report(counts, sums, rows, DriftThresholds()) for _ in range(3)]
    report = reports[-1]
    by_name = {f.name: f for f in report.features}
    assert by_name["id"].method == "none" and not by_name["id"].drifted
    assert by_name["id"].error == "ZeroDivisionError: float division by zero"
    assert by_name["id"].reason == (
        "no verdict: its tests failed (ZeroDivisionError: float division by zero)"
    )
    assert by_name["id"].rows == 200 and by_name["id"].to_dict()["error"] == by_name["id"].error
    assert by_name["v"].method == "ks" and not by_name["v"].drifted
    assert by_name["v2"].drifted
    assert report.drifted_share == 0.5  # of the two judged
    assert report.verdict == ("dataset drift: 1 of 3 features drifted (v2; the tests of id failed)")
    logged = [r for r in caplog.records if "drift tests of feature 'id' failed" in r.message]
    assert len(logged) == 1 and logged[0].exc_info is not None


async def test_a_served_model_of_unique_cities_reports_its_new_ones(
    registry: Registry, tmp_path: Path
) -> None:
    """A pipeline one-hot encoding a city that each of its 100 training rows held alone:
    sent 60 rows of new cities, the model's report failed at every evaluation and stayed
    at the last one that worked (19 rows, "too few rows"), with no verdict ever."""
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"city": [f"c{i}" for i in range(100)], "v": rng.normal(size=100)})
    encode = ColumnTransformer(
        [("city", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"
    )
    labels = (reference["v"] > 0).astype(int)
    joblib.dump(make_pipeline(encode, LogisticRegression()).fit(reference, labels), tmp_path / "m")
    register_model(registry, "uniq", tmp_path / "m", flavor="sklearn", reference=reference)
    async with monitored(registry) as served:
        for start in range(0, 60, 20):
            rows = [{"city": f"new{i}", "v": float(rng.normal())} for i in range(start, start + 20)]
            reply = await served.client.post("/predict/uniq", json={"instances": rows})
            assert reply.status_code == 200, reply.text
            served.monitor.flush()
        drift = (await served.client.get("/api/monitoring/uniq")).json()["drift"]
    assert drift["window_rows"] == 60, drift
    city = next(f for f in drift["features"] if f["name"] == "city")
    assert city["unseen_share"] == 1.0 and city["method"] == "rare" and not city["drifted"]
    assert city["reason"].startswith(EXPECTED) and city["error"] is None
