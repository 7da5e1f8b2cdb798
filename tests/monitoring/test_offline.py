"""Offline drift (``modelpilot drift``): the live monitor's verdicts, and the HTML report."""

from __future__ import annotations

import numpy as np
import pandas as pd

from modelpilot.monitoring.drift_report import render_html
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile


def test_a_feature_arriving_half_missing_drifts_and_the_report_shows_its_share(
    iris_frame: pd.DataFrame,
) -> None:
    current = iris_frame.sample(150, replace=True, random_state=0).reset_index(drop=True)
    current.loc[::2, "sepal_width"] = np.nan
    comparison = compare(ReferenceProfile.from_data(iris_frame), [current])
    report = comparison.report
    assert report.drifted_features == ["sepal_width"]
    width = report.features[1]
    assert width.method == "missing" and width.missing_share == 0.5
    assert width.reference_missing_share == 0.0
    page = render_html(comparison, "drift", "train.csv", "today.csv")
    assert "<th>missing: reference</th><th>missing: current</th>" in page
    assert "<td>0.0%</td><td>50.0%</td>" in page  # sepal_width's row
    assert "missing in 50.0% of rows against 0.0% of the reference&#x27;s" in page
    assert "Fisher's exact test of the share of missing values" in page  # the rule
