"""Registration's measure of a model on its reference labels (``--target``)."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelpilot.errors import InvalidInput
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model


def test_labels_the_model_never_predicts_are_refused(
    registry: Registry, tmp_path: Path, iris_frame: pd.DataFrame, iris_target: np.ndarray
) -> None:
    """A model of species names given the codes 0, 1, 2 was stored with accuracy 0, the
    baseline its live labels would have been judged against."""
    names = np.array(["setosa", "versicolor", "virginica"])[iris_target]
    model = LogisticRegression(max_iter=500).fit(iris_frame, names)
    joblib.dump(model, tmp_path / "named.joblib")
    coded = iris_frame.assign(species=iris_target)
    with pytest.raises(InvalidInput, match=r"labels the model does not predict \('0', '1', '2'\)"):
        register_model(
            registry, "named", tmp_path / "named.joblib", reference=coded, target="species"
        )
    assert registry.list_models() == []
    named = iris_frame.assign(species=names)
    version = register_model(
        registry, "named", tmp_path / "named.joblib", reference=named, target="species"
    )
    assert version.metadata["reference_metrics"]["accuracy"] > 0.95


def test_rows_without_a_label_are_left_out_of_the_models_quality(
    registry: Registry,
    iris_model_path: Path,
    iris_model: LogisticRegression,
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
) -> None:
    """An empty label is no class: it counted as a wrong answer, and as a class of its own."""
    labels = pd.Series(iris_target, dtype="float64")
    labels[[0, 60, 120]] = np.nan
    version = register_model(
        registry, "iris", iris_model_path, reference=iris_frame.assign(y=labels), target="y"
    )
    kept = labels.notna().to_numpy()
    expected = iris_model.score(iris_frame[kept], iris_target[kept])
    assert version.metadata["reference_metrics"]["accuracy"] == pytest.approx(expected)
    profile = registry.reference_profile("iris", 1)
    assert profile is not None and profile.target is not None
    assert sum(profile.target.categories.values()) == 147


def test_a_float32_onnx_graph_is_measured_on_its_float64_reference(
    registry: Registry, tmp_path: Path, iris_frame: pd.DataFrame, iris_target: np.ndarray
) -> None:
    """What skl2onnx and torch export take float32: the reference's float64 rows went to ONNX
    Runtime as they were, which refused them, and the model could not be registered with a
    reference, though serving and ``predict`` cast its requests' rows."""
    from skl2onnx import to_onnx

    x = iris_frame.to_numpy(dtype=np.float32)
    model = LogisticRegression(max_iter=500).fit(x, iris_target)
    path = tmp_path / "iris32.onnx"
    path.write_bytes(to_onnx(model, x[:1], options={"zipmap": False}).SerializeToString())
    version = register_model(
        registry, "iris32", path, reference=iris_frame.assign(species=iris_target), target="species"
    )
    assert version.signature.inputs[0].datatype == "FP32"
    assert version.metadata["reference_metrics"]["accuracy"] > 0.95


def test_a_csv_target_of_text_classes_is_read_as_text(registry: Registry, tmp_path: Path) -> None:
    """Classes of product, ICD or zip codes, "007" and "010", were read from CSV as the
    numbers 7 and 10, and the file refused for labels the model does not predict; "1" and
    "1.0", two classes, were one. A word pandas reads as missing ("NA") that is no class is
    a missing label still."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 2))
    classes = np.where(x[:, 0] > 0.5, "007", np.where(x[:, 0] < -0.5, "010", "100"))
    model = LogisticRegression().fit(x, classes)
    joblib.dump(model, tmp_path / "codes.joblib")
    frame = pd.DataFrame(x, columns=["a", "b"]).assign(y=classes)
    frame.loc[[0, 1], "y"] = ["NA", ""]
    frame.to_csv(tmp_path / "train.csv", index=False)
    version = register_model(
        registry, "codes", tmp_path / "codes.joblib", reference=tmp_path / "train.csv", target="y"
    )
    expected = model.score(x[2:], classes[2:])
    assert version.metadata["reference_metrics"]["accuracy"] == pytest.approx(expected)
    profile = registry.reference_profile("codes", 1)
    assert profile is not None and profile.target is not None
    assert set(profile.target.categories) == {"007", "010", "100"}


def test_a_reference_of_more_columns_than_a_model_of_no_names_is_told_of_the_model(
    registry: Registry, iris_frame: pd.DataFrame, iris_target: np.ndarray, tmp_path: Path
) -> None:
    """A text column beside the four of a model fitted on an array: the message said "the
    model takes 4 (sepal_length, ..., note)", five of the reference's names as its four."""
    model = tmp_path / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(iris_frame.to_numpy(), iris_target), model)
    path = tmp_path / "ref.csv"
    iris_frame.assign(target=0, note="line1\nline2").to_csv(path, index=False)
    with pytest.raises(InvalidInput) as caught:
        register_model(registry, "iris", model, reference=path, target="target")
    message = caught.value.message
    assert message.startswith("the reference data has 5 feature columns (")
    assert "'note'); the model takes 4 features by position and names none of them" in message
    assert message.endswith(
        "leave the 1 column(s) the model does not take out of the reference (its text "
        "column(s) 'note', perhaps)"
    )
    assert "takes 4 (" not in message
    assert registry.list_models() == []


def test_an_unreadable_reference_value_is_shortened_in_the_message(
    registry: Registry, iris_frame: pd.DataFrame, iris_target: np.ndarray, tmp_path: Path
) -> None:
    """One cell of 200,000 "x" was quoted whole: a 200 KB "one line" error."""
    frame = iris_frame.astype(object)
    frame.iloc[3, 0] = "x" * 200_000
    model = tmp_path / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(iris_frame.to_numpy(), iris_target), model)
    path = tmp_path / "ref.csv"
    frame.assign(target=0).to_csv(path, index=False)
    with pytest.raises(InvalidInput) as caught:
        register_model(registry, "iris", model, reference=path, target="target")
    message = caught.value.message
    assert message.startswith("the model cannot predict on the reference data: could not")
    assert len(message) < 1000 and message.endswith("(200037 characters)")
