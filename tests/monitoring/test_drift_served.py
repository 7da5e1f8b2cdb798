"""Drift of a served pipeline with text, number and boolean features, read from /metrics."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored

P_VALUE = "modelpilot_feature_drift_p_value"


def club(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "color": rng.choice(["red", "blue", "green"], rows, p=[0.5, 0.3, 0.2]),
            "size": rng.normal(size=rows),
            "member": rng.random(rows) < 0.4,
        }
    )


@pytest.fixture
def club_registry(registry: Registry, tmp_path: Path) -> Registry:
    """A pipeline that one-hot encodes ``color`` and passes ``size`` and the boolean
    ``member`` through, registered with its training rows as the reference."""
    reference = club(600, seed=0)
    encode = ColumnTransformer(
        [("color", OneHotEncoder(handle_unknown="ignore"), ["color"])], remainder="passthrough"
    )
    labels = (reference["size"] + reference["member"] > 0.5).astype(int)
    joblib.dump(make_pipeline(encode, LogisticRegression()).fit(reference, labels), tmp_path / "m")
    register_model(registry, "club", tmp_path / "m", flavor="sklearn", reference=reference)
    return registry


async def metrics_after(registry: Registry, rows: pd.DataFrame) -> tuple[dict[str, str], dict]:
    """Send ``rows`` as records (JSON booleans and all), and read /metrics (by series) and
    the version's drift report."""
    async with monitored(registry, drift_window_rows=1000) as served:
        for start in range(0, len(rows), 25):
            part = rows.iloc[start : start + 25].to_dict("records")
            reply = await served.client.post("/predict/club", json={"instances": part})
            assert reply.status_code == 200, reply.text
        served.monitor.flush()
        text = (await served.client.get("/metrics")).text
        drift = (await served.client.get("/api/monitoring/club")).json()["drift"]
    series = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("model"))
    return series, drift


def labels(feature: str) -> str:
    return f'{{feature="{feature}",model="club",version="1"}}'


async def test_a_served_boolean_feature_does_not_drift_on_traffic_like_the_reference(
    club_registry: Registry,
) -> None:
    """The server reads a boolean as 1.0 and 0.0; it was counted as a category the
    reference never held, and flagged (JS 1.0) on every window."""
    series, drift = await metrics_after(club_registry, club(300, seed=1))
    assert series[f"modelpilot_feature_drifted{labels('member')}"] == "0.0", drift
    member = next(f for f in drift["features"] if f["name"] == "member")
    assert member["unseen_share"] == 0.0 and member["js_distance"] < 0.1


async def test_the_exported_p_value_is_the_one_that_decided(club_registry: Registry) -> None:
    """A feature drifted by its rare categories' test (new values, 8% of rows) exported the
    p-value of its other test, chi-squared's, near 1: "drifted" beside "p = 0.95"."""
    rows = club(300, seed=2)
    rows.loc[rows.index[::12], "color"] = "purple"
    series, drift = await metrics_after(club_registry, rows)
    color = next(f for f in drift["features"] if f["name"] == "color")
    assert color["drifted"] and color["method"] == "rare", color
    assert float(series[f"{P_VALUE}{labels('color')}"]) == color["rare_p_value"] < 1e-6
    size = next(f for f in drift["features"] if f["name"] == "size")
    assert float(series[f"{P_VALUE}{labels('size')}"]) == min(
        size["p_value"], size["missing_p_value"]
    )
