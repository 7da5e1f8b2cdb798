"""``modelpilot drift``: two files, or a model's reference against its inference log."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import Result

from modelpilot.errors import InvalidInput, ModelPilotError
from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.log_records import LogEntry
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.store import Registry
from tests.cli.conftest import Run


def shifted(frame: pd.DataFrame, n: int, columns: list[str], seed: int = 0) -> pd.DataFrame:
    sample = frame.sample(n, replace=True, random_state=seed).reset_index(drop=True)
    for column in columns:
        sample[column] += 2 * frame[column].std()
    return sample


def test_two_files_report_only_the_shifted_features(
    run: Run, iris_frame: pd.DataFrame, iris_csv: Path, tmp_path: Path
) -> None:
    current = tmp_path / "current.parquet"
    shifted(iris_frame, 3000, ["petal_length", "sepal_width"]).to_parquet(current)
    report = tmp_path / "drift.html"
    result = run(
        "drift",
        str(iris_csv),
        str(current),
        "--report",
        str(report),
        "--fail-on-drift",
        registry=False,
    )
    assert result.exit_code == 3, result.output  # 2 of 4 features: dataset drift
    assert "Dataset drift: 2 of 4 features drifted (sepal_width, petal_length)" in result.stdout
    page = report.read_text()
    assert page.count("<svg") == 4 and page.count("class='badge drifted'") == 4  # table + plots
    assert "petal_length" in page and "PSI" in page


def test_ignored_columns_are_no_features(
    run: Run, iris_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """The target (or an id) was compared as a feature and counted in the dataset rule."""
    reference, current = tmp_path / "reference.csv", tmp_path / "current.csv"
    iris_frame.assign(species="setosa", id=range(150)).to_csv(reference, index=False)
    calm = iris_frame.sample(3000, replace=True, random_state=1)
    calm.assign(species="virginica", id=range(1000, 4000)).to_csv(current, index=False)
    args = ["drift", str(reference), str(current), "-o", str(tmp_path / "r.html")]
    both = run(*args, registry=False)
    assert "2 of 6 features drifted (species, id)" in both.stdout, both.output
    result = run(*args, "--ignore", "species", "--ignore", "id", registry=False)
    assert result.exit_code == 0, result.output
    assert "No dataset drift: 0 of 4 features drifted" in result.stdout
    assert "species" not in result.stdout
    wrong = run(*args, "--ignore", "label", registry=False)
    assert "--ignore names columns the reference does not have: ['label']" in str(wrong.exception)


def test_a_reference_with_its_target_says_to_leave_it_out(
    run: Run, iris_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """The tester's first try: the reference that ``register --target`` takes holds the
    label, today's data does not; the error named the column but not the way on."""
    reference, current = tmp_path / "reference.csv", tmp_path / "today.csv"
    iris_frame.assign(**{"the label": "setosa"}).to_csv(reference, index=False)
    iris_frame.to_csv(current, index=False)
    args = ["drift", str(reference), str(current), "-o", str(tmp_path / "r.html")]
    message = str(run(*args, registry=False).exception)
    assert "the current data lacks the reference's columns ['the label']" in message
    assert message.endswith("modelpilot drift's --ignore 'the label'"), message
    assert run(*args, "--ignore", "the label", registry=False).exit_code == 0


def test_calm_data_passes_and_small_samples_use_ks(
    run: Run, iris_frame: pd.DataFrame, iris_csv: Path, tmp_path: Path
) -> None:
    current = tmp_path / "current.csv"
    shifted(iris_frame, 200, []).to_csv(current, index=False)
    result = run(
        "drift",
        str(iris_csv),
        str(current),
        "--report",
        str(tmp_path / "r.html"),
        "--fail-on-drift",
        registry=False,
    )
    assert result.exit_code == 0, result.output
    assert "No dataset drift: 0 of 4 features drifted over 200 rows" in result.stdout
    assert result.stdout.count(" ks ") == 4
    # Whole names in 80 columns (the table once cut them to "sepal_le…").
    assert all(f"\n {name} " in result.stdout for name in iris_frame.columns), result.stdout


@pytest.mark.parametrize("n", [1, 20])
def test_too_few_rows_say_so_and_fail_ci_with_a_code_of_their_own(
    run: Run, iris_frame: pd.DataFrame, iris_csv: Path, tmp_path: Path, n: int
) -> None:
    """20 rows, under the 30 a verdict needs, printed "No dataset drift: 0 of 4 features
    drifted over 20 rows." and passed --fail-on-drift: a CI job fed a truncated file passed
    it as clean."""
    current = tmp_path / "current.csv"
    shifted(iris_frame, n, ["sepal_length"]).to_csv(current, index=False)
    report = tmp_path / "r.html"
    args = ("drift", str(iris_csv), str(current), "-o", str(report))
    failing = run(*args, "--fail-on-drift", registry=False)
    assert failing.exit_code == 4, failing.output
    assert f"Too few rows for a verdict: {n} of the 30 needed." in failing.stdout
    assert "No dataset drift" not in failing.stdout
    assert run(*args, registry=False).exit_code == 0  # without the flag, only a report
    page = report.read_text()
    assert "<b>No verdict</b>" in page and "No dataset drift" not in page
    assert f"too few rows for a verdict: {n} of the 30 needed" in page


def test_fail_on_drift_help_names_both_exit_codes(run: Run) -> None:
    help_text = " ".join(run("drift", "--help", registry=False).stdout.split())
    assert "exit with code 3 when the dataset drifted, and with 4 when" in help_text
    assert "too few rows for a verdict" in help_text


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--psi", "0", "greater than 0"),
        ("--psi", "-0.5", "greater than 0"),
        ("--p-value", "0", "greater than 0"),
        ("--p-value", "1", "less than 1"),
        ("--p-value", "nan", "not a number"),
        ("--js", "0", "greater than 0"),
        ("--js", "1.5", "less than or equal to 1"),
    ],
)
def test_thresholds_out_of_range_are_refused_by_the_flag_the_user_typed(
    run: Run, iris_csv: Path, tmp_path: Path, flag: str, value: str, message: str
) -> None:
    """--help showed --psi [x>=0] and --p-value [0<=x<=1], and 0 was then refused as
    "--drift-psi-threshold=0.0", a flag there is not."""
    result = run("drift", str(iris_csv), str(iris_csv), flag, value, "-o", str(tmp_path / "r"))
    assert result.exit_code == 2, result.output  # a usage error, before any reading
    assert f"Invalid value for '{flag}'" in result.output and message in result.output
    assert "drift-" not in result.output


def test_thresholds_help_shows_the_ranges_accepted(
    run: Run, iris_csv: Path, tmp_path: Path
) -> None:
    help_text = " ".join(run("drift", "--help", registry=False).stdout.split())
    for flag, bounds in (("--psi", "[x>0;"), ("--p-value", "[0<x<1;"), ("--js", "[0<x<=1;")):
        assert bounds in help_text.split(f" {flag} ")[1].split(" --")[0], flag
    for flag, value in (("--psi", "1e-9"), ("--p-value", "0.999"), ("--js", "1")):
        result = run("drift", str(iris_csv), str(iris_csv), flag, value, "-o", str(tmp_path / "r"))
        assert result.exit_code == 0, result.output


def log_iris(run: Run, model: Path, reference: Path, registry_dir: Path, rows: np.ndarray) -> None:
    """Register iris, and log ``rows`` as its requests of four rows each."""
    assert run("register", "iris", str(model), "--reference", str(reference)).exit_code == 0
    registry = Registry.open(registry_dir)
    log = InferenceLog(registry.companion_engine("inference-log"))
    now = time.time()
    log.write(
        [
            LogEntry(
                f"r{i}", "iris", 1, now, {"input-0": rows[i : i + 4].tolist()}, {"predict": []}
            )
            for i in range(0, len(rows), 4)
        ]
    )
    log.close()
    registry.close()


def test_model_mode_reads_the_inference_log(
    run: Run,
    iris_model_path: Path,
    iris_csv: Path,
    iris_frame: pd.DataFrame,
    tmp_path: Path,
    registry_dir: Path,
) -> None:
    rows = shifted(iris_frame, 400, ["sepal_length"]).to_numpy()
    log_iris(run, iris_model_path, iris_csv, registry_dir, rows)
    report = tmp_path / "log.html"
    result = run("drift", "--model", "iris", "--report", str(report))
    assert result.exit_code == 0, result.output
    assert "1 of 4 features drifted (sepal_length) over 400 rows" in result.stdout
    assert "100 logged requests (400 rows)" in report.read_text()


def test_model_mode_with_too_few_logged_rows_has_no_verdict(
    run: Run,
    iris_model_path: Path,
    iris_csv: Path,
    iris_frame: pd.DataFrame,
    tmp_path: Path,
    registry_dir: Path,
) -> None:
    log_iris(run, iris_model_path, iris_csv, registry_dir, iris_frame.to_numpy()[:12])
    report = tmp_path / "log.html"
    result = run("drift", "--model", "iris", "--report", str(report), "--fail-on-drift")
    assert result.exit_code == 4, result.output
    assert "Too few rows for a verdict: 12 of the 30 needed." in result.stdout
    assert "<b>No verdict</b>" in report.read_text()


def test_drift_errors_say_what_to_do(
    run: Run, iris_model_path: Path, iris_csv: Path, tmp_path: Path
) -> None:
    def error(result: Result) -> str:
        assert isinstance(result.exception, ModelPilotError), result.output
        return str(result.exception)

    alone = run("drift", str(iris_csv), registry=False)
    assert "give a reference and a current data file" in error(alone)
    run("register", "bare", str(iris_model_path))
    assert "no reference profile" in error(run("drift", "--model", "bare"))
    missing = run("drift", str(iris_csv), str(tmp_path / "nope.csv"), registry=False)
    assert "nope.csv" in error(missing)
    wrong = tmp_path / "wrong.csv"
    pd.DataFrame({"a": np.arange(50.0)}).to_csv(wrong, index=False)
    columns = run("drift", str(iris_csv), str(wrong), registry=False)
    assert "lacks the reference's columns" in error(columns)
    # Text where the reference has numbers was counted as missing: 100%, a drift by PSI 16.
    typo = tmp_path / "typo.csv"
    current = pd.read_csv(iris_csv)
    current["sepal_length"] = current["sepal_length"].astype(object)
    current.loc[3, "sepal_length"] = "5.1x"
    current.to_csv(typo, index=False)
    text = error(run("drift", str(iris_csv), str(typo), registry=False))
    assert "column 'sepal_length' holds numbers in the reference but text" in text
    assert "(1 value in this part of it, the first '5.1x' in data row 4)" in text


def test_wild_values_are_written_in_powers_of_ten_not_cut_off(
    run: Run, iris_frame: pd.DataFrame, iris_csv: Path, tmp_path: Path
) -> None:
    current = tmp_path / "current.csv"
    wild = iris_frame.sample(2000, replace=True, random_state=1).reset_index(drop=True)
    wild["sepal_width"] *= 1e200  # a client sending garbage, as fuzzers do
    wild.to_csv(current, index=False)
    result = run(
        "drift", str(iris_csv), str(current), "--report", str(tmp_path / "r.html"), registry=False
    )
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "sepal_width" in line)
    assert "e+" in row and "…" not in row


def test_a_wild_wasserstein_is_never_cut_at_80_columns(
    run: Run, iris_frame: pd.DataFrame, iris_csv: Path, tmp_path: Path
) -> None:
    """With the column of missing shares the table is at its widest, and a Wasserstein of
    1.02e+300 showed as "1.02e+3…", which reads as a thousand."""
    current = iris_frame.sample(2000, replace=True, random_state=1).reset_index(drop=True)
    current["sepal_width"] *= 1e300
    current.loc[::3, "petal_width"] = np.nan
    current.to_csv(tmp_path / "current.csv", index=False)
    result = run(
        "drift", str(iris_csv), str(tmp_path / "current.csv"), "-o", str(tmp_path / "r.html")
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    table = lines[: next(i for i, line in enumerate(lines) if "features drifted" in line)]
    assert not any("…" in line for line in table) and "0%->33%" in result.stdout
    assert all(len(line) <= 80 for line in table)
    row = next(line for line in table if "sepal_width" in line)
    assert re.search(r" \d(\.\d)?e\+(299|300) ", row), row


def test_the_tables_and_the_reports_figures_are_the_apis(
    run: Run, iris_frame: pd.DataFrame, iris_csv: Path, tmp_path: Path
) -> None:
    """The terminal table, the HTML report and the API show one Wasserstein per feature;
    one without any reference value to move from shows none ("-", not 0.000)."""
    reference = iris_frame.assign(blank=np.nan)
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current = shifted(reference, 300, ["sepal_length"], seed=4).assign(blank=1.0)
    current.to_csv(tmp_path / "current.csv", index=False)
    report = tmp_path / "r.html"
    result = run(
        "drift",
        str(tmp_path / "reference.csv"),
        str(tmp_path / "current.csv"),
        "-o",
        str(report),
        registry=False,
    )
    assert result.exit_code == 0, result.output
    api = compare(ReferenceProfile.from_data(reference), [current]).report.to_dict()
    page = report.read_text()
    for feature in api["features"]:
        assert isinstance(feature, dict)
        w = feature["wasserstein"]
        line = next(row for row in result.stdout.splitlines() if f" {feature['name']} " in row)
        cells = line.split()
        shown = "-" if w is None else f"{w:.3f}"
        assert cells[7] == shown, line  # W (sd), before the missing shares
        cell = "-" if w is None else f"{w:.4g}"
        assert re.search(f"<td>{_e(feature['name'])}</td>.*?<td>{re.escape(cell)}</td><td>", page)
    blank = next(f for f in api["features"] if isinstance(f, dict) and f["name"] == "blank")
    assert blank["wasserstein"] is None


def _e(name: object) -> str:
    return re.escape(str(name))


def test_codes_of_digits_in_a_text_column_are_text_in_every_chunk_of_the_current_file(
    run: Run, tmp_path: Path
) -> None:
    """The current file streams in chunks of 50,000 rows, each typed on its own: a first
    chunk of codes that are all digits ("02134") read as numbers (2134), every one of them
    an unseen category, and identical data drifted."""
    codes = np.repeat(["02134", "10001", "94105", "SW1A"], 20_000)
    frame = pd.DataFrame({"zip": codes, "amount": np.random.default_rng(0).normal(size=codes.size)})
    frame.sample(frac=1.0, random_state=0).to_csv(tmp_path / "reference.csv", index=False)
    frame.to_csv(tmp_path / "current.csv", index=False)  # sorted: 60,000 rows of digits first
    result = run(
        "drift",
        str(tmp_path / "reference.csv"),
        str(tmp_path / "current.csv"),
        "--report",
        str(tmp_path / "r.html"),
        "--fail-on-drift",
        registry=False,
    )
    assert result.exit_code == 0, result.output
    assert "No dataset drift: 0 of 2 features drifted over 80,000 rows" in result.stdout


def test_a_reference_without_rows_is_refused(run: Run, iris_csv: Path, tmp_path: Path) -> None:
    """An empty current file has no verdict (see the test below); an empty
    reference has nothing to compare with."""
    (tmp_path / "header.csv").write_text("sepal_length,sepal_width,petal_length,petal_width\n")
    result = run(
        "drift",
        str(tmp_path / "header.csv"),
        str(iris_csv),
        "--fail-on-drift",
        "-o",
        str(tmp_path / "r.html"),
        registry=False,
    )
    assert isinstance(result.exception, InvalidInput), result.output
    assert str(result.exception).startswith("the reference data has no rows")


def test_an_empty_current_file_has_no_verdict_as_one_of_too_few_rows_has(
    run: Run, iris_csv: Path, tmp_path: Path
) -> None:
    """A file of a header alone ended in "error: ... no rows" and exit 1 with
    --fail-on-drift, which promises 4 for too few rows for a verdict (nine rows got it)."""
    (tmp_path / "header.csv").write_text("sepal_length,sepal_width,petal_length,petal_width\n")
    report = tmp_path / "r.html"
    args = ["drift", str(iris_csv), str(tmp_path / "header.csv"), "-o", str(report)]
    failing = run(*args, "--fail-on-drift", registry=False)
    assert failing.exit_code == 4, failing.output
    assert "No rows in the current data: no verdict." in failing.stdout
    assert failing.stdout.count("no rows") == 4  # each feature's verdict
    assert "No verdict" in report.read_text()
    assert run(*args, registry=False).exit_code == 0  # as with nine rows


def test_booleans_and_pandas_missing_values_read_alike_from_csv_and_parquet(
    run: Run, tmp_path: Path
) -> None:
    """A file against itself, or its CSV copy, flagged its boolean column (read as 1.0, an
    unseen category); a nullable Parquet column's NA crashed the KS test or was a category."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=400),
            "flag": rng.random(400) < 0.5,
            "n": pd.array(rng.integers(0, 5, 400), dtype="Int64"),
            "s": pd.array(rng.choice(["a", "b"], 400), dtype="string"),
        }
    )
    frame.loc[::4, ["n", "s"]] = pd.NA
    frame.to_parquet(tmp_path / "data.parquet")
    frame.to_csv(tmp_path / "data.csv", index=False)
    for reference, current in (("data.parquet", "data.parquet"), ("data.csv", "data.parquet")):
        args = [str(tmp_path / reference), str(tmp_path / current), "-o", str(tmp_path / "r.html")]
        result = run("drift", *args, "--fail-on-drift", registry=False)
        assert result.exit_code == 0, result.output
        assert "No dataset drift: 0 of 4 features drifted over 400 rows" in result.stdout
        assert result.stdout.count("25%->25%") == 2, result.stdout  # n and s: missing, alike


def test_a_feature_arriving_half_missing_drifts_and_the_table_shows_its_share(
    run: Run, iris_frame: pd.DataFrame, iris_csv: Path, tmp_path: Path
) -> None:
    current = iris_frame.sample(200, replace=True, random_state=3).reset_index(drop=True)
    current.loc[::2, "sepal_width"] = np.nan
    current.to_csv(tmp_path / "current.csv", index=False)
    result = run(
        "drift", str(iris_csv), str(tmp_path / "current.csv"), "-o", str(tmp_path / "r.html")
    )
    assert result.exit_code == 0, result.output
    (line,) = [row for row in result.output.splitlines() if "0%->50%" in row]
    assert "drifted" in line and "missing" in line
    assert "Fisher's exact test of the share of missing values" in " ".join(result.output.split())


def test_a_misspelt_threshold_is_said(
    run: Run,
    iris_frame: pd.DataFrame,
    iris_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only ``serve`` warned of variables that name no setting: ``drift`` judged a misspelt
    threshold's data at the default without a word."""
    current = tmp_path / "current.csv"
    iris_frame.sample(600, replace=True, random_state=3).to_csv(current, index=False)
    monkeypatch.setenv("MODELPILOT_DRIFT_PSI_THRESHHOLD", "0.5")
    result = run(
        "drift", str(iris_csv), str(current), "-o", str(tmp_path / "r.html"), registry=False
    )
    assert result.exit_code == 0, result.output
    warning = (
        "warning: MODELPILOT_DRIFT_PSI_THRESHHOLD (did you mean MODELPILOT_DRIFT_PSI_THRESHOLD?) "
        "is no setting of ModelPilot's; ignored"
    )
    assert " ".join(result.stderr.split()).count(warning) == 1, result.stderr
    assert "THRESHHOLD" not in result.stdout  # the table stays clean for scripts


@pytest.mark.parametrize("option", [["--last", "5"], ["--since-minutes", "1"]])
def test_log_window_options_with_two_files_are_refused(
    run: Run, iris_csv: Path, tmp_path: Path, option: list[str]
) -> None:
    """``drift REF CUR --last 5`` judged all the rows of the file without a word (tester t4),
    where the reverse mistake (``--model`` with ``--ignore``) is refused."""
    report = tmp_path / "r.html"
    result = run("drift", str(iris_csv), str(iris_csv), *option, "-o", str(report), registry=False)
    assert isinstance(result.exception, ModelPilotError), result.output
    assert f"{option[0]} is for --model" in str(result.exception)
    assert not report.exists()
