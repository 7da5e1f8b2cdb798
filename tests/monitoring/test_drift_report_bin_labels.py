"""The HTML drift report's numeric axes: every bin's label whole, its edges to three digits."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from modelpilot.monitoring.drift_report import render_html
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile


def axis_labels(html: str, feature: str) -> list[str]:
    found = re.search(rf"<div class='card plot[^']*'><h3>{feature} .*?</svg>", html)
    assert found, f"no plot of {feature}"
    return re.findall(r"<text [^>]*transform='rotate[^>]*>([^<]*)</text>", found[0])


def test_numeric_bin_labels_are_whole_with_three_significant_digits() -> None:
    # Cut to 16 characters, "-0.8258 - -0.5512" read "-0.8258 - -0.55…": the upper edge of
    # half the bins of a feature of small or negative numbers was lost.
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"x": rng.normal(size=3000) * 0.7 - 0.1})
    comparison = compare(ReferenceProfile.from_data(reference), [reference.sample(400)])
    html = render_html(comparison, "Drift", "reference.csv", "current.csv")
    labels = axis_labels(html, "x")
    ranges = [label for label in labels if " - " in label]
    assert len(ranges) >= 5, labels
    assert not any("…" in label for label in labels), labels
    for label in ranges:
        edges = re.fullmatch(r"(-?[0-9.e+-]+) - (-?[0-9.e+-]+)", label)
        assert edges, label
        for edge in edges.groups():
            digits = edge.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
            assert len(digits) <= 3, label
    # The edges still meet: each bin's upper edge is the next one's lower.
    assert [r.split(" - ")[1] for r in ranges[:-1]] == [r.split(" - ")[0] for r in ranges[1:]]


def test_edges_that_three_digits_cannot_tell_apart_keep_their_four() -> None:
    # Values near 1,000 in steps under a unit: 999.1 and 999.4 are both 999 to three digits.
    rng = np.random.default_rng(6)
    reference = pd.DataFrame({"x": 1_000 + rng.normal(size=3000) * 3})
    comparison = compare(ReferenceProfile.from_data(reference), [reference.sample(400)])
    labels = axis_labels(render_html(comparison, "Drift", "r.csv", "c.csv"), "x")
    ranges = [label.split(" - ") for label in labels if " - " in label]
    assert len(ranges) >= 5, labels
    assert all(low != high for low, high in ranges), labels
    assert any(len(low.replace(".", "").lstrip("-")) == 4 for low, _ in ranges), labels
