"""Features of many about equally common categories: a shift among them is seen, noise is not.

A tester's city feature (500 equally common cities in 200,000 rows) read "ok" against a window
of one city and against one of cities the reference never held: the profile named the 100 most
frequent, and the guard against their luck near the cut pooled every one of them with the tail.
A profile now names up to 1,000 categories, and with more it chooses them on one half of the
reference rows and counts them on the other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.category_bins import categorical_bins, trusted_count
from modelpilot.monitoring.drift import DriftThresholds, FeatureDrift
from modelpilot.registry.profile import TOP_CATEGORIES, FeatureProfile, ReferenceProfile
from modelpilot.registry.profile_formats import LEGACY_OTHER

SEEDS = 20
ALARMS = 2
"""At most this many of ``SEEDS`` windows drawn as the reference was may drift: at the tests'
level (0.01) three or more in twenty happen about once in a thousand runs."""


def names(prefix: str, count: int) -> np.ndarray:
    return np.array([f"{prefix}{i:04d}" for i in range(count)], dtype=object)


def judged(profile: ReferenceProfile, window: np.ndarray) -> FeatureDrift:
    binning = ProfileBinning(profile)
    rows = window.reshape(-1, 1)
    counts, sums = binning.count(rows)
    return binning.report(counts, sums, rows, DriftThresholds()).features[0]


def profiled(values: np.ndarray, name: str = "city") -> ReferenceProfile:
    return ReferenceProfile.from_data(pd.DataFrame({name: values}))


CITIES = names("city", 500)


@pytest.fixture(scope="module")
def cities() -> ReferenceProfile:
    return profiled(np.random.default_rng(0).choice(CITIES, 5000))


def test_every_one_of_500_cities_is_named_and_a_value_outside_them_is_unseen(
    cities: ReferenceProfile,
) -> None:
    feature = cities.feature("city")
    assert len(feature.categories) == 500 and feature.other is None
    assert not feature.held_out and feature.count == 5000
    bins = categorical_bins(0, 0, feature)
    assert not bins.tail and bins.labels[-2:] == ["unseen", "missing"]
    assert len(bins.codes) == 500  # none pooled: there is no tail to pool them with


@pytest.mark.parametrize("rows", [999, 5000])  # a test decides; an effect size decides
def test_one_city_drifts_from_500_equally_common_ones(cities: ReferenceProfile, rows: int) -> None:
    """It read "city ok js 0.0000": every city had been pooled with the tail, and so had the
    window's rows."""
    one = judged(cities, np.full(rows, "city0000", dtype=object))
    assert one.drifted, one.reason


@pytest.mark.parametrize("rows", [999, 5000])
def test_cities_the_reference_never_held_drift_from_500_equally_common_ones(
    cities: ReferenceProfile, rows: int
) -> None:
    """Under 1,000 rows each of 500 cities is too rare for chi-squared, and Fisher's test
    pooled the rare cities with the unseen bin: 100% against 100%, p = 1. The unseen values
    are also tested on their own."""
    new = judged(cities, np.random.default_rng(1).choice(names("new", 50), rows))
    assert new.drifted and new.unseen_share == 1.0, new.reason


@pytest.mark.parametrize("rows", [999, 5000])
def test_windows_drawn_as_500_cities_were_drift_at_about_the_tests_level(
    cities: ReferenceProfile, rows: int
) -> None:
    rng = np.random.default_rng(rows)
    alarms = [judged(cities, rng.choice(CITIES, rows)) for _ in range(SEEDS)]
    assert sum(f.drifted for f in alarms) <= ALARMS, [f.reason for f in alarms if f.drifted]


TOWNS = names("town", 3000)
"""More than a profile names: 3,000 about equally common values."""


def towns_reference(seed: int, sorted_rows: bool) -> ReferenceProfile:
    values = np.random.default_rng(seed).choice(TOWNS, 30_000)
    return profiled(np.sort(values) if sorted_rows else values, "town")


def test_a_tail_is_chosen_on_half_of_the_rows_and_counted_on_the_other() -> None:
    values = np.random.default_rng(2).choice(TOWNS, 30_001).astype(object)
    values[::100] = None
    feature = profiled(values, "town").feature("town")
    assert feature.held_out and len(feature.categories) == TOP_CATEGORIES
    # count and missing are of the counted rows, as the category counts are.
    assert feature.other is not None
    named = sum(feature.categories.values())
    assert feature.count == 15_001 == named + feature.other + feature.missing
    assert 100 < feature.missing < 200
    # Chosen for their counts in other rows, the named towns hold about their share of these
    # (a third), not the lucky half they held where they were chosen.
    assert named / (feature.count - feature.missing) == pytest.approx(1 / 3, abs=0.02)
    bins = categorical_bins(0, 0, feature)
    assert bins.tail and len(bins.codes) == TOP_CATEGORIES  # none pooled by trusted_count
    assert not bins.fold_rare  # nor folded into the tail by the tests
    restored = FeatureProfile.from_dict(feature.to_dict())
    assert restored == feature and restored.held_out


@pytest.mark.parametrize("sorted_rows", [False, True])
def test_windows_drawn_as_3000_towns_were_do_not_drift(sorted_rows: bool) -> None:
    """Rows sorted by the feature would make every other row a copy of its neighbour, the
    choosing half of the counting one: the halves are drawn instead."""
    reference = towns_reference(3, sorted_rows)
    rng = np.random.default_rng(4)
    alarms = [judged(reference, rng.choice(TOWNS, rows)) for rows in [999, 5000] * (SEEDS // 2)]
    assert sum(f.drifted for f in alarms) <= ALARMS, [f.reason for f in alarms if f.drifted]


@pytest.mark.parametrize("rows", [999, 5000])
def test_a_shift_to_a_few_of_3000_towns_drifts(rows: int) -> None:
    reference = towns_reference(5, sorted_rows=False)
    named = list(reference.feature("town").categories)
    pooled = sorted(set(TOWNS) - set(named))
    rng = np.random.default_rng(6)
    for few in (named[:5], pooled[:5]):
        feature = judged(reference, rng.choice(np.array(few, dtype=object), rows))
        assert feature.drifted, (few, feature.reason)


def test_a_profile_stored_before_the_halves_still_pools_the_towns_near_its_cut() -> None:
    """Profiles in users' registries counted their named categories on the rows that chose
    them; they keep the guard against that luck (``trusted_count``)."""
    counts = {f"city{i:03d}": 110 - i for i in range(100)}  # 110 down to 11
    stored = {
        "name": "city",
        "kind": "categorical",
        "count": 10_000,
        "missing": 7,
        "categories": {**counts, LEGACY_OTHER: 10_000 - 7 - sum(counts.values())},
    }
    feature = FeatureProfile.from_dict(stored)
    assert not feature.held_out
    bins = categorical_bins(0, 0, feature)
    trusted = trusted_count(11)
    kept = {name: n for name, n in counts.items() if n >= trusted}
    assert 0 < len(kept) < len(counts)
    assert bins.tail and bins.labels == [*kept, "other", "missing"]
    assert bins.reference.tolist() == [*kept.values(), 10_000 - 7 - sum(kept.values()), 7]
    assert bins.fold_rare  # and the tests fold its rare named categories into the tail


def test_a_stored_profile_that_pools_every_category_says_so() -> None:
    """An old profile of many about equally common categories had them all pooled by that
    guard: its verdict reads "ok" whatever the categories do, so the finding says why and
    what to do (an upgraded server gave "JS 0.000, p = 1" on traffic of 30 of 300 cities)."""
    rng = np.random.default_rng(1)
    reference = rng.choice(names("city", 300), 3000)
    top = pd.Series(reference).value_counts().iloc[:100]
    stored = FeatureProfile.from_dict(
        {
            "name": "city",
            "kind": "categorical",
            "count": 3000,
            "missing": 0,
            "categories": {**top.to_dict(), LEGACY_OTHER: 3000 - int(top.sum())},
        }
    )
    assert not categorical_bins(0, 0, stored).codes  # every named one pooled
    old = ReferenceProfile((stored,), 3000, sample=[])
    feature = judged(old, rng.choice(names("city", 30), 500))
    assert not feature.drifted
    assert "register the version again" in feature.reason
    assert "register the version again" not in judged(profiled(reference), reference[:500]).reason
