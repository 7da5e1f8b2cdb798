"""A reference column stored as float32 is remembered so by its profile, through the registry,
and profiles written before that read as they were (see ``FeatureProfile.float32``)."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model


def frame(rows: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    k = rng.choice([0.1, 0.3, 0.7], rows)
    return pd.DataFrame(
        {
            "f32": k.astype(np.float32),
            "nullable": pd.array(np.where(rng.random(rows) < 0.1, np.nan, k), dtype="Float32"),
            "f64": k,
            "ints": rng.integers(0, 9, rows),
        }
    )


def test_float32_columns_make_float32_profiles_and_others_do_not() -> None:
    profile = ReferenceProfile.from_data(frame())
    assert [f.float32 for f in profile.features] == [True, True, False, False]
    nullable = profile.feature("nullable")
    assert nullable.missing > 0 and nullable.bin_edges[0] == float(np.float32(0.1))
    array = ReferenceProfile.from_data(frame()[["f32"]].to_numpy())  # a float32 array too
    assert array.features[0].float32


def test_the_registry_keeps_a_float32_profile(registry: Registry, tmp_path: Path) -> None:
    reference = frame()[["f32", "f64"]]
    joblib.dump(LinearRegression().fit(reference, reference.f64), tmp_path / "lr.joblib")
    reference.to_parquet(tmp_path / "reference.parquet")
    version = register_model(
        registry, "lr", tmp_path / "lr.joblib", reference=tmp_path / "reference.parquet"
    )
    profile = registry.reference_profile("lr", version.version)
    assert profile is not None and [f.float32 for f in profile.features] == [True, False]


def test_a_profile_written_before_reads_and_bins_as_it_did() -> None:
    """A stored profile without ``float32`` (a registry of an earlier version) is float64,
    and its windows are counted as they were: register the version again to change that."""
    stored = json.loads(json.dumps(ReferenceProfile.from_data(frame()).to_dict()))
    assert stored["features"][0]["float32"] is True
    for feature in stored["features"]:
        feature.pop("float32", None)
    old = ReferenceProfile.from_dict(stored)
    assert not any(f.float32 for f in old.features)
    window = frame().astype({"f32": np.float64, "nullable": np.float64}).to_numpy()
    window[:, :2] = window[:, 2:3]  # the float64 numbers the float32 ones were made of
    counts, _ = ProfileBinning(old).count(window)
    first = np.array(old.features[0].bin_counts)
    assert counts[0] == first[0]  # the 0.1s below the float32 0.1, as before
    new, _ = ProfileBinning(ReferenceProfile.from_data(frame())).count(window)
    assert new[1 : first.size + 1].tolist() == first.tolist()
