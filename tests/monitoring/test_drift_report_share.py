"""The HTML drift report's drifted share reads 0% only when no feature drifted: 2 of 500
drifted read "Drifted share 0%" beside "Drifted features 2 / 500" (tester "scale" F6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.drift_report import render_html, share_text
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile


def test_one_feature_of_two_hundred_drifted_is_not_none() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({f"x{i}": rng.normal(size=1000) for i in range(200)})
    current = reference.sample(500, random_state=1).assign(x7=lambda f: f["x7"] + 3)
    comparison = compare(ReferenceProfile.from_data(reference), [current])
    html = render_html(comparison, "Drift", "reference.csv", "current.csv")
    assert "Drifted features<b>1 / 200</b>" in html
    assert "Drifted share<b>0.5%</b>" in html


@pytest.mark.parametrize(
    ("share", "text"),
    [
        (0.0, "0%"),
        (2 / 500, "0.4%"),
        (1 / 5000, "0.02%"),
        (0.5, "50%"),
        (0.123, "12%"),
        (499 / 500, "99.8%"),
        (0.9996, "99.9%"),
        (1.0, "100%"),
    ],
)
def test_a_share_reads_none_or_all_only_when_it_is(share: float, text: str) -> None:
    assert share_text(share) == text
