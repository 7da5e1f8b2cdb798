"""``modelpilot drift REF CUR`` tests the current values against every reference value; the
live monitor, and ``compare`` without the reference, against the profile's sketch of it (a
profile stored before sketches, against its sample of 256 rows)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile
from tests.cli.conftest import Run


@pytest.fixture
def files(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference of 5,000 rows and 300 current rows, ``x`` shifted a little."""
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"x": rng.normal(size=5000), "y": rng.normal(size=5000)})
    current = pd.DataFrame({"x": rng.normal(0.1, 1, size=300), "y": rng.normal(size=300)})
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current.to_csv(tmp_path / "current.csv", index=False)
    return reference, current


def test_two_files_test_against_the_whole_reference(
    run: Run, files: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    reference, current = files
    result = run(
        "drift",
        str(tmp_path / "reference.csv"),
        str(tmp_path / "current.csv"),
        "-o",
        str(tmp_path / "drift.html"),
        registry=False,
    )
    assert result.exit_code == 0, result.output
    for name in ("x", "y"):
        row = re.search(rf"^ {name} +ok +ks +([0-9.]+) ", result.stdout, re.MULTILINE)
        assert row is not None, result.stdout
        exact = ks_2samp(reference[name], current[name]).pvalue
        # The score is 1 - p, printed to 4 places; Stephens' approximation is within ~3%.
        assert 1 - float(row.group(1)) == pytest.approx(exact, rel=0.03, abs=1e-4), name


def test_the_reference_data_given_to_compare_replaces_the_profiles_sample(
    files: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, current = files
    profile = ReferenceProfile.from_data(reference)
    whole = compare(profile, [current], reference=reference).report.features[0]
    sketched = compare(profile, [current]).report.features[0]
    exact = ks_2samp(reference["x"], current["x"]).pvalue
    assert whole.p_value == pytest.approx(exact, rel=0.03)
    # The profile's sketch stands for the whole reference, within 1/2,048 of its distribution.
    assert sketched.p_value == pytest.approx(exact, rel=0.05)
    # A profile stored before sketches tests its sample of 256 rows, as it did.
    stored = profile.to_dict()
    for feature in stored["features"]:
        feature.pop("sketch", None)
    old = ReferenceProfile.from_dict(stored)
    sampled = compare(old, [current]).report.features[0]
    sample = old.sample_array()[:, 0]
    assert sampled.p_value == pytest.approx(ks_2samp(sample, current["x"]).pvalue, rel=0.05)
    assert abs(sampled.p_value - exact) > 0.1  # (so the two cases are told apart)
