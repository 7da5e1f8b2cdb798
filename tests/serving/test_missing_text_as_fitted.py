"""A missing text reaches the model as it was fitted on one: NaN, as pandas reads an empty
cell of a CSV, or None where registration found that the model knows None alone.

scikit-learn's ``SimpleImputer`` finds NaN in a column of objects but passes None on, to an
encoder that ignores categories it never saw. Served as None, a missing city of a pipeline
fitted on a CSV was answered as a city it never saw (over REST and gRPC), and ``modelpilot
predict`` answered such a row by the chunk it fell in (``--batch-size 1`` otherwise).
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

from modelpilot.protocol.json_codec import decode_request
from modelpilot.protocol.rows import request_from_records
from modelpilot.protocol.types import InferenceRequest, Tensor
from modelpilot.registry.store import Registry
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.cli.conftest import Run
from tests.conftest import make_settings


def shop(rows: int, seed: int) -> pd.DataFrame:
    """Orders whose city is missing in one row of five; the label leans on that."""
    rng = np.random.default_rng(seed)
    city = pd.Series(rng.choice(["paris", "berlin", "rome"], rows), dtype=object)
    city[rng.random(rows) < 0.2] = np.nan
    return pd.DataFrame(
        {"color": rng.choice(["red", "blue"], rows), "city": city, "size": rng.normal(size=rows)}
    )


def label(frame: pd.DataFrame) -> np.ndarray:
    return np.where(frame["city"].isna() | (frame["size"] > 1), "yes", "no")


def imputing() -> Pipeline:
    city = Pipeline(
        [
            ("imp", SimpleImputer(strategy="constant", fill_value="missing")),
            ("oh", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    encode = ColumnTransformer(
        [("color", OneHotEncoder(), ["color"]), ("city", city, ["city"])],
        remainder="passthrough",
    )
    return make_pipeline(encode, LogisticRegression())


ROW = {"color": "red", "size": 0.0}
"""A row whose city is missing: answered "yes" (most of the training rows without a city
were), where a city the model never saw is answered "no"."""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline fitted on its training CSV as pandas reads it (NaN for an empty city),
    and that CSV, its label ``y`` beside."""
    folder = tmp_path_factory.mktemp("missing-text")
    shop(600, seed=0).pipe(lambda f: f.assign(y=label(f))).to_csv(folder / "train.csv", index=False)
    train = pd.read_csv(folder / "train.csv")
    model = imputing().fit(train.drop(columns="y"), train["y"])
    joblib.dump(model, folder / "shop.joblib")
    return folder


def answer(files: Path, city: object) -> np.ndarray:
    """The pipeline's own probabilities for ``ROW`` with ``city``, in a column of objects."""
    frame = pd.DataFrame({**ROW, "city": pd.Series([city], dtype=object)})
    model = joblib.load(files / "shop.joblib")
    return np.asarray(model.predict_proba(frame[["color", "city", "size"]]))


@pytest.fixture(params=[False, True], ids=["scikit-learn", "onnx"])
async def engine(
    request: pytest.FixtureRequest, registry: Registry, files: Path
) -> AsyncIterator[InferenceEngine]:
    register_model(
        registry, "shop", files / "shop.joblib", reference=files / "train.csv", target="y"
    )
    engine = InferenceEngine(registry, make_settings(registry, onnx=request.param))
    await engine.start()
    yield engine
    await engine.stop()


def test_the_missing_city_is_not_the_unknown_citys(files: Path) -> None:
    """(What the tests below tell apart.)"""
    missing, unseen = answer(files, np.nan), answer(files, "atlantis")
    assert abs(missing[0, 1] - unseen[0, 1]) > 0.05
    np.testing.assert_allclose(answer(files, None), unseen)  # None passes the imputer


def test_registration_finds_the_model_imputes_nan(registry: Registry, files: Path) -> None:
    version = register_model(
        registry, "shop", files / "shop.joblib", reference=files / "train.csv", target="y"
    )
    assert version.signature.extra["missing_text"] is True
    assert "missing_text_as_none" not in version.signature.extra
    train = pd.read_csv(files / "train.csv")
    model = joblib.load(files / "shop.joblib")
    expected = float(np.mean(model.predict(train.drop(columns="y")) == train["y"]))
    assert version.metadata["reference_metrics"]["accuracy"] == pytest.approx(expected)


async def test_a_null_city_is_answered_as_the_pipeline_answers_a_missing_one(
    engine: InferenceEngine, files: Path
) -> None:
    expected = answer(files, np.nan)
    body = {
        "inputs": [
            {"name": "color", "datatype": "BYTES", "shape": [1], "data": ["red"]},
            {"name": "city", "datatype": "BYTES", "shape": [1], "data": [None]},
            {"name": "size", "datatype": "FP64", "shape": [1], "data": [0.0]},
        ]
    }
    requests = {
        "v2 JSON": decode_request(json.dumps(body).encode()),
        "/predict records": request_from_records([{**ROW, "city": None}]),
        # Over gRPC and binary tensors, where a BYTES tensor holds no null: the feature of
        # a request whose every row misses it, as numbers (NaN), as the README says.
        "a column of NaN": InferenceRequest(
            inputs=[
                Tensor("color", "BYTES", (1,), np.array([b"red"], dtype=object)),
                Tensor("city", "FP64", (1,), np.array([np.nan])),
                Tensor("size", "FP64", (1,), np.array([0.0])),
            ]
        ),
    }
    for way, request in requests.items():
        response = await engine.infer("shop", request)
        proba = {t.name: t.data for t in response.outputs}["predict_proba"]
        np.testing.assert_allclose(proba, expected, rtol=1e-4, err_msg=way)
    # Beside rows with a city, in one request and one batch.
    records = [{**ROW, "city": None}, {**ROW, "city": "paris"}]
    response = await engine.infer("shop", request_from_records(records))
    proba = {t.name: t.data for t in response.outputs}["predict_proba"]
    np.testing.assert_allclose(proba[:1], expected, rtol=1e-4)
    np.testing.assert_allclose(proba[1:], answer(files, "paris"), rtol=1e-4)


@pytest.mark.parametrize("batch_size", ["1", "10000"])
def test_predict_answers_an_empty_cell_alike_in_any_chunk(
    run: Run, files: Path, tmp_path: Path, batch_size: str
) -> None:
    register = ("register", "shop", str(files / "shop.joblib"), "--reference")
    assert run(*register, str(files / "train.csv"), "--target", "y").exit_code == 0
    rows = tmp_path / "rows.csv"
    rows.write_text("color,city,size\nred,,0\nred,paris,0\n")
    out = tmp_path / "out.csv"
    result = run("predict", "shop", str(rows), "-o", str(out), "--batch-size", batch_size)
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out)
    np.testing.assert_allclose(scored.iloc[0, 1:].to_numpy(float), answer(files, np.nan)[0])
    np.testing.assert_allclose(scored.iloc[1, 1:].to_numpy(float), answer(files, "paris")[0])


async def test_a_model_fitted_on_none_is_served_none(registry: Registry, tmp_path: Path) -> None:
    """An encoder fitted on None (a DataFrame of records, Parquet read by pandas 2) knows
    None as a category of its own, and NaN as none it saw."""
    train = shop(600, seed=3)
    train["city"] = train["city"].astype(object).where(train["city"].notna(), None)
    encode = ColumnTransformer(
        [("text", OneHotEncoder(handle_unknown="ignore"), ["color", "city"])],
        remainder="passthrough",
    )
    model = make_pipeline(encode, LogisticRegression()).fit(train, label(train))
    joblib.dump(model, tmp_path / "none.joblib")
    version = register_model(
        registry,
        "none",
        tmp_path / "none.joblib",
        reference=train.assign(y=label(train)),
        target="y",
    )
    assert version.signature.extra["missing_text_as_none"] is True
    frame = pd.DataFrame({**ROW, "city": pd.Series([None], dtype=object)})
    expected = model.predict_proba(frame[["color", "city", "size"]])
    engine = InferenceEngine(registry, make_settings(registry, onnx=False))
    await engine.start()
    try:
        response = await engine.infer("none", request_from_records([{**ROW, "city": None}]))
    finally:
        await engine.stop()
    proba = {t.name: t.data for t in response.outputs}["predict_proba"]
    np.testing.assert_allclose(proba, expected)
