"""PSI's line for numbers and Jensen-Shannon's for categories are one size of move where
shares move between values both samples hold, and docs/drift.md says where PSI's line sits as
computed, not as guessed.

Jensen-Shannon's line was 0.1, which is PSI 0.056 in such a move: one flag, 49.8% to 64.3%
ones over 2,000 rows, was "ok" as 0/1 (PSI 0.086 < 0.2) and "drifted" as True/False
(Jensen-Shannon 0.124 >= 0.1). And the docs put PSI 0.2 at a 0.44-sigma shift, "0.45 sigma
reads 0.21": it reads 0.19.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modelpilot.monitoring.divergence import js_distance, psi
from modelpilot.monitoring.drift import DriftThresholds
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile

DOCS = Path(__file__).resolve().parents[2] / "docs" / "drift.md"


def flags(rows: int, ones: float, seed: int) -> pd.DataFrame:
    """One flag spelt twice: as 0/1 (a number) and as True/False (a category)."""
    flag = np.random.default_rng(seed).random(rows) < ones
    return pd.DataFrame({"flag01": flag.astype(np.int64), "flag_tf": flag})


@pytest.mark.parametrize("ones", [0.55, 0.643, 0.68, 0.76, 0.85])
def test_a_flag_drifts_alike_as_0_1_and_as_true_false(ones: float) -> None:
    reference = flags(5000, 0.498, seed=1)
    report = compare(ReferenceProfile.from_data(reference), [flags(2000, ones, seed=2)]).report
    as_number, as_category = report.features
    assert (as_number.kind, as_category.kind) == ("numeric", "categorical")
    assert as_number.psi == pytest.approx(as_category.psi, abs=1e-3)  # the same bins
    assert as_number.drifted == as_category.drifted, (as_number.reason, as_category.reason)
    assert as_number.drifted == (ones > 0.72)


def test_the_categories_line_is_psis_where_shares_move() -> None:
    """For small moves PSI is the chi-squared divergence and Jensen-Shannon's square is it
    over 8 ln 2; on moves of PSI 0.2 (flags of 2% to 50% ones, five categories) Jensen-Shannon
    reads 0.18 to 0.19."""
    line = DriftThresholds()
    assert line.js_distance == pytest.approx(math.sqrt(line.psi / (8 * math.log(2))), abs=5e-3)
    for base in (0.02, 0.1, 0.3, 0.5):
        low, high = base, 0.999
        for _ in range(60):  # the share of ones at which PSI reaches its line
            middle = (low + high) / 2
            low, high = (middle, high) if _flag_psi(base, middle) < line.psi else (low, middle)
        js = js_distance(*_flag_counts(base, high))
        assert 0.175 < js <= line.js_distance, (base, high, js)


def _flag_counts(base: float, ones: float) -> tuple[np.ndarray, np.ndarray]:
    rows = 10**8
    return (
        np.array([1 - base, base, 0.0]) * rows,
        np.array([1 - ones, ones, 0.0]) * rows,
    )


def _flag_psi(base: float, ones: float) -> float:
    return psi(*_flag_counts(base, ones))


def test_the_docs_say_where_psis_line_sits() -> None:
    """PSI of N(shift, 1) against N(0, 1) on the reference's deciles, without sampling noise
    (the bins below and above the reference's range empty, as they are for a population)."""
    inner = stats.norm.ppf(np.linspace(0, 1, 11))  # -inf, the nine deciles' edges, inf

    def population_psi(shift: float) -> float:
        reference = np.diff(stats.norm.cdf(inner)) * 10**9
        current = np.diff(stats.norm.cdf(inner - shift)) * 10**9
        return psi(reference, current)

    said = " ".join(DOCS.read_text().split())
    assert "PSI 0.2 is about a 0.46-sigma shift" in said
    figures = ", ".join(
        f"{shift} sigma{' reads' if shift == 0.44 else ''} {population_psi(shift):.2f}"
        for shift in (0.44, 0.45, 0.46)
    )
    assert figures in said, figures  # "0.44 sigma reads 0.18, 0.45 sigma 0.19, 0.46 sigma 0.20"
    assert population_psi(0.45) < 0.2 <= population_psi(0.46)
    assert "0.44-sigma" not in said and "about 0.44 sigma" not in said
