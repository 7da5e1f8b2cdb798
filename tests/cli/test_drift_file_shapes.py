"""``modelpilot drift`` on two files whose shape says they cannot be compared as they are:
an .npy file of more columns than the reference, a reference of a handful of rows, and a CSV
column of timestamps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modelpilot.errors import InvalidInput
from tests.cli.conftest import Run


def drift(run: Run, reference: Path, current: Path, *flags: str) -> object:
    report = reference.parent / "report.html"
    return run("drift", str(reference), str(current), "-o", str(report), *flags, registry=False)


def test_an_npy_file_of_more_columns_is_refused(run: Run, tmp_path: Path) -> None:
    """Its columns are positions: a column added upstream shifts every feature, and it was
    compared on its first three ("No dataset drift: 0 of 3 features", exit 0)."""
    rng = np.random.default_rng(11)
    reference, wider = tmp_path / "ref.npy", tmp_path / "cur4.npy"
    np.save(reference, rng.normal(size=(1000, 3)))
    np.save(wider, rng.normal(size=(500, 4)))
    result = drift(run, reference, wider, "--fail-on-drift")
    assert isinstance(result.exception, InvalidInput), result.output
    assert str(result.exception) == (
        "the current data has 4 columns; the reference has 3 ('0', '1', '2'); columns without "
        "names are matched by their positions, so both must have the same"
    )
    # A column left out by --ignore is left out of both files, by its position.
    np.save(reference, rng.normal(size=(1000, 4)))
    shifted = rng.normal(size=(500, 4))
    shifted[:, 1] += 5
    np.save(wider, shifted)
    ignored = drift(run, reference, wider, "--ignore", "1", "--fail-on-drift")
    assert ignored.exit_code == 0, ignored.output
    assert "No dataset drift: 0 of 3 features drifted over 500 rows" in ignored.stdout


def test_a_reference_of_fewer_rows_than_a_verdict_needs_is_refused(
    run: Run, tmp_path: Path
) -> None:
    """One reference row made every numeric feature a constant, and any spread drifted:
    "Dataset drift", exit 3, for a truncated reference."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=2000), "c": rng.choice(list("xyz"), 2000)})
    reference, current = tmp_path / "ref.csv", tmp_path / "cur.csv"
    frame.to_csv(current, index=False)
    frame.iloc[:1].to_csv(reference, index=False)
    result = drift(run, reference, current, "--fail-on-drift")
    assert isinstance(result.exception, InvalidInput), result.output
    assert str(result.exception) == (
        f"the reference data has 1 row ({reference}), too few to judge drift against: it "
        "needs at least 30, as the current data does for a verdict (MODELPILOT_DRIFT_MIN_ROWS); "
        "is the file whole?"
    )
    frame.iloc[:30].to_csv(reference, index=False)
    assert drift(run, reference, current).exit_code == 0


def test_timestamps_in_a_csv_are_refused_as_in_parquet(run: Run, tmp_path: Path) -> None:
    """As text each time was a category of its own, and the column read JS 0.000 however
    far the times moved, where the same column from Parquet was refused by name."""
    rng = np.random.default_rng(1)

    def frame(start: str) -> pd.DataFrame:
        times = pd.date_range(start, periods=400, freq="min")
        return pd.DataFrame(
            {"ts": times, "day": times.strftime("%Y-%m-%d"), "x": rng.normal(size=400)}
        )

    old, new = frame("2024-01-01"), frame("2024-03-01")
    errors = []
    for suffix in (".csv", ".parquet"):
        reference, current = tmp_path / f"ref{suffix}", tmp_path / f"cur{suffix}"
        if suffix == ".csv":
            old.to_csv(reference, index=False)
            new.to_csv(current, index=False)
        else:
            old.assign(day=old["ts"].dt.normalize()).to_parquet(reference)
            new.assign(day=new["ts"].dt.normalize()).to_parquet(current)
        result = drift(run, reference, current)
        assert isinstance(result.exception, InvalidInput), result.output
        errors.append(str(result.exception))
        left_out = drift(run, reference, current, "--ignore", "ts", "--ignore", "day")
        assert left_out.exit_code == 0, left_out.output
        assert "0 of 1 features drifted over 400 rows" in left_out.stdout
    assert errors[0] == errors[1]
    assert errors[0].startswith(
        "the reference's columns ['ts', 'day'] hold dates, times or durations, which drift "
        "cannot judge"
    )
