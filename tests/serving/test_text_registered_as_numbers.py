"""A text pipeline that a release before text features registered as taking numbers only.

Its signature says one FP64 tensor: text sent to it was refused with "send numbers", and
numbers then failed in its encoder ("ufunc 'isnan' not supported"). Neither said that the
version has to be registered again, which is the only way to serve it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelpilot.errors import InvalidInput, ModelFailure
from modelpilot.protocol.rows import request_from_records
from modelpilot.protocol.types import InferenceRequest, Tensor
from modelpilot.registry.signature import Signature
from modelpilot.registry.store import Registry
from modelpilot.serving.engine import InferenceEngine
from tests.conftest import make_settings

OLD_SIGNATURE = {
    "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 2]}],
    "outputs": [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
    ],
    "feature_names": ["color", "size"],
    "allow_nan": False,
    "extra": {"estimator": "Pipeline", "classes": [0, 1]},
}
"""What release 38ead9a stored for such a pipeline."""


@pytest.fixture
async def engine(registry: Registry, tmp_path: Path) -> AsyncIterator[InferenceEngine]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"color": rng.choice(["red", "blue"], 200), "size": rng.normal(size=200)})
    encode = ColumnTransformer(
        [("color", OneHotEncoder(handle_unknown="ignore"), ["color"])], remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression())
    model.fit(frame, (frame["color"] == "red").astype(int))
    joblib.dump(model, tmp_path / "shop.joblib")
    signature = Signature.from_dict(OLD_SIGNATURE)
    registry.register_version(
        "shop", tmp_path / "shop.joblib", flavor="sklearn", signature=signature
    )
    engine = InferenceEngine(registry, make_settings(registry, onnx=False))
    await engine.start()
    yield engine
    await engine.stop()


async def test_text_sent_to_it_is_told_to_register_the_version_again(
    engine: InferenceEngine,
) -> None:
    with pytest.raises(InvalidInput, match="send numbers") as raised:
        await engine.infer("shop", request_from_records([{"color": "red", "size": 0.3}]))
    assert "register the model again" in raised.value.message


async def test_numbers_sent_to_it_are_told_to_register_the_version_again(
    engine: InferenceEngine,
) -> None:
    rows = np.array([[0.0, 0.3]])
    request = InferenceRequest(inputs=[Tensor("input-0", "FP64", rows.shape, rows)])
    with pytest.raises(ModelFailure, match=r"encodes the features \['color'\] as text") as raised:
        await engine.infer("shop", request)
    assert "register the model file again" in raised.value.message
