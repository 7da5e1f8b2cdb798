"""What ``register`` says of the figures it measured on the reference: which F1 it is, and
the rows its errors leave out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics

from modelpilot.registry.store import Registry
from tests.cli.conftest import Run
from tests.conftest import SOMETIMES_NAN


def test_register_names_f1_as_macro_averaged(
    run: Run,
    iris_model_path: Path,
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
    tmp_path: Path,
) -> None:
    """A bare "f1" reads as scikit-learn's F1 of the positive class; it is the macro one."""
    reference = tmp_path / "iris.csv"
    iris_frame.assign(species=iris_target).to_csv(reference, index=False)
    args = ["register", "iris", str(iris_model_path), "--reference", str(reference)]
    result = run(*args, "--target", "species")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())  # as one line, however the console wrapped it
    assert ", f1 (macro) 0.9" in said and " f1 0." not in said


def test_reference_errors_leave_out_predictions_that_are_no_number(
    run: Run, registry_dir: Path, tmp_path: Path
) -> None:
    """A model that answered NaN on some reference rows was registered with "mae nan, rmse
    nan" (and /metrics exported NaN): those rows are left out, as live labels of such
    predictions are, and register says how many."""
    model = tmp_path / "model.py"
    model.write_text(SOMETIMES_NAN)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    frame["t"] = 2 * frame["a"] + frame["b"] + rng.normal(0, 0.3, size=400)
    frame.to_csv(tmp_path / "reference.csv", index=False)
    args = ["register", "nanm", str(model), "--reference", str(tmp_path / "reference.csv")]
    result = run(*args, "--target", "t")
    assert result.exit_code == 0, result.output
    scored = frame[frame["a"] <= 1.5]
    predicted = 2 * scored["a"] + scored["b"]
    mae = metrics.mean_absolute_error(scored["t"], predicted)
    rmse = np.sqrt(metrics.mean_squared_error(scored["t"], predicted))
    left_out = len(frame) - len(scored)
    assert left_out > 0
    said = " ".join(result.stderr.split())  # as one line, however the console wrapped it
    assert f"(mae {mae:.4g}, rmse {rmse:.4g} on it)" in said
    assert f"{left_out} labelled reference rows left out of the errors" in said
    reg = Registry.open(registry_dir)
    try:
        metadata = reg.get_version("nanm", 1).metadata
    finally:
        reg.close()
    assert np.isclose(metadata["reference_metrics"]["mae"], mae, rtol=1e-12)
    assert np.isclose(metadata["reference_metrics"]["rmse"], rmse, rtol=1e-12)
    assert metadata["reference_unscored"] == left_out


def test_errors_of_a_small_scale_target_are_printed_with_their_digits(
    run: Run, tmp_path: Path
) -> None:
    """A regressor of targets around 1e-6 was registered with "mae 0.000, rmse 0.000 on it",
    which reads as a perfect fit (tester t1), and a stated mae against it as "not the 0.000"."""
    import joblib
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    frame["y"] = (3 * frame["a"] - frame["b"] + rng.normal(0, 0.5, size=300)) * 1e-6
    model = LinearRegression().fit(frame[["a", "b"]], frame["y"])
    joblib.dump(model, tmp_path / "tiny.joblib")
    frame.to_csv(tmp_path / "reference.csv", index=False)
    args = ["register", "tiny", str(tmp_path / "tiny.joblib")]
    result = run(*args, "--reference", str(tmp_path / "reference.csv"), "--target", "y")
    assert result.exit_code == 0, result.output
    predicted = model.predict(frame[["a", "b"]])
    mae = metrics.mean_absolute_error(frame["y"], predicted)
    rmse = np.sqrt(metrics.mean_squared_error(frame["y"], predicted))
    said = " ".join(result.stderr.split())
    assert f"(mae {mae:.4g}, rmse {rmse:.4g} on it)" in said
    assert "0.000" not in said
    stated = run(
        *args, "--reference", str(tmp_path / "reference.csv"), "--target", "y", "-m", "mae=1e-7"
    )
    assert stated.exit_code == 0, stated.output
    said = " ".join(stated.stderr.split())
    assert f"Live mae will be judged against the stated 1e-07, not the {mae:.4g} measured" in said


def test_registering_a_reference_says_what_it_is_doing_on_stderr_only(
    run: Run,
    iris_model_path: Path,
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
    tmp_path: Path,
) -> None:
    """A wide reference took two minutes with nothing printed (tester "scale" #7); stdout
    still holds only the version number, which scripts read."""
    reference = tmp_path / "iris.csv"
    iris_frame.assign(species=iris_target).to_csv(reference, index=False)
    args = ["register", "iris", str(iris_model_path), "--reference", str(reference)]
    result = run(*args, "--target", "species")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert said.startswith(
        "reading iris.csv, profiling its features and measuring the model on its rows..."
    )
    assert result.stdout == "1\n"
