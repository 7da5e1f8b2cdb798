"""A CSV header of numbers alone: the first row of a file written without a header.

A newcomer's reference written with ``header=False`` was registered silently: its first row
became the version's feature names ("6.7", "3.3"...), which requests, metrics and drift
reports then used, and the row was lost from the profile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelpilot.errors import BadRequest
from modelpilot.tabular import iter_table, read_table

REFUSED = (
    "cannot read nohdr.csv as CSV: its header row is all numbers (5.1, 3.5, 1.4, 0.2), so it "
    "is likely the first row of data, which would be taken for the column names and lost; "
    "ModelPilot reads CSV files with a header row of column names: write one"
)


@pytest.fixture
def headerless(tmp_path: Path, iris_frame: pd.DataFrame) -> Path:
    path = tmp_path / "nohdr.csv"
    iris_frame.to_csv(path, index=False, header=False)
    return path


def test_a_header_of_numbers_is_refused_whole_and_in_chunks(headerless: Path) -> None:
    with pytest.raises(BadRequest) as whole:
        read_table(headerless)
    assert str(whole.value).startswith(REFUSED)
    with pytest.raises(BadRequest) as chunks:
        next(iter_table(headerless))
    assert str(chunks.value).startswith(REFUSED)


def test_the_names_pandas_gives_unnamed_columns_are_a_header(tmp_path: Path) -> None:
    """0, 1, 2 is what ``pd.DataFrame(array).to_csv`` writes (with the index, an empty
    cell first): positional names, as an .npy file's, not data."""
    array = np.random.default_rng(0).normal(size=(20, 3))
    plain, indexed = tmp_path / "plain.csv", tmp_path / "indexed.csv"
    pd.DataFrame(array).to_csv(plain, index=False)
    pd.DataFrame(array).to_csv(indexed)
    assert list(read_table(plain).columns) == ["0", "1", "2"]
    assert list(read_table(indexed).columns)[1:] == ["0", "1", "2"]
    assert len(read_table(plain)) == len(read_table(indexed)) == 20
    # A header of words and numbers is a header.
    mixed = tmp_path / "mixed.csv"
    pd.DataFrame(array, columns=["2024", "x", "1.5"]).to_csv(mixed, index=False)
    assert list(read_table(mixed).columns) == ["2024", "x", "1.5"]
