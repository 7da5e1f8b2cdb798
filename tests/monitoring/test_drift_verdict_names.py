"""A window's verdict names the first few drifted features and counts the rest: with 300 it
named all 300, 27 lines of a terminal and a tall box in the HTML report's verdict card."""

from __future__ import annotations

import numpy as np
import pandas as pd

from modelpilot.monitoring.drift_report import render_html
from modelpilot.monitoring.drift_results import VERDICT_NAMES
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile


def shifted(features: int, drifted: int, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, features))
    values[:, :drifted] += 2.0 if seed else 0.0
    return pd.DataFrame(values, columns=[f"f{i:03d}" for i in range(features)])


def test_the_verdict_names_the_first_drifted_features_and_counts_the_rest() -> None:
    reference, current = shifted(40, 30, 400, 0), shifted(40, 30, 400, 1)
    comparison = compare(ReferenceProfile.from_data(reference), [current], reference=reference)
    report = comparison.report
    assert len(report.drifted_features) == 30  # all of them still, for JSON and /metrics
    first = ", ".join(f"f{i:03d}" for i in range(VERDICT_NAMES))
    assert report.verdict == f"dataset drift: 30 of 40 features drifted ({first} and 20 more)"
    html = render_html(comparison, "Drift", "reference.csv", "current.csv")
    assert f"<small>dataset drift: 30 of 40 features drifted ({first} and 20 more)" in html


def test_a_few_drifted_features_are_all_named() -> None:
    reference, current = shifted(12, VERDICT_NAMES, 400, 0), shifted(12, VERDICT_NAMES, 400, 1)
    report = compare(ReferenceProfile.from_data(reference), [current]).report
    names = ", ".join(f"f{i:03d}" for i in range(VERDICT_NAMES))
    assert report.verdict == f"dataset drift: {VERDICT_NAMES} of 12 features drifted ({names})"
