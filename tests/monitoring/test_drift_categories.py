"""Categorical drift: false alarms at the tests' level, the reference's pooled tail, new values.

Windows drawn from the reference's own distribution must drift about as often as the level
says (0.01 for a window), whatever the number of categories and however small the reference.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.divergence import chi_squared_homogeneity, compare_categories
from modelpilot.monitoring.drift import DriftThresholds, FeatureDrift, judge_categorical
from modelpilot.monitoring.feature_histograms import histograms
from modelpilot.registry.profile import ReferenceProfile


def categories(count: int) -> np.ndarray:
    return np.array([f"c{i}" for i in range(count)], dtype=object)


def judged(reference: np.ndarray, window: np.ndarray) -> FeatureDrift:
    binning = ProfileBinning(ReferenceProfile.from_data(pd.DataFrame({"c": reference})))
    rows = window.reshape(-1, 1)
    counts, sums = binning.count(rows)
    return binning.report(counts, sums, rows, DriftThresholds()).features[0]


def false_alarms(values: np.ndarray, reference_rows: int, window_rows: int, trials: int) -> int:
    rng = np.random.default_rng(reference_rows + window_rows)
    return sum(
        judged(rng.choice(values, reference_rows), rng.choice(values, window_rows)).drifted
        for _ in range(trials)
    )


def test_held_out_rows_of_a_feature_of_many_categories_do_not_drift() -> None:
    """The tester's city: 300 equally frequent values, the profile naming the top 100. Those
    were the ones the reference held by chance more often (half its rows for a third of
    the values): held-out rows read as drifted at p = 6e-14."""
    rng = np.random.default_rng(0)
    cities = categories(300)
    feature = judged(rng.choice(cities, 1500), rng.choice(cities, 500))
    assert not feature.drifted, feature.reason


@pytest.mark.parametrize(
    ("values", "reference_rows", "window_rows"),
    [
        (categories(10), 300, 999),  # the reference as small as the window: 3 in 4 drifted
        (categories(50), 1000, 999),  # four in five
        (categories(60), 100, 999),  # many categories the reference never held: all
    ],
)
def test_windows_drawn_as_the_reference_was_drift_at_about_the_tests_level(
    values: np.ndarray, reference_rows: int, window_rows: int
) -> None:
    """Goodness of fit to the reference's shares took its sampling noise for drift; the
    reference is a sample, compared as one (a test of homogeneity)."""
    assert false_alarms(values, reference_rows, window_rows, trials=40) <= 2


def test_large_windows_of_many_categories_need_more_than_noise() -> None:
    """Jensen-Shannon over fifty categories counted in 1,000 reference rows is 0.09-0.12 for
    a window of the same distribution: two windows in three drifted."""
    assert false_alarms(categories(50), 1000, 5000, trials=15) == 0
    rng = np.random.default_rng(1)
    shifted = judged(rng.choice(categories(50), 1000), rng.choice(categories(25), 5000))
    assert shifted.drifted and shifted.method == "js"
    assert "past chance" in shifted.reason


def test_a_value_outside_the_named_categories_counts_with_the_reference_tail() -> None:
    """With more values than the profile names, one outside them may be from the reference's
    tail as well as new: it counts there (the profile's sketch of the tail then tells how
    many are new: about as many as the reference's values held once foretell)."""
    rng = np.random.default_rng(2)
    ranks = np.arange(1, 5001)  # some 1,500 of them in 5,000 rows: more than the profile names
    values, shares = categories(5000), (1 / ranks) / (1 / ranks).sum()
    reference = rng.choice(values, 5000, p=shares)
    profile = ReferenceProfile.from_data(pd.DataFrame({"c": reference}))
    assert profile.feature("c").other is not None
    binning = ProfileBinning(profile)
    (histogram,) = histograms(binning, np.zeros(binning.size, dtype=np.int64))
    assert histogram.labels[-1] == "other" and "unseen" not in histogram.labels
    feature = judged(reference, rng.choice(values, 800, p=shares))
    assert not feature.drifted and 0 < feature.unseen_share < 0.3, feature.reason
    # The frequent values are named: a shift among them is seen.
    moved = shares.copy()
    moved[0] *= 2
    feature = judged(reference, rng.choice(values, 800, p=moved / moved.sum()))
    assert feature.drifted, feature.reason


def test_new_values_are_told_where_the_reference_named_every_value() -> None:
    rng = np.random.default_rng(3)
    colors = np.array(["red", "green", "blue"], dtype=object)
    reference = rng.choice(colors, 2000, p=[0.5, 0.3, 0.2])
    window = np.where(rng.random(200) < 0.1, "purple", rng.choice(colors, 200, p=[0.5, 0.3, 0.2]))
    feature = judged(reference, window.astype(object))
    assert feature.drifted and feature.method == "rare"
    assert feature.unseen_share == pytest.approx(np.mean(window == "purple"))
    # The finding says what it counted: the pool held new values alone, so their own test
    # decided, against the reference's share of values it held once.
    assert feature.reason.startswith(
        f"{np.mean(window == 'purple'):.1%} of rows hold values the reference never had, "
        "against 0.0% of the reference's rows held values it had once: "
    )


def test_the_rare_share_counts_every_bin_it_names() -> None:
    """The finding read "30.9% of rows in categories rare or unseen in the reference" and
    counted the rare categories alone, not the unseen values beside them."""
    reference = np.array([400, 300, 200, 3, 2, 0, 0])  # 5 named, unseen, missing
    current = np.array([40, 30, 20, 6, 5, 12, 0])
    tests = compare_categories(reference, current, unseen=5)
    rare_p, rare = tests.rare_p, tests.rare
    assert rare.tolist() == [False, False, False, True, True, True, True]
    feature = _judge(reference, current, unseen=12)
    assert feature.method == "rare" and feature.rare_p_value == rare_p
    assert feature.reason.startswith(
        f"{23 / 113:.1%} of rows in bins too rare to test one by one (2 of the reference's "
        f"categories, values the reference never held), against {5 / 905:.1%} of the "
        "reference's rows: "
    )


def _judge(reference: np.ndarray, current: np.ndarray, unseen: int | None) -> FeatureDrift:
    return judge_categorical("c", reference, current, unseen, DriftThresholds())


def test_chi_squared_homogeneity_is_scipys_contingency_test() -> None:
    from scipy import stats

    reference, current = np.array([50, 30, 20, 0]), np.array([40, 35, 20, 5])
    table = np.stack([reference, current])
    expected = stats.chi2_contingency(table, correction=False)
    assert chi_squared_homogeneity(reference, current) == pytest.approx(
        (expected.statistic, expected.pvalue)
    )
    # Categories neither sample holds are no part of the table.
    padded = chi_squared_homogeneity(np.append(reference, 0), np.append(current, 0))
    assert padded == pytest.approx((expected.statistic, expected.pvalue))


def test_a_category_named_like_the_old_pooled_key_is_a_category() -> None:
    """The tester's finding: a value "__other__" (pipelines bucket rare categories under it)
    was taken for the profile's pooled tail, its feature read as an old profile whose named
    categories were all pooled: 90% of a window in a value the reference never had read
    "ok", JS 0, "register the version again"."""
    rng = np.random.default_rng(3)
    reference = rng.choice(
        np.array(["__other__", "a", "b"], dtype=object), 1000, p=[0.1, 0.45, 0.45]
    )
    window = rng.choice(np.array(["zzz", "a"], dtype=object), 1000, p=[0.9, 0.1])
    drifted = judged(reference, window)
    assert drifted.drifted and drifted.unseen_share == pytest.approx(0.9, abs=0.03)
    assert "register the version again" not in drifted.reason
    # Its own rows read no drift, "__other__" counted as itself.
    same = judged(reference, rng.choice(reference, 1000))
    assert not same.drifted and same.unseen_share == 0.0, same.reason
    profile = ReferenceProfile.from_data(pd.DataFrame({"c": reference}))
    feature = profile.feature("c")
    assert feature.other is None and set(feature.categories) == {"__other__", "a", "b"}
    assert ReferenceProfile.from_dict(profile.to_dict()) == profile
