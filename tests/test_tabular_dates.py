"""A CSV's columns of ISO 8601 dates are read as dates, as Parquet stores them (see
tests/cli/test_drift_file_shapes.py for drift, which refuses them alike)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from modelpilot.tabular import read_table


def test_iso_dates_read_as_dates_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame(
        {
            "ts": ["2024-01-31 12:00:00", "2024-02-01T08:30:00.5", None],
            "day": ["2024-01-31", "2024-02-01", "2024-02-02"],
            "zoned": [
                "2024-01-31T12:00:00+01:00",
                "2024-01-31T12:00:00+02:00",
                "2024-01-31T00:00:00Z",
            ],
            "zip": ["02134", "10001", "94105"],
            "bad": ["2024-01-31", "2024-13-45", "2024-02-01"],
            "word": ["a", "b", "2024-01-31"],
        }
    ).to_csv(path, index=False)
    frame = read_table(path)
    dates = [name for name, column in frame.items() if pd.api.types.is_datetime64_any_dtype(column)]
    assert dates == ["ts", "day", "zoned"]
    assert frame["ts"].isna().tolist() == [False, False, True]
    assert str(frame["zoned"].dt.tz) == "UTC"
    assert frame["bad"].tolist() == ["2024-01-31", "2024-13-45", "2024-02-01"]
    # Columns read as text (a model's text features) stay text.
    kept = read_table(path, text_columns=["day"])
    assert kept["day"].tolist() == ["2024-01-31", "2024-02-01", "2024-02-02"]
