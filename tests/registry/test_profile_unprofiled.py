"""Columns a reference profile cannot describe as one feature: dates, times and durations, and
lists or records. They were profiled as categories of their distinct values (every row of a
time its own, every one in fresh data new), which could never tell drift and once failed the
drift report with a ZeroDivisionError; a list was a category of its text."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelpilot.errors import InvalidInput
from modelpilot.registry.profile import ReferenceProfile

ROWS = 50
START = datetime.datetime(2024, 1, 1)


def parquet_column(tmp_path: Path, column: pa.Array) -> pd.DataFrame:
    """A Parquet file of a number and ``column``, as pandas reads it back."""
    table = pa.table({"x": pa.array(np.arange(ROWS, dtype=np.float64)), "odd": column})
    pq.write_table(table, tmp_path / "t.parquet")
    return pd.read_parquet(tmp_path / "t.parquet")


TIMES = {
    "timestamp": pa.array([START + datetime.timedelta(hours=i) for i in range(ROWS)]),
    "timestamp with zone": pa.array(
        [START.replace(tzinfo=datetime.UTC) + datetime.timedelta(hours=i) for i in range(ROWS)]
    ),
    "date": pa.array([START.date() + datetime.timedelta(days=i) for i in range(ROWS)]),
    "time of day": pa.array([datetime.time(i % 24, i) for i in range(ROWS)]),
    "duration": pa.array([datetime.timedelta(seconds=i) for i in range(ROWS)]),
}


@pytest.mark.parametrize("kind", list(TIMES))
def test_dates_times_and_durations_are_refused_by_name(tmp_path: Path, kind: str) -> None:
    frame = parquet_column(tmp_path, TIMES[kind])
    with pytest.raises(InvalidInput) as refused:
        ReferenceProfile.from_data(frame)
    message = str(refused.value)
    assert message.startswith(
        "the reference's columns ['odd'] hold dates, times or durations, which drift cannot "
        "judge (every time in fresh data is one the reference never held)"
    )
    assert "--ignore COLUMN" in message


NESTED = {
    "list": pa.array([[i, i + 1] for i in range(ROWS)], type=pa.list_(pa.int64())),
    "record": pa.array([{"a": i, "b": "x"} for i in range(ROWS)]),
}


@pytest.mark.parametrize("kind", list(NESTED))
def test_lists_and_records_are_refused_by_name(tmp_path: Path, kind: str) -> None:
    frame = parquet_column(tmp_path, NESTED[kind])
    with pytest.raises(InvalidInput, match=r"columns \['odd'\] hold lists or records"):
        ReferenceProfile.from_data(frame)


def test_a_list_among_missing_values_is_found() -> None:
    frame = pd.DataFrame({"odd": pd.Series([None] * 9 + [[1, 2]], dtype=object)})
    with pytest.raises(InvalidInput, match="lists or records"):
        ReferenceProfile.from_data(frame)


def test_numbers_text_booleans_and_missing_columns_are_profiled_as_before() -> None:
    frame = pd.DataFrame(
        {
            "n": np.arange(ROWS, dtype=np.float64),
            "i": pd.array([None, *range(ROWS - 1)], dtype="Int64"),
            "t": [f"when {i}" for i in range(ROWS)],
            "o": pd.Series(["a", None] * (ROWS // 2), dtype=object),
            "b": [True, False] * (ROWS // 2),
            "empty": pd.Series([None] * ROWS, dtype=object),
        }
    )
    profile = ReferenceProfile.from_data(frame)
    kinds = {f.name: f.kind for f in profile.features}
    assert kinds == {
        "n": "numeric",
        "i": "numeric",
        "t": "categorical",
        "o": "categorical",
        "b": "categorical",
        "empty": "categorical",
    }
