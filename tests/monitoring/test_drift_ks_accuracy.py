"""The KS p-value (Stephens' approximation) is as close to the exact one as the docs say.

They said "within 3% of the exact p-value down to 1e-5" for windows of 30 to 1,000 rows: on
windows of 30 rows it read up to 17% high between 1e-5 and 1e-4 (where a model of 100
features, each test at 5e-5, is judged), and on windows of 100 to 300 rows up to 6% low.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from modelpilot.monitoring.divergence import ks_two_sample

DOCS = Path(__file__).resolve().parents[2] / "docs" / "drift.md"


def ratios(reference_rows: int, window_rows: int, pairs: int) -> list[tuple[float, float]]:
    """Stephens' p-value over the exact one, with the exact one, of windows shifted against a
    normal reference (by up to 1.5 sigmas, or 0.5 for windows of 100 rows or more)."""
    rng = np.random.default_rng(reference_rows + window_rows)
    found = []
    for _ in range(pairs):
        reference = rng.normal(size=reference_rows)
        window = rng.normal(rng.uniform(0, 1.5 if window_rows < 100 else 0.5), 1, window_rows)
        exact = stats.ks_2samp(reference, window, method="exact").pvalue
        found.append((ks_two_sample(reference, window)[1] / exact, exact))
    return found


@pytest.mark.parametrize(
    ("reference_rows", "window_rows", "near", "far"),
    [(3000, 30, (0.98, 1.02), (1.0, 1.2)), (1000, 300, (0.95, 1.01), (0.93, 1.0))],
)
def test_stephens_p_value_is_as_close_as_documented(
    reference_rows: int, window_rows: int, near: tuple[float, float], far: tuple[float, float]
) -> None:
    """From 1e-3 to 0.05 (``near``) and from 1e-5 to 1e-3 (``far``), as docs/drift.md's
    table gives them for these sizes."""
    found = ratios(reference_rows, window_rows, 120)
    for (low, high), band in [(near, (1e-3, 0.05)), (far, (1e-5, 1e-3))]:
        inside = [ratio for ratio, exact in found if band[0] <= exact < band[1]]
        assert len(inside) >= 10, band
        assert low <= min(inside) and max(inside) <= high, (band, min(inside), max(inside))


def test_the_docs_promise_what_it_does() -> None:
    said = " ".join(DOCS.read_text().split())
    assert "| 3,000 | 30 | 0.99 to 1.01 | 1.01 to 1.16 | 1.17 to 1.58 |" in said
    assert "up to 18% high on windows of 30" in said
    promise = " ".join((ks_two_sample.__doc__ or "").split())
    assert "came within 5% of the exact p-value from 1e-3 to 0.05" in promise
    assert "down to 1e-5, and within 11%" not in promise  # the promise it did not keep
