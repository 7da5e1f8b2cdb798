"""``modelpilot predict``'s rows: a chunk of the input as the model's tensors, and its outputs
as rows again (and as an array, for a .npy output)."""

from __future__ import annotations

import math
from typing import IO, Any

import numpy as np
import pandas as pd
from rich.markup import escape

from modelpilot.cli.common import err
from modelpilot.errors import InvalidInput
from modelpilot.protocol.datatypes import datatype_of, numpy_dtype
from modelpilot.protocol.types import Tensor
from modelpilot.registry.signature import Signature
from modelpilot.serving.inputs import (
    column_inputs,
    column_names,
    missing_values,
    takes_missing_text,
)
from modelpilot.tabular import has_names


def say_left_out(signature: Signature, frame: pd.DataFrame) -> None:
    """Name the input's columns that are no feature of the model (a label, an id): they are
    left out of scoring and of the output, which a run should not do unsaid."""
    names = column_names(signature)
    if names and has_names(frame):
        extra = [str(c) for c in frame.columns if c not in names]
        if extra:
            err.print(
                f"note: left out, as no feature of the model: {escape(', '.join(extra))}",
                highlight=False,
            )


def input_tensors(signature: Signature, frame: pd.DataFrame, first_row: int) -> list[Tensor]:
    """``frame`` as the model's inputs; ``first_row`` is its first row's index in the file."""
    names = column_names(signature)
    if names and has_names(frame):
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise InvalidInput(
                f"the input lacks the model's features {missing}; its columns are "
                f"{list(frame.columns)}"
            )
        frame = frame[list(names)]
    if signature.feature_datatypes or column_inputs(signature):
        return _by_feature(signature, frame, first_row)
    array = _numbers(signature, frame, first_row)
    name = signature.inputs[0].name if signature.inputs else "input-0"
    return [Tensor(name, datatype_of(array), array.shape, array)]


def _by_feature(signature: Signature, frame: pd.DataFrame, first_row: int) -> list[Tensor]:
    """One tensor per feature, each in its datatype: a table of numbers beside text, or the
    inputs a model declares one per column (each column as the model declares it, as
    ``/predict`` sends it)."""
    specs = signature.feature_inputs if signature.feature_datatypes else column_inputs(signature)
    if not has_names(frame):
        raise InvalidInput(
            "the model takes its features by name: give the input a header naming its "
            f"columns {[s.name for s in specs]} (CSV or Parquet)"
        )
    tensors = []
    for spec in specs:
        if spec.datatype == "BYTES":
            data = _texts(signature, frame[spec.name], first_row)
        else:
            data = _numbers(signature, frame[[spec.name]], first_row)[:, 0]
        if len(spec.shape) == 2 and not signature.feature_datatypes:  # declared [rows, 1]
            data = data.reshape(-1, 1)
        tensors.append(Tensor(spec.name, datatype_of(data), data.shape, data))
    return tensors


def _texts(signature: Signature, values: pd.Series, first_row: int) -> np.ndarray:
    """A text column as strings; an empty cell None where the model copes with missing text,
    else InvalidInput naming its row."""
    name = values.name
    if pd.api.types.is_numeric_dtype(values):
        # Parquet keeps its types: a number here is no text the model was fitted on
        # (2134 is not "02134"), and would be an unknown category, silently.
        raise InvalidInput(
            f"column {name!r} holds numbers ({values.dtype}), and the model takes text "
            "there: store it as text (strings), as the model was fitted on it"
        )
    empty = values.isna().to_numpy()
    if empty.any() and not takes_missing_text(signature):
        at = int(np.argmax(empty))
        raise InvalidInput(
            f"data row {first_row + at + 1}, column {name!r} is empty, and the model takes "
            "text there: fill it in or remove that row"
        )
    data: np.ndarray = values.astype(str).to_numpy(dtype=object)
    data[empty] = None
    return data


def _numbers(signature: Signature, frame: pd.DataFrame, first_row: int) -> np.ndarray:
    """``frame``'s columns of numbers as one array, or InvalidInput naming a bad cell."""
    nullable = any(isinstance(t, pd.api.extensions.ExtensionDtype) for t in frame.dtypes)
    if nullable and all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
        # Parquet's nullable integers (Int64): their NA is a missing value, as NaN is.
        array = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        array = frame.to_numpy()
    if array.dtype.kind == "O":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as exc:
            problem = _not_numeric(frame, first_row) or f"non-numeric input: {exc}"
            raise InvalidInput(problem) from None
    # The engine would refuse them too, counting rows from 0 in this chunk, not in the file.
    empty = missing_values(signature, array)
    if empty is not None:
        (row, col), count = empty
        raise InvalidInput(
            f"data row {first_row + row + 1}, column {frame.columns[col]!r} is empty or "
            "not finite, and this model cannot take missing values: impute them or remove "
            f"those rows ({count:,} such cell(s) in rows {first_row + 1:,}-"
            f"{first_row + len(frame):,})"
        )
    return array


def _not_numeric(frame: pd.DataFrame, first_row: int) -> str | None:
    """Where the first value that is not a number is, as a user finds it in the file."""
    for column in frame.columns:
        values = frame[column]
        if values.dtype.kind != "O":
            continue
        bad = pd.to_numeric(values, errors="coerce").isna() & values.notna()
        if bad.any():
            at = int(np.argmax(bad.to_numpy()))
            return (
                f"data row {first_row + at + 1}, column {column!r}: {values.iloc[at]!r} is "
                "not a number; fix or remove that row"
            )
    return None


def empty_outputs(signature: Signature) -> list[Tensor]:
    """The model's outputs for no rows, from its signature (the model takes no empty call).

    A trailing dimension the signature leaves open (-1) counts as one column."""
    tensors = []
    for spec in signature.outputs:
        shape = (0, *(d if d > 0 else 1 for d in spec.shape[1:]))
        data = np.empty(shape, dtype=numpy_dtype(spec.datatype))
        tensors.append(Tensor(spec.name, spec.datatype, shape, data))
    return tensors


def outputs_frame(signature: Signature, tensors: list[Tensor]) -> pd.DataFrame:
    """The model's outputs as rows: a column an output, or one a class (or position) where
    an output holds several."""
    columns: dict[str, Any] = {}
    classes = signature.extra.get("classes")
    probabilities = signature.probabilities
    for tensor in tensors:
        data = tensor.data
        if data.dtype.kind == "O":
            data = np.array(
                [v.decode() if isinstance(v, bytes) else v for v in data.ravel()], dtype=object
            ).reshape(data.shape)
        flat = data.reshape(data.shape[0], math.prod(data.shape[1:]))  # -1 fails on no rows
        if data.ndim == 1 or flat.shape[1] == 1:  # a column of one ([N, 1]): its name alone
            columns[tensor.name] = flat[:, 0]
            continue
        labels = (
            [str(c) for c in classes]
            if probabilities is not None
            and tensor.name == probabilities.name
            and classes
            and len(classes) == flat.shape[1]
            else [str(i) for i in range(flat.shape[1])]
        )
        for i, label in enumerate(labels):
            columns[f"{tensor.name}_{label}"] = flat[:, i]
    return pd.DataFrame(columns)


def save_npy(file: IO[bytes], frames: list[pd.DataFrame]) -> None:
    """The outputs, written to ``file`` as one array (see ``_npy``)."""
    np.save(file, _npy(pd.concat(frames, ignore_index=True)))


def _npy(frame: pd.DataFrame) -> np.ndarray:
    """The outputs as an array ``np.load`` reads without unpickling: numbers alone as one
    2-D array; beside text (string classes), a record per row with a field per column."""
    if all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
        return frame.to_numpy()
    fields = {
        name: column.astype(str) if column.dtype.kind == "O" else column
        for name, column in frame.items()
    }
    return pd.DataFrame(fields).to_records(index=False, column_dtypes=_unicode(fields))


def _unicode(fields: dict[Any, pd.Series]) -> dict[Any, str]:
    """Fixed-width text fields for the columns of text (objects cannot be saved unpickled)."""
    widths = {}
    for name, column in fields.items():
        if column.dtype.kind == "O":
            widths[name] = f"<U{max(1, int(column.str.len().max() or 1))}"
    return widths
