"""Rows and records, as ``/predict`` and files carry them, into tensors."""

from __future__ import annotations

import numpy as np
import pytest

from modelpilot.errors import InvalidInput
from modelpilot.protocol.rows import request_from_records, request_from_rows


def test_one_row_and_many_rows() -> None:
    assert request_from_rows([1, 2, 3]).inputs[0].shape == (1, 3)
    many = request_from_rows([[1, 2], [3, 4]]).inputs[0]
    assert many.shape == (2, 2)
    assert many.datatype == "INT64"


def test_null_becomes_nan_and_strings_become_bytes() -> None:
    row = request_from_rows([[1.5, None]]).inputs[0]
    assert row.datatype == "FP64"
    assert np.isnan(row.data[0, 1])
    text = request_from_rows([["a", "b"]]).inputs[0]
    assert text.datatype == "BYTES"
    assert text.data[0, 1] == b"b"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "non-empty list"),
        ({"a": 1}, "non-empty list"),
        ([[1, 2], [3]], "same length"),
        ([[[1]], [[2]]], "3 dimensions"),
        ([["a", {"b": 1}]], "plain values"),
    ],
)
def test_bad_rows(rows: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        request_from_rows(rows)


def test_records_become_one_column_per_feature() -> None:
    request = request_from_records([{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}])
    a, b = request.inputs
    assert (a.name, a.shape, a.datatype) == ("a", (2,), "FP64")
    assert (b.name, b.datatype, list(b.data)) == ("b", "BYTES", [b"x", b"y"])


def test_records_with_different_fields_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"instance 1 .* missing \['b'\]"):
        request_from_records([{"a": 1, "b": 2}, {"a": 3}])
