"""The HTML drift report: its headline says what the report found, and no more."""

from __future__ import annotations

import numpy as np
import pandas as pd

from modelpilot.monitoring.drift_report import render_html
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile


def page(rows: int) -> str:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
    current = reference.sample(rows, random_state=1).assign(x=lambda f: f["x"] + 3)
    comparison = compare(ReferenceProfile.from_data(reference), [current])
    return render_html(comparison, "Drift", "reference.csv", "current.csv")


def test_too_few_rows_show_no_verdict_rather_than_no_drift() -> None:
    """20 rows (30 needed) headlined "No dataset drift", "0 / 2" features and "0%" drifted,
    and scored each feature 0.0000 against a threshold of 0.0000."""
    html = page(20)
    assert "Verdict<b>No verdict</b><small>too few rows for a verdict: 20 of the 30 needed" in html
    assert "No dataset drift" not in html
    assert "Drifted features<b>-</b>" in html and "Drifted share<b>-</b>" in html
    assert "0.0000" not in html
    assert html.count("<td class='left'>none</td><td>-</td><td>-</td>") == 2


def test_a_verdict_is_headlined_with_its_reasons() -> None:
    html = page(200)
    assert "Verdict<b>Dataset drift</b><small>dataset drift: 1 of 2 features drifted (x)" in html
    assert "Drifted features<b>1 / 2</b>" in html and "Drifted share<b>50%</b>" in html
