"""Offline batch scoring: every format in, the model's own answers out."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from typer.testing import Result

from modelpilot.cli.predict_command import _Writer
from modelpilot.errors import BadRequest, InvalidInput, ModelNotFound
from tests.cli.conftest import Run


@pytest.fixture
def registered(run: Run, iris_model_path: Path) -> None:
    assert run("register", "iris", str(iris_model_path), "--alias", "production").exit_code == 0


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npy"])
def test_predictions_match_the_model(
    run: Run,
    registered: None,
    tmp_path: Path,
    suffix: str,
    iris_model: LogisticRegression,
    iris_frame: pd.DataFrame,
) -> None:
    source = tmp_path / f"rows{suffix}"
    shuffled = iris_frame[list(reversed(iris_frame.columns))]  # by name, not position
    if suffix == ".csv":
        shuffled.to_csv(source, index=False)
    elif suffix == ".parquet":
        shuffled.to_parquet(source, index=False)
    else:
        np.save(source, iris_frame.to_numpy())
    target = tmp_path / "scored.csv"
    result = run(
        "predict", "iris@production", str(source), "--output", str(target), "--batch-size", "40"
    )
    assert result.exit_code == 0, result.output
    assert "Scored 150 rows with iris:1" in result.stderr
    scored = pd.read_csv(target)
    assert list(scored.columns) == [
        "predict",
        "predict_proba_0",
        "predict_proba_1",
        "predict_proba_2",
    ]
    np.testing.assert_array_equal(scored["predict"], iris_model.predict(iris_frame))
    np.testing.assert_allclose(
        scored.iloc[:, 1:].to_numpy(), iris_model.predict_proba(iris_frame), rtol=1e-6
    )


def test_columns_that_are_no_feature_are_named_as_left_out(
    run: Run, registered: None, tmp_path: Path, iris_frame: pd.DataFrame
) -> None:
    """A label or an id beside the features was left out of scoring unsaid."""
    source = tmp_path / "rows.csv"
    iris_frame.assign(id=range(150), species=0).to_csv(source, index=False)
    result = run("predict", "iris", str(source), "--output", str(tmp_path / "scored.csv"))
    assert result.exit_code == 0, result.output
    assert result.stderr.count("note: left out, as no feature of the model: id, species") == 1


@pytest.mark.parametrize("suffix", [".parquet", ".npy"])
def test_output_formats(
    run: Run,
    registered: None,
    tmp_path: Path,
    iris_csv: Path,
    suffix: str,
    iris_model: LogisticRegression,
    iris_frame: pd.DataFrame,
) -> None:
    target = tmp_path / f"scored{suffix}"
    assert run("predict", "iris", str(iris_csv), "-o", str(target)).exit_code == 0
    if suffix == ".parquet":
        labels = pd.read_parquet(target)["predict"].to_numpy()
    else:
        labels = np.load(target)[:, 0]
    np.testing.assert_array_equal(labels, iris_model.predict(iris_frame))


def test_default_output_sits_next_to_the_input(
    run: Run, registered: None, tmp_path: Path, iris_frame: pd.DataFrame
) -> None:
    source = tmp_path / "batch.csv"
    iris_frame.head(7).to_csv(source, index=False)
    assert run("predict", "iris", str(source)).exit_code == 0
    assert len(pd.read_csv(tmp_path / "batch.predictions.csv")) == 7


def test_a_parquet_input_gives_a_parquet_output_by_default(
    run: Run, registered: None, tmp_path: Path, iris_frame: pd.DataFrame
) -> None:
    """The help said "its extension replaced"; a Parquet input gave a CSV."""
    source = tmp_path / "batch.parquet"
    iris_frame.head(5).to_parquet(source, index=False)
    assert run("predict", "iris", str(source)).exit_code == 0
    assert len(pd.read_parquet(tmp_path / "batch.predictions.parquet")) == 5
    assert not (tmp_path / "batch.predictions.csv").exists()


def test_one_row_is_one_row(
    run: Run, registered: None, tmp_path: Path, iris_frame: pd.DataFrame
) -> None:
    iris_frame.head(1).to_csv(tmp_path / "one.csv", index=False)
    result = run("predict", "iris", str(tmp_path / "one.csv"))
    assert result.exit_code == 0, result.output
    assert "Scored 1 row with iris:1" in result.stderr


def test_errors(run: Run, registered: None, tmp_path: Path) -> None:
    assert isinstance(run("predict", "nope", "x.csv").exception, ModelNotFound)
    wrong = tmp_path / "wrong.csv"
    pd.DataFrame({"a": [1.0], "b": [2.0]}).to_csv(wrong, index=False)
    result = run("predict", "iris", str(wrong))
    assert isinstance(result.exception, InvalidInput)
    assert "lacks the model's features" in str(result.exception)


def test_a_bad_row_is_located_and_leaves_no_half_written_output(
    run: Run, registered: None, tmp_path: Path, iris_frame: pd.DataFrame
) -> None:
    rows = iris_frame.astype(object)
    rows.iloc[121, 2] = "5,1"  # in the third chunk of 50
    source = tmp_path / "rows.csv"
    rows.to_csv(source, index=False)
    for suffix in (".csv", ".parquet", ".npy"):
        target = tmp_path / f"scored{suffix}"
        result = run("predict", "iris", str(source), "-o", str(target), "--batch-size", "50")
        assert isinstance(result.exception, InvalidInput)
        problem = str(result.exception)
        assert "data row 122, column 'petal_length': '5,1' is not a number" in problem
        assert not target.exists()
    earlier = tmp_path / "scored.csv"
    earlier.write_text("an earlier run's output\n")
    assert run("predict", "iris", str(source), "-o", str(earlier)).exit_code != 0
    assert earlier.read_text() == "an earlier run's output\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]

    rows.iloc[121, 2] = None  # an empty cell, for a model that takes no missing values
    rows.to_csv(source, index=False)
    result = run("predict", "iris", str(source), "-o", str(earlier), "--batch-size", "50")
    assert isinstance(result.exception, InvalidInput)
    assert "data row 122, column 'petal_length' is empty" in str(result.exception)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npy"])
def test_an_input_without_rows_gives_an_output_without_rows(
    run: Run, registered: None, tmp_path: Path, iris_frame: pd.DataFrame, suffix: str
) -> None:
    # An empty daily partition: the pipeline downstream wants the empty file, not a failure.
    source = tmp_path / f"empty{suffix}"
    if suffix == ".csv":
        iris_frame.head(0).to_csv(source, index=False)
    elif suffix == ".parquet":
        iris_frame.head(0).to_parquet(source, index=False)
    else:
        np.save(source, np.empty((0, 4)))
    for written in (".csv", ".parquet"):
        target = tmp_path / f"scored{written}"
        result = run("predict", "iris", str(source), "-o", str(target))
        assert result.exit_code == 0, result.output
        assert "Scored 0 rows" in result.stderr
        scored = pd.read_csv(target) if written == ".csv" else pd.read_parquet(target)
        assert len(scored) == 0
        assert list(scored.columns) == [
            "predict",
            "predict_proba_0",
            "predict_proba_1",
            "predict_proba_2",
        ]


def test_the_columns_of_an_input_without_rows_are_checked(
    run: Run, registered: None, tmp_path: Path
) -> None:
    source = tmp_path / "empty.csv"
    source.write_text("a,b\n")
    result = run("predict", "iris", str(source), "-o", str(tmp_path / "scored.csv"))
    assert isinstance(result.exception, InvalidInput)
    assert "lacks the model's features" in str(result.exception)
    assert not (tmp_path / "scored.csv").exists()


def test_an_input_that_is_no_table_is_an_error_not_a_traceback(
    run: Run, registered: None, tmp_path: Path
) -> None:
    for name in ("empty.csv", "broken.parquet", "broken.npy"):
        path = tmp_path / name
        path.write_bytes(b"" if name.endswith(".csv") else b"\xff\x00 not a table")
        result = run("predict", "iris", str(path))
        assert isinstance(result.exception, BadRequest), result.exception
        assert f"cannot read {name}" in str(result.exception)


def register_text_pipeline(
    run: Run, tmp_path: Path, name: str, frame: pd.DataFrame, labels: pd.Series, text: list[str]
) -> tuple[Any, Result]:
    """A pipeline that one-hot encodes the ``text`` columns of ``frame``, fitted on ``labels``
    and registered as ``name`` with ``frame`` as its reference CSV (target ``label``)."""
    encode = ColumnTransformer(
        [("text", OneHotEncoder(handle_unknown="ignore"), text)], remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression()).fit(frame, labels)
    joblib.dump(model, tmp_path / f"{name}.joblib")
    frame.assign(label=labels).to_csv(tmp_path / "reference.csv", index=False)
    reference = str(tmp_path / "reference.csv")
    path = str(tmp_path / f"{name}.joblib")
    return model, run("register", name, path, "--reference", reference, "--target", "label")


def test_text_of_digits_stays_text(run: Run, tmp_path: Path) -> None:
    """A zip code with a leading zero is text to a model that encoded it as categories:
    registration and scoring read it from CSV as text, not as the number 1234."""
    rng = np.random.default_rng(3)
    zips = np.array(["01234", "1234", "00042", "98101"])
    frame = pd.DataFrame({"zip": rng.choice(zips, 400), "size": rng.normal(size=400)})
    labels = (frame["zip"].isin(["01234", "00042"]) ^ (frame["size"] > 1.0)).astype(int)
    model, registered = register_text_pipeline(run, tmp_path, "zips", frame, labels, ["zip"])
    assert registered.exit_code == 0, registered.output
    assert "BYTES x1, FP64 x1" in run("versions", "zips").output

    frame.head(50).to_csv(tmp_path / "rows.csv", index=False)
    target = tmp_path / "scored.csv"
    result = run("predict", "zips", str(tmp_path / "rows.csv"), "-o", str(target))
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(target)
    np.testing.assert_array_equal(scored["predict"], model.predict(frame.head(50)))
    np.testing.assert_allclose(
        scored["predict_proba_1"], model.predict_proba(frame.head(50))[:, 1], rtol=1e-6
    )


def test_a_pipeline_that_imputes_takes_missing_values(run: Run, tmp_path: Path) -> None:
    """scikit-learn tags a Pipeline as refusing NaN even when its first step imputes them:
    registration finds out by asking the model, so rows with holes are scored."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    model = make_pipeline(SimpleImputer(), LinearRegression()).fit(frame, 2 * frame["a"])
    joblib.dump(model, tmp_path / "imputing.joblib")
    frame.to_csv(tmp_path / "reference.csv", index=False)  # no holes in the reference
    reference = str(tmp_path / "reference.csv")
    registered = run(
        "register", "imputing", str(tmp_path / "imputing.joblib"), "--reference", reference
    )
    assert registered.exit_code == 0, registered.output
    holed = frame.head(20).copy()
    holed.loc[::3, "a"] = np.nan
    holed.to_csv(tmp_path / "rows.csv", index=False)
    result = run("predict", "imputing", str(tmp_path / "rows.csv"), "-o", str(tmp_path / "p.csv"))
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(tmp_path / "p.csv")
    np.testing.assert_allclose(scored["predict"], model.predict(holed))

    # A model that does not cope is still refused such rows, by row and column.
    plain = LinearRegression().fit(frame, 2 * frame["a"])
    joblib.dump(plain, tmp_path / "plain.joblib")
    registered = run("register", "plain", str(tmp_path / "plain.joblib"), "--reference", reference)
    assert registered.exit_code == 0, registered.output
    result = run("predict", "plain", str(tmp_path / "rows.csv"), "-o", str(tmp_path / "q.csv"))
    assert isinstance(result.exception, InvalidInput)
    assert "row 1, column 'a'" in str(result.exception)


def test_words_pandas_reads_as_missing_are_categories_of_a_text_feature(
    run: Run, tmp_path: Path
) -> None:
    """ "NA" is North America and "None" no discount to a model that encoded them: in its
    text features they are read as written; an empty cell is still missing."""
    rng = np.random.default_rng(6)
    frame = pd.DataFrame(
        {
            "region": rng.choice(["NA", "EU", "APAC"], 300),
            "discount": rng.choice(["None", "10%", "20%"], 300),
            "amount": rng.normal(size=300),
        }
    )
    labels = ((frame["region"] == "NA") | (frame["discount"] == "None")).astype(int)
    text = ["region", "discount"]
    model, registered = register_text_pipeline(run, tmp_path, "orders", frame, labels, text)
    assert registered.exit_code == 0, registered.output
    accuracy = model.score(frame, labels)
    assert accuracy == 1.0
    assert "accuracy 1.000" in registered.output  # lower when "NA" was read as missing

    frame.head(40).to_csv(tmp_path / "rows.csv", index=False)
    result = run("predict", "orders", str(tmp_path / "rows.csv"), "-o", str(tmp_path / "p.csv"))
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(tmp_path / "p.csv")
    np.testing.assert_array_equal(scored["predict"], model.predict(frame.head(40)))

    # An empty cell is still missing, which this model copes with (it ignores what it never
    # saw): scored (tests/serving/test_text_nulls.py checks the answers).
    (tmp_path / "hole.csv").write_text("region,discount,amount\nEU,,1.0\n")
    result = run("predict", "orders", str(tmp_path / "hole.csv"), "-o", str(tmp_path / "h.csv"))
    assert result.exit_code == 0, result.output


def test_parquets_own_types_are_read_for_what_they_are(run: Run, tmp_path: Path) -> None:
    """A nullable integer's NA is a missing value; a column of numbers is no text feature."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"a": rng.integers(0, 9, 300), "b": rng.normal(size=300)})
    model = HistGradientBoostingRegressor(max_iter=20).fit(frame, frame["b"] * 2)
    joblib.dump(model, tmp_path / "hgb.joblib")
    frame.to_csv(tmp_path / "reference.csv", index=False)
    registered = run(
        "register",
        "hgb",
        str(tmp_path / "hgb.joblib"),
        "--reference",
        str(tmp_path / "reference.csv"),
    )
    assert registered.exit_code == 0, registered.output
    rows = frame.head(10).astype({"a": "Int64"})
    rows.loc[3, "a"] = pd.NA
    rows.to_parquet(tmp_path / "rows.parquet")
    result = run("predict", "hgb", str(tmp_path / "rows.parquet"), "-o", str(tmp_path / "p.csv"))
    assert result.exit_code == 0, result.output
    expected = model.predict(rows.astype({"a": "float64"}))
    np.testing.assert_allclose(pd.read_csv(tmp_path / "p.csv")["predict"], expected)


def test_a_text_feature_stored_as_numbers_is_refused(run: Run, tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    frame = pd.DataFrame({"zip": rng.choice(["02134", "10001"], 100), "x": rng.normal(size=100)})
    encode = ColumnTransformer(
        [("zip", OneHotEncoder(handle_unknown="ignore"), ["zip"])], remainder="passthrough"
    )
    model = make_pipeline(encode, LinearRegression()).fit(frame, frame["x"])
    joblib.dump(model, tmp_path / "zips.joblib")
    assert run("register", "zips", str(tmp_path / "zips.joblib")).exit_code == 0
    frame.astype({"zip": "int64"}).to_parquet(tmp_path / "rows.parquet")
    result = run("predict", "zips", str(tmp_path / "rows.parquet"))
    assert isinstance(result.exception, InvalidInput)
    assert "column 'zip' holds numbers (int64), and the model takes text" in str(result.exception)


def test_string_classes_are_written_to_npy_without_pickling(
    run: Run, tmp_path: Path, iris_frame: pd.DataFrame, iris_target: np.ndarray
) -> None:
    names = np.array(["setosa", "versicolor", "virginica"])[iris_target]
    model = LogisticRegression(max_iter=500).fit(iris_frame, names)
    joblib.dump(model, tmp_path / "named.joblib")
    assert run("register", "named", str(tmp_path / "named.joblib")).exit_code == 0
    iris_frame.to_csv(tmp_path / "rows.csv", index=False)
    target = tmp_path / "scored.npy"
    assert run("predict", "named", str(tmp_path / "rows.csv"), "-o", str(target)).exit_code == 0
    scored = np.load(target)  # allow_pickle=False
    assert list(scored["predict"]) == list(model.predict(iris_frame))
    np.testing.assert_allclose(
        scored["predict_proba_setosa"], model.predict_proba(iris_frame)[:, 0], rtol=1e-6
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npy"])
def test_two_runs_into_one_output_each_write_a_whole_file(tmp_path: Path, suffix: str) -> None:
    """Two runs writing the same output at once, their chunks interleaved: each writes a
    file of its own, and the output is the whole of the one that finished last."""
    target = tmp_path / f"scored{suffix}"
    first, second = _Writer(target), _Writer(target)
    chunks = {
        first: [pd.DataFrame({"predict": [1.0, 2.0]}), pd.DataFrame({"predict": [3.0]})],
        second: [pd.DataFrame({"predict": [10.0]}), pd.DataFrame({"predict": [20.0, 30.0]})],
    }
    for i in range(2):
        for writer in (first, second):
            writer.write(chunks[writer][i])
    first.close()
    assert list(_read(target)) == [1.0, 2.0, 3.0]
    second.close()
    assert list(_read(target)) == [10.0, 20.0, 30.0]
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_partial_file_gone_before_the_end_is_an_error_not_success(tmp_path: Path) -> None:
    """Someone removed the hidden file being written: the run fails rather than report an
    output it did not write (or write one missing the rows before)."""
    target = tmp_path / "scored.csv"
    writer = _Writer(target)
    writer.write(pd.DataFrame({"predict": [1.0, 2.0]}))
    (partial,) = tmp_path.glob("*.partial")
    partial.unlink()
    writer.write(pd.DataFrame({"predict": [3.0]}))
    with pytest.raises(OSError, match="was removed"):
        writer.close()
    assert not target.exists()
    assert not list(tmp_path.iterdir())


def test_the_sigterm_handler_is_put_back(
    run: Run, registered: None, tmp_path: Path, iris_csv: Path
) -> None:
    def before(signum: int, frame: Any) -> None:
        raise AssertionError("not to be called")

    previous = signal.signal(signal.SIGTERM, before)
    try:
        result = run("predict", "iris", str(iris_csv), "-o", str(tmp_path / "scored.csv"))
        assert result.exit_code == 0, result.output
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.slow
def test_sigterm_stops_a_run_as_ctrl_c_does(
    run: Run, registered: None, registry_dir: Path, tmp_path: Path, iris_frame: pd.DataFrame
) -> None:
    """kill, timeout, Kubernetes and batch schedulers stop a job with SIGTERM: the run exits
    143 (128 + 15), its hidden file is removed, and an earlier output is left as it was."""
    source = tmp_path / "rows.csv"
    pd.concat([iris_frame] * 400, ignore_index=True).to_csv(source, index=False)  # 60,000
    target = tmp_path / "scored.csv"
    target.write_text("an earlier run's output\n")
    command = [sys.executable, "-m", "modelpilot", "predict", "iris", str(source)]
    command += ["-o", str(target), "--batch-size", "5", "--registry", str(registry_dir)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("*.partial")):
            assert process.poll() is None, process.communicate()[1].decode()
            assert time.monotonic() < deadline, "no partial file after 60 s"
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, stderr.decode()
    assert "Stopped by SIGTERM" in stderr.decode()
    assert target.read_text() == "an earlier run's output\n"
    assert not list(tmp_path.glob("*.partial"))


def _read(path: Path) -> pd.Series:
    if path.suffix == ".csv":
        return pd.read_csv(path)["predict"]
    if path.suffix == ".parquet":
        return pd.read_parquet(path)["predict"]
    return pd.Series(np.load(path)[:, 0])


def test_an_onnx_classifiers_probabilities_are_named_by_its_classes(
    run: Run, tmp_path: Path, iris_frame: pd.DataFrame
) -> None:
    """skl2onnx names the output ``probabilities``: its columns were numbered, not named by
    the classes the graph states, as ``predict_proba``'s are."""
    from skl2onnx import to_onnx

    species = np.array(["setosa", "versicolor", "virginica"])[np.arange(150) % 3]
    x = iris_frame.to_numpy()
    model = LogisticRegression(max_iter=500).fit(x, species)
    onnx_path = tmp_path / "iris.onnx"
    onx = to_onnx(model, x[:1].astype(np.float32), options={id(model): {"zipmap": False}})
    onnx_path.write_bytes(onx.SerializeToString())
    assert run("register", "iris_onnx", str(onnx_path)).exit_code == 0
    source, target = tmp_path / "rows.npy", tmp_path / "scored.csv"
    np.save(source, x)
    result = run("predict", "iris_onnx", str(source), "--output", str(target))
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(target)
    wanted = [f"probabilities_{c}" for c in model.classes_]
    assert list(scored.columns) == ["label", *wanted]
    np.testing.assert_allclose(scored[wanted].to_numpy(), model.predict_proba(x), atol=1e-5)


def test_an_output_of_one_column_is_one_column_named_as_the_output(
    run: Run, tmp_path: Path
) -> None:
    """skl2onnx's regressors answer [N, 1]: the column was ``variable_0``."""
    from skl2onnx import to_onnx

    x = np.random.default_rng(0).normal(size=(50, 3))
    model = LinearRegression().fit(x, x @ [1.0, 2.0, 3.0])
    path = tmp_path / "lr.onnx"
    path.write_bytes(to_onnx(model, x[:1].astype(np.float32)).SerializeToString())
    assert run("register", "lr", str(path)).exit_code == 0
    source, target = tmp_path / "rows.npy", tmp_path / "scored.csv"
    np.save(source, x)
    assert run("predict", "lr", str(source), "--output", str(target)).exit_code == 0
    scored = pd.read_csv(target)
    assert list(scored.columns) == ["variable"]
    np.testing.assert_allclose(scored["variable"], model.predict(x), rtol=1e-4, atol=1e-4)
