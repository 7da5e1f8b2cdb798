"""A pipeline that encodes a text feature itself: registered, served and watched.

The most common scikit-learn pipeline one-hot encodes a column of strings. Such a model takes
rows of numbers beside text, which no single tensor can carry: each feature is then sent as a
tensor of its own kind, and the engine hands the model a DataFrame as it was fitted on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelpilot.errors import InvalidInput
from modelpilot.protocol.rows import request_from_records, request_from_rows
from modelpilot.protocol.types import InferenceRequest, Tensor
from modelpilot.registry.signature import Signature
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.runtimes.convert import ATOL, RTOL, ConvertedRuntime
from modelpilot.runtimes.sklearn import SklearnRuntime
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import COLORS, bought, make_settings, shop_frame
from tests.monitoring.conftest import monitored


@pytest.fixture
def shop(registry: Registry, shop_files: tuple[Path, Path]) -> ModelVersion:
    model, reference = shop_files
    return register_model(registry, "shop", model, reference=reference, target="bought")


@pytest.fixture
async def engine(registry: Registry, shop: ModelVersion) -> AsyncIterator[InferenceEngine]:
    engine = InferenceEngine(registry, make_settings(registry))
    await engine.start()
    yield engine
    await engine.stop()


def by_feature(frame: pd.DataFrame) -> list[Tensor]:
    """One tensor per feature, as a v2 client sends them: BYTES for text."""
    color = np.array([c.encode() for c in frame["color"]], dtype=object)
    size = frame["size"].to_numpy(dtype=np.float64)
    count = frame["count"].to_numpy(dtype=np.int64)
    return [
        Tensor("color", "BYTES", color.shape, color),
        Tensor("size", "FP64", size.shape, size),
        Tensor("count", "INT64", count.shape, count),
    ]


def test_registration_keeps_each_features_kind_and_the_models_quality(
    registry: Registry, shop: ModelVersion
) -> None:
    signature = shop.signature
    assert signature.feature_names == ("color", "size", "count")
    assert signature.feature_datatypes == ("BYTES", "FP64", "FP64")
    assert signature.inputs[0].datatype == "BYTES"
    assert Signature.from_dict(signature.to_dict()) == signature
    # The model was scored on its reference: the quality that live labels are judged against.
    assert shop.metadata["reference_metrics"]["accuracy"] > 0.95
    reference = registry.reference_profile("shop", 1)
    assert reference is not None
    color = reference.feature("color")
    assert color.kind == "categorical"
    assert set(color.categories) == set(COLORS)


async def test_each_feature_sent_in_its_own_kind_gets_the_models_answer(
    engine: InferenceEngine, shop_files: tuple[Path, Path]
) -> None:
    frame = shop_frame(40, seed=1)
    expected = joblib.load(shop_files[0]).predict_proba(frame)
    response = await engine.infer("shop", InferenceRequest(inputs=by_feature(frame)))
    proba = {t.name: t.data for t in response.outputs}["predict_proba"]
    np.testing.assert_allclose(proba, expected, rtol=RTOL, atol=ATOL)
    # The same rows as records and as plain rows, the shapes /predict takes.
    records = frame.to_dict("records")
    for request in (request_from_records(records), request_from_rows(frame.values.tolist())):
        response = await engine.infer("shop", request)
        answered = {t.name: t.data for t in response.outputs}
        np.testing.assert_allclose(answered["predict_proba"], expected, rtol=RTOL, atol=ATOL)


async def test_without_a_reference_the_model_tells_which_features_are_text(
    registry: Registry, shop_files: tuple[Path, Path]
) -> None:
    """Its encoder was fitted on a column of strings: that feature is text, the others are
    numbers, as a reference would have said (before, it was registered as one FP64 tensor
    and could never be answered)."""
    bare = register_model(registry, "bare", shop_files[0])
    assert bare.signature.feature_datatypes == ("BYTES", "FP64", "FP64")
    engine = InferenceEngine(registry, make_settings(registry, onnx=False))
    await engine.start()
    try:
        frame = shop_frame(10, seed=2)
        response = await engine.infer("bare", request_from_records(frame.to_dict("records")))
        predicted = {t.name: t.data for t in response.outputs}["predict"]
        np.testing.assert_array_equal(predicted, joblib.load(shop_files[0]).predict(frame))
    finally:
        await engine.stop()


async def test_onnx_runtime_serves_it_after_parity_on_known_and_unseen_text(
    engine: InferenceEngine, shop_files: tuple[Path, Path]
) -> None:
    loaded = await engine.get_model("shop")
    assert isinstance(loaded.runtime, ConvertedRuntime)
    # A color the model never saw: ignored by its encoder, in the graph as in scikit-learn.
    frame = shop_frame(6, seed=5).assign(color=["purple", "red", "", "blue", "RED", "green"])
    response = await engine.infer("shop", request_from_records(frame.to_dict("records")))
    proba = {t.name: t.data for t in response.outputs}["predict_proba"]
    expected = joblib.load(shop_files[0]).predict_proba(frame)
    np.testing.assert_allclose(proba, expected, rtol=RTOL, atol=ATOL)


async def test_a_pipeline_that_refuses_unseen_text_keeps_scikit_learn(
    registry: Registry, tmp_path: Path
) -> None:
    """Its graph would answer for a category the pipeline refuses: the parity check's rows of
    unseen text find that out."""
    frame = shop_frame(300, seed=6)
    encode = ColumnTransformer([("color", OneHotEncoder(), ["color"])], remainder="passthrough")
    model = make_pipeline(encode, LogisticRegression()).fit(frame, bought(frame))
    joblib.dump(model, tmp_path / "strict.joblib")
    register_model(registry, "strict", tmp_path / "strict.joblib", reference=frame)
    engine = InferenceEngine(registry, make_settings(registry))
    await engine.start()
    try:
        assert isinstance((await engine.get_model("strict")).runtime, SklearnRuntime)
        records = frame.head(2).assign(color="purple").to_dict("records")
        with pytest.raises(InvalidInput, match="unknown categories"):
            await engine.infer("strict", request_from_records(records))
    finally:
        await engine.stop()


async def test_the_metadata_lists_one_input_per_feature_in_its_kind(
    engine: InferenceEngine,
) -> None:
    meta = await engine.metadata("shop")
    assert [(s.name, s.datatype, s.shape) for s in meta.inputs] == [
        ("color", "BYTES", (-1, 1)),
        ("size", "FP64", (-1, 1)),
        ("count", "FP64", (-1, 1)),
    ]


async def test_a_value_of_the_wrong_kind_is_refused_by_feature_and_row(
    engine: InferenceEngine,
) -> None:
    frame = shop_frame(3, seed=2)
    cases = {
        "'color' takes text, but row 1 holds 7": {"color": 7},
        "'size' takes numbers, but row 1 holds 'big'": {"size": "big"},
        "'size' holds 1 NaN": {"size": None},  # as in a model that takes numbers alone
        "instance 1 gives 'color' a list": {"color": ["red"]},
    }
    for message, change in cases.items():
        records = frame.to_dict("records")
        records[1] |= change
        with pytest.raises(InvalidInput, match=message):
            await engine.infer("shop", request_from_records(records))
    # A table of numbers alone cannot carry the colors.
    numbers = np.ones((2, 3))
    with pytest.raises(InvalidInput, match=r"'color' takes text, but row 0 holds 1\.0"):
        await engine.infer("shop", InferenceRequest(inputs=[Tensor("x", "FP64", (2, 3), numbers)]))
    # An unknown color is the model's to handle (this one ignores it), not a refusal; so is
    # a missing one, which registration found it copes with (tests/serving/test_text_nulls.py).
    for color in ("purple", None):
        records = frame.to_dict("records")
        records[0]["color"] = color
        response = await engine.infer("shop", request_from_records(records))
        assert response.outputs[0].shape == (3,)


def test_a_date_feature_or_a_flavor_that_takes_no_text_is_refused(
    registry: Registry, shop_files: tuple[Path, Path], tmp_path: Path, forest_model_path: Path
) -> None:
    model, reference = shop_files
    dated = pd.read_csv(reference).assign(count=pd.Timestamp("2026-01-01"))
    with pytest.raises(InvalidInput, match=r"features \['count'\] of the reference data are dates"):
        register_model(registry, "shop", model, reference=dated, target="bought")
    # An ONNX graph takes one numeric tensor: it cannot be sent the text.
    forest = joblib.load(forest_model_path)
    graph = to_onnx(forest, np.zeros((1, 10), dtype=np.float32))
    (tmp_path / "forest.onnx").write_bytes(graph.SerializeToString())
    table = pd.DataFrame(np.zeros((5, 10)), columns=[f"f{i}" for i in range(10)])
    table["f3"] = "text"
    with pytest.raises(InvalidInput, match=r"features \['f3'\] of the reference data are text"):
        register_model(registry, "forest", tmp_path / "forest.onnx", reference=table)
    assert registry.list_models() == []


async def test_a_shifted_text_feature_drifts_alone_and_wrong_labels_raise_concept_drift(
    registry: Registry, shop: ModelVersion
) -> None:
    async with monitored(registry, drift_window_rows=400, performance_min_labels=20) as served:
        client = served.client
        shifted = shop_frame(400, seed=3).assign(color="purple")
        ids = []
        for start in range(0, 400, 20):
            part = shifted.iloc[start : start + 20].to_dict("records")
            reply = await client.post("/predict/shop", json={"instances": part})
            assert reply.status_code == 200, reply.text
            ids.append(reply.json()["id"])
        served.monitor.flush()
        # Labels that say the opposite of every prediction made.
        for request_id, start in zip(ids, range(0, 400, 20), strict=True):
            truth = 1 - bought(shifted.iloc[start : start + 20].assign(color="blue"))
            labels = {"request_id": request_id, "label": truth.tolist()}
            assert (await client.post("/api/feedback/shop", json=labels)).status_code == 200
        metrics = (await client.get("/metrics")).text
        alerts = (await client.get("/api/alerts")).json()["active"]
    drifted = {
        line.split('feature="')[1].split('"')[0]: line.endswith(" 1.0")
        for line in metrics.splitlines()
        if line.startswith("modelpilot_feature_drifted{")
    }
    assert drifted == {"color": True, "size": False, "count": False}
    rules = {a["rule"]: a["message"] for a in alerts}
    assert "color" in rules["data_drift"]
    assert "concept_drift" in rules


def test_columns_of_the_reference_that_the_model_does_not_take_are_left_out(
    registry: Registry, shop_files: tuple[Path, Path], iris_model_path: Path, iris_csv: Path
) -> None:
    """A timestamp or an id beside the features, as references often have, is no feature of
    a model fitted on a DataFrame: it is neither refused nor served."""
    model, reference = shop_files
    extra = pd.read_csv(reference).assign(
        seen=pd.Timestamp("2026-01-01"), customer=lambda f: [f"c{i}" for i in range(len(f))]
    )
    version = register_model(registry, "shop", model, reference=extra, target="bought")
    assert version.signature.feature_names == ("color", "size", "count")
    iris = pd.read_csv(iris_csv).assign(seen=pd.Timestamp("2026-01-01"), customer="c1")
    numeric = register_model(registry, "iris", iris_model_path, reference=iris)
    assert numeric.signature.feature_datatypes is None  # its features are numbers alone
