"""A verdict's reason shows its figures with the digits that keep them on the sides of their
lines that they are: a Jensen-Shannon distance of 0.0997 read "0.100 < 0.1", a PSI of 0.19996
"0.200 < 0.2", and a p-value of 0.00166 under the level 0.001667 "p = 0.0017 < 0.0017"."""

from __future__ import annotations

import re

import numpy as np
import pytest

from modelpilot.monitoring.drift import DriftThresholds, judge_categorical, judge_numeric


def two_categories(reference_share: float, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Counts of a boolean feature ([False, True, unseen, missing]) of 10^6 rows each."""
    rows = 10**6
    return (
        np.array([rows - round(rows * reference_share), round(rows * reference_share), 0, 0]),
        np.array([rows - round(rows * share), round(rows * share), 0, 0]),
    )


def share_at(line: float, reference_share: float, score: str) -> float:
    """The share of ``True`` at which Jensen-Shannon (or PSI) sits a hair under ``line``."""
    low, high = reference_share, 0.999
    for _ in range(60):
        middle = (low + high) / 2
        found = judge_categorical(
            "flag", *two_categories(reference_share, middle), 0, DriftThresholds()
        )
        value = found.js_distance if score == "js" else found.psi
        low, high = (middle, high) if value < line else (low, middle)
    return low - 2e-6


@pytest.mark.parametrize("line", [0.1, 0.19])
def test_a_distance_just_under_its_line_reads_so(line: float) -> None:
    thresholds = DriftThresholds(js_distance=line)
    share = share_at(line, 0.5, "js")
    found = judge_categorical("flag", *two_categories(0.5, share), 0, thresholds)
    assert found.js_distance < line and not found.drifted
    assert found.js_distance >= line - 5e-4  # three decimals would round it to the line
    shown = re.match(r"Jensen-Shannon distance ([0-9.]+) < ([0-9.]+)", found.reason)
    assert shown is not None, found.reason
    assert float(shown.group(1)) < float(shown.group(2)) == line, found.reason


def test_a_psi_just_under_its_line_reads_so() -> None:
    reference = np.array([0, 5000, 5000, 0, 0])  # a flag's bins, as numbers: [0, 1, 1]
    thresholds = DriftThresholds()
    low, high = 0.5, 0.999
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (
            (middle, high) if _flag_psi(reference, middle) < thresholds.psi else (low, middle)
        )
    current = _flag(low - 2e-6)
    found = judge_numeric(
        "flag",
        reference,
        current,
        np.array([0.0, 0.0, 1.0, 1.0]),
        np.array([0.0, 0.0, 1.0, 1.0]),
        1.0,
        np.empty(0),
        None,
        thresholds,
    )
    assert found.method == "psi" and not found.drifted
    assert 0.1995 <= found.psi < 0.2
    figure = re.match(r"PSI ([0-9.]+) < 0.2$", found.reason)
    assert figure is not None and float(figure.group(1)) < 0.2, found.reason


def _flag(ones: float) -> np.ndarray:
    rows = 10**7
    return np.array([0, rows - round(rows * ones), round(rows * ones), 0, 0])


def _flag_psi(reference: np.ndarray, ones: float) -> float:
    from modelpilot.monitoring.divergence import psi

    return psi(reference, _flag(ones))


@pytest.mark.parametrize(
    ("p", "features"),
    [(0.00166, 3), (0.0016666, 3), (0.00167, 3), (0.00122, 1), (0.5, 1)],
)
def test_a_p_value_and_its_level_read_as_they_compare(p: float, features: int) -> None:
    from modelpilot.monitoring.drift_results import p_shown

    thresholds = DriftThresholds(features=features, p_value=0.01 if features > 1 else 0.00244)
    alpha = thresholds.alpha
    shown, level = p_shown(p, alpha), thresholds.alpha_text(p).split()[0]
    assert (float(shown) < float(level)) == (p < alpha), (shown, level)


def test_the_tables_figures_read_as_they_compare() -> None:
    """``figures_apart``: both figures to four places, or more where those would tie across
    the line (the CLI table and the HTML report show a score beside its threshold)."""
    from modelpilot.monitoring.drift_results import figures_apart

    assert figures_apart(0.19996, 0.2) == ("0.19996", "0.20000")
    assert figures_apart(0.2, 0.2) == ("0.2000", "0.2000")
    assert figures_apart(0.0123, 0.2) == ("0.0123", "0.2000")
    score, line = figures_apart(1 - 0.00166, 1 - 0.01 / 6)
    assert float(score) >= float(line)  # 1 - p above 1 - alpha: drifted
    score, line = figures_apart(1 - 0.00167, 1 - 0.01 / 6)
    assert float(score) < float(line), (score, line)  # below: not drifted


def test_a_missing_share_just_past_its_level_reads_so() -> None:
    """Three features, so each test runs at 0.01 / 6 = 0.001667; 10 of 100 rows missing
    against 29 of 1,000 is Fisher's p = 0.0016658, under it: at two digits both read 0.0017."""
    import pandas as pd

    from modelpilot.monitoring.offline import compare
    from modelpilot.registry.profile import ReferenceProfile

    def frame(rows: int, missing: int, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        x = np.sort(rng.normal(size=rows))  # the window's values spread as the reference's
        x[np.linspace(0, rows - 1, missing).astype(int)] = np.nan
        return pd.DataFrame({"x": x, "y": rng.normal(size=rows), "z": rng.normal(size=rows)})

    reference, window = frame(1000, 29, seed=0), frame(100, 10, seed=1)
    found = compare(ReferenceProfile.from_data(reference), [window], reference=reference)
    x = found.report.features[0]
    assert x.method in ("missing", "psi"), x.reason
    assert x.missing_p_value == pytest.approx(0.0016658, rel=1e-4)
    said = re.search(r"Fisher's exact test p = ([0-9.e-]+) < ([0-9.e-]+) \(0.01 over 3", x.reason)
    assert said is not None, x.reason
    assert float(said.group(1)) < float(said.group(2)), x.reason
