"""Which features a scikit-learn pipeline takes as text, followed through its column lists.

An encoder behind an imputer in a branch of a ColumnTransformer is fitted on a bare array and
knows no column names: the branch's column list says which features it encodes. Missed, a zip
code such as "02134" would be served as the number 2134.0, a category the model never saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from modelpilot.protocol.rows import request_from_records
from modelpilot.registry.store import Registry
from modelpilot.runtimes.convert import ATOL, RTOL
from modelpilot.runtimes.sklearn import SklearnRuntime
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings

TEXT = ["color", "city", "zip"]
FEATURES = [*TEXT, "age", "member"]


def customers(rows: int, seed: int) -> pd.DataFrame:
    """Text (zip codes with a leading zero among them) beside numbers."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "color": rng.choice(["red", "green", "blue"], rows),
            "city": [f"city_{i}" for i in rng.integers(0, 8, rows)],
            "zip": rng.choice(["02134", "10001", "94105"], rows),
            "age": rng.integers(18, 80, rows).astype(np.float64),
            "member": rng.integers(0, 2, rows).astype(np.float64),
        }
    )


def labels(frame: pd.DataFrame) -> np.ndarray:
    score = (frame["zip"] == "02134") * 1.5 + (frame["color"] == "red") + frame["age"] / 60
    return np.asarray(score > 1.6, dtype=np.int64)


def imputed(encoder: Any) -> Pipeline:
    """The categorical branch users write: missing text filled in, then encoded."""
    return Pipeline(
        [("fill", SimpleImputer(strategy="constant", fill_value="none")), ("code", encoder)]
    )


def fitted(columns: Any, *, remainder: Any = "drop", rest: Any = ("age",)) -> Any:
    encode = ColumnTransformer(
        [
            ("text", imputed(OneHotEncoder(handle_unknown="ignore")), columns),
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), list(rest)),
        ],
        remainder=remainder,
    )
    frame = customers(200, seed=0)
    return make_pipeline(encode, LogisticRegression(max_iter=500)).fit(frame, labels(frame))


@pytest.mark.parametrize(
    "columns",
    [
        TEXT,
        [0, 1, 2],
        np.array([True, True, True, False, False]),
        slice("color", "zip"),
        slice(0, 3),
        make_column_selector(dtype_exclude="number"),
    ],
    ids=["names", "positions", "mask", "label-slice", "slice", "selector"],
)
def test_the_columns_of_a_branch_that_encodes_text_are_text(columns: Any) -> None:
    runtime = SklearnRuntime(fitted(columns, remainder="passthrough", rest=[]))
    assert runtime.text_features() == tuple(TEXT)


def test_a_remainder_that_encodes_text_and_nested_branches_are_followed() -> None:
    """Text in ``remainder``, in a ColumnTransformer inside a branch's Pipeline, in a
    FeatureUnion; numbers passed through or scaled are not text."""
    # Given an array by the imputer before it, by position: zip, then age.
    inner = ColumnTransformer(
        [("zip", imputed(OrdinalEncoder()), [0]), ("age", "passthrough", [1])]
    )
    union = FeatureUnion([("codes", imputed(OneHotEncoder()))])
    encode = ColumnTransformer(
        [
            ("inner", make_pipeline(SimpleImputer(strategy="most_frequent"), inner), [2, 3]),
            ("union", union, ["city"]),
            ("member", "passthrough", ["member"]),
        ],
        remainder=imputed(OneHotEncoder(handle_unknown="ignore")),  # color
    )
    frame = customers(200, seed=1)
    model = make_pipeline(encode, LogisticRegression(max_iter=500)).fit(frame, labels(frame))
    assert set(SklearnRuntime(model).text_features()) == set(TEXT)


async def test_a_zip_code_is_served_as_the_text_the_pipeline_was_fitted_on(
    registry: Registry, tmp_path: Path
) -> None:
    """Registered from a CSV reference (where "02134" reads as a number unless the model
    says it is text) and without one: each text feature is BYTES, and the served
    probabilities are the pipeline's on a DataFrame of the same strings."""
    model = fitted(TEXT, rest=["age", "member"])
    joblib.dump(model, tmp_path / "customers.joblib")
    reference = customers(300, seed=2)
    reference.assign(bought=labels(reference)).to_csv(tmp_path / "customers.csv", index=False)
    register_model(
        registry, "csv", tmp_path / "customers.joblib", reference=tmp_path / "customers.csv"
    )
    register_model(registry, "bare", tmp_path / "customers.joblib")
    frame = customers(60, seed=3)
    assert (frame["zip"] == "02134").any()
    expected = model.predict_proba(frame)
    engine = InferenceEngine(registry, make_settings(registry))
    await engine.start()
    try:
        for name in ("csv", "bare"):
            signature = (await engine.get_model(name)).version.signature
            assert signature.feature_names == tuple(FEATURES)
            assert signature.feature_datatypes == ("BYTES",) * 3 + ("FP64",) * 2
            response = await engine.infer(name, request_from_records(frame.to_dict("records")))
            proba = {t.name: t.data for t in response.outputs}["predict_proba"]
            np.testing.assert_allclose(proba, expected, rtol=RTOL, atol=ATOL)
    finally:
        await engine.stop()
