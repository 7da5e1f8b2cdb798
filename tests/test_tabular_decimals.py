"""Decimal columns (money) read as numbers: pandas holds Parquet's and SQL's decimals as objects
of ``decimal.Decimal``, which drift judged as categories of their distinct values and
registration as text ("feature 'a' takes text, but row 0 holds Decimal('0.13')")."""

from __future__ import annotations

import decimal
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression

from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from modelpilot.tabular import decimals_as_numbers, iter_table, read_table

ROWS = 300


def amounts(seed: int, shift: float = 0.0) -> list[decimal.Decimal | None]:
    rng = np.random.default_rng(seed)
    values = [decimal.Decimal(f"{v:.2f}") for v in rng.normal(100 + shift, 10, ROWS)]
    return [None if i % 50 == 0 else v for i, v in enumerate(values)]


def write(path: Path, seed: int, shift: float = 0.0) -> Path:
    table = pa.table(
        {
            "amount": pa.array(amounts(seed, shift), type=pa.decimal128(10, 2)),
            "city": pa.array(["a", "b", "c"] * (ROWS // 3)),
        }
    )
    pq.write_table(table, path)
    return path


def test_a_parquet_decimal_column_reads_as_float64_whole_and_in_chunks(tmp_path: Path) -> None:
    path = write(tmp_path / "ref.parquet", seed=0)
    whole = read_table(path)
    assert whole["amount"].dtype == np.float64 and whole["amount"].isna().sum() == 6
    assert whole["amount"].iloc[1] == float(amounts(0)[1])  # type: ignore[arg-type]
    assert not pd.api.types.is_numeric_dtype(whole["city"])
    chunks = list(iter_table(path, chunk_rows=100))
    assert all(chunk["amount"].dtype == np.float64 for chunk in chunks)


def test_a_decimal_column_drifts_as_a_number(tmp_path: Path) -> None:
    reference = read_table(write(tmp_path / "ref.parquet", seed=0))
    current = iter_table(write(tmp_path / "cur.parquet", seed=1, shift=5.0))
    report = compare(ReferenceProfile.from_data(reference), current).report
    amount = next(f for f in report.features if f.name == "amount")
    assert amount.kind == "numeric" and amount.method == "ks" and amount.drifted
    assert amount.wasserstein is not None and 0.3 < amount.wasserstein < 0.8


def test_a_model_of_numbers_registers_with_a_decimal_reference(
    registry: Registry, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, 2))
    model = LogisticRegression().fit(pd.DataFrame(x, columns=["a", "b"]), (x[:, 0] > 0))
    joblib.dump(model, tmp_path / "m.joblib")
    frame = pd.DataFrame({"a": [decimal.Decimal(f"{v:.2f}") for v in x[:, 0]], "b": x[:, 1]})
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "ref.parquet")
    version = register_model(
        registry, "m", tmp_path / "m.joblib", reference=tmp_path / "ref.parquet"
    )
    assert version.signature.feature_datatypes is None  # numbers alone: one FP64 tensor
    assert registry.reference_profile("m", 1).feature("a").kind == "numeric"  # type: ignore[union-attr]
    # A DataFrame of decimals (pandas' read_sql of a NUMERIC column) alike.
    again = register_model(registry, "m", tmp_path / "m.joblib", reference=frame)
    assert again.signature.feature_datatypes is None


def test_other_object_columns_are_left_as_they_are() -> None:
    frame = pd.DataFrame(
        {
            "mixed": pd.Series([decimal.Decimal("1.5"), "x"], dtype=object),
            "empty": pd.Series([None, None], dtype=object),
        }
    )
    assert decimals_as_numbers(frame).dtypes.tolist() == [object, object]
