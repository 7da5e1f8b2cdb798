"""Requests from plain rows and records, the shapes that ``/predict`` and files carry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelpilot.errors import InvalidInput, clipped, quoted
from modelpilot.protocol.datatypes import datatype_of
from modelpilot.protocol.types import InferenceRequest, Tensor

TABULAR_INPUT = "input-0"


@dataclass(slots=True)
class RecordField(Tensor):
    """One field of records, ``[{feature: value, ...}, ...]``: a feature by the name the
    client gave it, one value per record. A tensor of a v2 request may be a tabular model's
    whole input under any name; a field never is, so that one by a name the model does not
    know is refused as an unknown feature (four records of it were taken as one row of four
    features)."""


def tensor_from_rows(
    rows: Any, name: str = TABULAR_INPUT, booleans: bool = True, field: bool = False
) -> Tensor:
    """One row (a flat list) or many (a list of lists) as a 2-D tensor. ``booleans``: whether
    the rows may hold JSON's true or false (a caller that knows the body has neither saves
    the look for them); ``field``: the rows are the values of the records' feature ``name``.
    """
    if not isinstance(rows, list | tuple | np.ndarray) or len(rows) == 0:
        raise InvalidInput('"data" must be a non-empty list: one row, or a list of rows')
    try:
        array = np.asarray(rows)
    except ValueError as exc:
        raise InvalidInput(
            f'"data" rows must all have the same length: {clipped(str(exc))}'
        ) from None
    if booleans and array.dtype.kind != "b" and array.ndim <= 2:
        _refuse_booleans_beside_numbers(rows, name if field else None)
    if array.dtype.kind in "US":
        # NumPy made text of numbers that stood beside strings; take the values as given.
        array = _coerce_objects(np.array(rows, dtype=object))
    elif array.dtype.kind == "O":
        array = _coerce_objects(array)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise InvalidInput(
            f'"data" has {array.ndim} dimensions; send one row [v1, v2, ...] or rows '
            "[[v1, v2, ...], ...]"
        )
    return Tensor(name, datatype_of(array), tuple(array.shape), array)


def tensors_from_records(
    records: Sequence[Mapping[str, Any]], booleans: bool = True
) -> list[Tensor]:
    """Records ``[{feature: value, ...}, ...]`` as one column tensor per feature
    (``booleans`` as for ``tensor_from_rows``)."""
    if not isinstance(records, list) or not records:
        raise InvalidInput('"instances" must be a non-empty list of {feature: value} objects')
    if not all(isinstance(r, dict) for r in records):
        raise InvalidInput('every item of "instances" must be an object {feature: value, ...}')
    names = list(records[0])
    for i, record in enumerate(records):
        if record.keys() != records[0].keys():
            missing = sorted(set(names) - set(record))
            extra = sorted(set(record) - set(names))
            raise InvalidInput(
                f"instance {i} has different fields from instance 0"
                + (f"; missing {quoted(missing)}" if missing else "")
                + (f"; extra {quoted(extra)}" if extra else "")
            )
    tensors: list[Tensor] = []
    for name in names:
        for i, record in enumerate(records):
            if isinstance(record[name], list | dict):
                raise InvalidInput(
                    f"instance {i} gives {quoted(name)} a {type(record[name]).__name__}; give each "
                    "feature one plain value (a number, a string or null)"
                )
        column = tensor_from_rows([[r[name]] for r in records], name, booleans, field=True)
        data = column.data[:, 0]
        tensors.append(RecordField(name, column.datatype, (data.shape[0],), data))
    return tensors


def request_from_rows(
    rows: Any, request_id: str | None = None, booleans: bool = True
) -> InferenceRequest:
    return InferenceRequest(inputs=[tensor_from_rows(rows, booleans=booleans)], id=request_id)


def request_from_records(
    records: Sequence[Mapping[str, Any]], request_id: str | None = None, booleans: bool = True
) -> InferenceRequest:
    return InferenceRequest(inputs=tensors_from_records(records, booleans), id=request_id)


def _refuse_booleans_beside_numbers(rows: Any, field: str | None) -> None:
    """InvalidInput if a feature (a column of ``rows``, or the records' ``field``) holds
    JSON's true or false beside numbers, which NumPy would make 1 and 0 without a word.

    The rule v2 follows, a tensor at a time: a BOOL tensor of true and false is read as 1
    and 0 (a boolean feature, as pandas writes one), an FP64 tensor of true is refused. A
    feature of true and false alone (with nulls, missing) is taken so here too; mixed with
    numbers, one of them is a client's mistake."""
    table = np.array(rows, dtype=object)
    if table.ndim == 1:
        table = table.reshape(1, -1)
    for position in range(table.shape[1] if table.ndim == 2 else 0):
        column = table[:, position].tolist()
        truths = [type(v) is bool for v in column]
        if not any(truths) or not any(type(v) in (int, float) for v in column):
            continue
        row = truths.index(True)
        where = (
            f"feature {quoted(field)} holds true or false (instance {row})"
            if field is not None
            else f'column {position} of "data" holds true or false (row {row})'
        )
        raise InvalidInput(
            f"{where} beside numbers: send a feature of numbers as numbers, and a boolean "
            "feature as true and false in every row (read as 1 and 0), as v2 refuses true "
            "and false in FP64 data"
        )


def _coerce_objects(array: np.ndarray) -> np.ndarray:
    """Mixed JSON values: all numbers (and null as NaN) become floats; else strings become
    bytes and the rest stay as they are (the model's signature says which feature takes
    which: a number sent for a text feature is refused, not taken as its digits)."""
    flat = array.ravel()
    if all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in flat):
        return np.array([np.nan if v is None else v for v in flat], dtype=np.float64).reshape(
            array.shape
        )
    if any(isinstance(v, list | dict) for v in flat):
        raise InvalidInput(
            '"data" rows must hold plain values (numbers or strings), not lists or objects'
        )
    out = np.empty(flat.shape, dtype=object)
    out[:] = [v.encode() if isinstance(v, str) else v for v in flat]
    return out.reshape(array.shape)
