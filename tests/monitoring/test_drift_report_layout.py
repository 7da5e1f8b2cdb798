"""The HTML drift report's layout: the p-value that decided, readable plots of many
categories, labels inside the card, a phone's width, and an empty current file's wording."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from modelpilot.monitoring.drift_report import MAX_PLOTTED_CATEGORIES, render_html
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile


def report(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[str, dict[str, object]]:
    comparison = compare(ReferenceProfile.from_data(reference), [current])
    features = {f.name: f.to_dict() for f in comparison.report.features}
    return render_html(comparison, "Drift", "reference.csv", "current.csv"), features


def plot(html: str, feature: str) -> str:
    found = re.search(rf"<div class='card plot[^']*'><h3>{feature} .*?</svg>.*?</div>", html)
    assert found, f"no plot of {feature}"
    return found[0]


def test_the_p_value_shown_is_the_one_that_decided() -> None:
    # Values as in the reference, but missing in 30% of rows: Fisher's test of the missing
    # share decided (p ~ 1e-40); the KS test's p (of the values present) did not.
    rng = np.random.default_rng(0)
    x = rng.normal(size=4000)
    x[rng.random(4000) < 0.05] = np.nan
    reference = pd.DataFrame({"x": x, "y": rng.normal(size=4000)})
    current = pd.DataFrame({"x": rng.normal(size=500), "y": rng.normal(size=500)})
    current.loc[current.index[:150], "x"] = np.nan
    html, features = report(reference, current)
    x_drift = features["x"]
    assert x_drift["method"] == "missing"
    assert x_drift["deciding_p_value"] == x_drift["missing_p_value"] != x_drift["p_value"]
    row = re.search(r"<tr><td>x</td>.*?</tr>", html)
    assert row
    cells = re.findall(r"<td>([^<]*)</td>", row[0])
    assert f"{x_drift['deciding_p_value']:.2g}" in cells
    assert f"{x_drift['p_value']:.4g}" not in cells


def test_many_categories_plot_the_largest_and_pool_the_rest() -> None:
    # 200 categories drew 200 overlapping labels: now 30, one bar for the rest, and every
    # category's counts in a table under the plot.
    rng = np.random.default_rng(1)
    names = [f"sku{i:03d}" for i in range(200)]
    weights = 1 / np.arange(1, 201)
    weights /= weights.sum()
    reference = pd.DataFrame({"sku": [*names, *rng.choice(names, 5000, p=weights)]})
    current = pd.DataFrame({"sku": rng.choice(names, 2000, p=weights)})
    html, _ = report(reference, current)
    sku = plot(html, "sku")
    labels = re.findall(r"<text [^>]*transform='rotate[^>]*>([^<]*)</text>", sku)
    assert len(labels) == MAX_PLOTTED_CATEGORIES + 1
    assert labels[-1] == f"{200 - MAX_PLOTTED_CATEGORIES} more"
    assert labels[:3] == ["sku000", "sku001", "sku002"]  # the largest
    assert "<details><summary>all 200 bins' counts</summary>" in sku
    assert len(re.findall(r"<tr><td>sku\d{3}</td>", sku)) == 200


def test_the_first_bins_label_stays_inside_the_card() -> None:
    # Rotated 35 degrees to the left of its bar, "-4.928 - -1.285" reached past x = 0.
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"x": rng.normal(size=2000) * 1000 - 5000})
    html, _ = report(reference, reference.sample(300, random_state=0))
    first = re.search(
        r"<text x='([0-9.]+)' [^>]*transform='rotate\(-35 [^>]*>([^<]*)</text>", plot(html, "x")
    )
    assert first
    x, label = float(first[1]), first[2]
    glyph = 5.0  # a 9 px label's average character, at least
    assert x - math.cos(math.radians(35)) * glyph * len(label) >= 0, (x, label)


def test_the_report_fits_a_phone() -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"x": rng.normal(size=500)})
    html, _ = report(reference, reference)
    assert "<meta name='viewport' content='width=device-width, initial-scale=1'>" in html
    assert "<div class='wide'><table>" in html  # the wide table scrolls inside its card


def test_an_empty_current_file_has_no_rows_in_the_current_data() -> None:
    # "No rows in the window" is the live monitor's wording.
    rng = np.random.default_rng(4)
    reference = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)})
    html, _ = report(reference, reference.iloc[:0])
    assert "no rows in the current data" in html
    assert "window" not in html
