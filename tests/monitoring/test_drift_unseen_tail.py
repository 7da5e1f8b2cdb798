"""A feature of more categories than a profile names: a column of values the reference never
held drifts, fresh rows drawn as the reference was do not.

A tester's customer ids (14,600 distinct in 20,000 rows, about equally rare): the profile
named the 1,000 most frequent and pooled the rest, and a value outside the named ones counted
with that tail, so a window of nothing but fresh UUIDs read JS 0.13 (under fresh rows' 0.15)
and "ok". The profile now keeps a sketch of the tail's values: a value outside both is new.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import DriftThresholds, FeatureDrift
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import FeatureProfile, ReferenceProfile
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored

VOCABULARY = 32_000
WEIGHTS = 1.0 / np.arange(1, VOCABULARY + 1) ** 0.25
IDS = np.array([f"id{i:06d}" for i in range(VOCABULARY)], dtype=object)


def customers(rows: int, seed: int) -> pd.DataFrame:
    """Ids of a flat Zipf law (20,000 rows hold about 14,600 of them) and two numbers."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer": IDS[rng.choice(VOCABULARY, rows, p=WEIGHTS / WEIGHTS.sum())],
            "amount": rng.normal(size=rows),
            "age": rng.normal(40, 10, size=rows),
        }
    )


def fresh_uuids(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = [
        str(uuid.UUID(int=int(rng.integers(2**62)) << 64 | int(rng.integers(2**62))))
        for _ in range(len(frame))
    ]
    return frame.assign(customer=np.array(ids, dtype=object))


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return customers(20_000, seed=0)


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame) -> ReferenceProfile:
    return ReferenceProfile.from_data(reference)


def judged(profile: ReferenceProfile, window: pd.DataFrame) -> FeatureDrift:
    binning = ProfileBinning(profile)
    rows = window.to_numpy(dtype=object)
    counts, sums = binning.count(rows)
    return binning.report(counts, sums, rows, DriftThresholds()).features[0]


@pytest.mark.parametrize("rows", [500, 2_000])  # a test decides; Jensen-Shannon decides
def test_a_column_of_new_ids_drifts_where_the_reference_pooled_its_tail(
    profile: ReferenceProfile, rows: int
) -> None:
    customer = profile.feature("customer")
    assert customer.held_out and len(customer.categories) == 1_000
    new = judged(profile, fresh_uuids(customers(rows, seed=1), seed=2))
    assert new.drifted, new.reason
    assert "never had" in new.reason or "unseen values" in new.reason
    assert new.js_distance > 0.3
    assert new.unseen_share > 0.95  # all new, less the sketch's 1% of false "held"


@pytest.mark.parametrize("seed", range(1, 6))
def test_fresh_ids_drawn_as_the_reference_was_do_not_drift(
    profile: ReferenceProfile, seed: int
) -> None:
    """Half of them are ids the reference never held (its ids held once foretell as much):
    no drift, and the unseen share is near that."""
    fresh = judged(profile, customers(1_000, seed=seed))
    assert not fresh.drifted, fresh.reason
    assert 0.4 < fresh.unseen_share < 0.65


def test_a_profile_stored_before_the_sketch_reads_as_it_did(profile: ReferenceProfile) -> None:
    """Without the sketch a value outside the named categories counts with the tail: unseen
    unknown (null in the API), and the new ids read no more than the named share's move."""
    stored = profile.to_dict()
    for feature in stored["features"]:
        feature.pop("tail_sketch", None)
    old = ReferenceProfile.from_dict(stored)
    assert FeatureProfile.from_dict(stored["features"][0]).tail_sketch is None
    new = judged(old, fresh_uuids(customers(500, seed=1), seed=2))
    assert np.isnan(new.unseen_share) and new.js_distance < 0.19


def test_modelpilot_drift_of_two_files_tells_new_ids(reference: pd.DataFrame) -> None:
    profile = ReferenceProfile.from_data(reference)
    current = fresh_uuids(customers(2_000, seed=3), seed=4)
    found = compare(profile, [current.iloc[:1_000], current.iloc[1_000:]], reference=reference)
    customer = found.report.features[0]
    assert customer.name == "customer" and customer.drifted, customer.reason
    same = compare(profile, [customers(2_000, seed=5)], reference=reference)
    assert not same.report.features[0].drifted, same.report.features[0].reason


@pytest.fixture
def customer_registry(registry: Registry, tmp_path: Path, reference: pd.DataFrame) -> Registry:
    """A pipeline that one-hot encodes the customer id (unknown ids ignored) beside the two
    numbers, registered with its training rows as the reference."""
    encode = ColumnTransformer(
        [("customer", OneHotEncoder(handle_unknown="ignore"), ["customer"])],
        remainder="passthrough",
    )
    labels = (reference["amount"] > 0).astype(int)
    joblib.dump(make_pipeline(encode, LogisticRegression()).fit(reference, labels), tmp_path / "m")
    register_model(registry, "churn", tmp_path / "m", flavor="sklearn", reference=reference)
    return registry


async def drift_after(registry: Registry, rows: pd.DataFrame) -> dict:
    async with monitored(registry, drift_window_rows=1000) as served:
        for start in range(0, len(rows), 50):
            part = rows.iloc[start : start + 50].to_dict("records")
            reply = await served.client.post("/predict/churn", json={"instances": part})
            assert reply.status_code == 200, reply.text
        served.monitor.flush()
        drift = (await served.client.get("/api/monitoring/churn")).json()["drift"]
    return next(f for f in drift["features"] if f["name"] == "customer")


async def test_a_served_column_of_new_ids_drifts_and_fresh_ids_do_not(
    customer_registry: Registry,
) -> None:
    fresh = await drift_after(customer_registry, customers(1_000, seed=6))
    assert not fresh["drifted"] and 0.4 < fresh["unseen_share"] < 0.65, fresh
    new = await drift_after(customer_registry, fresh_uuids(customers(1_000, seed=7), seed=8))
    assert new["drifted"] and new["unseen_share"] > 0.95, new
