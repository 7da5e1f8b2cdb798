"""Reference profiles: numbers, categories, constants and gaps, all JSON-safe."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from modelpilot.registry.profile import OTHER, ReferenceProfile


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
    assert len(categories) == 1001 and categories[OTHER] > 0 and feature.held_out
    assert sum(categories.values()) == feature.count == 1500  # counted on the other half


def test_arrays_get_positional_names_or_given_ones() -> None:
    data = np.arange(20.0).reshape(10, 2)
    assert ReferenceProfile.from_data(data).feature_names == ["0", "1"]
    named = ReferenceProfile.from_data(data, feature_names=["a", "b"])
    assert named.feature_names == ["a", "b"]
    np.testing.assert_array_equal(named.sample_array(), data)
