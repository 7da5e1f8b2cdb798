"""``modelpilot drift --model`` judges the live monitor's window by default: its newest
``MODELPILOT_DRIFT_WINDOW_ROWS`` rows of the last ``MODELPILOT_DRIFT_WINDOW_SECONDS``.

``--last`` counted requests (5,000 by default) and had no time limit: with clients sending
50 rows a request the command judged 10,426 rows where the server judged 5,000 (6,300), a
shift that had aged out of the live window still half of the command's.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.log_records import log_batch
from modelpilot.registry.store import Registry
from tests.cli.conftest import Run

ROWS_A_REQUEST = 50


def log_requests(registry_dir: Path, rows: np.ndarray, at: float, prefix: str) -> None:
    """Log ``rows`` as requests of iris:1 of ``ROWS_A_REQUEST`` rows each, answered at ``at``."""
    registry = Registry.open(registry_dir)
    log = InferenceLog(registry.companion_engine("inference-log"))
    try:
        requests = len(rows) // ROWS_A_REQUEST
        ids = [f"{prefix}{i}" for i in range(requests)]
        outputs = {"predict": np.zeros(len(rows), dtype=np.int64)}
        sizes = [ROWS_A_REQUEST] * requests
        batch = log_batch("iris", 1, ids, [at] * requests, sizes, {"input-0": rows}, outputs)
        log.append([batch])
    finally:
        log.close()
        registry.close()


def test_the_default_window_is_the_live_one_in_rows(
    run: Run,
    iris_model_path: Path,
    iris_csv: Path,
    iris_frame: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELPILOT_DRIFT_WINDOW_ROWS", "2000")
    assert (
        run("register", "iris", str(iris_model_path), "--reference", str(iris_csv)).exit_code == 0
    )
    rows = iris_frame.to_numpy()[np.arange(2000) % 150]
    shifted = rows.copy()
    shifted[:, 0] += 3.0  # sepal_length, far out of its reference range
    now = time.time()
    log_requests(tmp_path / "registry", shifted, now - 7200, "old")  # aged out of the window
    log_requests(tmp_path / "registry", shifted, now - 60, "shifted")
    log_requests(tmp_path / "registry", rows, now - 30, "plain")
    report = tmp_path / "r.html"
    args = ["drift", "--model", "iris", "-o", str(report)]

    live = run(*args)  # the newest 2,000 rows of the last hour: the plain ones
    assert live.exit_code == 0, live.output
    assert "No dataset drift: 0 of 4 features drifted over 2,000 rows" in live.stdout
    assert "40 logged requests (2,000 rows) of the last 60 minutes" in report.read_text()

    # --last counts rows; the oldest request may be in part.
    more = run(*args, "--last", "3025")
    assert more.exit_code == 0, more.output
    assert "(sepal_length) over 3,025 rows" in " ".join(more.stdout.split())
    assert "61 logged requests (3,025 rows) of the last 60 minutes" in report.read_text()

    # --since-minutes reaches back past the live window's age.
    everything = run(*args, "--last", "100000", "--since-minutes", "180")
    assert everything.exit_code == 0, everything.output
    assert "over 6,000 rows" in everything.stdout
    assert "120 logged requests (6,000 rows) of the last 3 hours" in report.read_text()
