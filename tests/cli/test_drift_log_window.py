"""``modelpilot drift --model``: a window of the log without requests, and what the window is.

A tester's CI job on a quiet model (and on a version not served yet) got "error: the
inference log holds no requests for this version in that window" and exit 1 with
--fail-on-drift, as for a mistyped model name, where the help promises 4 for "too few rows
for a verdict, or none". ``--since-minutes -5`` was taken (a window that cannot hold a
request), and ``nan`` meant no time limit at all.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.log_records import log_batch
from modelpilot.registry.store import Registry
from tests.cli.conftest import Run


def log_rows(registry_dir: Path, rows: np.ndarray, at: float) -> None:
    """Log ``rows`` as requests of iris:1 of one row each, answered at ``at``."""
    registry = Registry.open(registry_dir)
    log = InferenceLog(registry.companion_engine("inference-log"))
    try:
        ids = [f"r{i}" for i in range(len(rows))]
        outputs = {"predict": np.zeros(len(rows), dtype=np.int64)}
        times = [at] * len(rows)
        log.append([log_batch("iris", 1, ids, times, [1] * len(rows), {"input-0": rows}, outputs)])
    finally:
        log.close()
        registry.close()


def test_a_window_without_requests_has_no_verdict_not_an_error(
    run: Run, iris_model_path: Path, iris_csv: Path, iris_frame: pd.DataFrame, tmp_path: Path
) -> None:
    assert (
        run("register", "iris", str(iris_model_path), "--reference", str(iris_csv)).exit_code == 0
    )
    report = tmp_path / "r.html"
    never_served = run("drift", "--model", "iris", "-o", str(report), "--fail-on-drift")
    assert never_served.exit_code == 4, never_served.output
    assert "No rows in the current data: no verdict." in never_served.stdout
    assert "0 logged requests (0 rows) of the last 60 minutes" in report.read_text()
    assert run("drift", "--model", "iris", "-o", str(report)).exit_code == 0
    # Traffic an hour ago: none in the last ten minutes, 300 rows in the last two hours.
    log_rows(tmp_path / "registry", iris_frame.to_numpy()[np.arange(300) % 150], time.time() - 3600)
    args = ["drift", "--model", "iris", "-o", str(report), "--fail-on-drift"]
    quiet = run(*args, "--since-minutes", "10")
    assert quiet.exit_code == 4, quiet.output
    assert "No rows in the current data: no verdict." in quiet.stdout
    busy = run(*args, "--since-minutes", "120")
    assert busy.exit_code == 0, busy.output
    assert "No dataset drift" in busy.stdout and "over 300 rows" in busy.stdout


def test_since_minutes_must_be_a_length_of_time(
    run: Run, iris_model_path: Path, iris_csv: Path, tmp_path: Path
) -> None:
    assert (
        run("register", "iris", str(iris_model_path), "--reference", str(iris_csv)).exit_code == 0
    )
    for value in ("-5", "0", "nan"):
        result = run(
            "drift", "--model", "iris", "--since-minutes", value, "-o", str(tmp_path / "r")
        )
        assert result.exit_code == 2, (value, result.output)
        assert "is not a number of minutes above 0" in result.output, value
    help_text = " ".join(run("drift", "--help", registry=False).stdout.split())
    since = help_text.split(" --since-minutes ")[1]
    assert "minutes [x>0]. Default: $MODELPILOT_DRIFT_WINDOW_SECONDS, the live" in since


def test_infinite_values_from_the_log_count_as_missing_as_in_the_reference(
    run: Run, iris_model_path: Path, iris_csv: Path, iris_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """+inf and -inf are missing values, in the reference profile, the live monitor and the
    log's rows alike (the log gives them back as infinities: test_log_roundtrip.py)."""
    assert (
        run("register", "iris", str(iris_model_path), "--reference", str(iris_csv)).exit_code == 0
    )
    rows = iris_frame.to_numpy()[np.arange(400) % 150].copy()
    rows[:200, 0] = np.inf
    rows[200:300, 1] = -np.inf
    log_rows(tmp_path / "registry", rows, time.time())
    result = run("drift", "--model", "iris", "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.output
    table, _ = " ".join(result.stdout.split()).split("Rule:")
    assert "0%->50%" in table and "0%->25%" in table  # the missing shares, sepal_length's first
    assert "2 of 4 features drifted (sepal_length, sepal_width) over 400 rows" in table
    assert "sepal_length drifted missing" in table  # judged as the live monitor judges it
