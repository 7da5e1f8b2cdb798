"""``modelpilot register`` of reference CSVs: one written without a header (see
tests/test_tabular_headers.py) is refused, where for a model fitted on an array (without
feature names of its own) its first row became the version's feature names, silently; one
with a column of dates, read as dates (tests/test_tabular_dates.py), as one from Parquet."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from modelpilot.errors import BadRequest
from tests.cli.conftest import Run


def test_a_headerless_reference_is_not_registered(
    run: Run, iris_frame: pd.DataFrame, iris_target: np.ndarray, tmp_path: Path
) -> None:
    model = tmp_path / "model_np.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(iris_frame.to_numpy(), iris_target), model)
    headerless = tmp_path / "nohdr.csv"
    iris_frame.to_csv(headerless, index=False, header=False)
    result = run("register", "irisnp", str(model), "--reference", str(headerless))
    assert isinstance(result.exception, BadRequest), result.output
    assert str(result.exception).startswith(
        "cannot read nohdr.csv as CSV: its header row is all numbers (5.1, 3.5, 1.4, 0.2)"
    )
    assert "irisnp" not in run("models").stdout


def test_a_date_column_the_model_does_not_read_is_left_out_of_the_profile(
    run: Run, iris_model_path: Path, iris_frame: pd.DataFrame, tmp_path: Path
) -> None:
    reference = tmp_path / "ref.csv"
    times = pd.date_range("2024-01-01", periods=len(iris_frame), freq="min")
    iris_frame.assign(ts=times.strftime("%Y-%m-%d %H:%M:%S")).to_csv(reference, index=False)
    result = run("register", "iris", str(iris_model_path), "--reference", str(reference))
    assert result.exit_code == 0, result.output
