"""Which reference columns a profile describes, and as what: numbers, categories, or none."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd

from modelpilot.errors import InvalidInput


def float32_dtype(column: pd.Series) -> bool:
    """Whether a column holds float32 numbers: NumPy's float32, or pandas' nullable Float32
    (as a Parquet file's nullable float column reads with ``dtype_backend``)."""
    return getattr(column.dtype, "numpy_dtype", column.dtype) == np.float32


def is_numeric_feature(column: pd.Series) -> bool:
    """Whether a reference column is profiled as numbers (binned on its quantiles) rather than
    as categories: numbers that are not booleans."""
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


TIMES = (datetime.date, datetime.time, datetime.timedelta, np.datetime64, np.timedelta64)
"""Values of a column of dates or times held as objects (Parquet's date32 and time64 columns
read so; ``pd.Timestamp`` is a ``datetime.date`` too)."""
NESTED = (list, tuple, dict, set, np.ndarray)
"""Values of a column that holds several values a row (Parquet's list and struct columns)."""


def refuse_unprofiled(frame: pd.DataFrame) -> None:
    """InvalidInput naming the columns of ``frame`` that a profile cannot describe as one
    feature: dates, times and durations, and lists or records (several values a row).

    Dates and times were categories of their distinct values: every row of a time column is
    its own, and every one in fresh data is one the reference never held, so the column
    could never tell drift (and its tests once raised, failing the whole report). Turned
    into numbers they would drift always, as time moves on. Lists were categories of their
    text, or failed deep in registration with a traceback.
    """
    dates, nested = [], []
    types = pd.api.types
    for name, column in frame.items():
        if types.is_datetime64_any_dtype(column) or types.is_timedelta64_dtype(column):
            dates.append(str(name))
        elif column.dtype == object:
            kinds = set(map(type, column.dropna()))
            if any(issubclass(kind, TIMES) for kind in kinds):
                dates.append(str(name))
            elif any(issubclass(kind, NESTED) for kind in kinds):
                nested.append(str(name))
    if dates:
        raise InvalidInput(
            f"the reference's columns {dates} hold dates, times or durations, which drift "
            "cannot judge (every time in fresh data is one the reference never held): leave "
            "them out (modelpilot drift's --ignore COLUMN), or turn them into numbers (the "
            "hour, the weekday, days since an event, a duration in seconds) in all the data"
        )
    if nested:
        raise InvalidInput(
            f"the reference's columns {nested} hold lists or records (several values a row), "
            "and a feature holds one number or text a row: leave them out (modelpilot drift's "
            "--ignore COLUMN), or give each value a column of its own"
        )
