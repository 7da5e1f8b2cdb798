"""Missing text: taken where the model copes with it (found at registration), refused where not.

A pipeline that imputes its own missing categories (``SimpleImputer(strategy="constant")``
before a ``OneHotEncoder``) was fitted on rows whose text is missing: it could not be
registered with its own training data, nor sent a null, though it answers them. Registration
now asks the model, as it does for missing numbers, and says what it found in the signature.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelpilot.errors import InvalidInput
from modelpilot.protocol.json_codec import decode_request
from modelpilot.protocol.rows import request_from_records
from modelpilot.protocol.types import InferenceRequest, Tensor
from modelpilot.registry.store import Registry
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.cli.conftest import Run
from tests.conftest import make_settings


def orders(rows: int, seed: int) -> pd.DataFrame:
    """Rows of two text features and a number; every seventh color missing."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "color": rng.choice(["red", "blue", "green"], rows).astype(object),
            "size": rng.choice(["s", "m", "l"], rows),
            "amount": rng.normal(size=rows),
        }
    )
    frame.loc[::7, "color"] = None
    return frame


def label(frame: pd.DataFrame) -> pd.Series:
    return ((frame["amount"] + (frame["color"] == "red")) > 0.5).astype(int)


def imputing() -> Pipeline:
    """Imputes a missing color as a category of its own; ``size`` is encoded strictly."""
    color = Pipeline(
        [
            ("imp", SimpleImputer(strategy="constant", fill_value="missing")),
            ("oh", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    encode = ColumnTransformer(
        [("color", color, ["color"]), ("size", OneHotEncoder(), ["size"])],
        remainder="passthrough",
    )
    return make_pipeline(encode, LogisticRegression())


def strict() -> Pipeline:
    """Refuses what it never saw, a missing value among it."""
    encode = ColumnTransformer(
        [("text", OneHotEncoder(handle_unknown="error"), ["color", "size"])],
        remainder="passthrough",
    )
    return make_pipeline(encode, LogisticRegression())


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The models' files and a reference CSV (with its holes, and a label ``y``)."""
    folder = tmp_path_factory.mktemp("nulls")
    frame = orders(400, seed=0)
    joblib.dump(imputing().fit(frame, label(frame)), folder / "imputing.joblib")
    complete = frame.assign(color=frame["color"].fillna("blue"))
    joblib.dump(strict().fit(complete, label(complete)), folder / "strict.joblib")
    frame.assign(y=label(frame)).to_csv(folder / "reference.csv", index=False)
    complete.assign(y=label(complete)).to_csv(folder / "complete.csv", index=False)
    return folder


@pytest.fixture
async def engine(registry: Registry, files: Path) -> AsyncIterator[InferenceEngine]:
    for name, reference in (("imputing", "reference.csv"), ("strict", "complete.csv")):
        model = files / f"{name}.joblib"
        register_model(registry, name, model, reference=files / reference, target="y")
    # scikit-learn itself: an ONNX graph takes no None in a string tensor.
    engine = InferenceEngine(registry, make_settings(registry, onnx=False))
    await engine.start()
    yield engine
    await engine.stop()


def test_a_model_that_imputes_its_text_registers_with_its_own_training_data(
    registry: Registry, files: Path
) -> None:
    """Refused before: 'feature 'color' is missing (null) in row 0, and the model takes text'."""
    version = register_model(
        registry,
        "imputing",
        files / "imputing.joblib",
        reference=files / "reference.csv",
        target="y",
    )
    assert version.signature.feature_datatypes == ("BYTES", "BYTES", "FP64")
    assert version.signature.extra["missing_text"] is True  # (serving.inputs.MISSING_TEXT)
    assert not version.signature.allow_nan  # numbers: the model was not found to cope
    assert version.metadata["reference_metrics"]["accuracy"] > 0.9
    profile = registry.reference_profile("imputing", 1)
    assert profile is not None and profile.feature("color").missing > 0


def test_a_model_that_does_not_cope_keeps_the_errors(registry: Registry, files: Path) -> None:
    strict_model = files / "strict.joblib"
    version = register_model(registry, "strict", strict_model, reference=files / "complete.csv")
    assert "missing_text" not in version.signature.extra
    with pytest.raises(InvalidInput, match="'color' is missing \\(null\\) in row 0, and the model"):
        register_model(registry, "strict", strict_model, reference=files / "reference.csv")


async def test_a_null_is_answered_where_the_model_copes_and_refused_where_not(
    engine: InferenceEngine, files: Path
) -> None:
    frame = orders(20, seed=1)
    expected = joblib.load(files / "imputing.joblib").predict_proba(frame)
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    response = await engine.infer("imputing", request_from_records(records))
    proba = {t.name: t.data for t in response.outputs}["predict_proba"]
    np.testing.assert_allclose(proba, expected)
    # A column of nulls alone comes as numbers (NaN): missing text all the same.
    nulls = [{**r, "color": None} for r in records[:3]]
    response = await engine.infer("imputing", request_from_records(nulls))
    assert response.outputs[0].shape == (3,)
    with pytest.raises(InvalidInput, match="'color' is missing \\(null\\) in row 0"):
        await engine.infer("strict", request_from_records(records))


async def test_a_bytes_tensor_with_a_null_as_a_v2_client_sends_it(
    engine: InferenceEngine, files: Path
) -> None:
    """``"data": ["red", null]`` of a BYTES input, as the JSON codec decodes it."""
    color = np.array([b"red", None], dtype=object)
    size = np.array([b"s", b"m"], dtype=object)
    amount = np.array([0.3, 1.2])
    inputs = [
        Tensor("color", "BYTES", color.shape, color),
        Tensor("size", "BYTES", size.shape, size),
        Tensor("amount", "FP64", amount.shape, amount),
    ]
    response = await engine.infer("imputing", InferenceRequest(inputs=inputs))
    frame = pd.DataFrame({"color": ["red", None], "size": ["s", "m"], "amount": amount})
    expected = joblib.load(files / "imputing.joblib").predict(frame)
    np.testing.assert_array_equal(response.outputs[0].data, expected)
    with pytest.raises(InvalidInput, match="'color' is missing \\(null\\) in row 1"):
        await engine.infer("strict", InferenceRequest(inputs=inputs))


def test_predict_scores_empty_text_cells_where_the_model_copes(
    run: Run, files: Path, tmp_path: Path
) -> None:
    for name, reference in (("imputing", "reference.csv"), ("strict", "complete.csv")):
        model, data = str(files / f"{name}.joblib"), str(files / reference)
        assert run("register", name, model, "--reference", data, "--target", "y").exit_code == 0
    frame = orders(30, seed=2)
    frame.to_parquet(tmp_path / "rows.parquet")
    result = run(
        "predict", "imputing", str(tmp_path / "rows.parquet"), "-o", str(tmp_path / "p.csv")
    )
    assert result.exit_code == 0, result.output
    expected = joblib.load(files / "imputing.joblib").predict(frame)
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "p.csv")["predict"], expected)
    result = run("predict", "strict", str(tmp_path / "rows.parquet"), "-o", str(tmp_path / "q.csv"))
    assert isinstance(result.exception, InvalidInput)
    assert "data row 1, column 'color' is empty, and the model takes text" in str(result.exception)


async def test_rows_with_missing_text_are_answered_by_scikit_learn_under_onnx(
    registry: Registry, tmp_path: Path
) -> None:
    frame = orders(400, seed=0)
    encode = ColumnTransformer(
        [("text", OneHotEncoder(handle_unknown="ignore"), ["color", "size"])],
        remainder="passthrough",
    )
    model = make_pipeline(encode, LogisticRegression()).fit(frame, label(frame))
    joblib.dump(model, tmp_path / "encoding.joblib")
    reference = frame.assign(y=label(frame))
    register_model(
        registry, "encoding", tmp_path / "encoding.joblib", reference=reference, target="y"
    )
    engine = InferenceEngine(registry, make_settings(registry))
    await engine.start()
    try:
        rows = orders(20, seed=1)
        records = rows.astype(object).where(rows.notna(), None).to_dict("records")
        response = await engine.infer("encoding", request_from_records(records))
    finally:
        await engine.stop()
    proba = {t.name: t.data for t in response.outputs}["predict_proba"]
    np.testing.assert_allclose(proba, model.predict_proba(rows), rtol=1e-4, atol=1e-5)


async def test_a_v2_json_null_of_bytes_data_reaches_the_model(
    engine: InferenceEngine, files: Path
) -> None:
    body = {
        "inputs": [
            {"name": "color", "datatype": "BYTES", "shape": [2], "data": ["red", None]},
            {"name": "size", "datatype": "BYTES", "shape": [2], "data": ["s", "m"]},
            {"name": "amount", "datatype": "FP64", "shape": [2], "data": [0.3, 1.2]},
        ]
    }
    response = await engine.infer("imputing", decode_request(json.dumps(body).encode()))
    frame = pd.DataFrame({"color": ["red", None], "size": ["s", "m"], "amount": [0.3, 1.2]})
    expected = joblib.load(files / "imputing.joblib").predict(frame)
    np.testing.assert_array_equal(response.outputs[0].data, expected)
