"""``register -m METRIC=VALUE``: a stated figure out of its metric's range, or of a metric the
model's task never computes, is refused, saying what is allowed; nothing is registered."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import RidgeClassifier

from modelpilot.errors import InvalidInput
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.cli.conftest import Run


@pytest.fixture
def labelled_csv(tmp_path: Path, iris_frame: pd.DataFrame) -> Path:
    path = tmp_path / "train.csv"
    iris_frame.assign(species=load_iris().target).to_csv(path, index=False)
    return path


def _nothing_registered(registry_dir: Path) -> bool:
    reg = Registry.open(registry_dir)
    try:
        return reg.list_models() == []
    finally:
        reg.close()


@pytest.mark.parametrize("value", ["1.5", "91"])
def test_an_accuracy_past_1_is_refused(
    run: Run, iris_model_path: Path, labelled_csv: Path, registry_dir: Path, value: str
) -> None:
    """accuracy=1.5 was kept, and a model at 98.7% paged critical concept drift forever;
    91 meant as 91% did the same."""
    args = ("register", "iris", str(iris_model_path), "--reference", str(labelled_csv))
    result = run(*args, "--target", "species", "-m", f"accuracy={value}")
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidInput)
    assert str(result.exception).startswith(
        f"metadata accuracy={int(value) if value == '91' else float(value)!r}: accuracy is a "
        "share from 0 to 1 (such as accuracy=0.91 for 91%)"
    )
    assert _nothing_registered(registry_dir)


def test_a_negative_error_is_refused(run: Run, forest_model_path: Path, registry_dir: Path) -> None:
    result = run("register", "forest", str(forest_model_path), "-m", "mae=-3")
    assert isinstance(result.exception, InvalidInput)
    assert "mae is an error, 0 or more" in str(result.exception)
    assert _nothing_registered(registry_dir)


def test_an_auc_stated_for_a_regressor_is_refused(
    run: Run, forest_model_path: Path, registry_dir: Path
) -> None:
    """It was exported as the regressor's reference AUC, with no live AUC ever to match."""
    result = run("register", "forest", str(forest_model_path), "-m", "auc=0.9", "-m", "mae=10")
    assert isinstance(result.exception, InvalidInput)
    assert str(result.exception) == (
        "metadata auc=0.9: the model is a regressor, whose live labels are scored by mae and "
        "rmse, so auc would never be judged: state mae or rmse, or leave it out"
    )
    assert _nothing_registered(registry_dir)


def test_errors_stated_for_a_classifier_are_refused(
    run: Run, iris_model_path: Path, labelled_csv: Path, registry_dir: Path
) -> None:
    args = ("register", "iris", str(iris_model_path), "--reference", str(labelled_csv))
    result = run(*args, "--target", "species", "-m", "rmse=0.1", "-m", "mae=0.2")
    assert isinstance(result.exception, InvalidInput)
    assert str(result.exception) == (
        "metadata mae=0.2, rmse=0.1: the model is a classifier, whose live labels are scored by "
        "accuracy, f1 and auc, so mae and rmse would never be judged: state accuracy, f1 or "
        "auc, or leave them out"
    )
    assert _nothing_registered(registry_dir)


def test_an_auc_of_a_classifier_without_probabilities_is_refused(
    registry: Registry, tmp_path: Path, iris_frame: pd.DataFrame
) -> None:
    """A RidgeClassifier gives no probabilities: no AUC is ever computed for it. (Stated in a
    ``metrics`` mapping, as the library API takes it.)"""
    y = load_iris().target
    joblib.dump(RidgeClassifier().fit(iris_frame, y), tmp_path / "ridge.joblib")
    with pytest.raises(InvalidInput) as refused:
        register_model(
            registry, "ridge", tmp_path / "ridge.joblib", metadata={"metrics": {"auc": 0.9}}
        )
    assert "scored by accuracy and f1 (AUC needs the probabilities" in str(refused.value)
    assert registry.list_models() == []


def test_figures_of_the_models_task_within_their_range_are_kept(
    registry: Registry, iris_model_path: Path, forest_model_path: Path
) -> None:
    scores = {"accuracy": 1, "f1": 0.0, "auc": 0.97}
    assert (
        register_model(registry, "iris", iris_model_path, metadata=scores).metadata["auc"] == 0.97
    )
    errors = {"metrics": {"mae": 0, "rmse": np.float64(12.5)}}
    register_model(registry, "forest", forest_model_path, metadata=errors)
    assert [m.name for m in registry.list_models()] == ["forest", "iris"]
