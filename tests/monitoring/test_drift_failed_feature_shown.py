"""A feature whose drift tests failed reads "failed" in the table of ``modelpilot drift`` and in
its HTML report, not "too few rows" beside a window of hundreds (see ``drift.failed``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from modelpilot.cli.main import app
from modelpilot.monitoring import binning

judge = binning.judge_categorical


def failing(name: str, *args: object, **kwargs: object) -> object:
    """The categorical judge, raising for the feature ``city`` (no known input makes the
    real one raise any more; this stands in for the next bug)."""
    if name == "city":
        raise ZeroDivisionError("float division by zero")
    return judge(name, *args, **kwargs)  # type: ignore[arg-type]


def test_a_failed_feature_reads_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "city": rng.choice(["a", "b"], 300)})
    frame.to_csv(tmp_path / "ref.csv", index=False)
    frame.to_csv(tmp_path / "cur.csv", index=False)
    monkeypatch.setattr(binning, "judge_categorical", failing)
    report = tmp_path / "drift.html"
    argv = ["drift", str(tmp_path / "ref.csv"), str(tmp_path / "cur.csv"), "--report", str(report)]
    result = CliRunner().invoke(app, [*argv, "--registry", str(tmp_path / "registry")])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.strip().startswith("city"))
    assert "failed" in row and "too few rows" not in row
    assert "0 of 2 features drifted (the tests of city failed)" in " ".join(result.output.split())
    html = report.read_text(encoding="utf-8")
    assert "<span class='badge none'>failed</span>" in html and "too few rows" not in html
