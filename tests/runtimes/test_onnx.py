"""ONNX Runtime: signature from the graph, parity with the scikit-learn original."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from modelpilot.errors import ArtifactError
from modelpilot.runtimes.flavors import load_runtime


@pytest.fixture(scope="module")
def forest() -> tuple[RandomForestClassifier, np.ndarray]:
    iris = load_iris()
    x = iris.data.astype(np.float32)
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(x, iris.target), x


def test_parity_with_scikit_learn(
    tmp_path: Path, forest: tuple[RandomForestClassifier, np.ndarray]
) -> None:
    model, x = forest
    path = tmp_path / "forest.onnx"
    path.write_bytes(to_onnx(model, x[:1], options={"zipmap": False}).SerializeToString())
    runtime = load_runtime("onnx", path)
    signature = runtime.infer_signature(feature_names=["a", "b", "c", "d"])
    assert [(s.name, s.datatype, s.shape) for s in signature.inputs] == [("X", "FP32", (-1, 4))]
    assert [s.name for s in signature.outputs] == ["label", "probabilities"]
    assert signature.feature_names == ("a", "b", "c", "d")
    out = runtime.predict({"X": x})
    np.testing.assert_array_equal(out["label"], model.predict(x))
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(x), atol=1e-5)
    assert list(runtime.predict({"X": x[:2]}, ["label"])) == ["label"]


def test_zipmap_outputs_are_refused_with_a_fix(
    tmp_path: Path, forest: tuple[RandomForestClassifier, np.ndarray]
) -> None:
    model, x = forest
    path = tmp_path / "zipmap.onnx"
    path.write_bytes(to_onnx(model, x[:1]).SerializeToString())
    with pytest.raises(ArtifactError, match="zipmap"):
        load_runtime("onnx", path)


def test_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(ArtifactError, match="not a valid ONNX model"):
        load_runtime("onnx", path)
