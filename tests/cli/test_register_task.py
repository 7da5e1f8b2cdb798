"""``register --task``: a model that answers whole numbers and names no classes is taken for
a classifier, which registration now says, with how to declare a regressor; a target of
numbers that are not whole makes it a regressor without being told."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from modelpilot.errors import BadRequest, InvalidInput
from modelpilot.registry.store import Registry
from tests.cli.conftest import Run

COUNTS = """
import numpy as np

class Model:
    def predict(self, x):
        return np.round(152 + 900 * x[:, 2] + 500 * x[:, 8]).astype(np.int64)
"""
"""A regressor of the diabetes data that answers whole numbers (a count, a whole price)."""


def counted(x: np.ndarray) -> np.ndarray:
    return np.round(152 + 900 * x[:, 2] + 500 * x[:, 8]).astype(np.int64)


@pytest.fixture
def files(tmp_path: Path, diabetes_data: tuple[np.ndarray, np.ndarray]) -> tuple[Path, Path]:
    """The model, and its reference: the diabetes rows with their (whole-number) target."""
    x, y = diabetes_data
    (tmp_path / "counts.py").write_text(COUNTS)
    frame = pd.DataFrame(x[:300], columns=[f"f{i}" for i in range(10)]).assign(y=y[:300])
    frame.to_csv(tmp_path / "reference.csv", index=False)
    return tmp_path / "counts.py", tmp_path / "reference.csv"


def _version(registry_dir: Path, name: str) -> dict[str, object]:
    reg = Registry.open(registry_dir)
    try:
        version = reg.get_version(name, 1)
        return {"task": version.signature.task, "metrics": version.metadata["reference_metrics"]}
    finally:
        reg.close()


def test_a_model_of_whole_numbers_is_said_to_be_taken_for_a_classifier(
    run: Run, files: tuple[Path, Path], registry_dir: Path
) -> None:
    """It was registered with "accuracy 0.010, f1 (macro) 0.005" and nothing else said."""
    model, reference = files
    result = run("register", "counts", str(model), "--reference", str(reference), "--target", "y")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())  # as one line, however the console wrapped it
    assert (
        "warning: the model's prediction 'predict' is whole numbers (INT64) and it names no "
        "classes, so it is watched as a classifier: each value a class, labels scored by "
        "accuracy and F1; the target holds "
    ) in said
    assert (
        'register it with --task regression, or give its class the attribute task = "regression", '
        "to have MAE and RMSE"
    ) in said
    assert _version(registry_dir, "counts")["task"] == "classification"


def test_task_regression_measures_its_errors(
    run: Run,
    files: tuple[Path, Path],
    registry_dir: Path,
    diabetes_data: tuple[np.ndarray, np.ndarray],
) -> None:
    model, reference = files
    args = ("register", "counts", str(model), "--reference", str(reference), "--target", "y")
    result = run(*args, "--task", "regression", "-m", "mae=40")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    x, y = diabetes_data
    expected = {
        "mae": metrics.mean_absolute_error(y[:300], counted(x[:300])),
        "rmse": metrics.root_mean_squared_error(y[:300], counted(x[:300])),
    }
    version = _version(registry_dir, "counts")
    assert version["task"] == "regression"
    assert version["metrics"] == pytest.approx(expected)
    said = " ".join(result.stderr.split())
    assert "Live mae will be judged against the stated 40" in said


def test_errors_stated_for_a_model_taken_for_a_classifier_say_how_to_declare_a_regressor(
    run: Run, files: tuple[Path, Path]
) -> None:
    model, reference = files
    args = ("register", "counts", str(model), "--reference", str(reference), "--target", "y")
    result = run(*args, "-m", "mae=40")
    assert isinstance(result.exception, InvalidInput)
    assert str(result.exception).endswith(
        "if the model is a regressor, register it with --task regression"
    )


def test_a_target_of_fractions_makes_a_model_of_whole_numbers_a_regressor(
    run: Run,
    files: tuple[Path, Path],
    registry_dir: Path,
    diabetes_data: tuple[np.ndarray, np.ndarray],
) -> None:
    """151.5 is no class of a model that answers whole numbers."""
    model, _ = files
    x, y = diabetes_data
    frame = pd.DataFrame(x[:300], columns=[f"f{i}" for i in range(10)]).assign(y=y[:300] + 0.5)
    frame.to_csv(model.parent / "halves.csv", index=False)
    args = ("register", "counts", str(model), "--reference", str(model.parent / "halves.csv"))
    result = run(*args, "--target", "y")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    version = _version(registry_dir, "counts")
    assert version["task"] == "regression"
    mae = metrics.mean_absolute_error(y[:300] + 0.5, counted(x[:300]))
    assert version["metrics"]["mae"] == pytest.approx(mae)  # type: ignore[index]


def test_a_task_is_refused_where_the_model_says_otherwise_or_it_is_no_task(
    run: Run, iris_model_path: Path, files: tuple[Path, Path], registry_dir: Path
) -> None:
    result = run("register", "iris", str(iris_model_path), "--task", "regression")
    assert isinstance(result.exception, InvalidInput)
    assert str(result.exception) == (
        "--task regression: the model names its classes (0, 1, 2), so it is a classifier, "
        "whose predictions are labels: leave --task out"
    )
    result = run("register", "counts", str(files[0]), "--task", "regresion")
    assert isinstance(result.exception, BadRequest)
    assert str(result.exception) == ("--task takes classification or regression, not 'regresion'")
    reg = Registry.open(registry_dir)
    try:
        assert reg.list_models() == []
    finally:
        reg.close()
