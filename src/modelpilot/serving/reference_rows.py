"""A reference table's rows as the model is given them at registration: which columns are
numbers to it, the rows of a table of mixed kinds, a column as the tensor a request sends, and
the hash that names the data a version was registered with."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from modelpilot.errors import InvalidInput
from modelpilot.protocol.datatypes import datatype_of
from modelpilot.protocol.types import Tensor
from modelpilot.registry.signature import TensorSpec


def refuse_dates(frame: pd.DataFrame) -> None:
    """InvalidInput if the reference has dates or times, which no request could carry."""
    dates = [
        str(name)
        for name, column in frame.items()
        if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column)
    ]
    if dates:
        raise InvalidInput(
            f"the features {dates} of the reference data are dates or times, which ModelPilot "
            "does not serve: turn them into numbers (say, days since an epoch, or the hour) "
            "before the model, in the reference and in the requests alike"
        )


def column_datatype(column: pd.Series) -> str:
    """A reference column's datatype in a table of mixed kinds: FP64 or BYTES."""
    return "FP64" if is_number(column) else "BYTES"


def is_number(column: pd.Series) -> bool:
    """Whether the model is given a reference column as numbers: numbers, and booleans
    (1.0 and 0.0, as a request's FP64 tensor gives them), also as objects beside missing
    values (a CSV's True and False with empty cells), which are no text."""
    if pd.api.types.is_numeric_dtype(column):  # (booleans among them)
        return True
    present = column.dropna() if column.dtype == object else ()
    return len(present) > 0 and all(isinstance(v, bool | np.bool_) for v in present)


def as_numbers(column: pd.Series) -> np.ndarray:
    """A column that ``is_number`` as the model is given it: NumPy's numbers as they are,
    the rest (booleans, pandas' nullable Int64...) as float64, missing as NaN: as NumPy's
    objects, the model's input took them for text ("holds strings")."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iuf":
        return column.to_numpy()
    return column.astype(object).to_numpy(dtype=np.float64, na_value=np.nan)


def mixed_rows(frame: pd.DataFrame) -> np.ndarray:
    """A mixed table's rows as the server passes them on: numbers as floats, text as str."""
    rows = np.empty(frame.shape, dtype=object)
    for position, (_, column) in enumerate(frame.items()):
        if is_number(column):
            rows[:, position] = as_numbers(column).astype(np.float64)
        else:
            rows[:, position] = column.astype(object).to_numpy()
    return rows


def column_tensor(spec: TensorSpec, column: pd.Series) -> Tensor:
    """A reference column as the tensor a request sends for the input ``spec``: text as
    objects (missing as NaN, which the input refuses), numbers as they are stored (missing
    as NaN)."""
    data: np.ndarray
    if spec.datatype == "BYTES" or not pd.api.types.is_numeric_dtype(column):
        data = column.astype(object).to_numpy()
    elif isinstance(column.dtype, pd.api.extensions.ExtensionDtype) or column.hasnans:
        data = column.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        data = column.to_numpy()
    if len(spec.shape) == 2:
        data = data.reshape(-1, 1)
    return Tensor(spec.name, datatype_of(data), data.shape, data)


def numeric_rows(frame: pd.DataFrame) -> np.ndarray | None:
    """The reference rows as a 2-D array the model can take, when they are all numbers
    (``is_number``): of integers if they all are, else of float64."""
    columns = [column for _, column in frame.items()]
    if not all(is_number(column) for column in columns):
        return None
    if not columns:
        return frame.to_numpy()
    return np.column_stack([as_numbers(column) for column in columns])


def frame_hash(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
