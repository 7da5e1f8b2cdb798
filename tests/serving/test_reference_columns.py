"""Registration's reading of a reference's columns: those beside the model's features are
left out, and columns that no feature can be (lists, names given twice) are refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelpilot.errors import BadRequest, InvalidInput
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.conftest import IRIS_FEATURES


def test_a_numeric_id_beside_the_features_is_left_out(
    registry: Registry,
    tmp_path: Path,
    iris_model_path: Path,
    iris_model: LogisticRegression,
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
) -> None:
    """The README says columns beside the model's features (an id) are left out; one of
    numbers made the rows one column too wide for the model ("the reference data has shape
    [150, 6] but the model takes 4 features per row"), one of text did not."""
    path = tmp_path / "train.csv"
    train = iris_frame.assign(species=iris_target)
    train.insert(0, "row_id", range(150))
    train.assign(batch=7.5).to_csv(path, index=False)
    version = register_model(registry, "iris", iris_model_path, reference=path, target="species")
    assert version.signature.feature_names == tuple(IRIS_FEATURES)
    profile = registry.reference_profile("iris", 1)
    assert profile is not None and profile.feature_names == IRIS_FEATURES
    accuracy = iris_model.score(iris_frame, iris_target)
    assert version.metadata["reference_metrics"]["accuracy"] == pytest.approx(accuracy)
    assert "monitoring_notes" not in version.metadata  # the label was named: nothing to say

    unlabelled = register_model(registry, "iris", iris_model_path, reference=train)
    assert unlabelled.metadata["monitoring_notes"] == [
        "the reference's columns 'row_id', 'species' are no features of the model, left out "
        "of its profile; if one of them is the label, name it with --target COLUMN, so that "
        "live accuracy is judged against the model's metrics on the reference"
    ]


def test_a_column_of_lists_is_refused_by_name(
    registry: Registry,
    tmp_path: Path,
    iris_model_path: Path,
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
) -> None:
    """A Parquet list column among the features ended in a traceback ("unhashable type:
    'numpy.ndarray'", from the hash of the data); beside them it is left out, as any column."""
    listed = iris_frame.assign(species=iris_target)
    listed["petal_width"] = [[v] for v in iris_frame["petal_width"]]
    listed.to_parquet(tmp_path / "listed.parquet")
    with pytest.raises(InvalidInput) as refused:
        register_model(registry, "iris", iris_model_path, reference=tmp_path / "listed.parquet")
    assert str(refused.value) == (
        "column 'petal_width' holds lists ([0.2] in data row 1), but a feature is a number or "
        "a text: spread its values into columns of their own, or leave it out of the reference"
    )
    records = iris_frame.assign(tags=[{"source": "lab"}] * 150, species=iris_target)
    records.to_parquet(tmp_path / "beside.parquet")
    version = register_model(
        registry, "iris", iris_model_path, reference=tmp_path / "beside.parquet", target="species"
    )
    assert version.signature.feature_names == tuple(IRIS_FEATURES)


def test_a_column_named_twice_is_refused_by_name(
    registry: Registry, tmp_path: Path, iris_model_path: Path, iris_frame: pd.DataFrame
) -> None:
    """pandas reads a CSV's second "sepal_length" as "sepal_length.1": registration then
    said the rows were one column too wide, and now that such columns are left out it would
    have taken the first of the two without a word."""
    header = ",".join(["sepal_length", *IRIS_FEATURES])
    rows = [",".join(map(str, [row[0], *row])) for row in iris_frame.to_numpy()]
    (tmp_path / "twice.csv").write_text("\n".join([header, *rows]) + "\n")
    with pytest.raises(BadRequest) as refused:
        register_model(registry, "iris", iris_model_path, reference=tmp_path / "twice.csv")
    assert str(refused.value) == (
        "column 'sepal_length' appears twice in the header of twice.csv; give each column a "
        "name of its own"
    )
    frame = pd.concat([iris_frame, iris_frame[["petal_width"]]], axis=1)
    with pytest.raises(BadRequest, match="column 'petal_width' appears twice in the reference"):
        register_model(registry, "iris", iris_model_path, reference=frame)
    assert registry.list_models() == []
