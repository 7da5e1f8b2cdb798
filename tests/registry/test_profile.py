"""Reference profiles: numbers, categories, constants and gaps, all JSON-safe."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modelpilot.registry.profile import FeatureProfile, ReferenceProfile


def test_numeric_categorical_constant_and_missing_columns() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(10, 2, size=1000),
            "colour": rng.choice(["red", "green", "blue"], size=1000),
            "constant": np.full(1000, 3.0),
            "empty": np.full(1000, np.nan),
            "gappy": np.where(rng.random(1000) < 0.1, np.nan, 1.0),
        }
    )
    profile = ReferenceProfile.from_data(frame)
    assert profile.n_rows == 1000 and len(profile.sample) == 256
    x = profile.feature("x")
    assert x.kind == "numeric" and abs(x.mean - 10) < 0.3 and abs(x.std - 2) < 0.2  # type: ignore[operator]
    assert sum(x.bin_counts) == 1000 and len(x.bin_edges) == 11
    assert x.quantiles[x.quantile_levels.index(0.5)] == x.quantiles[7]
    colour = profile.feature("colour")
    assert colour.kind == "categorical" and sum(colour.categories.values()) == 1000
    constant = profile.feature("constant")
    assert constant.bin_edges == (3.0, 3.0) and constant.bin_counts == (1000,)
    assert constant.std == 0.0
    empty = profile.feature("empty")
    assert (empty.missing, empty.mean, empty.bin_counts) == (1000, None, ())
    assert profile.feature("gappy").missing > 50
    text = json.dumps(profile.to_dict(), allow_nan=False)  # no NaN or infinity anywhere
    assert ReferenceProfile.from_dict(json.loads(text)) == profile


def test_many_categories_fold_into_other() -> None:
    frame = pd.DataFrame({"id": [f"user{i % 1500}" for i in range(3000)]})
    feature = ReferenceProfile.from_data(frame).feature("id")
    categories = feature.categories
    assert len(categories) == 1000 and feature.other and feature.held_out
    assert sum(categories.values()) + feature.other == feature.count == 1500  # the other half


def test_arrays_get_positional_names_or_given_ones() -> None:
    data = np.arange(20.0).reshape(10, 2)
    assert ReferenceProfile.from_data(data).feature_names == ["0", "1"]
    named = ReferenceProfile.from_data(data, feature_names=["a", "b"])
    assert named.feature_names == ["a", "b"]
    np.testing.assert_array_equal(named.sample_array(), data)


def test_the_pooled_tail_is_kept_apart_from_the_categories() -> None:
    """A value "__other__" is a category like any; the pooled tail is ``other``, stored under
    a key of its own that every categorical profile now holds (null where none)."""
    values = pd.Series(["__other__", "a", "b", "a"], dtype=object)
    feature = FeatureProfile.categorical("c", values)
    assert feature.categories == {"a": 2, "__other__": 1, "b": 1} and feature.other is None
    stored = json.loads(json.dumps(feature.to_dict()))
    assert "other" in stored and stored["other"] is None
    assert FeatureProfile.from_dict(stored) == feature


def stored_before(categories: dict[str, int], **rest: object) -> FeatureProfile:
    """A categorical profile as earlier releases stored it: no "other" key."""
    count = sum(categories.values())
    return FeatureProfile.from_dict(
        {
            "name": "c",
            "kind": "categorical",
            "count": count,
            "missing": 0,
            "categories": categories,
            **rest,
        }
    )


NAMED_100 = {f"c{i}": 200 - i for i in range(100)}


@pytest.mark.parametrize(
    ("categories", "rest", "pooled"),
    [
        # The releases that chose on halves: a tail in a held-out profile alone.
        ({"__other__": 100, "a": 450, "b": 450}, {"held_out": False}, None),
        ({**NAMED_100, "__other__": 5000}, {"held_out": True}, 5000),
        ({**NAMED_100, "__other__": 0}, {"held_out": True}, 0),
        # The first releases: a tail past their 100 named categories alone.
        ({"__other__": 100, "a": 450, "b": 450}, {}, None),
        ({**NAMED_100, "__other__": 5000}, {}, 5000),
    ],
)
def test_profiles_stored_by_earlier_releases_are_read_as_they_meant(
    categories: dict[str, int], rest: dict[str, object], pooled: int | None
) -> None:
    """Earlier releases stored the pooled tail as the category "__other__": it is read as a
    tail where that release could have pooled, else as the value it was."""
    feature = stored_before(categories, **rest)
    assert feature.other == pooled
    named = {k: v for k, v in categories.items() if pooled is None or k != "__other__"}
    assert feature.categories == named
    assert FeatureProfile.from_dict(feature.to_dict()) == feature  # and stored anew as read
